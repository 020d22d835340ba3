"""A camera that replays a recorded stream (any file ``tfll analyze`` reads).

Plays at the recorded frame times (``realtime``) or as fast as the capture loop consumes the
frames, once or looping, with the recorded frame times in each frame's metadata
(``tfll.time_s``), so the live pipeline sees exactly the session that was recorded and gives
the same results. A file that ends early (truncated) plays its intact frames and then fails
the sequence with the reader's one-line message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import DTypeLike
from pymmcore_plus.experimental.unicore import CameraDevice, pymm_property

from tfll_live.io import FrameSource, StreamError, open_stream

from ._flow import KEY_FLOW, FlowControl
from .synthetic_camera import KEY_END, KEY_FRAME, KEY_READOUT, KEY_SOURCE_FRAME, KEY_TIME_S


class ReplayCamera(CameraDevice):
    """Replays a recorded stream as a Micro-Manager camera.

    ``path`` is opened at once (``StreamError``, a ``ValueError`` with a one-line message, if it
    is missing or not an image stream); a camera loaded from a configuration file opens its
    ``File`` property when initialised. ``fps`` overrides the file's frame rate.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        realtime: bool = True,
        loop: bool = False,
        fps: float | None = None,
    ) -> None:
        super().__init__()
        self._path = "" if path is None else str(path)
        self._realtime, self._loop, self._fps_arg = realtime, loop, fps
        self._source: FrameSource | None = None
        if path is not None:
            self.open(path)

    def open(self, path: str | Path) -> None:
        """Open ``path`` (StreamError with a one-line message if it is not a stream)."""
        source = open_stream(path, self._fps_arg)
        if self._source is not None:
            self._source.close()
        self._source, self._path = source, str(path)

    def initialize(self) -> None:
        """Open the ``File`` property's stream if none is open yet."""
        if self._source is None:
            if not self._path:
                raise StreamError("replay camera: no file given (set its File property)")
            self.open(self._path)

    def shutdown(self) -> None:
        """Close the file."""
        if self._source is not None:
            self._source.close()

    @property
    def source(self) -> FrameSource:
        """The open stream."""
        if self._source is None:
            raise StreamError("replay camera: no file open")
        return self._source

    # -- properties -------------------------------------------------------------------
    @pymm_property(is_pre_init=True, name="File")
    def file(self) -> str:
        """Path of the stream being replayed."""
        return self._path

    @file.setter  # type: ignore[no-redef]
    def file(self, value: str) -> None:
        self._path = str(value)
        if self._source is not None:
            self.open(self._path)

    @pymm_property(allowed_values=["Yes", "No"], name="Realtime")
    def realtime(self) -> str:
        """Yes: at the recorded frame times; No: as fast as the loop consumes."""
        return "Yes" if self._realtime else "No"

    @realtime.setter  # type: ignore[no-redef]
    def realtime(self, value: str) -> None:
        self._realtime = value == "Yes"

    @pymm_property(allowed_values=["Yes", "No"], name="Loop")
    def loop(self) -> str:
        """Start again at the end of the stream."""
        return "Yes" if self._loop else "No"

    @loop.setter  # type: ignore[no-redef]
    def loop(self, value: str) -> None:
        self._loop = value == "Yes"

    def get_exposure(self) -> float:
        """Exposure in ms: the recorded frame period."""
        return 1000.0 / self.source.fps if self._source is not None else 0.0

    def set_exposure(self, exposure: float) -> None:
        """Ignore: the recording fixes the frame period."""

    def shape(self) -> tuple[int, int] | tuple[int, int, int]:
        """Shape of the recorded frames."""
        return self.source.shape  # type: ignore[return-value]

    def dtype(self) -> DTypeLike:
        """Pixel type of the recorded frames."""
        return self.source.dtype

    # -- acquisition ------------------------------------------------------------------
    def _passes(self) -> Iterator[tuple[int, np.ndarray, bool]]:
        """(index in file, frame, last of the stream?) over one pass, or forever if looping."""
        src = self.source
        while True:
            previous: tuple[int, np.ndarray] | None = None
            try:
                for i, frame in enumerate(src):
                    if previous is not None:
                        yield previous[0], previous[1], False
                    previous = (i, frame)
            except StreamError:  # a damaged file: its last intact frame, then the error
                if previous is not None:
                    yield previous[0], previous[1], False
                raise
            if previous is None:
                raise StreamError(f"{src.path}: no frame to replay")
            yield previous[0], previous[1], not self._loop
            if not self._loop:
                return

    def start_sequence(
        self, n: int | None, get_buffer: Callable[[Sequence[int], DTypeLike], np.ndarray]
    ) -> Iterator[Mapping]:
        """Copy recorded frames into the core's buffer, paced or as fast as consumed."""
        src = self.source
        shape, dtype = self.shape(), self.dtype()
        period = 1.0 / src.fps
        flow = None if self._realtime else FlowControl()
        offset = 0.0  # time added per completed pass when looping
        last_t = 0.0
        t_start = time.perf_counter()
        wall_start = time.time()
        for k, (i, frame, last) in enumerate(self._passes()):
            if n is not None and k >= n:
                return
            t = src.frame_time(i)
            if i == 0 and k > 0:
                offset += last_t + period
            last_t = t
            if flow is not None:
                flow.take()
            buf = get_buffer(shape, dtype)
            buf[...] = frame
            if flow is None:
                delay = t_start + offset + t - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                # due now in real time: a frame delivered late counts as late
                readout = wall_start + offset + t
            else:
                readout = time.time()  # paced by its consumer: read out when delivered
            md = {
                KEY_TIME_S: repr(offset + t),
                KEY_READOUT: repr(readout),
                KEY_FRAME: str(k),
                KEY_SOURCE_FRAME: str(i),
            }
            if last:
                md[KEY_END] = "1"
            if flow is not None:
                md[KEY_FLOW] = flow.token
            yield md
