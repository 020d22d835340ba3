"""Kinetics of the lipid layer's spread after a blink, from one interval's displacement series.

Two models of the vertical displacement ``y(t)`` (px, t in s since the eye opened):

- the paper's ``a*exp(-b*t)+c`` (Kothapalli 2022);
- King-Smith's (2009) exponential decay plus a slow steady drift, ``a*exp(-b*t)+c+d*t``.

For a fixed rate ``b`` both are linear in the other parameters, so each is fitted by closed-form
least squares on a log grid of ``b`` (vectorised over the grid), refined by zooming into the
best bracket and a parabola through the last three rates. The Bayesian information criterion,
``n*ln(SSE/n) + k*ln(n)``, picks the model: the drift model must pay for its extra parameter
with a clearly better fit (BIC rather than AIC, whose smaller penalty picks a spurious drift in
about one interval of six). Tracked displacements are smooth, so their residuals are correlated
from frame to frame and carry less evidence than their count suggests: the criterion uses the
effective number of samples of an AR(1) process, ``n*(1-rho)/(1+rho)``, with ``rho`` the lag-one
autocorrelation of the paper model's residuals. BIC alone is not enough: a decay whose rate is
slightly misjudged leaves a tail that a slope can mimic, so the drift must also be physical
(``_drift_is_physical``), and intervals shorter than ``MIN_CHOICE_S`` (the layer still spreading
when the next blink or the end of the stream comes) get the paper's model with
``model_decidable`` false.

The spread time is measured from the data: the layer's upward speed is estimated by local
quadratic regression over a window that widens with time (``SMOOTH_FRACTION`` of the elapsed
time, at least ``SMOOTH_MIN_S`` either side: fast early changes stay sharp, slow late ones are
averaged over many frames). Quadratic, not linear: the curve bends as the layer slows, and the
tracker samples a slow layer more sparsely than a fast one, so a line through a window weighted
towards its faster side overstates the speed there and puts the spread's end late. The spread
ends when that speed, less the fitted steady drift, falls below ``threshold`` (default 10%) of
its initial value for good, judged only where the window has data on both sides (near the
interval's end a one-sided window says little about the speed). Where the tracker went on
without new samples (``held_s``: it found the layer where the fit carried it, or at rest) the
frames count as samples along the fit, as it reported them. An interval that ends while
the layer still moves faster than that is *censored*: no spread time, ``spread_censored``.
The chosen model's own value, ``ln(1/threshold)/b``, is given beside it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from math import comb

import numpy as np

B_MIN, B_MAX = 0.02, 30.0  # 1/s: tau from 33 ms to 50 s
_GRID = np.geomspace(B_MIN, B_MAX, 48)
REFINE_ROUNDS = 3  # each zooms 4x into a 9-point bracket; a parabola gives the last digits
THRESHOLD = 0.10
SMOOTH_FRACTION = 0.3
SMOOTH_MIN_S = 0.06
MIN_POINTS = 6
PAPER_MODEL = "a*exp(-b*t)+c"
DRIFT_MODEL = "a*exp(-b*t)+c+d*t"


def model_word(model: str, decidable: bool = True) -> str:
    """The model in a word for tables: "drift", "paper", or "paper?" when too short to choose."""
    if not decidable:
        return "paper?"
    return "drift" if model == DRIFT_MODEL else "paper"


@dataclass(frozen=True, slots=True)
class DecayFit:
    """One model fitted to one interval: ``a*exp(-b*t)+c+d*t`` (``d = 0`` for the paper's)."""

    model: str
    a: float
    b: float
    c: float
    d: float
    sse: float
    r2: float
    aic: float
    bic: float

    @property
    def tau_s(self) -> float:
        """Time constant of the decay, 1/b."""
        return 1.0 / self.b

    @property
    def initial_velocity_px_s(self) -> float:
        """Upward speed at t=0 (px/s; positive when the layer rises, y falling): ``a*b - d``."""
        return self.a * self.b - self.d

    def predict(self, t_s: np.ndarray | float) -> np.ndarray | float:
        """Displacement the model predicts at ``t_s``."""
        t = np.asarray(t_s, np.float64)
        return self.a * np.exp(-self.b * t) + self.c + self.d * t

    def to_json(self) -> dict[str, float | str]:
        """Plain dict with the derived tau and initial velocity."""
        return {
            **asdict(self),
            "tau_s": self.tau_s,
            "initial_velocity_px_s": self.initial_velocity_px_s,
        }


@dataclass(frozen=True, slots=True)
class SpreadKinetics:
    """What an interval's displacement says about the spread (see the module docstring)."""

    n_points: int
    duration_s: float
    model: str  # the model chosen (the paper's when the interval cannot tell them apart)
    model_decidable: bool  # False: too short (< MIN_CHOICE_S) or a fit failed; model is a default
    tau_s: float
    amplitude_px: float  # travel of the exponential part from y(0) = 0: |c| (the spread's)
    initial_velocity_px_s: float  # upward speed at opening, from the chosen model
    drift_px_s: float  # steady upward speed after the decay (0 for the paper's model)
    spread_time_s: float | None  # measured from the data; None when censored
    spread_time_model_s: float  # ln(1/threshold) * tau of the chosen model
    spread_censored: bool  # the layer still moved faster than the threshold at the end
    threshold: float  # fraction of the initial (drift-free) speed that ends the spread
    delta_bic: float  # BIC(paper) - BIC(drift) over n_effective samples: > 0 favours the drift
    residual_autocorrelation: float  # lag-one, of the paper model's residuals
    n_effective: float  # samples' worth of independent evidence, n*(1-rho)/(1+rho)
    noise_px: float  # RMS residual of the chosen model
    paper: DecayFit
    drift: DecayFit | None

    @property
    def chosen(self) -> DecayFit:
        """The fit of the chosen model."""
        return self.drift if self.model == DRIFT_MODEL and self.drift is not None else self.paper

    def to_json(self) -> dict[str, object]:
        """The ``kinetics`` object of an interval in results.json."""
        return {
            "model": self.model,
            "criterion": "BIC",
            "model_decidable": self.model_decidable,
            "delta_bic": self.delta_bic,
            "residual_autocorrelation": self.residual_autocorrelation,
            "n_effective": self.n_effective,
            "tau_s": self.tau_s,
            "amplitude_px": self.amplitude_px,
            "initial_velocity_px_s": self.initial_velocity_px_s,
            "drift_px_s": self.drift_px_s,
            "spread_time_s": self.spread_time_s,
            "spread_time_model_s": self.spread_time_model_s,
            "spread_censored": self.spread_censored,
            "spread_threshold": self.threshold,
            "noise_px": self.noise_px,
            "n_points": self.n_points,
            "duration_s": self.duration_s,
            "fits": {
                "paper": self.paper.to_json(),
                "drift": None if self.drift is None else self.drift.to_json(),
            },
        }


# -- fitting ----------------------------------------------------------------------------------
def _sse_for_rates(
    t: np.ndarray, y: np.ndarray, b: np.ndarray, drift: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Residual sum of squares and linear coefficients for each rate in ``b``.

    ``y`` should be centred, for conditioning. Coefficients are (a, c) or (a, c, d) per rate.
    """
    e = np.exp(-np.outer(b, t))  # (B, N)
    n = float(t.size)
    if not drift:  # 2x2 normal equations in closed form
        se, see, sey = e.sum(1), np.einsum("ij,ij->i", e, e), e @ y
        sy, syy = y.sum(), y @ y
        det = n * see - se * se
        det = np.where(np.abs(det) < 1e-12 * n * n, np.nan, det)
        a = (n * sey - se * sy) / det
        c = (sy - a * se) / n
        sse = syy - a * sey - c * sy
        return sse, np.stack([a, c], axis=1)
    basis_tt = np.array([[n, t.sum()], [t.sum(), t @ t]])  # the 1, t block
    g = np.empty((b.size, 3, 3))
    g[:, 0, 0] = np.einsum("ij,ij->i", e, e)
    g[:, 0, 1] = g[:, 1, 0] = e.sum(1)
    g[:, 0, 2] = g[:, 2, 0] = e @ t
    g[:, 1:, 1:] = basis_tt
    r = np.stack([e @ y, np.full(b.size, y.sum()), np.full(b.size, t @ y)], axis=1)
    ok = np.abs(np.linalg.det(g)) > 1e-10 * n**3
    coef = np.full((b.size, 3), np.nan)
    if ok.any():
        coef[ok] = np.linalg.solve(g[ok], r[ok][..., None])[..., 0]
    sse = y @ y - np.einsum("ij,ij->i", coef, r)
    return sse, coef


def _fit(t: np.ndarray, y: np.ndarray, drift: bool) -> tuple[float, np.ndarray, float] | None:
    """Best (b, coefficients, sse) for centred ``y``, or None if nothing converged."""
    sse, _ = _sse_for_rates(t, y, _GRID, drift)
    if not np.isfinite(sse).any():
        return None
    logs = np.log(_GRID)
    for _ in range(REFINE_ROUNDS):  # zoom in on the minimum, a few rates at a time
        k = int(np.nanargmin(sse))
        lo, hi = logs[max(k - 1, 0)], logs[min(k + 1, logs.size - 1)]
        logs = np.linspace(lo, hi, 9)
        sse, _ = _sse_for_rates(t, y, np.exp(logs), drift)
        if not np.isfinite(sse).any():
            return None
    k = min(max(int(np.nanargmin(sse)), 1), logs.size - 2)
    x0, x1, x2 = logs[k - 1 : k + 2]
    s0, s1, s2 = sse[k - 1 : k + 2]
    curv = s0 - 2 * s1 + s2  # the vertex of the parabola through the three lowest
    lb = x1 + 0.5 * (x1 - x0) * (s0 - s2) / curv if curv > 0 else x1
    b = float(np.exp(np.clip(lb, x0, x2)))
    sse1, coef = _sse_for_rates(t, y, np.array([b]), drift)
    if not np.all(np.isfinite(coef)):
        return None
    return b, coef[0], max(float(sse1[0]), 0.0)


def _prepare(t_s: np.ndarray, y_px: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Finite samples as float arrays, or None when there are too few to fit."""
    t = np.asarray(t_s, np.float64).ravel()
    y = np.asarray(y_px, np.float64).ravel()
    if t.shape != y.shape:
        raise ValueError(f"t and y differ in length: {t.size} vs {y.size}")
    ok = np.isfinite(t) & np.isfinite(y)
    t, y = t[ok], y[ok]
    if t.size < MIN_POINTS or np.ptp(t) <= 0 or np.ptp(y) <= 0:
        return None
    return t, y


def _decay_fit(t: np.ndarray, y: np.ndarray, drift: bool) -> DecayFit | None:
    """Fit one model in physical units; None at the edge of the rate range or on failure."""
    ym = float(y.mean())
    found = _fit(t, y - ym, drift)
    if found is None:
        return None
    b, coef, sse = found
    if b <= B_MIN * 1.01 or b >= B_MAX * 0.99:
        return None
    a, c = float(coef[0]), float(coef[1]) + ym
    d = float(coef[2]) if drift else 0.0
    n, k = t.size, (4 if drift else 3)
    sst = float(np.sum((y - ym) ** 2))
    log_term = n * np.log(max(sse, 1e-12 * max(sst, 1e-12)) / n)
    return DecayFit(
        DRIFT_MODEL if drift else PAPER_MODEL,
        a,
        b,
        c,
        d,
        sse,
        1.0 - sse / sst if sst > 0 else 0.0,
        float(log_term + 2 * k),
        float(log_term + k * np.log(n)),
    )


def fit_exponential(t_s: np.ndarray, y_px: np.ndarray) -> tuple[float, float, float, float] | None:
    """Least-squares ``a*exp(-b*t)+c``: (a, b, c, r2), or None (too few points, no decay).

    Cheap enough to rerun online while the layer still moves (well under 1 ms for 1000 points,
    ``benchmarks/bench_report.py``).
    """
    prepared = _prepare(t_s, y_px)
    if prepared is None:
        return None
    fit = _decay_fit(prepared[0], prepared[1], drift=False)
    return None if fit is None else (fit.a, fit.b, fit.c, fit.r2)


def tau_standard_error(
    t_s: np.ndarray, y_px: np.ndarray, a: float, b: float, c: float
) -> float:
    """Standard error (s) of ``tau = 1/b`` of a fitted ``a*exp(-b*t)+c``; inf when undetermined.

    The live view must say how far a tau can be trusted while the curve is still short. This is
    the least-squares covariance at the optimum, ``s^2 (J^T J)^-1`` with ``J`` the model's
    Jacobian in (a, b, c) and ``s^2 = SSE/(n-3)``, carried to tau by ``se_tau = se_b/b^2``. It
    assumes independent residuals; tracked displacements are smoother than that, so it is a
    lower bound there (``SpreadKinetics.n_effective`` says by how much the evidence shrinks).
    """
    t = np.asarray(t_s, np.float64).ravel()
    y = np.asarray(y_px, np.float64).ravel()
    ok = np.isfinite(t) & np.isfinite(y)
    t, y = t[ok], y[ok]
    if t.size <= 3 or not (np.isfinite(b) and b > 0):
        return float("inf")
    e = np.exp(-b * t)
    jac = np.column_stack([e, -a * t * e, np.ones_like(t)])
    resid = y - (a * e + c)
    s2 = float(resid @ resid) / (t.size - 3)
    try:
        cov = s2 * np.linalg.inv(jac.T @ jac)
    except np.linalg.LinAlgError:
        return float("inf")
    var_b = float(cov[1, 1])
    if not np.isfinite(var_b) or var_b < 0:
        return float("inf")
    return float(np.sqrt(var_b) / (b * b))


# a live fit is shown only when the data can support it: enough samples, a convergent fit, and
# a tau known to within this fraction (one standard error)
MIN_SUPPORT_POINTS = 15
MAX_RELATIVE_SE = 0.25


def fit_supported(n_points: int, tau_s: float, tau_se_s: float) -> bool:
    """Whether a fit's tau is worth showing: enough samples and a tau within 25% (1 SE).

    Early in an interval a fit through a few frames gives any tau at all; its standard error
    says so (it is large, or infinite when the fit is undetermined).
    """
    return (
        n_points >= MIN_SUPPORT_POINTS
        and math.isfinite(tau_s)
        and tau_s > 0
        and math.isfinite(tau_se_s)
        and tau_se_s <= MAX_RELATIVE_SE * tau_s
    )


# -- spread time --------------------------------------------------------------------------------
def _window(t: np.ndarray, fraction: float, min_half_s: float) -> tuple[np.ndarray, ...]:
    """Each sample's smoothing half-width, the half-width it gets, and its samples ``lo:hi``.

    ``t`` counts from the eye opening; the window at t spans ``t +- max(min_half_s, fraction*t)``,
    centred on the sample: near an end of the series it shrinks to the samples on both sides
    (a one-sided window tilts the parabola's slope with every sample's noise).
    """
    half = np.maximum(min_half_s, fraction * np.maximum(t, 0.0))
    centred = np.minimum(half, np.minimum(t - t[0], t[-1] - t))
    lo = np.searchsorted(t, t - centred, side="left")
    hi = np.searchsorted(t, t + centred, side="right")
    return half, centred, lo, hi


def local_velocity(
    t_s: np.ndarray,
    y_px: np.ndarray,
    fraction: float = SMOOTH_FRACTION,
    min_half_s: float = SMOOTH_MIN_S,
) -> np.ndarray:
    """Slope dy/dt (px/s) at each sample by local quadratic regression over a widening window.

    NaN where the window holds too few samples to place a parabola. O(n) from cumulative sums
    of powers of time (scaled by each window's half-width, so the sums stay well conditioned).
    """
    t = np.asarray(t_s, np.float64)
    y = np.asarray(y_px, np.float64)
    _, centred, lo, hi = _window(t, fraction, min_half_s)
    scale = np.maximum(centred, 1e-3)  # s; the moments' unit of time, for conditioning
    u, yc = t - t[0], y - y.mean()

    def window_sum(v: np.ndarray) -> np.ndarray:
        c = np.concatenate([[0.0], np.cumsum(v)])
        return c[hi] - c[lo]

    su = [window_sum(u**k) for k in range(5)]  # sum of u^k over each window
    suy = [window_sum(u**k * yc) for k in range(3)]
    # moments of s = (u_j - u_i)/half_i, by the binomial expansion about each sample
    a = -u / scale
    inv = 1.0 / scale
    m = [
        sum(comb(k, r) * su[r] * inv**r * a ** (k - r) for r in range(k + 1)) for k in range(5)
    ]
    my = [
        sum(comb(k, r) * suy[r] * inv**r * a ** (k - r) for r in range(k + 1)) for k in range(3)
    ]
    # normal equations of y = c0 + c1*s + c2*s^2; c1 by Cramer's rule
    det = m[0] * (m[2] * m[4] - m[3] ** 2) - m[1] * (m[1] * m[4] - m[2] * m[3]) + m[2] * (
        m[1] * m[3] - m[2] ** 2
    )
    num = m[0] * (my[1] * m[4] - m[3] * my[2]) - my[0] * (m[1] * m[4] - m[2] * m[3]) + m[2] * (
        m[1] * my[2] - my[1] * m[2]
    )
    n = (hi - lo).astype(np.float64)
    ok = (n >= 4) & (det > 1e-9 * np.maximum(n, 1.0) ** 3)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = num / det / scale
    return np.where(ok, slope, np.nan)


def _with_held(
    t: np.ndarray, y: np.ndarray, held_s: float, fit: DecayFit
) -> tuple[np.ndarray, np.ndarray]:
    """The samples followed by the stretch the tracker went on without new ones, as samples.

    There the tracker carried the layer on along the spread fit (held, once it flattens):
    what its frames report, and what its checks found the layer still matching. Without it
    the last samples have no window on their far side, and a layer that came to rest early
    in a long interval would have its spread time censored.
    """
    if held_s <= 0.0 or t.size < 2:
        return t, y
    step = float(np.median(np.diff(t[-8:])))
    n = int(held_s / step) if step > 0 else 0
    if n < 1:
        return t, y
    held = t[-1] + step * np.arange(1, n + 1)
    carried = y[-1] + np.asarray(fit.predict(held)) - float(fit.predict(t[-1]))
    return np.concatenate([t, held]), np.concatenate([y, carried])


def _spread_time(t: np.ndarray, y: np.ndarray, fit: DecayFit, threshold: float) -> float | None:
    """When the measured speed, less the steady drift, falls below threshold*initial for good.

    "For good" (the last downward crossing, not the first) because the speed measured over
    the first few frames is noisy and may dip below the threshold by chance. Only samples
    whose window reaches at least half its width to either side count: None when none of them
    shows the layer below the threshold after it was last above.
    """
    half, centred, _, _ = _window(t, SMOOTH_FRACTION, SMOOTH_MIN_S)
    speed = local_velocity(t, y)
    both_sides = (centred >= 0.5 * half) & np.isfinite(speed)
    ts = t[both_sides]
    if ts.size < 2:
        return None
    excess = -(speed[both_sides] - fit.d) * np.sign(fit.a)  # along the spread's direction
    limit = threshold * abs(fit.a) * fit.b
    above = np.flatnonzero(excess > limit)
    if not above.size:
        return float(t[0])
    j = int(above[-1]) + 1
    if j >= ts.size:
        return None
    # interpolate the crossing between samples j-1 (above) and j (below)
    e0, e1 = excess[j - 1], excess[j]
    frac = (e0 - limit) / (e0 - e1) if e0 != e1 else 1.0
    return float(ts[j - 1] + frac * (ts[j] - ts[j - 1]))


def _effective_samples(t: np.ndarray, y: np.ndarray, fit: DecayFit) -> tuple[float, float]:
    """Lag-one autocorrelation of the fit's residuals and the AR(1) effective sample count."""
    r = y - np.asarray(fit.predict(t))
    r = r - r.mean()
    den = float(r @ r)
    rho = float(r[:-1] @ r[1:]) / den if den > 0 else 0.0
    rho = min(max(rho, 0.0), 0.99)
    n_eff = t.size * (1.0 - rho) / (1.0 + rho)
    return rho, float(max(n_eff, 6.0))


MIN_DRIFT_TRAVEL_PX = 1.0  # a creep smaller than this over the interval is below tracking error
MODELS_APART_PX = 0.3  # two curves never further apart than this are one to the tracker
MIN_CHOICE_S = 2.0  # shorter intervals end while the spread is under way: no model is chosen
AT_REST_S = 1.0  # a layer held at rest this long (at the end or between samples) did not creep


def _longest_gap(t: np.ndarray) -> float:
    """The longest time between samples: the tracker held the layer at rest all along it.

    A steady creep gives samples throughout; one sample after a long rest, a chance pass of
    noise, would otherwise bend the drift fit on its own.
    """
    return float(np.max(np.diff(t))) if t.size > 1 else 0.0


def _drift_is_physical(drift: DecayFit, paper: DecayFit, t: np.ndarray, noise: float) -> bool:
    """Whether the drift fit describes a creep that the decay could not mimic.

    The creep must be upward and travel, over the interval, further than the tracking noise and
    twice what is left of the decay at the interval's end: a slightly wrong rate trades that
    tail for a slope, and a decay still under way (long tau) leaves a long tail. And the two
    models' curves must part somewhere by more than the tracker's systematic error: closer, a
    few tenths of a pixel of bias in the samples (BIC counts them as evidence) choose between
    them, not the layer.
    """
    duration = float(t[-1] - t[0])
    travel = -drift.d * duration
    tail = abs(drift.a) * float(np.exp(-drift.b * duration))
    apart = float(np.max(np.abs(np.asarray(drift.predict(t)) - np.asarray(paper.predict(t)))))
    return travel > max(MIN_DRIFT_TRAVEL_PX, 2.0 * noise, 2.0 * tail) and apart > MODELS_APART_PX


def analyze_spread(
    t_s: np.ndarray, y_px: np.ndarray, threshold: float = THRESHOLD, held_s: float = 0.0
) -> SpreadKinetics | None:
    """Kinetics of one interval's displacement ``y_px`` at ``t_s`` (s since eye opening).

    ``y_px`` counts from the interval's first frame (0 there), so the amplitude is ``|c|``.

    ``held_s``: how long the interval went on after the last sample with the tracker holding
    the layer at rest; a layer at rest that long (or that long between two samples) was not
    creeping, whatever the samples' shape.
    None when the interval is too short or no decay could be fitted.
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
    prepared = _prepare(t_s, y_px)
    if prepared is None:
        return None
    t, y = prepared
    paper = _decay_fit(t, y, drift=False)
    drift = _decay_fit(t, y, drift=True) if t.size > MIN_POINTS else None
    if paper is None and drift is None:
        return None
    rho, n_eff = _effective_samples(t, y, paper or drift)  # type: ignore[arg-type]
    delta = 0.0
    if paper is not None and drift is not None:
        delta = float(
            n_eff * np.log(max(paper.sse, 1e-300) / max(drift.sse, 1e-300)) - np.log(n_eff)
        )  # one more parameter, over n_eff independent samples
    duration = float(t[-1] - t[0])
    decidable = duration >= MIN_CHOICE_S and paper is not None and drift is not None
    physical = (
        decidable
        and max(held_s, _longest_gap(t)) < AT_REST_S
        and drift is not None
        and paper is not None
        and _drift_is_physical(drift, paper, t, float(np.sqrt(drift.sse / t.size)))
    )
    chosen = drift if physical and delta > 0 else (paper or drift)
    assert chosen is not None
    t_all, y_all = _with_held(t, y, held_s, chosen)
    measured = _spread_time(t_all, y_all, chosen, threshold)
    # an end-of-interval crossing is where the window ran out, not where the layer stopped
    censored = measured is None or measured >= t_all[-1] - SMOOTH_MIN_S
    return SpreadKinetics(
        n_points=int(t.size),
        duration_s=duration,
        model=chosen.model,
        model_decidable=decidable,
        tau_s=chosen.tau_s,
        amplitude_px=abs(chosen.c),
        initial_velocity_px_s=chosen.initial_velocity_px_s,
        drift_px_s=-chosen.d,
        spread_time_s=None if censored else measured,
        spread_time_model_s=float(np.log(1.0 / threshold) / chosen.b),
        spread_censored=bool(censored),
        threshold=threshold,
        delta_bic=delta,
        residual_autocorrelation=rho,
        n_effective=n_eff,
        noise_px=float(np.sqrt(chosen.sse / t.size)),
        paper=paper if paper is not None else chosen,
        drift=drift,
    )
