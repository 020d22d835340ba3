"""The spread fit: an interval's vertical lipid displacement against ``a*exp(-b*t)+c``.

The fit itself is ``kinetics.fit_exponential`` (closed form in a and c, searched in b), cheap
enough to rerun while the layer still moves, so a live view can show tau as it settles.
"""

from __future__ import annotations

import numpy as np

from tfll_live.kinetics import fit_exponential

from .results import SpreadFit


def fit_spread(t: np.ndarray, y: np.ndarray, final: bool = False) -> SpreadFit | None:
    """The paper's ``a*exp(-b*t)+c`` fitted to (t, dy); None when too short or not decaying."""
    fit = fit_exponential(t, y)
    if fit is None:
        return None
    a, b, c, r2 = fit
    return SpreadFit(a=a, b=b, c=c, r2=r2, n_points=int(np.size(t)), final=final)


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
            self.fit = fit_spread(self._t[: self._n], self._y[: self._n]) or self.fit
        return self.fit

    def truncate(self, before_t_s: float) -> None:
        """Drop samples at or after ``before_t_s`` (frames found, late, to be in a blink)."""
        self._n = int(np.searchsorted(self._t[: self._n], before_t_s, side="left"))

    def finish(self) -> SpreadFit | None:
        """The interval's final fit (None if too short or not converged)."""
        if self._span() < self.min_fit_s:
            return None
        return fit_spread(self._t[: self._n], self._y[: self._n], final=True)

    def samples(self) -> tuple[np.ndarray, np.ndarray]:
        """The interval's (t_s, dy_px) so far."""
        return self._t[: self._n].copy(), self._y[: self._n].copy()

    def _span(self) -> float:
        return float(self._t[self._n - 1] - self._t[0]) if self._n > 1 else 0.0
