"""Pupil, iris and lower lid: where the eye is, and the cornea region the lipid is tracked in.

The pupil is found once by a Hough transform (darkest circular region), then refined every frame
to sub-pixel precision by fitting a circle to its margin along rays from the last centre. The
margin is a sharp, eye-fixed edge, so its centre moves with the eye and not with the lipid
interference pattern drifting over it; the stabilizer relies on that. The lower lid margin is the
strongest dark-to-bright... edge below the pupil, fitted with a parabola.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from .results import Circle, LidCurve

N_RAYS = 72
MARGIN_SHARE = 0.5  # of a ray's strongest step: a weaker one further in is the margin
EDGE_SPAN = 5  # samples either side of a margin over which its full rise is measured


@dataclass(frozen=True, slots=True)
class Anatomy:
    """The eye's landmarks in one frame."""

    pupil: Circle
    lid: LidCurve | None
    pupil_inliers: float  # share of rays whose margin agreed with the fitted circle


def pupil_candidates(
    gray: np.ndarray, refiner: PupilRefiner | None = None, top: int = 4
) -> list[tuple[float, Circle]]:
    """The ``top`` most pupil-like circles of a frame, best first, with their scores.

    Candidates come from a centre-surround contrast (disc mean minus ring mean) at a coarse
    scale over plausible sizes; the interference pattern's patchy brightness makes single
    detections unreliable, so each is refined to its margin and scored by how much of a clean,
    strong circle it is.
    """
    refiner = refiner or PupilRefiner()
    h = gray.shape[0]
    scale = min(1.0, 120.0 / h)
    small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA).astype(
        np.float32
    )
    sh = small.shape[0]
    fits: list[tuple[float, Circle]] = []
    candidates: list[tuple[float, float, float]] = []
    for r in np.geomspace(0.05 * sh, 0.25 * sh, 7):
        disc = _disc_kernel(r)
        ring = _disc_kernel(1.5 * r) * (1.5**2) - _pad_to(disc, 1.5 * r)
        ring /= ring.sum()
        contrast = cv2.filter2D(small, -1, disc, borderType=cv2.BORDER_REPLICATE) - cv2.filter2D(
            small, -1, ring, borderType=cv2.BORDER_REPLICATE
        )
        m = int(np.ceil(1.5 * r))
        inner = contrast[m : sh - m, m : small.shape[1] - m].copy()
        if inner.size == 0:
            continue
        for _ in range(3):  # the three darkest, well separated spots at this size
            iy, ix = np.unravel_index(int(np.argmin(inner)), inner.shape)
            inner[max(0, iy - m) : iy + m + 1, max(0, ix - m) : ix + m + 1] = np.inf
            candidates.append(((ix + m) / scale, (iy + m) / scale, r / scale))
    # and a coarse grid over the frame's middle, so that a pupil no dark spot pointed at
    # (the film over it can be bright) is still reached by some starting circle
    hh, ww = gray.shape
    for gy in np.linspace(0.25 * hh, 0.75 * hh, 4):
        for gx in np.linspace(0.25 * ww, 0.75 * ww, 5):
            candidates.append((gx, gy, 0.08 * hh))
    for cx, cy, r in candidates:
        for grow in (1.0, 1.6, 2.4):
            start = Circle(cx, cy, grow * r)
            if any(_same_circle(start, c) for _, c in fits):
                continue  # a start inside a circle already found converges onto it again
            fit = _converge(gray, refiner, start)
            if fit is not None and fit[1] > 0.5:
                fits.append((_score(gray, fit), fit[0]))
    # the iris margin is a dark-inside circle too, but larger than any pupil
    # framing: the lower lid, where the layer spreads from, is in view below the pupil, so
    # dark circles low in the frame are lid margin and lashes
    pupils = sorted(
        ((score, c) for score, c in fits if c.r_px <= MAX_PUPIL_R * h and c.y_px < MAX_PUPIL_Y * h),
        key=lambda f: -f[0],
    )
    distinct: list[tuple[float, Circle]] = []
    for score, c in pupils:  # one entry per circle: refinements from many starts coincide
        if all(np.hypot(c.x_px - d.x_px, c.y_px - d.y_px) > 0.3 * d.r_px for _, d in distinct):
            distinct.append((score, c))
    return distinct[:top]


