"""Build the core the loop acquires from: a Micro-Manager config, a replay or the synth camera."""

from __future__ import annotations

from pathlib import Path

from pymmcore_plus.experimental.unicore import UniMMCore

from tfll_live.synth import SynthConfig

CAMERA_LABEL = "Camera"


def make_core(
    *,
    config: str | Path | None = None,
    replay: str | Path | None = None,
    synth: SynthConfig | None = None,
    realtime: bool = True,
    loop: bool = False,
) -> UniMMCore:
    """Build a core whose current camera is ready for ``CaptureLoop``.

    ``config``: a Micro-Manager configuration file (C++ adapters and/or ``#py`` devices);
    ``replay``: a recorded stream played by ``ReplayCamera`` (``realtime``, ``loop``);
    otherwise the ``SyntheticCamera`` with ``synth``. Bad input raises ``ValueError`` or
    ``OSError`` with a one-line message.
    """
    raise NotImplementedError
