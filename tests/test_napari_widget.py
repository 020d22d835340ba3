"""The TFLL Live dock on a real napari viewer, a real capture loop and the real tracker."""

import time
from pathlib import Path

import numpy as np
import pytest

from napari_plugin.layer_data import displacement_colors, points_yx
from napari_plugin.live_controls import MICRO_MANAGER, REPLAY, SYNTHETIC
from napari_plugin.live_layers import (
    ANATOMY,
    ANATOMY_TOLERANCE_PX,
    IMAGE,
    POINTS,
    TRACKS,
    text_overlay,
)
from napari_plugin.live_widget import LiveWidget
from napari_plugin.reader import get_reader
from tfll_live.acquisition.status import counts_text
from tfll_live.io import open_stream, read_frames_csv, read_results
from tfll_live.synth import SynthConfig

# small frames, a blink early on, and a long open interval after it (tracked features)
SYNTH = SynthConfig(height=240, width=320, n_frames=400, seed=2)
FPS = 30.0


@pytest.fixture
def widget(make_napari_viewer, qtbot, fresh_global_core):
    viewer = make_napari_viewer()
    w = LiveWidget(viewer)
    w.synth_config = SYNTH
    w.fps_spin.setValue(FPS)
    viewer.window.add_dock_widget(w, name="TFLL Live")
    yield w
    w.stop_live()


def wait_for_points(widget, qtbot, timeout_ms=60_000):
    """Wait until the display shows a frame with tracked features."""
    qtbot.waitUntil(lambda: widget.last_shown is not None and widget.last_shown.n_tracked > 0
                    and POINTS in widget.viewer.layers, timeout=timeout_ms)


def test_live_layers_show_the_trackers_results(widget, qtbot):
    viewer = widget.viewer
    assert widget.start_live(), widget.message_label.text()
    assert widget.is_live and widget.live_button.text() == "Stop live"
    wait_for_points(widget, qtbot)
    qtbot.waitUntil(lambda: TRACKS in viewer.layers and viewer.layers[TRACKS].visible,
                    timeout=10_000)
    widget.stop_live()
    assert not widget.is_live and widget.live_button.text() == "Start live"
    # after stop, the display holds the loop's last frame and result: compare layer by layer
    frame, result = widget.loop.latest()
    assert widget.last_shown is result
    np.testing.assert_array_equal(viewer.layers[IMAGE].data, frame)
    if result.n_tracked:
        np.testing.assert_allclose(viewer.layers[POINTS].data, points_yx(result.points))
        np.testing.assert_allclose(viewer.layers[POINTS].face_color,
                                   displacement_colors(result.point_dy_px,
                                                       widget.layers.dy_limit_px))
    shapes = viewer.layers[ANATOMY]
    expected = (["ellipse"] if result.pupil else []) + (["path"] if result.lid else [])
    assert shapes.shape_type == expected
    if result.pupil:
        y, x = shapes.data[0].mean(axis=0)
        # outlines are redrawn when they moved by more than the tolerance
        assert (x, y) == pytest.approx((result.pupil.x_px, result.pupil.y_px),
                                       abs=ANATOMY_TOLERANCE_PX + 1e-6)
    assert text_overlay(viewer).text.split()[0] == result.state.value.upper()
    # trajectories: built from every FrameResult of the interval, ending at the current points
    expected = widget.history.tracks()
    expected = expected[np.lexsort((expected[:, 1], expected[:, 0]))]
    np.testing.assert_allclose(viewer.layers[TRACKS].data, expected)
    if result.state.value == "open":
        for pid, (x, y) in zip(result.point_ids, result.points, strict=True):
            rows = expected[expected[:, 0] == pid]
            if len(rows) > 1:
                np.testing.assert_allclose(rows[-1, 2:], [y, x], atol=1e-4)
    stats = widget.loop.stats
    assert stats.lost == 0 and stats.tracked >= 10
    assert widget.feed.n_received == stats.tracked  # display may skip, the GUI's feed does not
    # the same counts as tfll live's status line
    assert counts_text(stats, recording=False) in widget.status_label.text()


def test_stabilized_view_moves_every_layer_by_the_eye_motion(widget, qtbot):
    widget.start_live()
    wait_for_points(widget, qtbot)
    widget.stabilized_check.setChecked(True)
    widget.stop_live()
    _, result = widget.loop.latest()
    shift = [-result.eye_dy_px, -result.eye_dx_px]
    for name in (IMAGE, POINTS, ANATOMY):
        np.testing.assert_allclose(widget.viewer.layers[name].translate, shift)


