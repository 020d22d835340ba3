"""The tracker's own thread: it tracks what the capture thread offers, and writes the analysis.

Tracking is a non-critical consumer of the camera stream: it may fall behind and skip frames
(``handoff.TrackQueue``), and an error in it is reported while acquisition and recording go
on. A *session* is one tracker run. Its frames are numbered in the order the camera delivered
them (the recording's frame numbers while recording), whether tracked or not, so results
from a tracker that skipped frames still name the frames they belong to.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import time
from array import array
from collections import deque
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from tfll_live.tracking import Blink, FrameResult, Interval, Summary, Tracker, TrackerConfig

from ._flow import frame_done
from .handoff import Offered, Skipped, TrackQueue

if TYPE_CHECKING:
    from .events import CaptureEvents
    from .recorder import Recording


class Session:
    """One tracker run, and the numbering of its frames.

    The capture thread sets ``t0`` and hands out ``next_index``; everything else belongs to
    the tracking thread.
    """

    def __init__(self, config: TrackerConfig, recording: Recording | None = None) -> None:
        self.tracker = Tracker(config)
        self.recording = recording  # where this session's frames go now (None: not recorded)
        self.t0: float | None = None
        self.next_index = 0
        self.intervals_emitted = 0
        self.failed: str | None = None  # the tracker's error, reported once
        self._indices = array("q")  # session frame number of each frame the tracker saw

    def push(self, item: Offered) -> FrameResult:
        """Track one frame; the result is numbered in the session's frames."""
        result = self.tracker.push(item.frame, item.time_s)
        self._indices.append(item.index)
        return replace(
            result,
            frame=self._at(result.frame),
            blink_ended=self._blink(result.blink_ended),
            interval_ended=self._interval(result.interval_ended),
        )

    def finish(self) -> Summary:
        """End of the session: the tracker closes its open interval; the whole summary."""
        return self._summary(self.tracker.finish())

    def summary_so_far(self) -> Summary:
        """Return the summary as if the session ended now, leaving live tracking undisturbed.

        (The tracker is finished on a copy; if it cannot be copied, what has closed so far.)
        """
        try:
            return self._summary(copy.deepcopy(self.tracker).finish())
        except Exception:
            return self._summary(self.tracker.summary())

    def _at(self, k: int) -> int:
        return int(self._indices[k]) if 0 <= k < len(self._indices) else k

    def _blink(self, b: Blink | None) -> Blink | None:
        return (
            None
            if b is None
            else replace(b, start_frame=self._at(b.start_frame), end_frame=self._at(b.end_frame))
        )

    def _interval(self, iv: Interval | None) -> Interval | None:
        return (
            None
            if iv is None
            else replace(iv, start_frame=self._at(iv.start_frame), end_frame=self._at(iv.end_frame))
        )

    def _summary(self, s: Summary) -> Summary:
        blinks = tuple(b for b in map(self._blink, s.blinks) if b is not None)
        intervals = tuple(iv for iv in map(self._interval, s.intervals) if iv is not None)
        return Summary(blinks, intervals, s.thickness)


@dataclass
class EndRecording:
    """Marker: the recording's last frame has been handed over; finalise it."""

    recording: Recording
    session: Session
    error: str | None = None  # why it ended early
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class EndSession:
    """Marker: no more frames for this session; close its open interval."""

    session: Session
    done: threading.Event = field(default_factory=threading.Event)


QUIT = "quit"  # marker: the run is over (the tracking thread ends)


