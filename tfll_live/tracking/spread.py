"""The spread fit: an interval's vertical lipid displacement against ``a*exp(-b*t)+c``.

For a fixed rate b the model is linear in a and c, so the fit is a closed-form least squares
over a log-spaced grid of b (vectorised), refined by golden-section search on log b. It is cheap
enough (well under a millisecond for a thousand samples) to rerun while the layer still moves.
"""

from __future__ import annotations

import numpy as np

from .results import SpreadFit

B_MIN, B_MAX = 0.02, 30.0  # 1/s: tau from 33 ms to 50 s
_GRID = np.geomspace(B_MIN, B_MAX, 48)


def _linear_fit(t: np.ndarray, y: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, ...]:
    """Best a, c and the residual sum of squares for each rate in ``b``."""
    e = np.exp(-np.outer(b, t))
    n = t.size
    se, see = e.sum(1), np.einsum("ij,ij->i", e, e)
    sy, sey = y.sum(), e @ y
    det = n * see - se * se
    det = np.where(np.abs(det) < 1e-12, np.nan, det)
    a = (n * sey - se * sy) / det
    c = (sy - a * se) / n
    resid = y[None, :] - a[:, None] * e - c[:, None]
    return a, c, np.einsum("ij,ij->i", resid, resid)


def fit_exponential(t: np.ndarray, y: np.ndarray, final: bool = False) -> SpreadFit | None:
    """Least-squares ``a*exp(-b*t)+c``; None when there is too little to fit or no decay."""
    t = np.asarray(t, np.float64)
    y = np.asarray(y, np.float64)
    if t.size < 6 or np.ptp(t) <= 0:
        return None
    _, _, sse = _linear_fit(t, y, _GRID)
    if not np.isfinite(sse).any():
        return None
    k = int(np.nanargmin(sse))
    lo, hi = np.log(_GRID[max(k - 1, 0)]), np.log(_GRID[min(k + 1, _GRID.size - 1)])
    g = (np.sqrt(5) - 1) / 2
    for _ in range(16):  # golden section on log b: bracket shrinks to ~1e-4 in b
        m1, m2 = hi - g * (hi - lo), lo + g * (hi - lo)
        s = _linear_fit(t, y, np.exp([m1, m2]))[2]
        if s[0] < s[1]:
            hi = m2
        else:
            lo = m1
    b = float(np.exp(0.5 * (lo + hi)))
    a, c, sse1 = (float(v[0]) for v in _linear_fit(t, y, np.array([b])))
    if not np.isfinite(a) or b <= B_MIN * 1.01 or b >= B_MAX * 0.99:
        return None
    sst = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - sse1 / sst if sst > 0 else 0.0
    return SpreadFit(a=a, b=b, c=c, r2=r2, n_points=int(t.size), final=final)


class SpreadFitter:
    """Collects one interval's (t, dy) and keeps its fit current as frames arrive."""

    def __init__(self, fit_every: int = 5, min_fit_s: float = 0.5) -> None:
        self.fit_every, self.min_fit_s = fit_every, min_fit_s
        self._t = np.empty(1024)
        self._y = np.empty(1024)
        self._n = 0
        self.fit: SpreadFit | None = None

    def reset(self) -> None:
        """Start a new interval."""
        self._n = 0
        self.fit = None

    def push(self, t_s: float, dy_px: float) -> SpreadFit | None:
        """Add a sample; refits every ``fit_every`` samples. Returns the current fit."""
        if self._n == self._t.size:  # grow geometrically; an interval's length bounds this
            self._t = np.resize(self._t, 2 * self._n)
            self._y = np.resize(self._y, 2 * self._n)
        self._t[self._n], self._y[self._n] = t_s, dy_px
        self._n += 1
        if self._n % self.fit_every == 0 and self._span() >= self.min_fit_s:
            self.fit = fit_exponential(self._t[: self._n], self._y[: self._n]) or self.fit
        return self.fit

    def truncate(self, before_t_s: float) -> None:
        """Drop samples at or after ``before_t_s`` (frames found, late, to be in a blink)."""
        self._n = int(np.searchsorted(self._t[: self._n], before_t_s, side="left"))

    def finish(self) -> SpreadFit | None:
        """The interval's final fit (None if too short or not converged)."""
        if self._span() < self.min_fit_s:
            return None
        return fit_exponential(self._t[: self._n], self._y[: self._n], final=True)

    def _span(self) -> float:
        return float(self._t[self._n - 1] - self._t[0]) if self._n > 1 else 0.0
