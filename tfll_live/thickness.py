"""Lipid layer thickness in nm from the interference colours of the tracked region.

The camera sees, per pixel, ``x = g * L(d) + b``: the film's reflectance ``L(d)`` (``thinfilm``:
air / lipid 1.48 / aqueous 1.337, weighted by the camera's colour response) scaled by an
unknown gain ``g`` (illumination, exposure), on top of the eye's diffuse light ``b`` (iris,
sclera), which is unknown too. Raw intensity therefore says little; what identifies the
thickness is the *shape* of the colour cloud: the region holds a range of thicknesses, so its
pixels trace an arc of the colour curve ``g*L(d)+b``, and only one gain, background and stretch
of the curve fit that arc.

The estimator fits one gain and one background colour per background group (for example
pixels over the iris and over the sclera), assigning each pixel the thickness of the nearest
point of the curve. Distances are Mahalanobis, with the eye's texture allowed to vary mostly
in brightness (diffuse tissue is nearly neutral next to interference colours). The fit
alternates assignment and linear least squares, started from a global multi-start search.

The colour-thickness curve is ambiguous (thin and thick films can share a brightness; colours
repeat), and the eye's texture can pose as film colour. The ambiguity is resolved

- in time: the gain and the backgrounds belong to the camera, the light and the eye, not to
  the film, so they are fitted over a reservoir of pixels from many frames (several blinks'
  layers: a longer arc of the curve than any one frame shows) and carried from frame to frame;
  each frame only assigns its pixels to the curve;
- in space: the whole region's arc is fitted at once, and among fits that explain the pixels
  about equally well the one whose thicknesses cluster wins (a layer's thickness varies
  smoothly, ``LAYER_SPREAD_NM``), which rules out a wrong gain that spreads the pixels over the
  whole curve to explain the eye's texture.

Mono cameras carry no colour and get no estimate (``ThicknessUnavailable``). A real camera's
channel gains and black level are corrected by a ``Calibration`` (from a reference of known
thickness or a colour chart), stored as a small JSON file; a reference under the same light
and exposure also fixes the gain, which thin layers alone determine poorly.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .thinfilm import CameraResponse

CALIBRATION_SCHEMA = "tfll-calibration/1"
# Eye texture varies this much more in brightness than in hue (ratio of standard deviations).
LUMA_TO_CHROMA = 2.5
# Least squares ignore pixels this many times farther (squared) from the curve than the median
# pixel: ~3 sigma for a 3-D Gaussian (chi-square 3 dof: median 2.37, 99.7% 14.2), so only
# outliers (glints, lid edges) go, and the arc's ends, which fix the gain, stay.
OUTLIER_RATIO = 6.0
MIN_PIXELS = 50
RESERVOIR_PIXELS = 300  # kept from every refit_every-th frame
FIT_PIXELS = 3000  # at most this many reservoir pixels per refit
LAYER_SPREAD_NM = 60.0  # typical interquartile range of thickness over a region (the prior)
SEARCH_FINALISTS = 4  # starts of the global search refined on all the pixels
COARSE = 4  # curve points (nm) between candidates of the first, coarse nearest-point pass
# references closer in thickness than this give no black level (their colours nearly coincide)
GAIN_RANGE = (1e-3, 1e3)
"""Relative channel gains a camera can have (``fit`` makes their mean 1); outside: a typo."""
MAX_BLACK_LEVEL = 65535
"""Largest black level (and negative fitted offset) in counts: the 16-bit range."""
MAX_FILM_GAIN = 1e7
"""Largest film gain: 16-bit counts over a dim film's model colour, with a wide margin."""
MIN_CHART_SPAN_NM = 5.0