def _converge(gray: np.ndarray, refiner: PupilRefiner, start: Circle) -> MarginFit | None:
    """Refit from ``start`` until the circle stops moving (at most three fits)."""
    fit = None
    guess = start
    for _ in range(3):
        fit = refiner.refine(gray, guess)
        if fit is None:
            return None
        moved = max(abs(fit.circle.x_px - guess.x_px), abs(fit.circle.y_px - guess.y_px))
        if moved < 0.5 and abs(fit.circle.r_px - guess.r_px) < 0.5:
            break
        guess = fit.circle
    return fit


def _same_circle(start: Circle, found: Circle) -> bool:
    """Whether refining from ``start`` would end on ``found``.

    Its centre is well inside, its size close.
    """
    near = np.hypot(start.x_px - found.x_px, start.y_px - found.y_px) < 0.3 * found.r_px
    return bool(near and 0.7 * found.r_px < start.r_px < 1.4 * found.r_px)


MAX_PUPIL_R = 0.22  # of the frame height
MAX_PUPIL_Y = 0.7  # of the frame height, from the top


def find_pupil(gray: np.ndarray, refiner: PupilRefiner | None = None) -> Circle | None:
    """The most pupil-like circle of a frame, or None."""
    best = pupil_candidates(gray, refiner, top=1)
    return best[0][1] if best else None


def _score(gray: np.ndarray, fit: MarginFit) -> float:
    """Evidence that a fitted circle is the pupil: roundness x step x sharpness x darkness.

    Roundness, not the robust fit's inlier share: the fit's tolerance grows with the scatter of
    the edge points, so a ring of texture edges keeps all its rays; only a real margin lies
    on its circle to within a pixel.
    """
    return fit.roundness * fit.step * fit.sharpness * _darkness(gray, fit.circle)


def _darkness(gray: np.ndarray, c: Circle) -> float:
    """How much darker the disc is than the ring around it (grey levels, 0 if brighter)."""
    inner = np.zeros(gray.shape, np.uint8)
    cv2.circle(inner, (round(c.x_px), round(c.y_px)), max(1, round(0.8 * c.r_px)), 255, -1)
    ring = np.zeros(gray.shape, np.uint8)
    cv2.circle(ring, (round(c.x_px), round(c.y_px)), round(1.5 * c.r_px), 255, -1)
    cv2.circle(ring, (round(c.x_px), round(c.y_px)), round(1.15 * c.r_px), 0, -1)
    return max(0.0, cv2.mean(gray, ring)[0] - cv2.mean(gray, inner)[0])


def _disc_kernel(r: float) -> np.ndarray:
    n = int(np.ceil(r))
    yy, xx = np.mgrid[-n : n + 1, -n : n + 1]
    k = np.clip(r + 0.5 - np.hypot(xx, yy), 0, 1).astype(np.float32)
    return k / k.sum()


def _pad_to(k: np.ndarray, r: float) -> np.ndarray:
    n = int(np.ceil(r))
    p = n - k.shape[0] // 2
    return np.pad(k, p)


class MarginFit(NamedTuple):
    """A circle fitted to a dark-inside margin, with the evidence that it is one."""

    circle: Circle
    inliers: float  # share of rays kept by the robust fit (its tolerance adapts to the scatter)
    step: float  # median gradient across the margin, grey levels/px
    sharpness: float  # 1/edge width
    roundness: float  # share of rays whose margin lies within ROUND_TOL_PX of the circle


ROUND_TOL_PX = 1.0  # a real margin is a circle to within about a pixel, at any magnification


