"""A hand-over point between the capture thread and the Qt main thread.

The capture loop emits ``frame_tracked`` (and sometimes ``error``, ``frames_lost``,
``recording_stopped``, ``recording_limit_reached``, ``stopped``) on its own threads. Touching
Qt or napari there is not allowed and slow slots would stall tracking, so the slots connected
here only append to deques (atomic in CPython); the GUI's display timer drains them on the
main thread. Every FrameResult arrives, in order, even when the display skips frames, so
trajectories and the spread plot miss nothing.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tfll_live.acquisition import CaptureLoop
    from tfll_live.tracking import FrameResult


class LoopFeed:
    """Collects a capture loop's events for the GUI thread to pick up."""

    def __init__(self, max_results: int = 10_000) -> None:
        # bounded: if the GUI were frozen for minutes, the oldest results are dropped, not RAM
        self._results: deque[tuple[FrameResult, float]] = deque(maxlen=max_results)
        self._events: deque[tuple[str, tuple[Any, ...]]] = deque(maxlen=1000)
        self._connections: list[tuple[Any, Any]] = []
        self.n_received = 0

    # -- the loop's threads' side: append only -------------------------------------------------
    def _on_frame(self, result: FrameResult) -> None:
        self._results.append((result, time.perf_counter()))
        self.n_received += 1  # only the tracking thread writes it

    def _on_error(self, message: str) -> None:
        self._events.append(("error", (message,)))

    def _on_frames_lost(self, n: int, total: int) -> None:
        self._events.append(("frames_lost", (n, total)))

    def _on_recording_started(self, path: Any) -> None:
        self._events.append(("recording_started", (path,)))

    def _on_recording_stopped(self, path: Any, error: str | None) -> None:
        self._events.append(("recording_stopped", (path, error)))

    def _on_limit_reached(self, path: Any, why: str) -> None:
        self._events.append(("recording_limit_reached", (path, why)))

    def _on_stopped(self, stats: Any) -> None:
        self._events.append(("stopped", (stats,)))

    # -- wiring ----------------------------------------------------------------------------------
    def connect(self, loop: CaptureLoop) -> None:
        """Listen to ``loop``'s events (disconnects from any previous loop)."""
        self.disconnect()
        self.n_received = 0
        ev = loop.events
        self._connections = [
            (ev.frame_tracked, self._on_frame),
            (ev.error, self._on_error),
            (ev.frames_lost, self._on_frames_lost),
            (ev.recording_started, self._on_recording_started),
            (ev.recording_stopped, self._on_recording_stopped),
            (ev.recording_limit_reached, self._on_limit_reached),
            (ev.stopped, self._on_stopped),
        ]
        for signal, slot in self._connections:
            signal.connect(slot)

    def disconnect(self) -> None:
        """Stop listening (the queued items stay until drained)."""
        for signal, slot in self._connections:
            signal.disconnect(slot)
        self._connections = []

    # -- GUI-thread side -------------------------------------------------------------------------
    def drain_results(self) -> list[tuple[FrameResult, float]]:
        """Every FrameResult since the last call, in order, with its arrival time (perf_counter)."""
        out = []
        q = self._results
        while q:
            out.append(q.popleft())
        return out

    def drain_events(self) -> list[tuple[str, tuple[Any, ...]]]:
        """Loop events since the last call: ``(name, args)``."""
        out = []
        q = self._events
        while q:
            out.append(q.popleft())
        return out
