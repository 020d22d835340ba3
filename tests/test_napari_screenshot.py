"""Render the live view to PNG and check the overlays are drawn where the tracker put them."""

import os

import cv2
import numpy as np

from napari_plugin.live_layers import POINTS, TRACKS
from napari_plugin.live_widget import LiveWidget
from tfll_live.synth import SynthConfig

SYNTH = SynthConfig(height=240, width=320, n_frames=400, seed=2)


def camera(viewer):
    return viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera  # napari >= 0.9


def to_screen(viewer, shot, yx):
    """World (y, x) -> screenshot pixel (row, col), from the camera's centre and zoom."""
    cy, cx = camera(viewer).center[-2:]
    zoom = camera(viewer).zoom
    h, w = shot.shape[:2]
    return np.column_stack([h / 2 + (yx[:, 0] - cy) * zoom, w / 2 + (yx[:, 1] - cx) * zoom])


def test_feature_overlay_pixels_are_where_the_tracked_points_are(make_napari_viewer, qtbot,
                                                                 tmp_path):
    viewer = make_napari_viewer(show=True)  # a hidden canvas renders nothing
    widget = LiveWidget(viewer)
    widget.synth_config = SYNTH
    widget.fps_spin.setValue(30.0)
    # stopping shows the very last frame, which may fall in a blink or on the frame a new
    # keyframe starts (no features yet; often in the first second, when keyframes change
    # fast): wait until the interval is under way, and retry
    for _ in range(6):
        assert widget.start_live(), widget.message_label.text()
        qtbot.waitUntil(lambda: widget.last_shown is not None and widget.last_shown.n_tracked >= 5
                        and widget.last_shown.time_s >= 1.5, timeout=20_000)
        widget.stop_live()
        if widget.last_shown.n_tracked >= 5:
            break
    result = widget.last_shown
    assert result.n_tracked >= 5
    viewer.reset_view()
    viewer.layers[TRACKS].visible = False  # trajectories end at the points; judge points alone
    with_points = viewer.screenshot(canvas_only=True, flash=False)
    viewer.layers[POINTS].visible = False
    without = viewer.screenshot(canvas_only=True, flash=False)
    out = tmp_path / "live_overlays.png"
    cv2.imwrite(str(out), cv2.cvtColor(with_points, cv2.COLOR_RGBA2BGR))
    if os.environ.get("TFLL_KEEP_SCREENSHOTS"):
        cv2.imwrite(os.environ["TFLL_KEEP_SCREENSHOTS"], cv2.imread(str(out)))
    assert with_points.shape == without.shape and with_points.shape[0] > 100

    drawn = np.abs(with_points[..., :3].astype(int) - without[..., :3].astype(int)).max(-1) > 40
    assert drawn.sum() > 20, "the points layer drew nothing"
    centres = to_screen(viewer, with_points, result.points[:, ::-1].astype(float))
    radius = viewer.layers[POINTS].size.max() * camera(viewer).zoom / 2 + 3
    rows, cols = np.nonzero(drawn)
    # every drawn pixel lies on some tracked point's marker...
    d = np.hypot(rows[:, None] - centres[None, :, 0], cols[:, None] - centres[None, :, 1])
    assert (d.min(axis=1) <= radius).mean() > 0.99
    # ... and every tracked point inside the view has its marker drawn
    h, w = drawn.shape
    inside = [(r, c) for r, c in centres if 0 <= r < h and 0 <= c < w]
    assert len(inside) >= 5
    for r, c in inside:
        r0, r1 = int(max(r - radius, 0)), int(min(r + radius + 1, h))
        c0, c1 = int(max(c - radius, 0)), int(min(c + radius + 1, w))
        assert drawn[r0:r1, c0:c1].sum() >= 3, f"no marker drawn at ({r:.0f}, {c:.0f})"
