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
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from tfll_live.kinetics import model_word
from tfll_live.tracking import FrameResult, Interval, SpreadFit

from .spread_plot import SpreadPlot

TABLE_COLUMNS = ("interval", "start_frame", "end_frame", "duration_s", "tau_s", "amplitude_px",
                 "initial_velocity_px_s", "a", "b", "c", "r2", "spread_time_s", "model",
                 "drift_px_s", "thickness_median_nm", "thickness_iqr_nm")
# the dock is narrow: the table shows these, the CSV has every column
SHOWN_COLUMNS = {"interval": "#", "start_frame": "first", "end_frame": "last",
                 "duration_s": "s", "tau_s": "tau s", "amplitude_px": "amp px", "r2": "r²",
                 "spread_time_s": "spread s", "thickness_median_nm": "nm"}


def fit_text(fit: SpreadFit | None) -> str:
    """Human-readable parameters of a fit (or why there is none)."""
    if fit is None:
        return "fit: not yet (interval too short)"
    tau = f"{fit.tau_s:.2f} s" if fit.b > 0 else "n/a"
    return (f"tau {tau}   amplitude {fit.amplitude_px:.1f} px   r² {fit.r2:.3f}"
            f"{'   (final)' if fit.final else '   (live)'}")


def interval_row(interval: Interval, duration_s: float | None) -> list[str]:
    """One row of the past-intervals table (and of the exported CSV)."""

    def num(v: float | None, fmt: str) -> str:
        return "" if v is None or not math.isfinite(v) else format(v, fmt)

    f = interval.spread
    k = interval.kinetics  # spread time and drift model (tfll_live.kinetics), when known
    th = interval.thickness or {}
    return [
        str(interval.index), str(interval.start_frame), str(interval.end_frame),
        num(duration_s, ".3f"),
        num(f and (f.tau_s if f.b > 0 else None), ".4f"),
        num(f and f.amplitude_px, ".3f"),
        num(f and f.initial_velocity_px_s, ".3f"),
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
        self.fit_label = QLabel(fit_text(None))
        self.table = QTableWidget(0, len(SHOWN_COLUMNS))
        self.table.setHorizontalHeaderLabels(list(SHOWN_COLUMNS.values()))
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
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
        self._current: int | None = None
        self._t0: float | None = None
        self._times: dict[int, float] = {}  # frame -> time_s, back to the open interval's start
        self._t: list[float] = []
        self._dy: list[float] = []
        self._fit: SpreadFit | None = None
        self._dirty = False

    def clear(self) -> None:
        """Forget all intervals (a new session)."""
        self.rows.clear()
        self.table.setRowCount(0)
        self.export_button.setEnabled(False)
        self._current, self._t0, self._fit = None, None, None
        self._times.clear()
        self._t.clear()
        self._dy.clear()
        self.plot.set_data(np.zeros(0), np.zeros(0), None, "no interval yet")
        self.fit_label.setText(fit_text(None))

    def extend(self, results: Iterable[FrameResult]) -> None:
        """Take frame results in order; call ``refresh`` to redraw."""
        for r in results:
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
        self.fit_label.setText(fit_text(self._fit))

    def add_interval(self, interval: Interval) -> None:
        """Append a finished interval to the table."""
        t0 = self._times.get(interval.start_frame)
        t1 = self._times.get(interval.end_frame)
        duration = None if t0 is None or t1 is None else t1 - t0
        for k in [k for k in self._times if k <= interval.end_frame]:
            del self._times[k]
        row = interval_row(interval, duration)
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
