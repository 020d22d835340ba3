"""Blink statistics of a session: rate, inter-blink intervals, partial blinks, durations.

Clinics compare blinking with these numbers (a normal spontaneous rate is roughly 10-20 per
minute; incomplete blinks are common in dry eye). Times come from the frame times when given
(cameras jitter), else from the frame rate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Protocol

import numpy as np


class BlinkLike(Protocol):
    """Anything with a blink's frames and completeness (``tracking.Blink``)."""

    start_frame: int
    end_frame: int
    complete: bool


def _stats(v: tuple[float, ...]) -> dict[str, float | None]:
    if not v:
        return {"mean": None, "median": None, "sd": None, "min": None, "max": None}
    a = np.asarray(v)
    return {
        "mean": float(a.mean()),
        "median": float(np.median(a)),
        "sd": float(a.std(ddof=1)) if a.size > 1 else 0.0,
        "min": float(a.min()),
        "max": float(a.max()),
    }


@dataclass(frozen=True, slots=True)
class BlinkStats:
    """A session's blinking (see the module docstring)."""

    duration_s: float
    n_blinks: int
    n_partial: int
    blink_rate_per_min: float
    partial_share: float | None  # share of blinks that were partial; None without blinks
    # from the end of one blink to the start of the next: how long the eye stayed open
    inter_blink_intervals_s: tuple[float, ...]
    # from the lid's first movement to the last frame before the eye is open again
    blink_durations_s: tuple[float, ...]

    def to_json(self) -> dict[str, object]:
        """The ``blink_stats`` object of results.json."""
        return {
            "duration_s": self.duration_s,
            "n_blinks": self.n_blinks,
            "n_partial": self.n_partial,
            "blink_rate_per_min": self.blink_rate_per_min,
            "partial_share": self.partial_share,
            "inter_blink_interval_s": _stats(self.inter_blink_intervals_s),
            "blink_duration_s": _stats(self.blink_durations_s),
            "inter_blink_intervals_s": list(self.inter_blink_intervals_s),
            "blink_durations_s": list(self.blink_durations_s),
        }


def blink_stats(
    blinks: Sequence[BlinkLike | Mapping[str, object]],
    fps: float,
    n_frames: int,
    time_s: np.ndarray | None = None,
) -> BlinkStats:
    """Statistics of ``blinks`` (``Blink`` objects or results.json dicts) over a session.

    ``time_s`` (one time per frame) is used instead of ``frame / fps`` when given.
    """
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if n_frames < 1:
        raise ValueError(f"a session needs at least one frame, got {n_frames}")
    if time_s is not None and len(time_s) != n_frames:
        raise ValueError(f"time_s has {len(time_s)} times for {n_frames} frames")
    frame_s = 1.0 / fps

    def at(frame: int) -> float:
        """Start time of ``frame``; the frame after the last starts one period after it."""
        if time_s is None or frame < 0:
            return frame * frame_s
        last = n_frames - 1
        return float(time_s[min(frame, last)]) + max(frame - last, 0) * frame_s

    rows = []
    for b in blinks:
        if isinstance(b, Mapping):
            s, e, c = (
                int(b["start_frame"]),
                int(b["end_frame"]),  # type: ignore[call-overload]
                bool(b["complete"]),
            )
        else:
            s, e, c = int(b.start_frame), int(b.end_frame), bool(b.complete)
        if e < s:
            raise ValueError(f"blink ends (frame {e}) before it starts (frame {s})")
        rows.append((s, e, c))
    rows.sort()
    duration = at(n_frames) - at(0)  # n frames span n frame periods
    durations = tuple(at(e + 1) - at(s) for s, e, _ in rows)
    gaps = tuple(at(s2) - at(e1 + 1) for (_, e1, _), (s2, _, _) in pairwise(rows))
    n_partial = sum(not c for *_, c in rows)
    return BlinkStats(
        duration_s=duration,
        n_blinks=len(rows),
        n_partial=n_partial,
        blink_rate_per_min=60.0 * len(rows) / duration,
        partial_share=n_partial / len(rows) if rows else None,
        inter_blink_intervals_s=gaps,
        blink_durations_s=durations,
    )
