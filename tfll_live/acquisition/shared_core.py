"""The Micro-Manager core the ecosystem shares, and the project's cameras on it.

napari-micromanager, pymmcore-widgets and scripts all use ``CMMCorePlus.instance()``: a
user's hardware is configured (and opened: most cameras can be opened only once) there. The
plugin works on that core: a camera loaded there is used as it is, never loaded a second
time. The project's Python cameras (synthetic, replay) join that core as Python devices
while they are used, so every tool sees the same camera. A core that takes no Python devices
(a plain ``CMMCorePlus`` made by another tool first) cannot hold them; they then run on a
core of their own, which opens no hardware.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from pymmcore_plus.experimental.unicore import UniMMCore

from .core import _quiet_pymmcore_log, add_camera, new_core

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus
    from pymmcore_plus.experimental.unicore import CameraDevice

SYNTHETIC_LABEL = "TFLL-Synthetic"
REPLAY_LABEL = "TFLL-Replay"
OUR_LABELS = (SYNTHETIC_LABEL, REPLAY_LABEL)


def shared_core() -> CMMCorePlus:
    """``CMMCorePlus.instance()``; created as a ``UniMMCore`` (Python devices welcome) if none."""
    with _quiet_pymmcore_log():
        return UniMMCore.instance()


def micromanager_camera(core: CMMCorePlus) -> str:
    """The core's current camera if it is the user's (not one of ours); "" if none."""
    label = str(core.getCameraDevice())
    return "" if label in OUR_LABELS else label


class PythonCamera:
    """One of the project's cameras, plugged into a core (made current) while it is used.

    ``core`` is the core it joins, or its own where the given core takes no Python devices.
    ``remove()`` unloads it and makes the camera that was current before current again.
    """

    def __init__(self, core: CMMCorePlus, label: str, camera: CameraDevice) -> None:
        if not hasattr(core, "loadPyDevice"):
            core = new_core()
        self.core, self.label = core, label
        self.previous = micromanager_camera(core)
        if label in core.getLoadedDevices():  # left from before: replaced
            core.unloadDevice(label)
        add_camera(core, label, camera)  # type: ignore[arg-type]

    @property
    def shared(self) -> bool:
        """Whether it joined the ecosystem's shared core (rather than a core of its own)."""
        return self.core is shared_core()

    def remove(self) -> None:
        """Unload the camera; the user's camera is current again."""
        core = self.core
        with contextlib.suppress(Exception):  # a core torn down by its owner meanwhile
            if self.label in core.getLoadedDevices():
                core.unloadDevice(self.label)
            if self.previous and self.previous in core.getLoadedDevices():
                core.setCameraDevice(self.previous)