class LatencyHistogram:
    """Constant-memory latency percentiles over a whole run (0.1 ms bins up to 10 s)."""

    BIN_MS = 0.1

    def __init__(self) -> None:
        self._counts = np.zeros(100_000, np.int64)
        self._n = 0

    def add(self, ms: float) -> None:
        """Count one latency (NaN is ignored)."""
        if not np.isfinite(ms):
            return
        self._counts[min(max(int(ms / self.BIN_MS), 0), len(self._counts) - 1)] += 1
        self._n += 1

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile in ms (NaN before the first)."""
        if self._n == 0:
            return float("nan")
        k = int(np.searchsorted(np.cumsum(self._counts), q / 100.0 * self._n))
        return (k + 0.5) * self.BIN_MS


class TrackingWorker:
    """Runs the tracker on its own thread over a ``TrackQueue``; counts what it did."""

    def __init__(self, queue: TrackQueue, events: CaptureEvents) -> None:
        self.queue, self.events = queue, events
        self.latest: tuple[np.ndarray, FrameResult] | None = None
        self.tracked = self.skipped = 0
        self.latency = LatencyHistogram()
        self.recent: deque[float] = deque(maxlen=64)  # perf_counter of recent results
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the tracking thread."""
        self._thread = threading.Thread(target=self._run, name="tfll-tracker", daemon=True)
        self._thread.start()

    def is_alive(self) -> bool:
        """Whether the tracking thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout_s: float) -> bool:
        """Wait for the thread to end (after ``QUIT``); whether it did."""
        if self._thread is not None:
            self._thread.join(timeout_s)
            return not self._thread.is_alive()
        return True

    def _run(self) -> None:
        while True:
            skipped, item = self.queue.get(0.2)
            for s in skipped:
                self._skip(s)
            if item is None:
                continue
            if item is QUIT:
                return
            try:
                if isinstance(item, Offered):
                    self._track(item)
                elif isinstance(item, EndRecording):
                    self._end_recording(item)
                elif isinstance(item, EndSession):
                    self._end_session(item)
            except Exception as e:  # a bug must not end tracking, nor hang a stop
                self.events.error.emit(f"tracking: {_one_line(e)}")
                if isinstance(item, (EndRecording, EndSession)):
                    item.done.set()

    def _skip(self, s: Skipped) -> None:
        self.skipped += 1
        if s.recording is not None:
            s.recording.write_untracked(s.index, s.time_s)

    def _track(self, item: Offered) -> None:
        session = item.session
        result = None
        if session.failed is None:
            try:
                result = session.push(item)
            except Exception as e:  # a frame the tracker refuses: say so once, record on
                session.failed = _one_line(e)
                self.events.error.emit(f"tracking stopped: {session.failed}")
        frame_done(item.flow)
        if result is None:
            self._skip(Skipped(session, item.index, item.time_s, item.recording))
            return
        if item.recording is not None:
            item.recording.write_result(result)
        self.latest = (item.frame, result)
        self.tracked += 1
        if item.readout is not None:
            self.latency.add((time.time() - item.readout) * 1000.0)
        self.recent.append(time.perf_counter())
        self.events.frame_tracked.emit(result)
        if result.blink_ended is not None:
            self.events.blink.emit(result.blink_ended)
        if result.interval_ended is not None:
            self._emit_interval(session, result.interval_ended)

    def _end_recording(self, marker: EndRecording) -> None:
        finish_recording(marker, self.events)

    def _end_session(self, marker: EndSession) -> None:
        session = marker.session
        with contextlib.suppress(Exception):  # a session that cannot finish has nothing to add
            for interval in session.finish().intervals[session.intervals_emitted :]:
                self._emit_interval(session, interval)
        marker.done.set()

    def _emit_interval(self, session: Session, interval: Interval) -> None:
        session.intervals_emitted = max(session.intervals_emitted, interval.index + 1)
        self.events.interval_fit.emit(interval)


def finish_recording(marker: EndRecording, events: CaptureEvents) -> None:
    """Close a recording with its session's summary so far; report that it stopped."""
    rec = marker.recording
    try:
        failed = rec.close(marker.session.summary_so_far(), error=marker.error)
    finally:
        marker.done.set()
    events.recording_stopped.emit(rec.path, marker.error or failed)


def _one_line(e: BaseException) -> str:
    text = " ".join(part.strip() for part in str(e).splitlines() if part.strip())
    return text or type(e).__name__
