"""Catch the exception that ends a core's acquisition thread, so the loop can report it.

A Python camera that raises mid-sequence ends pymmcore-plus's acquisition thread with an
uncaught exception, which Python hands to ``threading.excepthook``. The capture loop owns that
acquisition, so it takes the exception (as its error message) instead of letting it print a
traceback. Exceptions of every other thread go to the previous hook unchanged.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

_lock = threading.Lock()
_Watcher = tuple[Callable[[threading.Thread], bool], Callable[[BaseException], None]]
_watchers: dict[int, _Watcher] = {}


def _dispatch(args: Any) -> None:
    thread = args.thread
    with _lock:
        watchers = list(_watchers.values())
    for matches, report in watchers:
        if thread is not None and matches(thread):
            report(args.exc_value)
            return
    _dispatch.previous(args)  # type: ignore[attr-defined]


_dispatch.previous = threading.excepthook  # type: ignore[attr-defined]


def watch(
    key: int, matches: Callable[[threading.Thread], bool], report: Callable[[BaseException], None]
) -> None:
    """Send uncaught exceptions of threads for which ``matches(thread)`` to ``report``.

    (Re)installs the dispatching hook on top of whatever hook is current, since test runners
    and applications replace ``threading.excepthook`` at will.
    """
    with _lock:
        _watchers[key] = (matches, report)
        if threading.excepthook is not _dispatch:
            _dispatch.previous = threading.excepthook  # type: ignore[attr-defined]
            threading.excepthook = _dispatch


def unwatch(key: int) -> None:
    """Stop watching for ``key``; the hook stays (it passes everything else through)."""
    with _lock:
        _watchers.pop(key, None)