def test_controls_are_enabled_only_when_they_make_sense(widget, qtbot, tmp_path):
    w = widget
    assert not w.record_button.isEnabled()  # no recording without live
    assert w.fps_spin.isEnabled() and not w.path_edit.isEnabled()  # synthetic: a rate, no file
    assert not w.config_widget.isEnabled()
    w.camera_combo.setCurrentText(REPLAY)
    assert w.path_edit.isEnabled() and w.loop_check.isEnabled() and not w.fps_spin.isEnabled()
    w.camera_combo.setCurrentText(MICRO_MANAGER)
    assert w.config_widget.isEnabled() and not w.loop_check.isEnabled()
    assert not w.path_edit.isEnabled() and not w.fps_spin.isEnabled()
    w.camera_combo.setCurrentText(SYNTHETIC)
    w.start_live()
    assert not w.camera_combo.isEnabled() and not w.fps_spin.isEnabled()
    assert w.record_button.isEnabled() and w.enhancement_combo.isEnabled()
    w.folder_edit.setText(str(tmp_path))
    w.record_button.click()
    assert w.is_recording and w.record_button.text() == "Stop recording"
    # one tracker configuration per recording; folder and format fixed while it runs
    assert not w.enhancement_combo.isEnabled() and not w.flow_combo.isEnabled()
    assert not w.format_combo.isEnabled() and not w.folder_edit.isEnabled()
    w.record_button.click()
    assert not w.is_recording and w.enhancement_combo.isEnabled()
    w.live_button.click()
    assert not w.is_live and not w.record_button.isEnabled() and w.camera_combo.isEnabled()


@pytest.mark.parametrize("fmt", ["OME-Zarr", "OME-TIFF"])
def test_recording_from_the_widget_reopens_with_the_reader(widget, qtbot, tmp_path, fmt):
    viewer = widget.viewer
    widget.start_live()
    widget.folder_edit.setText(str(tmp_path))
    widget.format_combo.setCurrentText(fmt)
    assert not widget.report_button.isEnabled()  # nothing recorded yet
    path = widget.start_recording()
    # in the visit's folder (date, time; no eye entered) inside the study folder
    assert path is not None and path.parent.parent == tmp_path, widget.message_label.text()
    qtbot.waitUntil(lambda: widget.loop.stats.recorded >= 45, timeout=20_000)
    assert widget.stop_recording() == path
    widget.stop_live()
    # the session report of that recording, from the dock (issue 5)
    assert widget.report_button.isEnabled()
    report = widget.write_report()
    assert report is not None and report.is_file(), widget.message_label.text()
    assert "<svg" in report.read_text() and str(report) in widget.message_label.text()
    recorded = widget.loop.stats.recorded
    # a readable file, with its analysis beside it
    with open_stream(path) as src:
        assert src.n_frames == recorded
        first = src.read(0)
    assert first.shape == (SYNTH.height, SYNTH.width, 3)
    analysis = Path(str(path.parent / path.name.split(".")[0]) + ".tfll")
    cols = read_frames_csv(analysis)
    assert read_results(analysis)["n_frames"] == recorded == len(cols["frame"])
    # the reader: the same frames, and one track per interval that has lipid displacement
    reader = get_reader(str(path))
    assert reader is not None
    layers = reader(str(path))
    kinds = {kw["name"]: (data, kind) for data, kw, kind in layers}
    image, kind = kinds[path.name.split(".")[0]]
    assert kind == "image" and image.shape[0] == recorded
    np.testing.assert_array_equal(np.asarray(image[0]), first)
    # (a track needs two points: a short recording on a loaded machine may end an interval
    # one tracked frame after its lipid was first measured)
    interval = cols["interval"]
    measured = np.isfinite(cols["lipid_dy_px"]) & np.isfinite(cols["eye_dy_px"])
    with_lipid = {int(k) for k in np.unique(interval) if k >= 0
                  and np.count_nonzero(measured & (interval == k)) >= 2}
    lipid = [v for k, v in kinds.items() if k.endswith("lipid displacement")]
    if with_lipid:
        data, kind = lipid[0]
        assert kind == "tracks" and set(np.unique(data[:, 0]).astype(int)) == with_lipid
    # napari opens it through the plugin (an OME-Zarr recording or any analysis folder; napari
    # asks no plugin about TIFF files whose name it does not claim), the time slider spans it
    for opened in ([path, analysis] if path.is_dir() else [analysis]):
        viewer.layers.clear()
        viewer.open(str(opened), plugin="tfll-live")
        assert viewer.layers[0].data.shape[0] == recorded
        assert viewer.dims.nsteps[0] == recorded


