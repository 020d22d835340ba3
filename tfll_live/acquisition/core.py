"""Build the core the loop acquires from: a Micro-Manager config, a replay or the synth camera."""

from __future__ import annotations

import gc
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pymmcore_plus import DeviceInitializationState, find_micromanager
from pymmcore_plus.experimental.unicore import UniMMCore

from tfll_live.synth import SynthConfig

from .replay_camera import ReplayCamera
from .synthetic_camera import SyntheticCamera

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pymmcore_plus.experimental.unicore import CameraDevice

CAMERA_LABEL = "Camera"


@contextmanager
def _quiet_pymmcore_log() -> Iterator[None]:
    """Silence pymmcore-plus's log where we report the problem ourselves (or there is none)."""
    log = logging.getLogger("pymmcore-plus")
    old = log.disabled
    log.disabled = True
    try:
        yield
    finally:
        log.disabled = old


def is_python_device(core: Any, label: str) -> bool:
    """Whether ``label`` is a Python device (only a ``UniMMCore`` has them)."""
    check = getattr(core, "isPyDevice", None)
    return bool(check is not None and label and check(label))


def new_core() -> UniMMCore:
    """Build an empty ``UniMMCore`` (for Python devices only; no Micro-Manager lookup noise)."""
    with _quiet_pymmcore_log():
        return UniMMCore()


def add_camera(core: UniMMCore, label: str, camera: CameraDevice, *, select: bool = True) -> None:
    """Load and initialise a Python ``camera`` under ``label`` (and make it current)."""
    core.loadPyDevice(label, camera)
    with _quiet_pymmcore_log():
        core.initializeDevice(label)
    ok = DeviceInitializationState.InitializedSuccessfully
    if core.getDeviceInitializationState(label) != ok:
        # unicore logs the error and keeps it on the device instead of raising it
        err = getattr(camera, "_initialized_", None)
        core.unloadDevice(label)
        why = _one_line(err) if isinstance(err, BaseException) else "unknown error"
        raise ValueError(f"camera {label!r} failed to initialise: {why}")
    if select:
        core.setCameraDevice(label)


def make_core(
    *,
    config: str | Path | None = None,
    replay: str | Path | None = None,
    synth: SynthConfig | None = None,
    realtime: bool = True,
    loop: bool = False,
    prerender: bool = False,
    fps: float | None = None,
) -> UniMMCore:
    """Build a core whose current camera is ready for ``CaptureLoop``.

    ``config``: a Micro-Manager configuration file (C++ adapters and/or ``#py`` devices);
    ``replay``: a recorded stream played by ``ReplayCamera`` (``realtime``, ``loop``; ``fps``
    overrides the file's frame rate);
    otherwise the ``SyntheticCamera`` with ``synth`` (``prerender`` for high frame rates).
    Bad input raises ``ValueError`` or ``OSError`` with a one-line message.
    """
    if config is not None and replay is not None:
        raise ValueError("give a Micro-Manager configuration or a replay file, not both")
    if config is not None:
        return _core_from_config(Path(config))
    if replay is not None:
        cam: CameraDevice = ReplayCamera(replay, realtime=realtime, loop=loop, fps=fps)
    else:
        cam = SyntheticCamera(synth, prerender=prerender)
    core = new_core()
    add_camera(core, CAMERA_LABEL, cam)
    return core


def _core_from_config(path: Path) -> UniMMCore:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such Micro-Manager configuration file")
    # C++ devices need the Micro-Manager installation the core looks up; a configuration of
    # Python devices does not, so a missing installation is only mentioned if loading fails
    core = new_core()
    failure = ""
    try:
        with _quiet_pymmcore_log():
            core.loadSystemConfiguration(path)
    except Exception as e:
        failure = _one_line(e).replace(
            f"Error in configuration file {str(path.resolve())!r} at ", ""
        )
    if failure:
        # Free the failed core now: left to interpreter shutdown, the C++ core aborts the
        # process ("FATAL: exception not rethrown") after the error has been reported.
        del core
        gc.collect()
        hint = ""
        if not _has_micromanager():
            hint = " (no Micro-Manager installation found: run `mmcore install`)"
        raise ValueError(f"{path}: cannot load configuration: {failure}{hint}")
    camera = core.getCameraDevice()
    if not camera:
        raise ValueError(f"{path}: the configuration selects no camera (Core, Camera)")
    ok = DeviceInitializationState.InitializedSuccessfully
    if core.getDeviceInitializationState(camera) != ok:
        raise ValueError(f"{path}: camera {camera!r} failed to initialise")
    return core


def _has_micromanager() -> bool:
    with _quiet_pymmcore_log():
        return find_micromanager() is not None


def _one_line(e: BaseException) -> str:
    """Exception text squeezed onto one line (config errors span several)."""
    text = " ".join(part.strip() for part in str(e).splitlines() if part.strip())
    return text or type(e).__name__
