"""Size the core's circular buffer to hold several seconds of the camera's frames.

The buffer is what stands between the camera and a recorder that stalls for a moment (a
disk flush, a busy machine): frames it cannot hold are lost. It is sized from the camera's
frame size and rate (one frame per exposure, the fastest a free-running camera goes), at
most a quarter of the machine's memory; a buffer the user made larger is left as it is.
"""

from __future__ import annotations

import math
import os
from typing import Any

from .core import is_python_device

BUFFER_S = 5.0  # seconds of frames the buffer holds at least
_MIN_FRAMES = 16


def physical_memory_mb() -> float:
    """The machine's memory in MB (a large default where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    except (AttributeError, OSError, ValueError):
        return 16 * 1024.0


def size_circular_buffer(core: Any, seconds: float = BUFFER_S) -> float:
    """Make the buffer hold ``seconds`` of frames at the camera's rate; the seconds it holds.

    Call while the camera is not acquiring. A Python camera's buffer is sized to a whole
    number of frames: pymmcore-plus 0.18's ``SequenceBuffer`` evicts every queued frame when
    the next one does not fit in the space left at the end of the ring (``_ensure_space``),
    so a loop that keeps up would still lose the frames queued at each wrap.
    """
    frame_bytes = int(core.getImageBufferSize())
    if frame_bytes <= 0:
        return 0.0
    fps = 1000.0 / max(float(core.getExposure()), 0.1)
    wanted_mb = min(frame_bytes * fps * seconds / 2**20, physical_memory_mb() / 4)
    if is_python_device(core, core.getCameraDevice()):  # the project's camera: just that
        n = max(_MIN_FRAMES, int(wanted_mb * 2**20 // frame_bytes))
        core.setCircularBufferMemoryFootprint(n * frame_bytes / 2**20)  # UniMMCore: float MB
        return n / fps
    current_mb = int(core.getCircularBufferMemoryFootprint())  # the user's: never shrunk
    if math.ceil(wanted_mb) > current_mb:
        core.setCircularBufferMemoryFootprint(math.ceil(wanted_mb))
        current_mb = math.ceil(wanted_mb)
    return current_mb * 2**20 // frame_bytes / fps
