"""Hand-over from the capture thread to the tracker: never blocks, skips to the newest when behind.

The capture thread must never wait for tracking (the recording is fed by it), so it only
appends to this queue. The tracker takes frames in order while it keeps up; once the oldest
waiting frame is more than ``max_lag_s`` older than the newest (or the waiting frames hold
more than ``max_mb``), the oldest are skipped, and the tracker resumes from recent frames.
A skipped frame keeps its place in the stream: the tracker is told which frames it skipped,
so the results can say so. Frames the camera paces by credit (a replay as fast as tracking
goes) and markers (a recording or session ending) are never skipped.

pymmcore-plus's dispatcher gives non-critical consumers the same policy (a bounded queue that
drops the oldest); this one measures "behind" in time, the quantity a live view cares about.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .recorder import Recording
    from .tracking_worker import Session


@dataclass(frozen=True, slots=True)
class Offered:
    """One camera frame for the tracker, with where it belongs."""

    session: Session  # the tracking session the frame belongs to
    index: int  # frame number in the session (the recording's frame number while recording)
    time_s: float  # camera time since the session's first frame
    frame: np.ndarray
    readout: float | None  # when the camera read the frame out (Unix s), for the latency
    recording: Recording | None = None  # the recording the frame went to, if any
    flow: str | None = None  # credit token of a camera paced by its consumer: never skipped
    arrived: float = 0.0  # time.perf_counter() when the capture thread handed it over


@dataclass(frozen=True, slots=True)
class Skipped:
    """A frame the tracker did not get to: its place in the stream, without its pixels."""

    session: Session
    index: int
    time_s: float
    recording: Recording | None = None


class TrackQueue:
    """Frames and markers for the tracker; ``put`` never blocks, old frames give way."""

    def __init__(self, max_lag_s: float = 0.25, max_mb: float = 256.0) -> None:
        self.max_lag_s, self._max_bytes = max_lag_s, max_mb * 2**20
        self._bytes = 0
        self._items: deque[Any] = deque()
        self._skipped: list[Skipped] = []
        self._ready = threading.Condition()
        self.n_skipped = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Offered) -> None:
        """Queue a frame, skipping the oldest waiting frames if the tracker is too far behind."""
        with self._ready:
            self._items.append(item)
            self._bytes += item.frame.nbytes
            self._skip_old(item.arrived)
            self._ready.notify()

    def put_marker(self, marker: Any) -> None:
        """Queue a marker (anything but an ``Offered``); markers are never skipped."""
        with self._ready:
            self._items.append(marker)
            self._ready.notify()

    def get(self, timeout_s: float) -> tuple[list[Skipped], Any]:
        """Skipped frames since the last call (in order), and the next item (None: time out)."""
        with self._ready:
            if not self._items and not self._skipped:
                self._ready.wait(timeout_s)
            skipped, self._skipped = self._skipped, []
            item = self._items.popleft() if self._items else None
            if isinstance(item, Offered):
                self._bytes -= item.frame.nbytes
            return skipped, item

    def _skip_old(self, newest: float) -> None:
        items = self._items
        while len(items) > 1:
            oldest = items[0]
            if not isinstance(oldest, Offered) or oldest.flow is not None:
                return  # a marker, or a frame that must be tracked, holds the line
            if newest - oldest.arrived <= self.max_lag_s and self._bytes <= self._max_bytes:
                return
            items.popleft()
            self._bytes -= oldest.frame.nbytes
            self._skipped.append(
                Skipped(oldest.session, oldest.index, oldest.time_s, oldest.recording)
            )
            self.n_skipped += 1