class PupilRefiner:
    """Sub-pixel pupil circle from its margin along rays, robust to lipid texture."""

    def __init__(self, innermost: bool = True) -> None:
        """Rays cast from a circle's centre; ``innermost`` for a pupil's margin.

        A pupil's margin is the first strong step out from the centre (dark lashes lie
        beyond it); the iris's is the strongest (its own fibres make strong steps inside it).
        """
        self._innermost = innermost
        ang = np.linspace(0, 2 * np.pi, N_RAYS, endpoint=False)
        self._cos, self._sin = np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)

    def refine(self, gray: np.ndarray, guess: Circle) -> MarginFit | None:
        """Circle fitted to the margin near ``guess`` (or None), with evidence for it.

        Returns the circle and the evidence that it is a margin (``MarginFit``).
        """
        r0 = guess.r_px
        radii = np.linspace(0.6 * r0, 1.45 * r0, max(24, int(0.85 * r0))).astype(np.float32)
        xs = (guess.x_px + np.outer(self._cos, radii)).astype(np.float32)
        ys = (guess.y_px + np.outer(self._sin, radii)).astype(np.float32)
        prof = cv2.remap(
            gray, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        ).astype(np.float32)
        inside = (xs >= 0) & (ys >= 0) & (xs <= gray.shape[1] - 1) & (ys <= gray.shape[0] - 1)
        prof = cv2.GaussianBlur(prof, (5, 1), 0)
        grad = np.diff(prof, axis=1)  # dark pupil -> brighter iris: positive step
        grad[~(inside[:, 1:] & inside[:, :-1])] = -np.inf
        k = _innermost_strong_step(grad) if self._innermost else np.argmax(grad, axis=1)
        strength = grad[np.arange(N_RAYS), k]
        ok = np.isfinite(strength) & (strength > 0) & (k > 0) & (k < grad.shape[1] - 1)
        if ok.sum() < N_RAYS // 4:
            return None
        # parabolic sub-sample peak
        idx = np.arange(N_RAYS)[ok]
        kk = k[ok]
        g0, g1, g2 = grad[idx, kk - 1], grad[idx, kk], grad[idx, kk + 1]
        denom = g0 - 2 * g1 + g2
        with np.errstate(invalid="ignore", divide="ignore"):  # neighbours off the frame are -inf
            frac = 0.5 * (g0 - g2) / denom
        frac = np.where(np.isfinite(frac) & (np.abs(denom) > 1e-6), frac, 0.0).clip(-0.5, 0.5)
        step = radii[1] - radii[0]
        rr = radii[0] + (kk + 0.5 + frac) * step
        px = guess.x_px + self._cos[idx] * rr
        py = guess.y_px + self._sin[idx] * rr
        w = strength[ok]
        fit = _robust_ellipse(px, py, w)
        if fit is None or not (0.5 * r0 < fit.circle.r_px < 1.6 * r0):
            return None
        circle, inliers = fit.circle, fit.inliers
        # sharpness: peak gradient over the whole rise across the margin (1/edge width). The
        # pupil margin is a crisp step; dark patches of the smooth lipid pattern are not
        n = prof.shape[1]
        rise = (
            prof[idx, np.minimum(kk + 1 + EDGE_SPAN, n - 1)]
            - prof[idx, np.maximum(kk - EDGE_SPAN, 0)]
        )
        sharpness = float(np.median(w / np.maximum(rise, 1e-3)))
        roundness = float(np.count_nonzero(fit.distance(px, py) < ROUND_TOL_PX)) / N_RAYS
        return MarginFit(circle, inliers / N_RAYS, float(np.median(w)) / step, sharpness, roundness)


def _innermost_strong_step(grad: np.ndarray) -> np.ndarray:
    """Along each ray (row), the peak of the first run of steps at least half its strongest.

    Going out from the pupil the margin is the first strong dark-to-bright step; a dark
    eyelash just beyond it, against the bright iris, makes a stronger one (saccades seed
    9901: the fit took a circle 4% larger through a lash for 11 frames).
    """
    strong = grad >= MARGIN_SHARE * np.max(grad, axis=1, keepdims=True)
    first = np.argmax(strong, axis=1)
    cols = np.arange(grad.shape[1])
    after = cols[None, :] >= first[:, None]
    weak_after = ~strong & after  # the run ends at the first weaker step after it begins
    ends = np.where(weak_after.any(axis=1), np.argmax(weak_after, axis=1), grad.shape[1])
    run = after & (cols[None, :] < ends[:, None])
    return np.argmax(np.where(run, grad, -np.inf), axis=1)


