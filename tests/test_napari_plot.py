"""The spread dock: current interval with the tracker's live fit, past intervals, CSV export."""

import csv

import numpy as np
import pytest
from qtpy.QtGui import QImage

from napari_plugin.spread_panel import TABLE_COLUMNS, SpreadPanel, fit_text, interval_row
from napari_plugin.spread_plot import nice_ticks
from tfll_live.synth import SynthConfig, SyntheticStream
from tfll_live.tracking import SpreadFit, Tracker

FPS = 45.0


@pytest.fixture(scope="module")
def results():
    """Every FrameResult of a short synthetic stream with two blinks (real tracker)."""
    stream = SyntheticStream(SynthConfig(height=240, width=320, n_frames=330, seed=4, fps=FPS,
                                         blink_interval_s=(2.5, 3.0), first_blink_s=(1.5, 1.8)))
    tracker = Tracker()
    return [tracker.push(stream.render(i), i / FPS) for i in range(len(stream))]


def qimage_rgb(widget):
    img = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
    ptr = img.constBits()
    ptr.setsize(img.height() * img.bytesPerLine())
    arr = np.frombuffer(ptr, np.uint8).reshape(img.height(), img.bytesPerLine() // 4, 4)
    return arr[..., 2::-1]  # BGRA -> RGB


def test_panel_follows_the_current_interval_and_lists_finished_ones(qtbot, results, tmp_path):
    panel = SpreadPanel()
    qtbot.addWidget(panel)
    ended = [r.interval_ended for r in results if r.interval_ended is not None]
    assert ended, "the stream should close at least one interval"
    panel.extend(results)
    panel.refresh()
    # the table: one row per finished interval, with the tracker's final fit
    assert panel.table.rowCount() == len(ended) == len(panel.rows)
    for row, iv in zip(panel.rows, ended, strict=True):
        assert int(row[0]) == iv.index and int(row[1]) == iv.start_frame
        if iv.spread is not None:
            assert float(row[TABLE_COLUMNS.index("tau_s")]) == pytest.approx(iv.spread.tau_s,
                                                                             rel=1e-3)
    # the plot: the latest interval's displacement since its first frame, and its live fit
    # (it stays on screen through the blink that follows, until the next interval starts)
    last = next(r for r in reversed(results) if r.state.value == "open")
    current = [r for r in results if r.interval == last.interval and r.state.value == "open"]
    measured = [r for r in current if r.lipid_dy_px is not None]
    np.testing.assert_allclose(panel.plot.dy_px, [r.lipid_dy_px for r in measured])
    np.testing.assert_allclose(panel.plot.t_s, [r.time_s - current[0].time_s for r in measured])
    fit = next((r.fit for r in reversed(current) if r.fit is not None), None)
    closed = [iv for iv in ended if iv.index == last.interval and iv.spread is not None]
    if closed:  # the interval has ended: its final fit replaces the live one
        fit = closed[-1].spread
    assert panel.plot.fit is fit and panel.fit_label.text() == fit_text(fit)
    # export: the table as CSV
    out = panel.export_csv(tmp_path / "intervals.csv")
    with out.open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == list(TABLE_COLUMNS) and rows[1:] == panel.rows
    panel.clear()
    assert panel.table.rowCount() == 0 and len(panel.plot.dy_px) == 0


def test_plot_draws_the_data_and_the_fit_curve(qtbot):
    panel = SpreadPanel()
    qtbot.addWidget(panel)
    panel.resize(400, 500)
    t = np.linspace(0, 3, 60)
    fit = SpreadFit(a=20.0, b=1.2, c=-20.0, r2=0.97, n_points=60)
    panel.plot.set_data(t, fit.predict(t) + 0.5, fit, "interval 2")
    rgb = qimage_rgb(panel.plot).astype(int)
    data_px = (np.abs(rgb - [0, 217, 255]).sum(-1) < 60).sum()
    fit_px = (np.abs(rgb - [255, 140, 30]).sum(-1) < 60).sum()
    assert data_px > 60 and fit_px > 100
    # nothing to fit yet: the data alone
    panel.plot.set_data(t[:3], np.array([0.0, -0.5, -1.0]), None, "interval 3")
    rgb = qimage_rgb(panel.plot).astype(int)
    assert (np.abs(rgb - [255, 140, 30]).sum(-1) < 60).sum() == 0


def test_fit_text_and_ticks():
    assert "not yet" in fit_text(None)
    # the numbers only once the data support them (tau known to 25%), with tau's SE
    loose = SpreadFit(a=220.9, b=0.511, c=-186.9, r2=0.98, n_points=400, tau_se_s=0.9)
    assert "gathering data" in fit_text(loose) and "1.96" not in fit_text(loose)
    fit = SpreadFit(a=220.9, b=0.511, c=-186.9, r2=0.98, n_points=400, final=True,
                    tau_se_s=0.08)
    text = fit_text(fit)  # the upward travel is the format's |c - y(0)| = 186.9 px, not a
    assert "tau 1.96 ± 0.08 s" in text and "upward travel 186.9 px" in text and "0.980" in text
    assert "µm" not in text  # no pixel size: px only
    text = fit_text(fit, pixel_size_um=2.0)
    assert "186.9 px (373.80 µm)" in text and f"({2 * fit.initial_velocity_px_s:.2f} µm/s)" in text
    assert nice_ticks(0.0, 1.0) == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert nice_ticks(-23.0, 4.0)[0] >= -23.0


def test_past_intervals_table_shows_spread_time_and_thickness():
    stream = SyntheticStream(SynthConfig(height=240, width=320, n_frames=300, seed=7060,
                                         first_blink_s=(0.3, 0.4)))
    tracker = Tracker()
    for i in range(len(stream)):
        tracker.push(stream.render(i), i / stream.config.fps)
    interval = next(iv for iv in tracker.finish().intervals if iv.kinetics is not None)
    row = dict(zip(TABLE_COLUMNS, interval_row(interval, 1.0), strict=True))
    assert float(row["spread_time_s"] or "nan") > 0 or interval.kinetics.spread_censored
    assert row["model"] in ("paper", "drift")
    median = interval.thickness["median_nm"]
    assert float(row["thickness_median_nm"]) == pytest.approx(median, abs=0.1)


def test_plot_shows_the_upward_travel_as_positive_and_up(qtbot):
    """The layer rising (lipid_dy_px falling, the spec's sign) is drawn going up the plot."""
    panel = SpreadPanel()
    qtbot.addWidget(panel)
    panel.resize(400, 500)
    t = np.linspace(0, 3, 60)
    dy = -30.0 * (1 - np.exp(-t / 0.8))  # y down: rising is negative
    panel.plot.set_data(t, dy, None, "interval 1")
    assert panel.plot.y_label == "upward travel (px)"
    up, unit = panel.plot.upward(dy)
    assert unit == "px" and up[-1] > 25 and np.all(np.diff(up) >= 0)
    rgb = qimage_rgb(panel.plot).astype(int)
    rows, cols = np.nonzero(np.abs(rgb - [0, 217, 255]).sum(-1) < 60)
    left, right = rows[cols < np.percentile(cols, 15)], rows[cols > np.percentile(cols, 85)]
    assert right.mean() < left.mean() - 50  # the later points are higher on screen
    panel.set_pixel_size(0.5)
    assert panel.plot.y_label == "upward travel (µm)"
    np.testing.assert_allclose(panel.plot.upward(dy)[0], -0.5 * dy)
    np.testing.assert_allclose(panel.plot.dy_px, dy)  # the data keep the spec's sign