def test_bad_inputs_show_a_message_and_leave_the_widget_usable(widget, qtbot, tmp_path):
    w = widget
    w.camera_combo.setCurrentText(REPLAY)
    w.path_edit.setText(str(tmp_path / "missing.ome.tif"))
    assert not w.start_live()
    assert "missing.ome.tif" in w.message_label.text() and not w.is_live
    assert w.live_button.isEnabled() and not w.live_button.isChecked()
    broken = tmp_path / "broken.ome.tif"
    broken.write_bytes(b"not a tiff at all")
    w.path_edit.setText(str(broken))
    assert not w.start_live()
    assert "broken.ome.tif" in w.message_label.text()
    w.camera_combo.setCurrentText(MICRO_MANAGER)  # the shared core has no camera loaded
    assert w.mm_camera_label.text() == "none loaded"
    assert not w.start_live()
    assert w.message_label.text().startswith("Cannot start: no camera in the Micro-Manager")
    assert "\n" not in w.message_label.text() and not w.is_live
    # still usable: the synthetic camera starts, and a bad recording folder is a message too
    w.camera_combo.setCurrentText(SYNTHETIC)
    assert w.start_live(), w.message_label.text()
    assert w.message_label.text() == ""
    w.folder_edit.setText(str(tmp_path / "no" / "such" / "folder"))
    assert w.start_recording() is None
    assert "no such folder" in w.message_label.text()
    assert w.is_live and not w.is_recording
    wait_for_points(w, qtbot)


def test_a_time_limit_set_in_the_dock_stops_the_recording_by_itself(widget, qtbot, tmp_path):
    """A recording left running stops at the dock's limit; live goes on, nothing is lost."""
    widget.start_live()
    form = widget.recording_form
    form.folder.value = tmp_path
    form.max_minutes.value = 0.02  # 1.2 s
    assert form.options.limits is not None and form.options.limits.max_s == pytest.approx(1.2)
    path = widget.start_recording()
    assert path is not None, widget.message_label.text()
    qtbot.waitUntil(lambda: not widget.is_recording, timeout=20_000)
    qtbot.waitUntil(lambda: "time limit" in widget.message_label.text(), timeout=10_000)
    assert widget.is_live  # live tracking goes on
    assert widget.saved_recording == path and widget.report_button.isEnabled()
    widget.stop_live()
    with open_stream(path) as src:
        recorded = src.n_frames
        times = np.asarray(src.times_s, float)
    # the frames of the first 1.2 s by the camera's clock, up to the limit: within the camera's
    # next frame (a loaded machine's camera skips exposures; its longest gap says how far)
    assert recorded <= 1.2 * FPS + 1 and times[-1] < 1.2
    assert 1.2 - times[-1] <= max(0.25, float(np.max(np.diff(times)))) + 1 / FPS
    analysis = Path(str(path.parent / path.name.split(".")[0]) + ".tfll")
    doc = read_results(analysis)
    assert doc["n_frames"] == recorded
    assert doc["recording"]["limit_reached"].startswith("time limit of 0.02 min reached")


def test_replay_plays_a_recording_to_its_end_and_the_widget_notices(widget, qtbot, tmp_path):
    from tfll_live.synth import SyntheticStream, write_stream

    path = tmp_path / "short.ome.tif"
    write_stream(SyntheticStream(SynthConfig(height=240, width=320, n_frames=40, seed=2)), path)
    w = widget
    w.camera_combo.setCurrentText(REPLAY)
    w.path_edit.setText(str(path))
    w.loop_check.setChecked(False)
    assert w.start_live(), w.message_label.text()
    qtbot.waitUntil(lambda: not w.is_live and not w.timer.isActive(), timeout=30_000)
    # the loop ended by itself: controls are back, every frame was delivered, and the GUI saw
    # every result (a tracker behind skips to newer frames, as live: on a busy machine most)
    assert w.camera_combo.isEnabled() and not w.record_button.isEnabled()
    assert w.live_button.text() == "Start live"
    stats = w.loop.stats
    assert stats.acquired == 40 == stats.tracked + stats.untracked and stats.lost == 0
    assert w.feed.n_received == stats.tracked >= 1
    assert "stopped" in w.status_label.text()


