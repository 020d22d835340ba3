"""Waiting in tests for things that happen on other threads."""

import time
from collections.abc import Callable


def wait_until(cond: Callable[[], bool], timeout_s: float = 20.0) -> bool:
    """Poll ``cond`` until true (the psygnal analogue of qtbot.waitUntil); its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.005)
    return cond()
