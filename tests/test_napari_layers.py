"""FrameResult -> napari layer data: coordinates, shapes, colours, trajectories, the live layers."""

import numpy as np
import pytest

from napari_plugin.layer_data import (
    TrackHistory,
    displacement_colors,
    eye_state_text,
    lid_path,
    points_yx,
    pupil_ellipse,
)
from napari_plugin.live_layers import ANATOMY, IMAGE, POINTS, TRACKS, LiveLayers, text_overlay
from tfll_live.tracking import Circle, EyeState, FrameResult, LidCurve, SpreadFit


def result(frame=0, interval=0, state=EyeState.OPEN, points=((10.0, 20.0), (30.0, 40.0)),
           ids=(1, 2), dy=(-3.0, 1.0), eye=(0.0, 0.0), fit=None):
    pts = np.asarray(points, np.float32).reshape(-1, 2)
    return FrameResult(
        frame=frame, time_s=frame / 45, state=state, interval=interval,
        eye_dx_px=eye[0], eye_dy_px=eye[1], lipid_dx_px=0.0, lipid_dy_px=-1.0,
        n_tracked=len(pts), points=pts, point_ids=np.asarray(ids, np.int64),
        point_dy_px=np.asarray(dy, np.float32), pupil=Circle(50.0, 40.0, 12.0),
        lid=LidCurve(0.001, -0.1, 100.0), fit=fit,
    )


def test_points_are_swapped_to_yx():
    np.testing.assert_array_equal(points_yx(np.array([[1.0, 2.0], [3.0, 4.0]])),
                                  [[2.0, 1.0], [4.0, 3.0]])
    assert points_yx(np.zeros((0, 2))).shape == (0, 2)


def test_pupil_ellipse_is_the_circle_bounding_box_in_yx():
    box = pupil_ellipse(Circle(x_px=50.0, y_px=40.0, r_px=10.0))
    assert box[:, 0].min() == 30.0 and box[:, 0].max() == 50.0  # y
    assert box[:, 1].min() == 40.0 and box[:, 1].max() == 60.0  # x


def test_lid_path_follows_the_lid_curve():
    lid = LidCurve(0.001, -0.2, 150.0)
    yx = lid_path(lid, 320)
    assert yx[0, 1] == 0.0 and yx[-1, 1] == 319.0
    np.testing.assert_allclose(yx[:, 0], lid.y_at(yx[:, 1]))


def test_displacement_colours_are_diverging_and_saturate():
    c = displacement_colors(np.array([-10.0, 0.0, 10.0, -100.0]), limit_px=10.0)
    np.testing.assert_allclose(c[1], [1, 1, 1, 1])  # no motion: white
    assert c[0][2] > c[0][0]  # up (the spread): blue-ish
    assert c[2][0] > c[2][2]  # down: orange
    np.testing.assert_allclose(c[3], c[0])  # beyond the limit: saturated


def test_eye_state_text():
    assert eye_state_text(result(state=EyeState.BLINK, interval=-1)) == "BLINK"
    fit = SpreadFit(a=20.0, b=0.5, c=-20.0, r2=0.9, n_points=30)
    assert eye_state_text(result(interval=3, fit=fit)) == "OPEN  interval 3  tau 2.00 s"


def test_track_history_keeps_the_current_interval_only():
    h = TrackHistory()
    h.add(result(frame=0, interval=0))
    h.add(result(frame=1, interval=0, points=((11.0, 21.0), (31.0, 41.0))))
    data = h.tracks()
    assert data.shape == (4, 4)
    np.testing.assert_array_equal(np.unique(data[:, 0]), [1, 2])
    np.testing.assert_array_equal(data[data[:, 0] == 1][:, 2:], [[20.0, 10.0], [21.0, 11.0]])
    h.add(result(frame=2, state=EyeState.BLINK, interval=-1, points=(), ids=(), dy=()))
    assert len(h.tracks()) == 4  # a blink does not add to the trajectories
    h.add(result(frame=9, interval=1))
    assert len(h.tracks()) == 0  # a new interval starts over (one vertex is not a track yet)


def test_track_history_in_eye_coordinates_takes_off_each_frames_eye_motion():
    h = TrackHistory()
    h.add(result(frame=0, eye=(0.0, 0.0)))
    h.add(result(frame=1, points=((15.0, 27.0), (35.0, 47.0)), eye=(5.0, 7.0)))
    data = h.tracks(stabilized=True)
    np.testing.assert_allclose(data[data[:, 0] == 1][:, 2:], [[20.0, 10.0], [20.0, 10.0]])