def test_the_canvas_paints_on_the_next_turn_of_the_event_loop(widget, qtbot):
    """A layer update and the paint it causes are two turns of the event loop, not one stall."""
    from qtpy.QtWidgets import QOpenGLWidget

    widget.viewer.window.show()  # a hidden canvas never paints
    canvas = widget.viewer.window._qt_window.findChild(QOpenGLWidget)
    assert canvas is not None and widget._canvas_widget() is canvas
    draws = []
    widget.viewer.window._qt_viewer.canvas._scene_canvas.events.draw.connect(draws.append)
    assert widget.start_live(), widget.message_label.text()
    widget.timer.stop()  # drive the display by hand
    qtbot.waitUntil(lambda: widget.loop.latest() is not None, timeout=20_000)
    widget._next_show_at = 0.0
    widget._tracks_at = time.perf_counter()  # this tick shows the frame, not the trajectories
    widget._tick()
    assert widget.last_shown is not None
    assert not canvas.updatesEnabled()  # no paint inside the tick that changed the layers
    n = len(draws)
    qtbot.waitUntil(canvas.updatesEnabled, timeout=5_000)
    qtbot.waitUntil(lambda: len(draws) > n, timeout=5_000)


def test_the_display_yields_to_a_tracker_that_is_behind(widget, qtbot, tmp_path):
    """Frames queue up for the tracker (a camera at 1000 frames/s): the display waits, not it."""
    from napari_plugin.live_widget import MAX_DISPLAY_PAUSE_S
    from tfll_live.acquisition import make_core

    def fast_camera():
        core = make_core(synth=SynthConfig(height=240, width=320, n_frames=100, fps=1000.0),
                         prerender=True)
        core.setExposure(1.0)
        return core

    widget._make_core = fast_camera
    assert widget.start_live(), widget.message_label.text()
    widget.timer.stop()  # drive the display by hand
    qtbot.waitUntil(lambda: widget.loop.backlog > 20 and widget.loop.latest() is not None,
                    timeout=20_000)
    before = widget.last_shown
    widget._shown_at, widget._next_show_at = time.perf_counter(), 0.0
    widget._tick()
    assert widget.last_shown is before  # the tracker is behind: no display update
    widget._shown_at -= MAX_DISPLAY_PAUSE_S  # ... but never for longer than the longest pause
    widget._tick()
    assert widget.last_shown is not before


def test_a_calibration_chosen_in_the_dock_is_used_and_recorded(widget, qtbot, tmp_path):
    from tfll_live.thickness import Calibration

    w = widget
    w.calibration_edit.setText(str(tmp_path / "missing.tfllcal.json"))
    assert not w.start_live()  # a missing calibration is a message, not a traceback
    assert "missing.tfllcal.json" in w.message_label.text() and not w.is_live
    cal = Calibration((1.1, 1.0, 0.9), (2.0, 2.0, 2.0), "test chart", 200.0)
    path = cal.save(tmp_path / "camera.tfllcal.json")
    w.calibration_edit.setText(str(path))
    assert w.start_live(), w.message_label.text()
    assert w.loop.tracker_config.thickness_calibration == str(path.resolve())
    table = w.panel.table  # thickness no longer "uncalibrated"
    assert "nm" in [table.horizontalHeaderItem(j).text() for j in range(table.columnCount())]
    w.folder_edit.setText(str(tmp_path))
    rec = w.start_recording()
    assert rec is not None, w.message_label.text()
    assert not w.calibration_edit.isEnabled()  # no change of tracker while recording
    qtbot.waitUntil(lambda: w.loop.stats.recorded >= 30, timeout=20_000)
    w.stop_recording()
    w.stop_live()
    analysis = Path(str(rec.parent / rec.name.split(".")[0]) + ".tfll")
    recorded = read_results(analysis)["thickness"]["calibration"]
    assert recorded["gain"] == list(cal.gain) and recorded["source"] == "test chart"


def test_status_shows_the_last_intervals_spread_time(widget, qtbot):
    assert widget.start_live(), widget.message_label.text()
    # SYNTH has a blink early on: the interval before it closes with its kinetics
    qtbot.waitUntil(lambda: widget._last_spread is not None, timeout=30_000)
    widget._status()
    assert "last spread" in widget.status_label.text()


