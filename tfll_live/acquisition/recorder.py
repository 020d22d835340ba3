"""Lossless, crash-safe recording of a live session, with its analysis beside it.

OME-Zarr: one chunk per frame, frame times and metadata flushed as they come, so a killed
process keeps every frame written. OME-TIFF: frames appended to one file; the OME-XML header
is written when the file is closed (see ``TiffRecorder``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

Format = Literal["ome-tiff", "ome-zarr"]


def free_path(path: str | Path, fmt: Format) -> Path:
    """``path`` with the format's suffix, or ``<stem>-1``, ``-2``... if that already exists."""
    raise NotImplementedError


class Recorder:
    """Writes frames (with times and metadata) to one recording; opened by ``open_recorder``."""

    path: Path
    n_written: int

    def write(self, frame: np.ndarray, time_s: float, metadata: dict[str, str]) -> None:
        """Append one frame (raises OSError when the disk refuses)."""
        raise NotImplementedError

    def close(self) -> None:
        """Finalise the file; safe to call twice and after a failed write."""
        raise NotImplementedError


def open_recorder(
    path: str | Path,
    fmt: Format,
    frame_shape: tuple[int, ...],
    dtype: np.dtype,
    attrs: dict[str, object],
) -> Recorder:
    """Create a new recording at ``path`` (never overwriting) with session ``attrs``."""
    raise NotImplementedError
