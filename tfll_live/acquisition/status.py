"""The words for the capture loop's counters, so ``tfll live`` and the napari dock say the same."""

from __future__ import annotations

from .loop import CaptureStats

# the eye states as the status line says them (no eye in view must not pass unnoticed)
EYE_WORDS = {"open": "open", "blink": "blink", "no_eye": "NO EYE IN VIEW"}


def counts_text(stats: CaptureStats, recording: bool) -> str:
    """Frames acquired, recorded (while recording), lost in the camera's buffer and tracked."""
    share = f" ({100 * stats.tracked_share:.0f}%)" if stats.acquired else ""
    recorded = f", {stats.recorded} recorded" if recording else ""
    return f"{stats.acquired} acquired{recorded}, {stats.lost} lost, {stats.tracked} tracked{share}"


def eye_word(state: str) -> str:
    """The eye state of the newest tracked frame, for a status line ("-" before the first)."""
    return EYE_WORDS.get(state, state or "-")


def lost_text(n: int, total: int, elapsed_s: float) -> str:
    """Say that ``n`` frames were just lost in the camera's buffer (``total`` in all)."""
    return (
        f"{n} frames lost in the camera's buffer at {elapsed_s:.1f} s ({total} in all): "
        "the recording is incomplete"
    )


def rate_text(stats: CaptureStats) -> str | None:
    """Say that the camera delivers fewer frames than requested (None while it keeps up).

    The frames keep their real times, so the analysis is right; what suffers is the time
    resolution (and a recording's rate is the delivered one).
    """
    if not stats.camera_behind:
        return None
    return (
        f"the camera delivers {stats.delivered_fps:.1f} frames/s, not the "
        f"{stats.requested_fps:.1f} requested: it cannot keep up (frames keep their real times)"
    )