class ThicknessUnavailable(ValueError):
    """The frames cannot give a thickness (for example a mono camera); ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def unavailable_reason(pixels: np.ndarray) -> str | None:
    """Why these pixels ``(N, 3)`` or frame ``(Y, X, 3)`` cannot give a thickness (None: can)."""
    a = np.asarray(pixels)
    if a.ndim < 2 or a.shape[-1] == 1 or (a.ndim == 2 and a.shape[-1] != 3):
        return "mono camera: lipid thickness needs colour (RGB) frames"
    if a.shape[-1] != 3:
        return f"thickness needs RGB pixels (..., 3), got shape {a.shape}"
    return None


@dataclass(frozen=True)
class Calibration:
    """A colour camera's per-channel response: ``raw = gain * linear + offset``.

    ``linear`` is what the thin-film model predicts up to one overall scale, so only the
    ratios of the gains matter (they are normalised to mean 1). ``offset`` is the black level.
    ``film_gain``, when known, is that overall scale: calibrated counts per unit of the film's
    reflectance (``thinfilm.reflectance``), measured on a reference of known thickness under
    the same light and exposure. It fixes the scale of the colour curve, which thin layers
    (< ~50 nm, a short and nearly straight arc of it) cannot fix themselves.
    """

    gain: tuple[float, float, float] = (1.0, 1.0, 1.0)
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    source: str = ""
    film_gain: float | None = None

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """Raw camera RGB to the model's linear RGB (same shape, float64)."""
        return (np.asarray(pixels, np.float64) - np.asarray(self.offset)) / np.asarray(self.gain)

    @classmethod
    def fit(
        cls,
        rgb: np.ndarray,
        thickness_nm: np.ndarray,
        response: CameraResponse | None = None,
        black_level: tuple[float, float, float] | None = None,
        source: str = "",
    ) -> Calibration:
        """Fit from mean colours of reference films of known thickness (a colour chart).

        One reference fixes the channel gains (the black level is then ``black_level``, default
        0); two or more references of different thickness also fit the black level, unless it
        is given.
        """
        rgb = np.atleast_2d(np.asarray(rgb, np.float64))
        d = np.atleast_1d(np.asarray(thickness_nm, np.float64))
        if rgb.shape != (len(d), 3):
            raise ValueError(f"need one RGB colour per thickness, got {rgb.shape} for {len(d)}")
        model = (response or CameraResponse.gaussian()).rgb(d)  # (K, 3)
        if black_level is not None or len(d) == 1 or np.ptp(d) < MIN_CHART_SPAN_NM:
            off = np.zeros(3) if black_level is None else np.asarray(black_level, np.float64)
            gain = ((rgb - off) * model).sum(0) / (model * model).sum(0)
        else:
            gain, off = np.empty(3), np.empty(3)
            for c in range(3):
                design = np.column_stack([model[:, c], np.ones(len(d))])
                (gain[c], off[c]), *_ = np.linalg.lstsq(design, rgb[:, c], rcond=None)
        if not np.all(gain > 0):
            raise ValueError("calibration failed: a channel has no positive response")
        film_gain = float(gain.mean())
        gain = gain / film_gain
        return cls(
            tuple(map(float, gain)),
            tuple(map(float, off)),
            source,  # type: ignore[arg-type]
            film_gain,
        )

    @classmethod
    def from_reference(
        cls,
        pixels: np.ndarray,
        thickness_nm: float,
        response: CameraResponse | None = None,
        black_level: tuple[float, float, float] | None = None,
        source: str = "",
    ) -> Calibration:
        """Fit from an image region of one known film thickness on a dark background."""
        reason = unavailable_reason(pixels)
        if reason:
            raise ThicknessUnavailable(reason)
        colour = np.median(np.asarray(pixels, np.float64).reshape(-1, 3), axis=0)
        return cls.fit(colour[None], np.array([thickness_nm]), response, black_level, source)

    def predict(
        self, thickness_nm: np.ndarray, response: CameraResponse | None = None
    ) -> np.ndarray:
        """Raw camera colour ``(K, 3)`` of films on black (needs ``film_gain``).

        The inverse view of ``fit``: a chart's residual against it shows a reference whose
        thickness was mistyped or given out of order.
        """
        if self.film_gain is None:
            raise ValueError("calibration has no film gain: it cannot predict raw colours")
        model = (response or CameraResponse.gaussian()).rgb(np.atleast_1d(thickness_nm))
        return self.film_gain * np.asarray(self.gain) * model + np.asarray(self.offset)

    def to_json(self) -> dict[str, object]:
        """The calibration file's content."""
        return {
            "schema": CALIBRATION_SCHEMA,
            "gain": list(self.gain),
            "offset": list(self.offset),
            "film_gain": self.film_gain,
            "source": self.source,
        }

    @classmethod
    def from_json(cls, d: dict[str, object]) -> Calibration:
        """Inverse of ``to_json``; refuses other schemas with a one-line reason.

        Values are checked to be finite: a NaN gain would pass ``> 0`` tests and silently
        turn every later thickness into noise.
        """
        if not isinstance(d, dict):
            raise ValueError(f"not a {CALIBRATION_SCHEMA} file (a JSON {type(d).__name__})")
        if d.get("schema") != CALIBRATION_SCHEMA:
            raise ValueError(f"not a {CALIBRATION_SCHEMA} file (schema {d.get('schema')!r})")
        for key in ("gain", "offset"):
            if key not in d:
                raise ValueError(f"calibration has no {key!r}")
        gain = tuple(float(v) for v in d["gain"])  # type: ignore[attr-defined]
        offset = tuple(float(v) for v in d["offset"])  # type: ignore[attr-defined]
        if len(gain) != 3 or len(offset) != 3 or not all(np.isfinite(gain + offset)):
            raise ValueError("calibration needs three finite gains and three finite offsets")
        if min(gain) <= 0:
            raise ValueError("calibration needs three positive gains and three offsets")
        lo, hi = GAIN_RANGE
        if not all(lo <= g <= hi for g in gain):
            raise ValueError(
                f"calibration gains {list(gain)} are not a camera's: each must be between "
                f"{lo:g} and {hi:g} (relative channel gains)"
            )
        if not all(abs(o) <= MAX_BLACK_LEVEL for o in offset):
            raise ValueError(
                f"calibration offsets {list(offset)} are not a camera's black level: each must "
                f"be within ±{MAX_BLACK_LEVEL} counts (the 16-bit range)"
            )
        film = d.get("film_gain")
        if film is not None and not 0 < float(film) < np.inf:  # type: ignore[arg-type]
            raise ValueError(f"film_gain must be a positive number, got {film}")
        if film is not None and float(film) > MAX_FILM_GAIN:  # type: ignore[arg-type]
            raise ValueError(
                f"film_gain {film} is not a camera's: at most {MAX_FILM_GAIN:g} counts per "
                "unit of the model's colour (a 16-bit camera on a dim film)"
            )
        return cls(
            gain,
            offset,
            str(d.get("source", "")),  # type: ignore[arg-type]
            None if film is None else float(film),
        )  # type: ignore[arg-type]

    def save(self, path: str | Path) -> Path:
        """Write the calibration as JSON, whole or not at all (a cut-short write keeps the old)."""
        from .io import write_text_replacing

        return write_text_replacing(path, json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        """Read a calibration file (one-line errors for missing or malformed files)."""
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise ValueError(f"{path}: no such calibration file") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: not a JSON calibration file ({e})") from None
        try:
            return cls.from_json(d)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: {e}") from None


def checked_calibration(path: str | Path | None) -> str | None:
    """A calibration file as an absolute path, read once so a bad file fails before any work.

    The tracker reads the file again when it starts; checking first lets ``tfll analyze``,
    ``tfll live`` and the live dock refuse a missing or malformed file before opening a stream
    or a camera, and the absolute path in results.json names the file whatever the working
    directory was.
    """
    if path is None or not str(path).strip():
        return None
    resolved = Path(path).expanduser().resolve()
    Calibration.load(resolved)  # ValueError, one line, naming the file
    return str(resolved)


@dataclass(frozen=True, slots=True)
class ThicknessFit:
    """One frame's estimate: the region's median thickness and how the fit came out."""

    thickness_nm: float
    iqr_nm: float  # spread of the per-pixel thicknesses (75th - 25th percentile)
    gain: float  # scale of the film's colour curve (camera and light), fitted over many frames
    n_pixels: int


class ThicknessEstimator:
    """Median lipid thickness of the tracked region, frame by frame (see module docstring).

    ``push(pixels, groups)`` takes the region's colours ``(N, 3)`` (any numeric type; the
    same eye-anchored region from frame to frame) and, optionally, an integer background group
    per pixel (e.g. 0 over the iris, 1 over the sclera); pixels of one group share one diffuse
    background colour. It returns the median thickness in nm, or None when the region is too
    small or featureless. Details of the last estimate are in ``last``.

    The gain and backgrounds belong to the camera, the light and the eye, not to the film, so
    they are fitted over a reservoir of pixels from many frames (several blinks' worth of
    different layers: a longer, better-conditioned arc of the colour curve), refitted every
    ``refit_every`` frames and searched globally on a doubling schedule (pushes 0, 10, 20,
    40, ...); each frame then only assigns its pixels to the curve (~1-2 ms for 1500 pixels;
    a global search takes ~50 ms).
    """

    def __init__(
        self,
        response: CameraResponse | None = None,
        calibration: Calibration | None = None,
        max_nm: int = 260,
        max_pixels: int = 1500,
        refit_every: int = 10,
        reservoir_frames: int = 60,
        seed: int = 0,
    ) -> None:
        self.response = response or CameraResponse.gaussian()
        self.calibration = calibration
        self.max_pixels = max_pixels
        self.refit_every = refit_every
        self._reservoir_frames = reservoir_frames
        self._d = np.arange(0.0, max_nm + 1.0)
        curve = self.response.rgb(self._d)
        self._curve = curve / curve.max()
        film_gain = None if calibration is None else calibration.film_gain
        self._fixed_gain = None if film_gain is None else film_gain * float(curve.max())
        grey = np.ones(3) / np.sqrt(3.0)
        inv_cov = np.outer(grey, grey) / LUMA_TO_CHROMA**2 + (np.eye(3) - np.outer(grey, grey))
        self._inv_cov = inv_cov
        self._whiten = np.linalg.cholesky(inv_cov)  # inv_cov = W @ W.T
        self._curve_w = self._curve @ self._whiten
        self._seed = seed
        self.reset()

    def reset(self) -> None:
        """Forget the session (new eye, new camera settings)."""
        self._rng = np.random.default_rng(self._seed)
        self._gain: float | None = None
        self._offsets: dict[int, np.ndarray] = {}
        self._reservoir: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=self._reservoir_frames)
        self._pushes = 0
        self._next_search = 0
        self.last: ThicknessFit | None = None

    # -- public -------------------------------------------------------------------------------
    def push(self, rgb_pixels: np.ndarray, groups: np.ndarray | None = None) -> float | None:
        """Median thickness (nm) of one frame's region, or None if it cannot be estimated."""
        reason = unavailable_reason(rgb_pixels)
        if reason:
            raise ThicknessUnavailable(reason)
        x = np.asarray(rgb_pixels).reshape(-1, 3)
        grp = np.zeros(len(x), np.int64) if groups is None else np.asarray(groups).reshape(-1)
        if len(grp) != len(x):
            raise ValueError(f"groups has {len(grp)} labels for {len(x)} pixels")
        ok = np.isfinite(x).all(axis=1)
        x, grp = x[ok], grp[ok].astype(np.int64)
        if len(x) > self.max_pixels:
            pick = self._rng.choice(len(x), self.max_pixels, replace=False)
            x, grp = x[pick], grp[pick]
        x = x.astype(np.float64) if self.calibration is None else self.calibration.apply(x)
        self.last = None
        if len(x) < MIN_PIXELS or np.ptp(x, axis=0).max() <= 0:
            return None
        if self._pushes % self.refit_every == 0:
            keep = self._rng.choice(len(x), min(len(x), RESERVOIR_PIXELS), replace=False)
            self._reservoir.append((x[keep], grp[keep]))
            self._refit(x, grp)
        self._pushes += 1
        if self._gain is None:
            return None
        labels, inverse = np.unique(grp, return_inverse=True)
        for j, lab in enumerate(labels):  # a group first seen now: its background from here
            if int(lab) not in self._offsets:
                self._offsets[int(lab)] = _fit_offset(x[inverse == j], self._gain, self)
        offsets = np.array([self._offsets[int(lab)] for lab in labels])
        k, _ = _assign(x, inverse, self._gain, offsets, self)
        q25, med, q75 = np.percentile(self._d[k], [25, 50, 75])
        self.last = ThicknessFit(float(med), float(q75 - q25), self._gain, len(x))
        return float(med)

    # -- internals ----------------------------------------------------------------------------
    def _refit(self, frame_x: np.ndarray, frame_grp: np.ndarray) -> None:
        """Refit gain and backgrounds on the reservoir (warm, and globally when due).

        Until the reservoir holds more pixels than this frame, this frame's pixels are used.
        """
        x = np.concatenate([r[0] for r in self._reservoir])
        raw = np.concatenate([r[1] for r in self._reservoir])
        if len(x) < len(frame_x):
            x, raw = frame_x, frame_grp
        elif len(x) > FIT_PIXELS:
            pick = self._rng.choice(len(x), FIT_PIXELS, replace=False)
            x, raw = x[pick], raw[pick]
        labels, grp = np.unique(raw, return_inverse=True)
        candidates = []
        if self._gain is not None:
            o0 = np.array(
                [
                    self._offsets[int(lab)]
                    if int(lab) in self._offsets
                    else _fit_offset(x[grp == j], self._gain, self)
                    for j, lab in enumerate(labels)
                ]
            )
            candidates.append(_alternate(x, grp, self._gain, o0, self, 4, self._fixed_gain is None))
        if self._pushes >= self._next_search:
            self._next_search = max(2 * self._pushes, self.refit_every)
            candidates.append(self._search(x, grp, len(labels)))
        good = [c for c in candidates if np.isfinite(self._score(c))]
        if not good:
            return
        gain, offsets, *_ = min(good, key=self._score)
        self._gain = gain
        self._offsets = {int(lab): offsets[j] for j, lab in enumerate(labels)}

    def _score(self, fit: tuple[float, np.ndarray, np.ndarray, float]) -> float:
        """How well a fit explains the pixels, with a prior that the layer is continuous.

        Misfit alone can prefer a wrong gain that spreads the pixels over the whole colour
        curve, using the film's colours to explain the eye's texture. A layer's thickness varies
        smoothly, so its pixels cluster: fits are penalised by their spread of thicknesses
        (interquartile range) relative to ``LAYER_SPREAD_NM``.
        """
        gain, _, k, misfit = fit
        if not gain > 0 or not np.isfinite(misfit) or not len(k):
            return np.inf
        q25, q75 = np.percentile(self._d[k], [25, 75])
        return misfit * (1.0 + ((q75 - q25) / LAYER_SPREAD_NM) ** 2)

    def _search(
        self, x: np.ndarray, grp: np.ndarray, n_groups: int
    ) -> tuple[float, np.ndarray, np.ndarray, float]:
        """Global multi-start fit: several starting thicknesses and gains, best kept."""
        sub = self._rng.choice(len(x), min(len(x), 300), replace=False)
        xs, gs = x[sub], grp[sub]
        scale = float(x.mean())
        found: list[tuple[float, float, np.ndarray]] = []
        free = self._fixed_gain is None
        for d0 in range(10, len(self._d), 20):
            gains = (
                [frac * scale / self._curve[d0].mean() for frac in (0.2, 0.35, 0.5, 0.7)]
                if self._fixed_gain is None
                else [self._fixed_gain]
            )
            for g0 in gains:
                o0 = np.array(
                    [
                        xs[gs == j].mean(0) - g0 * self._curve[d0]
                        if np.any(gs == j)
                        else x[grp == j].mean(0) - g0 * self._curve[d0]
                        for j in range(n_groups)
                    ]
                )
                g, o, _, obj = _alternate(xs, gs, g0, o0, self, 6, free)
                if g > 0 and np.isfinite(obj):
                    found.append((obj, g, o))
        if not found:
            return -1.0, np.zeros((n_groups, 3)), np.zeros(0, np.int64), np.inf
        # the few best starts, refined on all the pixels: a subsample can rank near-ties wrongly
        found.sort(key=lambda f: f[0])
        finals = [_alternate(x, grp, g, o, self, 8, free) for _, g, o in found[:SEARCH_FINALISTS]]
        return min(finals, key=self._score)