class _Ellipse(NamedTuple):
    """A margin fitted as the conic ``x^2 + y^2 + p(x^2 - y^2) + q*x*y + d*x + e*y + f = 0``.

    A pupil seen obliquely, or in a video resized to another aspect, is an ellipse; a circle
    fitted to it misses its margin by pixels and reads as a ragged edge.
    """

    coef: np.ndarray  # p, q, d, e, f
    circle: Circle  # centre and mean radius (sqrt of the semi-axes' product)
    inliers: int

    def distance(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Approximate distance (px) of points from the ellipse (Sampson's first order)."""
        p, q, d, e, f = self.coef
        value = x * x + y * y + p * (x * x - y * y) + q * x * y + d * x + e * y + f
        gx = 2 * x + 2 * p * x + q * y + d
        gy = 2 * y - 2 * p * y + q * x + e
        return np.abs(value) / np.maximum(np.hypot(gx, gy), 1e-9)


MAX_ASPECT = 1.45  # a pupil's ellipse is at most this much longer than wide


def _robust_ellipse(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> _Ellipse | None:
    """Weighted algebraic ellipse fit with iterative outlier rejection (None if degenerate)."""
    keep = np.ones(len(x), bool)
    fit: _Ellipse | None = None
    ox, oy = float(np.mean(x)), float(np.mean(y))  # fit about the points' mean, for conditioning
    u, v = x - ox, y - oy
    for _ in range(4):
        if keep.sum() < 8:
            return None
        us, vs, ws = u[keep], v[keep], np.sqrt(w[keep])
        a = np.column_stack([us * us - vs * vs, us * vs, us, vs, np.ones_like(us)]) * ws[:, None]
        b = -(us * us + vs * vs) * ws
        try:
            coef, *_ = np.linalg.lstsq(a, b, rcond=None)
        except np.linalg.LinAlgError:  # degenerate edge points (e.g. all on one line)
            return None
        fit = _ellipse_of(coef, ox, oy, int(keep.sum()))
        if fit is None:
            return None
        res = fit.distance(x, y)
        tol = max(1.0, 2.5 * 1.4826 * float(np.median(res[keep])))
        new_keep = res < tol
        if np.array_equal(new_keep, keep):
            break
        keep = new_keep
    return None if fit is None else fit._replace(inliers=int(keep.sum()))


def _ellipse_of(coef: np.ndarray, ox: float, oy: float, inliers: int) -> _Ellipse | None:
    """The ellipse of conic coefficients fitted about (ox, oy), in image coordinates."""
    p, q, d, e, f = coef
    m = np.array([[1 + p, q / 2], [q / 2, 1 - p]])  # quadratic form: an ellipse if definite
    eig = np.linalg.eigvalsh(m)
    if eig[0] <= 0:
        return None
    cu, cv = np.linalg.solve(2 * m, [-d, -e])
    k = -(f + 0.5 * (d * cu + e * cv))  # value of the form at the margin, from the centre
    if k <= 0:
        return None
    semi = np.sqrt(k / eig)  # semi-axes, longest first
    if semi[0] / semi[1] > MAX_ASPECT:
        return None
    # the same conic in image coordinates: shift by (ox, oy)
    d2 = d - 2 * (1 + p) * ox - q * oy
    e2 = e - 2 * (1 - p) * oy - q * ox
    f2 = f + (1 + p) * ox * ox + (1 - p) * oy * oy + q * ox * oy - d * ox - e * oy
    circle = Circle(float(cu + ox), float(cv + oy), float(np.sqrt(semi[0] * semi[1])))
    return _Ellipse(np.array([p, q, d2, e2, f2]), circle, inliers)


def find_lower_lid(gray: np.ndarray, pupil: Circle) -> LidCurve | None:
    """Lower lid margin: the strongest bright-to-dark edge below the pupil, as a parabola."""
    h, w = gray.shape
    y0 = int(min(h - 4, pupil.y_px + 1.3 * pupil.r_px))
    if y0 >= h - 8:
        return None
    cols = np.linspace(0.1 * w, 0.9 * w, 24).astype(int)
    band = cv2.GaussianBlur(gray[y0:, :], (5, 5), 0).astype(np.float32)
    grad = band[2:, cols] - band[:-2, cols]  # going down: cornea (bright) -> lid margin (dark)
    k = np.argmin(grad, axis=0)
    strength = -grad[k, np.arange(len(cols))]
    ok = strength > 8
    if ok.sum() < 6:
        return None
    x = cols[ok].astype(np.float64)
    y = y0 + 1 + k[ok].astype(np.float64)
    keep = np.ones(len(x), bool)
    coef = np.zeros(3)
    for _ in range(3):
        coef = np.polyfit(x[keep], y[keep], 2)
        res = np.abs(np.polyval(coef, x) - y)
        keep = res < max(3.0, 2.5 * float(np.median(res)))
        if keep.sum() < 6:
            return None
    return LidCurve(float(coef[0]), float(coef[1]), float(coef[2]))
