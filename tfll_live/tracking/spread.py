"""The spread fit: an interval's vertical lipid displacement against ``a*exp(-b*t)+c``.

The fit itself is ``kinetics.fit_exponential`` (closed form in a and c, searched in b), cheap
enough to rerun while the layer still moves, so a live view can show tau as it settles.
"""

from __future__ import annotations

import numpy as np

from tfll_live.kinetics import fit_exponential, tau_standard_error

from .results import SpreadFit


def fit_spread(t: np.ndarray, y: np.ndarray, final: bool = False) -> SpreadFit | None:
    """The paper's ``a*exp(-b*t)+c`` fitted to (t, dy); None when too short or not decaying."""
    fit = fit_exponential(t, y)
    if fit is None:
        return None
    a, b, c, r2 = fit
    return SpreadFit(a=a, b=b, c=c, r2=r2, n_points=int(np.size(t)), final=final,
                     tau_se_s=tau_standard_error(t, y, a, b, c))


class SpreadFitter:
    """Keeps an interval's fit current as its displacement curve grows.

    It refits every few frames; the curve is the lipid tracker's, whose samples may arrive out
    of order or be dropped.
    """

    def __init__(self, fit_every: int = 5, min_fit_s: float = 0.5) -> None:
        self.fit_every, self.min_fit_s = fit_every, min_fit_s
        self.reset()

    def reset(self) -> None:
        """Start a new interval."""
        self._frames = 0
        self.fit: SpreadFit | None = None

    def update(self, t_s: np.ndarray, dy_px: np.ndarray) -> SpreadFit | None:
        """One more frame of the curve (t_s, dy_px); refits every ``fit_every`` frames."""
        self._frames += 1
        if self._frames % self.fit_every == 0 and _span(t_s) >= self.min_fit_s:
            self.fit = fit_spread(t_s, dy_px) or self.fit
        return self.fit

    def finish(self, t_s: np.ndarray, dy_px: np.ndarray) -> SpreadFit | None:
        """The interval's final fit (None if too short or not converged)."""
        if _span(t_s) < self.min_fit_s:
            return None
        return fit_spread(t_s, dy_px, final=True)


def _span(t: np.ndarray) -> float:
    return float(np.ptp(t)) if np.size(t) > 1 else 0.0
