"""Optional limits on a recording's size and length, so an unattended session cannot fill a disk.

``RecordingLimits`` is what ``CaptureLoop.start_recording`` (and later the dock) takes;
``parse_size`` reads the command line's ``--max-size`` (``500M``, ``2G``, a number of bytes).
A recording that reaches a limit stops cleanly, as one on a nearly full disk does: every frame
written stays readable, and the analysis of every recorded frame is written.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# K, M, G, T are powers of 1024 (as the sizes tfll live prints: MB = 2**20 bytes)
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([KMGT]?)(?:I?B)?\s*", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes in a size such as ``500M``, ``2G``, ``1.5GB`` or ``123456`` (K, M, G, T: 1024s).

    Raises ValueError (one line) for anything else, and for a size under one byte.
    """
    m = _SIZE.fullmatch(text)
    if m is None and text.strip().startswith("-"):
        raise ValueError(f"{text!r}: a size limit must be positive")
    if m is None:
        raise ValueError(
            f"{text!r} is not a size: give bytes, or a number with K, M, G or T (e.g. 500M, 2G)"
        )
    size = float(m.group(1)) * _UNITS[m.group(2).upper()]
    if not size >= 1:
        raise ValueError(f"{text!r}: a size limit must be at least one byte")
    return int(size)


def size_text(n_bytes: float) -> str:
    """A size in the units tfll live prints (MB = 2**20 bytes), for the limit's messages."""
    if n_bytes >= 2**30:
        return f"{n_bytes / 2**30:.2f} GB"
    if n_bytes >= 2**20:
        return f"{n_bytes / 2**20:.1f} MB"
    return f"{n_bytes / 2**10:.1f} KB"


@dataclass(frozen=True, slots=True)
class RecordingLimits:
    """Where a recording stops by itself: a size on disk, a length in time (None: no limit).

    ``max_bytes`` bounds the recording (image file or Zarr folder, metadata included, not
    its ``.tfll`` analysis folder): it stops before the next frame would take it past that,
    so it ends within about a frame of the limit. ``max_s`` bounds its length by the camera's
    frame times: it holds the frames taken in its first ``max_s`` seconds.
    """

    max_bytes: int | None = None
    max_s: float | None = None

    def __post_init__(self) -> None:
        """Refuse limits that cannot be met (zero, negative, not finite) in one line."""
        if self.max_bytes is not None and (
            isinstance(self.max_bytes, bool) or not isinstance(self.max_bytes, int)
            or self.max_bytes < 1
        ):
            raise ValueError(f"size limit {self.max_bytes!r}: must be a whole number of bytes > 0")
        if self.max_s is not None and not (
            isinstance(self.max_s, (int, float))
            and not isinstance(self.max_s, bool)
            and math.isfinite(self.max_s)
            and self.max_s > 0
        ):
            raise ValueError(f"time limit {self.max_s!r}: must be a finite number of seconds > 0")

    @property
    def any(self) -> bool:
        """Whether any limit is set."""
        return self.max_bytes is not None or self.max_s is not None

    def to_json(self) -> dict[str, float | int | None]:
        """The limits as stored in results.json and the recording's metadata."""
        return {"max_bytes": self.max_bytes, "max_s": self.max_s}