def test_track_history_thins_long_intervals():
    h = TrackHistory(max_frames=10)
    for i in range(100):
        h.add(result(frame=i))
    assert len(h.tracks()) == 2 * 10


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def test_live_layers_show_what_the_result_holds(viewer):
    layers = LiveLayers(viewer)
    frame = np.zeros((120, 160, 3), np.uint8)
    r = result(eye=(3.0, -2.0))
    h = TrackHistory()
    h.add(r)
    h.add(result(frame=1, points=((12.0, 22.0), (32.0, 42.0))))
    layers.show(frame, r, h.tracks())
    assert [layer.name for layer in viewer.layers] == [IMAGE, ANATOMY, TRACKS, POINTS]
    np.testing.assert_array_equal(viewer.layers[POINTS].data, points_yx(r.points))
    np.testing.assert_allclose(viewer.layers[POINTS].face_color,
                               displacement_colors(r.point_dy_px, layers.dy_limit_px))
    shapes = viewer.layers[ANATOMY]
    assert shapes.shape_type == ["ellipse", "path"]
    np.testing.assert_allclose(shapes.data[1], lid_path(r.lid, 160))
    assert len(viewer.layers[TRACKS].data) == 4
    # the first frame draws every glyph the text needs, transparent (a warm-up)
    assert set("0123456789") <= set(text_overlay(viewer).text)
    assert text_overlay(viewer).color[3] == 0.0
    # stabilized: everything moves by minus the eye motion, together
    layers.show(frame, r, None, stabilized=True)
    assert text_overlay(viewer).text.startswith("OPEN  interval 0")
    assert text_overlay(viewer).color[3] == 1.0
    for name in (IMAGE, POINTS, ANATOMY):
        np.testing.assert_allclose(viewer.layers[name].translate, [2.0, -3.0])
    # a blink: no points, no tracks, the state on the canvas
    blink = result(frame=2, state=EyeState.BLINK, interval=-1, points=(), ids=(), dy=())
    layers.show(frame, blink, np.zeros((0, 4)))
    assert len(viewer.layers[POINTS].data) == 0
    assert not viewer.layers[TRACKS].visible
    assert text_overlay(viewer).text == "BLINK"
    layers.show(frame, r, h.tracks())
    assert viewer.layers[TRACKS].visible  # back with the next trajectories
    viewer.layers.remove(IMAGE)  # the camera layer gone: no stale eye state on the canvas
    assert not text_overlay(viewer).visible


def test_live_layers_follow_a_camera_change_from_colour_to_mono(viewer):
    layers = LiveLayers(viewer)
    layers.show(np.zeros((120, 160, 3), np.uint8), result())
    layers.show(np.zeros((100, 140), np.uint16), result())
    img = viewer.layers[IMAGE]
    assert not img.rgb and img.data.shape == (100, 140)
    assert viewer.layers.index(IMAGE) == 0  # still under the overlays


def test_pupil_and_lid_keep_their_colours_as_shapes_come_and_go(viewer):
    from dataclasses import replace

    from napari_plugin.live_layers import LID_COLOR, PUPIL_COLOR

    layers = LiveLayers(viewer)
    frame = np.zeros((120, 160, 3), np.uint8)
    layers.show(frame, result())
    shapes = viewer.layers[ANATOMY]
    np.testing.assert_allclose(shapes.edge_color, [PUPIL_COLOR, LID_COLOR])
    layers.show(frame, replace(result(frame=1), pupil=None))  # pupil not found in this frame
    assert shapes.shape_type == ["path"]
    np.testing.assert_allclose(shapes.edge_color, [LID_COLOR])
    moved = replace(result(frame=2), pupil=Circle(52.0, 41.0, 12.0))
    layers.show(frame, moved)
    np.testing.assert_allclose(shapes.edge_color, [PUPIL_COLOR, LID_COLOR])
    np.testing.assert_allclose(shapes.data[0], pupil_ellipse(moved.pupil))
    layers.show(frame, replace(moved, frame=3, pupil=Circle(53.0, 41.0, 12.0)))
    np.testing.assert_allclose(shapes.edge_color, [PUPIL_COLOR, LID_COLOR])
    np.testing.assert_allclose(shapes.data[0][:, 1].mean(), 53.0)


def test_pupil_outline_stays_within_half_a_pixel_as_the_eye_creeps(viewer):
    """Outlines are redrawn only when they moved visibly, but never drift further than that."""
    from dataclasses import replace

    from napari_plugin.live_layers import ANATOMY_TOLERANCE_PX

    layers = LiveLayers(viewer)
    frame = np.zeros((120, 160, 3), np.uint8)
    redrawn = []
    for k in range(40):  # the eye creeps right by 0.1 px a frame
        r = replace(result(frame=k), pupil=Circle(50.0 + 0.1 * k, 40.0, 12.0))
        layers.show(frame, r)
        shapes = viewer.layers[ANATOMY]
        if k == 0:
            shapes.events.set_data.connect(redrawn.append)  # the canvas takes new vertices
        drawn_x = shapes.data[0][:, 1].mean()
        assert abs(drawn_x - r.pupil.x_px) <= ANATOMY_TOLERANCE_PX + 1e-6
    assert 4 <= len(redrawn) < 20


def test_canvas_text_shows_a_new_state_at_once_and_a_new_tau_soon(viewer):
    import time

    from napari_plugin.live_layers import TEXT_PERIOD_S

    layers = LiveLayers(viewer)
    frame = np.zeros((120, 160, 3), np.uint8)
    layers.show(frame, result())  # the glyphs' warm-up
    layers.show(frame, result(interval=3, fit=SpreadFit(-30.0, 0.5, 30.0, 0.99, 100, False)))
    assert "tau 2.00 s" in text_overlay(viewer).text
    layers.show(frame, result(frame=1, state=EyeState.BLINK, interval=-1))
    assert text_overlay(viewer).text == "BLINK"  # no waiting for a state change
    layers.show(frame, result(frame=2, interval=4, fit=SpreadFit(-30.0, 0.25, 30.0, 0.99, 100,
                                                                 False)))
    assert text_overlay(viewer).text.startswith("OPEN  interval 4")
    time.sleep(TEXT_PERIOD_S)
    layers.show(frame, result(frame=3, interval=4, fit=SpreadFit(-30.0, 0.2, 30.0, 0.99, 100,
                                                                 False)))
    assert "tau 5.00 s" in text_overlay(viewer).text
