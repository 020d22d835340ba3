"""The incremental tracker: one frame in, one FrameResult out, causally, at camera rate."""

from __future__ import annotations

import numpy as np

from .config import TrackerConfig
from .results import FrameResult, Summary


class Tracker:
    """Composes the paper's stages; the only tracking object the loop and the GUI know.

    ``push(frame, t)`` takes mono (Y, X) or RGB (Y, X, 3) uint8/uint16 frames (float frames
    are accepted if finite) with their time in seconds; ``finish()`` closes the open interval
    and returns the whole stream's ``Summary``; ``reset()`` forgets everything.
    """

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()

    def push(self, frame: np.ndarray, t: float) -> FrameResult:
        """Track one frame taken at time ``t`` (seconds, any origin, increasing)."""
        raise NotImplementedError

    def summary(self) -> Summary:
        """Blinks and intervals so far (the open interval is not included)."""
        raise NotImplementedError

    def finish(self) -> Summary:
        """End of stream: close the open interval (final fit) and return the summary."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget the stream (new camera, new session)."""
        raise NotImplementedError
