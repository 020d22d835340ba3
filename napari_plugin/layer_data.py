"""Conversions from tracker results to napari layer data (no Qt, no napari, no tracking math).

napari wants (y, x) coordinates, shapes as vertex arrays and tracks as ``[id, t, y, x]`` rows;
the tracker gives (x, y) points, a pupil ``Circle`` and a lower-lid ``LidCurve``. These helpers
only re-arrange what the tracker computed, so the live view and the reader draw the same thing.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from tfll_live.tracking import Circle, FrameResult, LidCurve

# a diverging map for per-feature vertical displacement: up (negative dy, the spread) -> cyan,
# no motion -> white, down -> orange; bright colours that stand out on interference fringes
_UP = np.array([0.0, 0.85, 1.0, 1.0])
_ZERO = np.array([1.0, 1.0, 1.0, 1.0])
_DOWN = np.array([1.0, 0.45, 0.0, 1.0])


def points_yx(points_xy: np.ndarray) -> np.ndarray:
    """(N, 2) (x, y) tracker points as (N, 2) float (y, x) napari coordinates."""
    pts = np.asarray(points_xy, dtype=float).reshape(-1, 2)
    return pts[:, ::-1].copy()


def displacement_colors(dy_px: np.ndarray, limit_px: float) -> np.ndarray:
    """RGBA (N, 4) colours for displacements, saturating at +-``limit_px``."""
    dy = np.asarray(dy_px, dtype=float).reshape(-1)
    s = np.clip(np.nan_to_num(dy) / max(float(limit_px), 1e-6), -1.0, 1.0)[:, None]
    up = np.clip(-s, 0.0, 1.0)
    down = np.clip(s, 0.0, 1.0)
    return _ZERO * (1.0 - up - down) + _UP * up + _DOWN * down


def pupil_ellipse(circle: Circle) -> np.ndarray:
    """Give the napari ellipse of a circle: its (4, 2) bounding box corners in (y, x)."""
    x, y, r = circle.x_px, circle.y_px, circle.r_px
    return np.array([[y - r, x - r], [y - r, x + r], [y + r, x + r], [y + r, x - r]], float)


def lid_path(lid: LidCurve, width: int) -> np.ndarray:
    """Give the napari path of the lower lid across an image ``width`` px wide, (n, 2) (y, x)."""
    return np.asarray(lid.polyline(width), dtype=float)


def eye_state_text(result: FrameResult | None) -> str:
    """One line for the canvas: eye state, interval and live tau."""
    if result is None:
        return ""
    if result.state.value == "blink":
        return "BLINK"
    text = f"OPEN  interval {result.interval}"
    if result.fit is not None and np.isfinite(result.fit.b) and result.fit.b > 0:
        text += f"  tau {result.fit.tau_s:.2f} s"
    return text


class TrackHistory:
    """The tracked features' positions over the current interval, for a tracks layer.

    Fed every FrameResult in order (not only the displayed ones), it starts over when a new
    interval begins. ``tracks()`` gives ``[id, 0, y, x]`` rows (all at time 0, so the live view
    needs no time slider; rows are in frame order, which napari keeps for equal times); with
    ``stabilized=True`` the positions are in eye coordinates (each frame's eye motion taken off,
    the same shift the stabilized view applies to the image).
    """

    def __init__(self, max_frames: int = 300) -> None:
        self.max_frames = max_frames
        self.interval: int | None = None
        self._frames: list[tuple[np.ndarray, np.ndarray, float, float]] = []

    def __len__(self) -> int:
        return len(self._frames)

    def clear(self) -> None:
        """Forget everything (new session)."""
        self.interval = None
        self._frames.clear()

    def add(self, result: FrameResult) -> None:
        """Append one frame's points; a new interval clears the old trajectories."""
        if result.state.value != "open" or result.interval < 0:
            return
        if result.interval != self.interval:
            self.interval = result.interval
            self._frames.clear()
        if len(result.point_ids):
            self._frames.append((np.asarray(result.point_ids), np.asarray(result.points, float),
                                 float(result.eye_dx_px), float(result.eye_dy_px)))

    def extend(self, results: Iterable[FrameResult]) -> None:
        """``add`` each result in order."""
        for r in results:
            self.add(r)

    def tracks(self, stabilized: bool = False) -> np.ndarray:
        """(M, 4) ``[id, 0, y, x]`` rows, at most ``max_frames`` frames (evenly thinned)."""
        frames = self._frames
        if len(frames) > self.max_frames:
            keep = np.unique(np.linspace(0, len(frames) - 1, self.max_frames).round().astype(int))
            frames = [frames[i] for i in keep]
        if not frames:
            return np.zeros((0, 4))
        rows = []
        for ids, xy, ex, ey in frames:
            x, y = xy[:, 0], xy[:, 1]
            if stabilized:
                x, y = x - ex, y - ey
            rows.append(np.column_stack([ids, np.zeros(len(ids)), y, x]))
        data = np.concatenate(rows)
        # a track needs two vertices to be drawn; single ones would only clutter the layer
        ids, counts = np.unique(data[:, 0], return_counts=True)
        return data[np.isin(data[:, 0], ids[counts > 1])]
