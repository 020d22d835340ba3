"""The TFLL Live dock at 1366x768: Record, Stop and the status in view, nothing moving while live.

A real napari window under Xvfb, resized to a laptop's 1366x768, with both docks (TFLL Live and
TFLL Spread) in it; a real capture loop on the synthetic camera. The window is grabbed to PNG
(``TFLL_KEEP_SCREENSHOTS=dir`` keeps the pictures) for a person to look at.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from qtpy.QtCore import QPoint, QRect, Qt
from qtpy.QtWidgets import QMessageBox, QWidget

from napari_plugin.live_layers import IMAGE, POINTS
from napari_plugin.live_widget import LiveWidget
from tfll_live.io import open_stream
from tfll_live.synth import SynthConfig

SYNTH = SynthConfig(height=240, width=320, n_frames=400, seed=2)
SIZE = (1366, 768)


@pytest.fixture
def docked(make_napari_viewer, qtbot, fresh_global_core, tmp_path):
    """A shown napari window of 1366x768 with the TFLL Live and TFLL Spread docks."""
    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.showNormal()
    window.resize(*SIZE)  # napari's window first, then the plugin opened in it
    qtbot.waitUntil(lambda: (window.width(), window.height()) == SIZE, timeout=5_000)
    widget = LiveWidget(viewer)
    widget.synth_config = SYNTH
    widget.fps_spin.setValue(30.0)
    widget.folder_edit.setText(str(tmp_path))
    viewer.window.add_dock_widget(widget, name="TFLL Live", area="right")
    qtbot.waitUntil(lambda: widget.panel.isVisible(), timeout=5_000)  # docked on the next turn
    qtbot.wait(100)
    assert (window.width(), window.height()) == SIZE
    yield viewer, widget
    widget.stop_live()


def shown_in_window(w: QWidget) -> bool:
    """Whether all of ``w`` is on screen: visible, unclipped by a scroll area, inside the window."""
    window = w.window()
    top_left = w.mapTo(window, QPoint(0, 0))
    in_window = window.rect().contains(QRect(top_left, w.size()))
    unclipped = w.visibleRegion().boundingRect() == w.rect()
    return w.isVisible() and w.width() > 10 and w.height() > 5 and in_window and unclipped


def positions(widget: LiveWidget) -> dict[str, tuple[int, int, int, int]]:
    """Window geometry of every control of the dock, by a stable name."""
    window = widget.window()
    out = {}
    names = [
        "live_button",
        "record_button",
        "status_label",
        "rate_label",
        "message_label",
        "camera_combo",
        "fps_spin",
        "enhancement_combo",
        "folder_edit",
        "format_combo",
        "report_button",
        "scroll",
    ]
    for name in names:
        w = getattr(widget, name)
        p = w.mapTo(window, QPoint(0, 0))
        out[name] = (p.x(), p.y(), w.width(), w.height())
    for w in widget.scroll.widget().findChildren(QWidget):
        if w.objectName() and w.isVisible():
            p = w.mapTo(window, QPoint(0, 0))
            out[f"form/{w.objectName()}"] = (p.x(), p.y(), w.width(), w.height())
    return out


def grab(widget: QWidget, path: Path) -> Path:
    widget.window().grab().save(str(path))
    keep = os.environ.get("TFLL_KEEP_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        widget.window().grab().save(str(Path(keep) / path.name))
    return path


def test_record_stop_and_status_are_in_view_and_work_at_1366x768(docked, qtbot, tmp_path):
    viewer, widget = docked
    assert widget.panel.isVisible()  # the spread dock shares the window
    for w in (widget.live_button, widget.record_button, widget.status_label):
        assert shown_in_window(w), w.objectName() or w.text()
    # live and recording by clicks, as a person would
    qtbot.mouseClick(widget.live_button, Qt.MouseButton.LeftButton)
    assert widget.is_live, widget.message_label.text()
    qtbot.waitUntil(lambda: widget.last_shown is not None, timeout=20_000)
    assert shown_in_window(widget.record_button) and widget.record_button.isEnabled()
    qtbot.mouseClick(widget.record_button, Qt.MouseButton.LeftButton)
    assert widget.is_recording, widget.message_label.text()
    qtbot.waitUntil(
        lambda: widget.loop.stats.recorded >= 20 and POINTS in viewer.layers, timeout=20_000
    )
    widget._status()
    assert widget.record_button.text() == "Stop recording"
    assert widget.live_button.text() == "Stop live"
    for w in (widget.live_button, widget.record_button, widget.status_label):
        assert shown_in_window(w)
    shot = grab(widget, tmp_path / "dock_1366x768_recording.png")
    assert shot.stat().st_size > 10_000
    qtbot.mouseClick(widget.record_button, Qt.MouseButton.LeftButton)  # stop recording
    assert not widget.is_recording and widget.recording_path is not None
    with open_stream(widget.recording_path) as src:
        assert src.n_frames >= 20
    qtbot.mouseClick(widget.live_button, Qt.MouseButton.LeftButton)  # stop live
    assert not widget.is_live


def test_no_control_moves_between_idle_live_and_recording(docked, qtbot):
    _viewer, widget = docked
    idle = positions(widget)
    camera_group = widget.camera_combo.parentWidget()
    camera_height = camera_group.height()
    assert camera_height >= camera_group.sizeHint().height()  # not squashed
    assert widget.start_live(), widget.message_label.text()
    qtbot.waitUntil(
        lambda: widget.last_shown is not None and widget.last_shown.n_tracked > 0, timeout=20_000
    )
    widget._status()
    qtbot.wait(50)
    assert positions(widget) == idle
    assert widget.start_recording() is not None, widget.message_label.text()
    qtbot.waitUntil(lambda: widget.loop.stats.recorded >= 10, timeout=20_000)
    # long texts in every line: they are elided in their boxes, not pushing anything around
    widget.show_message("Recording to " + "/very/long/folder" * 20 + "/tfll.ome.zarr", error=False)
    widget.rate_label.setText(
        "the camera delivers 12.0 frames/s, not the 300.0 requested: it "
        "cannot keep up (frames keep their real times) " * 3
    )
    widget._status()
    qtbot.wait(50)
    assert positions(widget) == idle
    assert camera_group.height() == camera_height  # the Camera section keeps its size
    assert widget.message_label.text().endswith("/tfll.ome.zarr")  # the full text is kept
    widget.stop_recording()
    widget.stop_live()
    qtbot.wait(50)
    assert positions(widget) == idle


def test_the_welcome_screen_goes_as_streaming_starts(docked, qtbot):
    viewer, widget = docked
    qt_viewer = viewer.window._qt_viewer
    viewer.layers.clear()
    qt_viewer.show_welcome_screen = True
    welcome = qt_viewer._welcome_widget
    qtbot.waitUntil(welcome.isVisible, timeout=5_000)
    assert widget.start_live(), widget.message_label.text()
    # at once, before the first frame reaches the display: the camera's layer is there
    assert IMAGE in viewer.layers and not welcome.isVisible()
    assert viewer.layers[IMAGE].data.shape == (SYNTH.height, SYNTH.width, 3)
    qtbot.waitUntil(lambda: widget.last_shown is not None, timeout=20_000)
    assert not welcome.isVisible()
    frame, _ = widget.loop.latest()
    assert viewer.layers[IMAGE].data.any()  # a camera frame now, not the blank placeholder
    assert viewer.layers[IMAGE].data.shape == frame.shape


def test_the_dock_asks_before_replacing_a_recording(docked, qtbot, monkeypatch, tmp_path):
    _viewer, widget = docked
    widget.recording_form.name_edit.value = "baseline"
    widget.visit_form["eye"].value = "OD"
    assert widget.start_live(), widget.message_label.text()
    first = widget.start_recording()
    assert first is not None and first.name == "baseline.ome.zarr", widget.message_label.text()
    qtbot.waitUntil(lambda: widget.loop.stats.recorded >= 10, timeout=20_000)
    widget.stop_recording()
    with open_stream(first) as src:
        n_first = src.n_frames
    analysis = first.parent / "baseline.tfll"
    assert analysis.is_dir()
    marker = analysis / "note.txt"  # something only the first recording has
    marker.write_text("first")
    asked: list[str] = []

    def answer(reply):
        def question(parent, title, text, *args, **kwargs):
            asked.append(text)
            return reply

        return question

    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.No))
    assert widget.start_recording() is None
    assert asked and "baseline.ome.zarr" in asked[-1] and not widget.is_recording
    assert "Not recorded" in widget.message_label.text()
    assert marker.read_text() == "first"  # left as it was
    with open_stream(first) as src:
        assert src.n_frames == n_first
    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Yes))
    second = widget.start_recording()
    assert second == first and len(asked) == 2, widget.message_label.text()
    assert not marker.exists()  # the old analysis went with the old recording
    qtbot.waitUntil(lambda: widget.loop.stats.recorded >= n_first + 15, timeout=20_000)
    widget.stop_recording()
    with open_stream(second) as src:
        assert src.n_frames >= n_first + 15  # the new recording, not the old one
    assert sorted(p.name for p in first.parent.iterdir()) == ["baseline.ome.zarr", "baseline.tfll"]


def test_the_dock_says_when_the_camera_cannot_keep_up(docked, qtbot, tmp_path):
    _viewer, widget = docked
    # a synthetic camera asked for 500 frames/s of 960x1280 colour frames it renders one by
    # one: it delivers far fewer, on its real times
    widget.synth_config = SynthConfig(height=960, width=1280, n_frames=400, seed=2)
    widget.fps_spin.setValue(500.0)
    assert widget.start_live(), widget.message_label.text()
    qtbot.waitUntil(lambda: widget.loop.stats.camera_behind, timeout=30_000)
    qtbot.waitUntil(lambda: "cannot keep up" in widget.rate_label.text(), timeout=5_000)
    assert "500.0 requested" in widget.rate_label.text()
    assert shown_in_window(widget.rate_label)
    grab(widget, tmp_path / "dock_1366x768_camera_behind.png")
    widget.stop_live()
    assert "cannot keep up" in widget.rate_label.text()  # the final status says it too


def test_the_dock_gives_um_beside_px_and_the_plot_upward_travel(docked, qtbot):
    _viewer, widget = docked
    widget.recording_form.pixel_size.value = 2.5
    assert widget.start_live(), widget.message_label.text()
    assert widget.pixel_size_um() == 2.5 and widget.panel.plot.y_label == "upward travel (µm)"
    table = widget.panel.table
    headers = [table.horizontalHeaderItem(j).text() for j in range(table.columnCount())]
    assert "nm (uncal.)" in headers  # no calibration loaded
    panel = widget.panel
    qtbot.waitUntil(lambda: panel._fit is not None and panel._fit.supported, timeout=40_000)
    qtbot.waitUntil(lambda: "±" in panel.fit_label.text(), timeout=5_000)
    fit = panel._fit
    text = panel.fit_label.text()
    assert f"({fit.amplitude_px * 2.5:.2f} µm)" in text and f"{fit.amplitude_px:.1f} px" in text
    assert "µm/s" in text and f"± {fit.tau_se_s:.2f} s" in text
    up, unit = panel.plot.upward(panel.plot.dy_px)
    assert unit == "µm"
    np.testing.assert_allclose(up, -2.5 * panel.plot.dy_px)
    widget.stop_live()
    widget.recording_form.pixel_size.value = 0.0  # the camera's: the synthetic one has none
    assert widget.start_live()
    assert widget.pixel_size_um() is None and widget.panel.plot.y_label == "upward travel (px)"


def test_a_replayed_recording_gives_its_pixel_size_and_files_keep_the_specs_sign(docked, qtbot):
    from tfll_live.io import read_frames_csv, read_results

    _viewer, widget = docked
    widget.recording_form.pixel_size.value = 2.0
    widget.recording_form.fmt.value = "ome-tiff"
    assert widget.start_live(), widget.message_label.text()
    rec = widget.start_recording()
    assert rec is not None, widget.message_label.text()
    # on a busy machine the tracker skips frames to keep up: record until it has seen the
    # layer rise (a fixed count of recorded frames held no tracked rise on a loaded CI machine)
    seen: list[float] = []

    def risen() -> bool:
        latest = widget.loop.latest()
        if latest is not None and latest[1].lipid_dy_px is not None:
            seen.append(latest[1].lipid_dy_px)
        return widget.loop.stats.recorded >= 90 and min(seen, default=0.0) < -1.0

    qtbot.waitUntil(risen, timeout=60_000)
    widget.stop_recording()
    widget.stop_live()
    analysis = rec.parent / (rec.name.split(".")[0] + ".tfll")
    assert read_results(analysis)["pixel_size_um"] == 2.0
    dy = read_frames_csv(analysis)["lipid_dy_px"]
    assert np.nanmin(dy) < -1.0  # the file: y down, the layer rising is negative
    # replayed with the form at "the camera's": the recording's own pixel size
    widget.recording_form.pixel_size.value = 0.0
    widget.camera_combo.setCurrentText("Replay a recording")
    widget.path_edit.setText(str(rec))
    assert widget.start_live(), widget.message_label.text()
    assert widget.pixel_size_um() == 2.0 and widget.panel.plot.y_label == "upward travel (µm)"


def test_every_form_control_can_be_scrolled_into_view(docked, qtbot, tmp_path):
    """Nothing hidden: each input of the forms is reachable, whole, by scrolling the dock."""
    from qtpy.QtWidgets import QAbstractButton, QAbstractSpinBox, QComboBox, QLineEdit

    _viewer, widget = docked
    kinds = (QLineEdit, QComboBox, QAbstractSpinBox, QAbstractButton)
    inputs = [
        w
        for w in widget.scroll.widget().findChildren(QWidget)
        if isinstance(w, kinds)
        and w.isVisibleTo(widget)
        and w.parentWidget() is not None
        and not isinstance(w.parentWidget(), kinds)  # a spin box's own line edit
    ]
    assert widget.folder_edit in inputs and widget.enhancement_combo in inputs
    assert len(inputs) >= 15
    for w in inputs:
        widget.scroll.ensureWidgetVisible(w, 0, 10)  # 10 px above and below it
        qtbot.wait(5)
        assert shown_in_window(w), (type(w).__name__, w.toolTip())
    widget.scroll.ensureWidgetVisible(widget.folder_edit)
    grab(widget, tmp_path / "dock_1366x768_recording_form.png")
