"""The capture loop: every camera frame, in order, into the tracker and the recorder.

The camera runs continuous sequence acquisition into the core's circular buffer; a dedicated
capture thread pops every frame in order, tracks it, records it (while recording is on) and
publishes the newest frame and result for display, which may skip frames. Tracking and
recording never skip.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from .events import CaptureEvents

if TYPE_CHECKING:
    from pymmcore_plus.experimental.unicore import UniMMCore

    from tfll_live.tracking import FrameResult, TrackerConfig


class LoopState(str, Enum):
    """Where the loop is in its life."""

    IDLE = "idle"
    RUNNING = "running"
    STOPPING = "stopping"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class CaptureStats:
    """Counters of a capture session (a snapshot; the loop keeps counting)."""

    acquired: int = 0  # frames the camera produced (popped + dropped)
    tracked: int = 0  # frames pushed through the tracker
    recorded: int = 0  # frames written to the current/last recording
    dropped: int = 0  # gaps in the camera's image numbers (circular-buffer overflow)
    fps: float = 0.0  # recent rate of tracked frames
    latency_ms_median: float = float("nan")  # frame in the core's buffer -> FrameResult
    latency_ms_p95: float = float("nan")
    state: LoopState = LoopState.IDLE
    elapsed_s: float = 0.0


class CaptureLoop:
    """Continuous acquisition from a core's current camera into a Tracker (and a recorder).

    ``core=None`` builds the default core (the synthetic interferometer camera, ``make_core()``).
    """

    def __init__(
        self, core: UniMMCore | None = None, tracker_config: TrackerConfig | None = None
    ) -> None:
        self.events = CaptureEvents()
        raise NotImplementedError

    @property
    def core(self) -> UniMMCore:
        """The core this loop acquires from."""
        raise NotImplementedError

    @property
    def is_running(self) -> bool:
        """Whether the capture thread is running."""
        raise NotImplementedError

    @property
    def is_recording(self) -> bool:
        """Whether frames currently go to a recording."""
        raise NotImplementedError

    @property
    def stats(self) -> CaptureStats:
        """Counters so far (thread safe snapshot)."""
        raise NotImplementedError

    @property
    def tracker_config(self) -> TrackerConfig:
        """The tracker configuration in use."""
        raise NotImplementedError

    def start(self) -> None:
        """Start continuous sequence acquisition and the capture thread (a new session)."""
        raise NotImplementedError

    def stop(self, timeout_s: float = 5.0) -> CaptureStats:
        """Stop acquisition, finalise any recording, and return the final counters.

        Never hangs: the camera and the capture thread get ``timeout_s`` to finish.
        """
        raise NotImplementedError

    def start_recording(
        self, path: str | Path, fmt: Literal["ome-tiff", "ome-zarr"] = "ome-zarr"
    ) -> Path:
        """Record from the next frame on; returns the path actually used.

        Never overwrites: when ``path`` exists, the recording goes to ``<stem>-1<suffix>``,
        ``-2``, ... (the returned path says which). Starting a recording starts a new
        tracking session (tracker reset), so the recording's analysis stands alone and a
        replay of it gives the same numbers.
        """
        raise NotImplementedError

    def stop_recording(self) -> Path | None:
        """Finalise the recording (image file, results.json, frames.csv); its path or None."""
        raise NotImplementedError

    def latest(self) -> tuple[np.ndarray, FrameResult] | None:
        """Return the newest tracked frame and its result, for display (which may skip frames)."""
        raise NotImplementedError

    def set_tracker_config(self, cfg: TrackerConfig) -> None:
        """Use ``cfg`` from the next frame on (the tracker restarts)."""
        raise NotImplementedError