def _fit_offset(x: np.ndarray, gain: float, est: ThicknessEstimator) -> np.ndarray:
    """Background colour of one group of pixels, with the gain known."""
    o = x.mean(0) - gain * est._curve.mean(0)
    _, o, *_ = _alternate(x, np.zeros(len(x), np.int64), gain, o[None], est, 4, False)
    return o[0]


def _assign(
    x: np.ndarray, grp: np.ndarray, gain: float, offsets: np.ndarray, est: ThicknessEstimator
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest curve point (whitened distance) of every pixel: index and squared distance.

    Coarse to fine: every ``COARSE``-th point of the curve first, then the neighbours of the
    best one. Plain broadcasting, not a matrix product: with three channels BLAS only adds
    threading overhead.
    """
    xw = ((x - offsets[grp]) @ est._whiten).astype(np.float32)
    cw = (gain * est._curve_w).astype(np.float32)
    coarse = cw[::COARSE]
    e = np.zeros((len(x), len(coarse)), np.float32)
    for c in range(3):
        e += np.square(xw[:, c : c + 1] - coarse[None, :, c])
    k0 = e.argmin(axis=1) * COARSE
    near = np.clip(k0[:, None] + np.arange(-COARSE, COARSE + 1)[None, :], 0, len(cw) - 1)
    e = np.zeros(near.shape, np.float32)
    for c in range(3):
        e += np.square(xw[:, c : c + 1] - cw[near, c])
    j = e.argmin(axis=1)
    rows = np.arange(len(x))
    return near[rows, j], e[rows, j].astype(np.float64)


def _group_sums(v: np.ndarray, grp: np.ndarray, n_groups: int) -> np.ndarray:
    """Per-group column sums of ``v`` (n, 3)."""
    return np.stack([np.bincount(grp, v[:, c], minlength=n_groups) for c in range(3)], axis=1)


def _alternate(
    x: np.ndarray,
    grp: np.ndarray,
    gain: float,
    offsets: np.ndarray,
    est: ThicknessEstimator,
    iters: int,
    free_gain: bool,
) -> tuple[float, np.ndarray, np.ndarray, float]:
    """Alternate nearest-point assignment and least squares for gain and group offsets.

    Returns gain, offsets, curve indices and the mean squared distance (outliers capped).
    """
    offsets = offsets.copy()
    n_groups = len(offsets)
    for _ in range(iters):
        k, e = _assign(x, grp, gain, offsets, est)
        keep = e <= OUTLIER_RATIO * np.median(e)
        lk, xk, gk = est._curve[k[keep]], x[keep], grp[keep]
        counts = np.bincount(gk, minlength=n_groups)[:, None]
        present = counts[:, 0] > 0
        l_mean = _group_sums(lk, gk, n_groups)
        x_mean = _group_sums(xk, gk, n_groups)
        l_mean[present] /= counts[present]
        x_mean[present] /= counts[present]
        dl, dx = lk - l_mean[gk], xk - x_mean[gk]
        dl_c = dl @ est._inv_cov
        info = float((dl_c * dl).sum())  # how long an arc the pixels span (whitened)
        if free_gain:
            if info <= 1e-12:
                break
            gain = float((dl_c * dx).sum()) / info
            if gain <= 0:
                return gain, offsets, k, np.inf
        offsets[present] = x_mean[present] - gain * l_mean[present]
    k, e = _assign(x, grp, gain, offsets, est)
    obj = float(np.mean(np.minimum(e, OUTLIER_RATIO * np.median(e))))
    return gain, offsets, k, obj


def thickness_summary(
    values_nm: np.ndarray | Sequence[float | None],
) -> dict[str, float | int] | None:
    """Median and spread of an interval's per-frame thicknesses (None if there are none)."""
    v = np.array([np.nan if x is None else x for x in values_nm], np.float64)
    v = v[np.isfinite(v)]
    if not len(v):
        return None
    q25, med, q75 = np.percentile(v, [25, 50, 75])
    return {"median_nm": float(med), "iqr_nm": float(q75 - q25), "n_frames": len(v)}
