"""Credits between a camera that can go as fast as it is consumed and the loop consuming it.

A replay camera in "as fast as consumed" mode must not outrun the consumer: the core's
circular buffer would overwrite frames. The camera takes one credit per frame and tags the
frame with its flow token; the consumer gives the credit back when it has finished the frame.
With no consumer returning credits the camera waits ``patience_s`` per frame and goes on.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import weakref

_flows: weakref.WeakValueDictionary[str, FlowControl] = weakref.WeakValueDictionary()
_ids = itertools.count()

KEY_FLOW = "tfll.flow"  # metadata key: token of the FlowControl the frame's credit returns to


class FlowControl:
    """A window of ``window`` frames in flight between a camera and its consumer."""

    def __init__(self, window: int = 8, patience_s: float = 1.0) -> None:
        self.token = f"flow-{next(_ids)}"
        self._credits = threading.BoundedSemaphore(window)
        self._patience_s = patience_s
        _flows[self.token] = self

    def take(self) -> None:
        """Wait for a credit (at most ``patience_s``, then go on without one)."""
        self._credits.acquire(timeout=self._patience_s)

    def give_back(self) -> None:
        """Return one credit (one taken without waiting for it is not returned twice)."""
        # ValueError: the camera went on without this credit after waiting for it
        with contextlib.suppress(ValueError):
            self._credits.release()


def frame_done(token: str | None) -> None:
    """Tell the camera its consumer finished a frame tagged ``token`` (unknown: no-op)."""
    if token and (flow := _flows.get(token)) is not None:
        flow.give_back()
