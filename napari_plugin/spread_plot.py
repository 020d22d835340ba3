"""A small QPainter plot of one interval's lipid displacement with its exponential fit.

napari does not ship matplotlib, and one scatter plus one curve at display rate does not need
it: this widget draws the upward travel (``-lipid_dy_px``, in µm with a pixel size) against time
since the interval's start, and the live fit ``a*exp(-b*t)+c`` as given by the tracker's
``SpreadFit.predict`` (no fitting here). Up the eye is up on the plot and positive on its axis;
the files keep the spec's sign.
"""

from __future__ import annotations

import math

import numpy as np
from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QFont, QPainter, QPaintEvent, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

from tfll_live.tracking import SpreadFit
from tfll_live.units import upward_um_or_px

_BG = QColor(38, 41, 48)
_AXIS = QColor(160, 166, 180)
_DATA = QColor(0, 217, 255)
_FIT = QColor(255, 140, 30)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + k * step for k in range(int((hi - first) / step + 1e-9) + 1)]


def _polygon(xs: np.ndarray, ys: np.ndarray) -> QPolygonF:
    return QPolygonF([QPointF(float(a), float(b)) for a, b in zip(xs, ys, strict=True)])


class SpreadPlot(QWidget):
    """Scatter of (t, upward travel) and the fit curve; ``dy_px`` kept as the tracker gives it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(260, 130)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.t_s = np.zeros(0)
        self.dy_px = np.zeros(0)
        self.fit: SpreadFit | None = None
        self.title = "no interval yet"
        self.pixel_size_um: float | None = None  # None: the axis is in px

    def set_data(self, t_s: np.ndarray, dy_px: np.ndarray, fit: SpreadFit | None,
                 title: str) -> None:
        """Replace what is drawn and schedule a repaint."""
        self.t_s, self.dy_px, self.fit, self.title = t_s, dy_px, fit, title
        self.update()

    def upward(self, dy_px: np.ndarray) -> tuple[np.ndarray, str]:
        """Displacements as drawn: upward travel (positive up), µm with a pixel size; unit."""
        up, unit = upward_um_or_px(np.asarray(dy_px, float), self.pixel_size_um)
        return np.asarray(up, float), unit

    @property
    def y_label(self) -> str:
        """The y axis's title: what is drawn and its unit."""
        return f"upward travel ({self.upward(np.zeros(0))[1]})"

    def _ranges(self) -> tuple[float, float, float, float]:
        t_hi = float(self.t_s.max()) if self.t_s.size else 1.0
        t_hi = max(t_hi, 0.5)
        ys = [self.upward(self.dy_px)[0]] if self.dy_px.size else [np.zeros(1)]
        if self.fit is not None:
            ys.append(self.upward(self.fit.predict(np.linspace(0.0, t_hi, 32)))[0])
        y = np.concatenate(ys)
        y = y[np.isfinite(y)]
        y_lo, y_hi = (float(y.min()), float(y.max())) if y.size else (-1.0, 1.0)
        pad = max(1.0, 0.08 * (y_hi - y_lo))
        return 0.0, t_hi, y_lo - pad, y_hi + pad

    def paintEvent(self, event: QPaintEvent) -> None:
        """Draw axes, data points and the fit curve."""
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), _BG)
        font = QFont(p.font())
        font.setPointSizeF(8.0)
        p.setFont(font)
        left, right, top, bottom = 48.0, 10.0, 20.0, 28.0
        box = QRectF(left, top, max(self.width() - left - right, 10.0),
                     max(self.height() - top - bottom, 10.0))
        t0, t1, y0, y1 = self._ranges()

        def to_px(t: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            # y: upward travel, drawn up
            px = box.left() + (t - t0) / (t1 - t0) * box.width()
            py = box.bottom() - (y - y0) / (y1 - y0) * box.height()
            return px, py

        p.setPen(QPen(_AXIS, 1.0))
        p.drawRect(box)
        for t in nice_ticks(t0, t1):
            x, _ = to_px(np.array(t), np.array(y0))
            p.drawLine(QPointF(float(x), box.bottom()), QPointF(float(x), box.bottom() + 4))
            p.drawText(QRectF(float(x) - 20, box.bottom() + 4, 40, 12),
                       Qt.AlignmentFlag.AlignCenter, f"{t:g}")
        for y in nice_ticks(y0, y1):
            _, py = to_px(np.array(t0), np.array(y))
            p.drawLine(QPointF(box.left() - 4, float(py)), QPointF(box.left(), float(py)))
            p.drawText(QRectF(0, float(py) - 6, left - 6, 12),
                       Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, f"{y:g}")
        p.drawText(QRectF(box.left(), self.height() - 13.0, box.width(), 12),
                   Qt.AlignmentFlag.AlignCenter, "time since blink (s)")
        p.drawText(QRectF(4, 2, self.width() - 8, 16), Qt.AlignmentFlag.AlignLeft,
                   f"{self.y_label} — {self.title}")

        up = self.upward(self.dy_px)[0]
        ok = np.isfinite(up)
        if ok.any():
            xs, ys = to_px(self.t_s[ok], up[ok])
            p.setPen(QPen(_DATA, 3.0))
            p.drawPoints(_polygon(xs, ys))
        if self.fit is not None:
            tt = np.linspace(t0, t1, 120)
            xs, ys = to_px(tt, self.upward(self.fit.predict(tt))[0])
            good = np.isfinite(ys)
            p.setPen(QPen(_FIT, 2.0))
            p.drawPolyline(_polygon(xs[good], ys[good]))
        p.end()