def test_frames_lost_in_the_camera_buffer_are_shown_at_once(widget, qtbot):
    assert widget.start_live(), widget.message_label.text()
    qtbot.waitUntil(lambda: widget.loop.stats.tracked > 3, timeout=20_000)
    widget.loop.events.frames_lost.emit(500, 500)  # as the capture thread reports a gap
    qtbot.waitUntil(lambda: "500 frames lost" in widget.message_label.text(), timeout=2_000)
    assert "recording is incomplete" in widget.message_label.text()


def test_a_visit_entered_in_the_dock_is_recorded_and_remembered(widget, qtbot, tmp_path,
                                                                 monkeypatch):
    from tfll_live.report import build_report
    from tfll_live.visit import default_study_folder

    w = widget
    assert w.folder_edit.text() == str(default_study_folder()) != str(Path.home())
    # the default study folder, in the user's data directory, is made on first use
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    study = default_study_folder()
    w.folder_edit.setText(str(study))
    form = w.visit_form
    form["patient_id"].value = "P-0042"
    form["eye"].value = "OD"
    form["operator"].value = "Dr Okafor"
    form["notes"].value = "after lipid drops"
    assert w.start_live(), w.message_label.text()

    def record() -> Path:
        rec = w.start_recording()
        assert rec is not None, w.message_label.text()
        assert not form.enabled  # the visit of a running recording is fixed
        qtbot.waitUntil(lambda: w.loop.stats.recorded >= 20, timeout=20_000)
        assert w.stop_recording() == rec
        return rec

    def visit_of(rec: Path) -> dict | None:
        return read_results(rec.parent / (rec.name.split(".")[0] + ".tfll")).get("visit")

    first, second = record(), record()
    # unnamed, they are named by their start time, unique even within one second (no question)
    assert first != second
    # remembered: both recordings of the visit carry it, with the first one's start time,
    # and go to one folder named by the visit's date, time and eye
    assert visit_of(first) == visit_of(second)
    assert visit_of(first)["patient_id"] == "P-0042" and visit_of(first)["eye"] == "OD"
    assert visit_of(first)["started_utc"] == form.visit.started_utc is not None
    assert first.parent == second.parent and first.parent.parent == study
    assert first.parent.name.endswith("_OD")
    import zarr

    assert zarr.open_group(first, mode="r").attrs["tfll"]["visit"] == visit_of(first)
    w.stop_live()
    assert "P-0042" in build_report(first.parent / (first.name.split(".")[0] + ".tfll"))
    # a new visit: nothing entered, nothing identifying stored
    form.new_button.clicked.emit()
    assert form.visit.entered is False and form.visit.started_utc is None
    assert w.start_live(), w.message_label.text()
    third = record()
    assert visit_of(third) is None and third.parent != first.parent


def test_the_docks_forms_are_magicgui_forms_bound_to_their_dataclasses(widget, qtbot, tmp_path):
    from magicgui.widgets import Container

    from napari_plugin.recording_form import RecordingOptions
    from tfll_live.tracking import Enhancement, FlowMethod, TrackerConfig

    w = widget
    for form in (w.tracker_form, w.visit_form, w.recording_form):
        assert isinstance(form, Container)
    # tracker settings: the form's values are the loop's TrackerConfig
    assert w.tracker_form.config() == TrackerConfig()
    w.tracker_form.flow.value = FlowMethod.FARNEBACK
    w.tracker_form.enhancement.value = Enhancement.SHARPEN
    assert w.start_live(), w.message_label.text()
    cfg = w.loop.tracker_config
    assert (cfg.flow, cfg.enhancement) == (FlowMethod.FARNEBACK, Enhancement.SHARPEN)
    # changed while live (not recording): the running loop takes it
    w.tracker_form.flow.value = FlowMethod.LUCAS_KANADE
    w.flow_combo.currentIndexChanged.emit(w.flow_combo.currentIndex())
    assert w.loop.tracker_config.flow == FlowMethod.LUCAS_KANADE
    w.stop_live()
    # recording options: set and read back as the dataclass
    options = RecordingOptions(tmp_path, "baseline", "ome-tiff", 1.25)
    w.recording_form.options = options
    assert w.recording_form.options == options
    assert w.format_combo.currentText() == "OME-TIFF" and w.folder_edit.text() == str(tmp_path)
    assert w.pixel_size_um() == 1.25
