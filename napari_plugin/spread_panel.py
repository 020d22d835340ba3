"""The "TFLL Spread" dock: the current interval's spread with its live fit, and past intervals.

Fed every FrameResult in order (from the capture loop via ``LoopFeed``); it only collects
``lipid_dy_px``, the tracker's live ``fit`` and the ``interval_ended`` records, and shows them.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from tfll_live.kinetics import model_word
from tfll_live.tracking import FrameResult, Interval, SpreadFit
from tfll_live.units import px_to_um

from .fixed_label import FixedLabel
from .spread_plot import SpreadPlot

TABLE_COLUMNS = ("interval", "start_frame", "end_frame", "duration_s", "tau_s", "tau_se_s",
                 "amplitude_px", "amplitude_um", "initial_velocity_px_s",
                 "initial_velocity_um_s", "a", "b", "c", "r2", "spread_time_s", "model",
                 "drift_px_s", "thickness_median_nm", "thickness_iqr_nm")
# the dock is narrow: the table shows these, the CSV has every column
SHOWN_COLUMNS = {"interval": "#", "start_frame": "first", "end_frame": "last",
                 "duration_s": "s", "tau_s": "tau s", "amplitude_px": "amp px",
                 "amplitude_um": "amp µm", "r2": "r²",
                 "spread_time_s": "spread s", "thickness_median_nm": "nm"}


def _with_um(value_px: float, unit: str, pixel_size_um: float | None) -> str:
    """``12.3 px`` or ``12.3 px (2.46 µm)`` (``unit``: "" or "/s")."""
    um = px_to_um(value_px, pixel_size_um)
    return f"{value_px:.1f} px{unit}" + ("" if um is None else f" ({um:.2f} µm{unit})")


def fit_text(fit: SpreadFit | None, pixel_size_um: float | None = None) -> str:
    """Human-readable parameters of a fit, once the data support them (or why there are none).

    Early in an interval a fit through a few frames gives any tau at all: its numbers are
    shown only when ``fit.supported`` (enough samples, tau known to 25%), with tau's standard
    error; µm beside px with a pixel size.
    """
    if fit is None:
        return "fit: not yet (interval too short)"
    if not fit.supported:
        return f"fit: gathering data ({fit.n_points} samples; tau not yet determined)"
    return (f"tau {fit.tau_s:.2f} ± {fit.tau_se_s:.2f} s   r² {fit.r2:.3f}"
            f"{'   (final)' if fit.final else '   (live)'}\n"
            f"upward travel {_with_um(fit.amplitude_px, '', pixel_size_um)}   "
            f"initial speed {_with_um(fit.initial_velocity_px_s, '/s', pixel_size_um)}")


def interval_row(interval: Interval, duration_s: float | None,
                 pixel_size_um: float | None = None) -> list[str]:
    """One row of the past-intervals table (and of the exported CSV; µm with a pixel size)."""

    def num(v: float | None, fmt: str) -> str:
        return "" if v is None or not math.isfinite(v) else format(v, fmt)

    f = interval.spread
    k = interval.kinetics  # spread time and drift model (tfll_live.kinetics), when known
    th = interval.thickness or {}
    return [
        str(interval.index), str(interval.start_frame), str(interval.end_frame),
        num(duration_s, ".3f"),
        num(f and (f.tau_s if f.b > 0 else None), ".4f"),
        num(f and f.tau_se_s, ".4f"),
        num(f and f.amplitude_px, ".3f"),
        num(f and px_to_um(f.amplitude_px, pixel_size_um), ".3f"),
        num(f and f.initial_velocity_px_s, ".3f"),
        num(f and px_to_um(f.initial_velocity_px_s, pixel_size_um), ".3f"),
        num(f and f.a, ".4f"), num(f and f.b, ".5f"), num(f and f.c, ".4f"),
        num(f and f.r2, ".4f"),
        num(k and k.spread_time_s, ".3f"),
        "" if k is None else model_word(k.model, k.model_decidable),
        num(k and k.drift_px_s, ".3f"),
        num(th.get("median_nm"), ".1f"),
        num(th.get("iqr_nm"), ".1f"),
    ]


class SpreadPanel(QWidget):
    """Plot of the current interval, its fit parameters, a table of past intervals, CSV export."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = SpreadPlot(self)
        self.pixel_size_um: float | None = None  # µm beside px when known (set_pixel_size)
        self.fit_label = FixedLabel(fit_text(None), n_lines=2)
        self.table = QTableWidget(0, len(SHOWN_COLUMNS))
        self.table.setHorizontalHeaderLabels(list(SHOWN_COLUMNS.values()))
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.set_thickness_calibrated(False)
        self.table.setMinimumHeight(70)  # a laptop screen: leave the TFLL Live dock its room
        self.export_button = QPushButton("Export intervals to CSV…")
        self.export_button.clicked.connect(self._export_clicked)
        self.export_button.setEnabled(False)
        lay = QVBoxLayout(self)
        lay.addWidget(self.plot, 3)
        lay.addWidget(self.fit_label)
        lay.addWidget(self.table, 2)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.export_button)
        lay.addLayout(row)
        self.rows: list[list[str]] = []
        self._last_frame: int | None = None  # session frame number of the last result
        self._current: int | None = None
        self._t0: float | None = None
        self._times: dict[int, float] = {}  # frame -> time_s, back to the open interval's start
        self._t: list[float] = []
        self._dy: list[float] = []
        self._fit: SpreadFit | None = None
        self._dirty = False

    def set_thickness_calibrated(self, calibrated: bool) -> None:
        """Head the thickness column "nm (uncal.)" until a calibration is loaded.

        Without the camera's colour calibration a thickness is an uncalibrated estimate; the
        status line says so too.
        """
        j = list(SHOWN_COLUMNS).index("thickness_median_nm")
        label = SHOWN_COLUMNS["thickness_median_nm"] + ("" if calibrated else " (uncal.)")
        self.table.setHorizontalHeaderItem(j, QTableWidgetItem(label))

    def set_pixel_size(self, pixel_size_um: float | None) -> None:
        """µm per pixel for the plot, the fit line and the table (None: px only)."""
        self.pixel_size_um = pixel_size_um
        self.plot.pixel_size_um = pixel_size_um
        self._dirty = True

    def clear(self) -> None:
        """Forget all intervals (a new session)."""
        self.rows.clear()
        self.table.setRowCount(0)
        self.export_button.setEnabled(False)
        self._current, self._t0, self._fit = None, None, None
        self._last_frame: int | None = None
        self._times.clear()
        self._t.clear()
        self._dy.clear()
        self.plot.set_data(np.zeros(0), np.zeros(0), None, "no interval yet")
        self.fit_label.setText(fit_text(None, self.pixel_size_um))

    def extend(self, results: Iterable[FrameResult]) -> None:
        """Take frame results in order; call ``refresh`` to redraw."""
        for r in results:
            if self._last_frame is not None and r.frame < self._last_frame:
                # a new tracking session (a recording started, a new tracker): its frames and
                # times count from 0 again, and the old session's last results may still have
                # been on their way when the dock cleared the panel
                self.clear()
            self._last_frame = r.frame
            self._times[r.frame] = r.time_s
            if r.interval_ended is not None:
                self.add_interval(r.interval_ended)
            if r.state.value != "open" or r.interval < 0:
                continue
            if r.interval != self._current:
                self._current, self._t0, self._fit = r.interval, r.time_s, None
                self._t.clear()
                self._dy.clear()
            if r.lipid_dy_px is not None:
                self._t.append(r.time_s - (self._t0 or 0.0))
                self._dy.append(r.lipid_dy_px)
            if r.fit is not None:
                self._fit = r.fit
            self._dirty = True

    def refresh(self) -> None:
        """Redraw the plot if new data came in (called at display rate)."""
        if not self._dirty:
            return
        self._dirty = False
        title = "no interval yet" if self._current is None else f"interval {self._current}"
        self.plot.set_data(np.asarray(self._t), np.asarray(self._dy), self._fit, title)
        self.fit_label.setText(fit_text(self._fit, self.pixel_size_um))

    def add_interval(self, interval: Interval) -> None:
        """Append a finished interval to the table."""
        t0 = self._times.get(interval.start_frame)
        t1 = self._times.get(interval.end_frame)
        duration = None if t0 is None or t1 is None else t1 - t0
        for k in [k for k in self._times if k <= interval.end_frame]:
            del self._times[k]
        row = interval_row(interval, duration, self.pixel_size_um)
        self.rows.append(row)
        n = self.table.rowCount()
        self.table.insertRow(n)
        cells = dict(zip(TABLE_COLUMNS, row, strict=True))
        for j, name in enumerate(SHOWN_COLUMNS):
            self.table.setItem(n, j, QTableWidgetItem(cells[name]))
        self.table.resizeColumnsToContents()
        self.export_button.setEnabled(True)
        if interval.index == self._current and interval.spread is not None:
            self._fit = interval.spread
            self._dirty = True

    def export_csv(self, path: str | Path) -> Path:
        """Write the past-intervals table to ``path`` (CSV with a header row)."""
        path = Path(path)
        with path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(TABLE_COLUMNS)
            w.writerows(self.rows)
        return path

    def _export_clicked(self) -> None:
        name, _ = QFileDialog.getSaveFileName(self, "Export intervals", "intervals.csv",
                                              "CSV files (*.csv)")
        if name:
            self.export_csv(name)
