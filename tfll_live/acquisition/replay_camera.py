"""A camera that replays a recorded stream (any file ``tfll analyze`` reads).

Plays at the recorded frame rate or as fast as the loop consumes, once or looping, with the
recorded frame times in each frame's metadata, so the live pipeline sees exactly the session
that was recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import DTypeLike
from pymmcore_plus.experimental.unicore import CameraDevice


class ReplayCamera(CameraDevice):
    """Replays a recorded stream as a Micro-Manager camera."""

    def __init__(
        self, path: str | Path | None = None, *, realtime: bool = True, loop: bool = False
    ) -> None:
        super().__init__()
        raise NotImplementedError

    def open(self, path: str | Path) -> None:
        """Open ``path`` (OSError/ValueError with a one-line message if it is not a stream)."""
        raise NotImplementedError

    def get_exposure(self) -> float:
        """Exposure in ms (the recorded frame period)."""
        raise NotImplementedError

    def set_exposure(self, exposure: float) -> None:
        """Ignore: the recording fixes the frame period."""
        raise NotImplementedError

    def shape(self) -> tuple[int, int] | tuple[int, int, int]:
        """Shape of the recorded frames."""
        raise NotImplementedError

    def dtype(self) -> DTypeLike:
        """Pixel type of the recorded frames."""
        raise NotImplementedError

    def start_sequence(
        self, n: int | None, get_buffer: Callable[[Sequence[int], DTypeLike], np.ndarray]
    ) -> Iterator[Mapping]:
        """Copy recorded frames into the core's buffer, paced or as fast as consumed."""
        raise NotImplementedError
