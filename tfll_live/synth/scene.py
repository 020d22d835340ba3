"""The still parts of a synthetic scene: the eye, the lids and lashes, and each lipid layer.

Each is drawn once on a canvas larger than the frame (by ``margin`` on every side, and below by
the layer's whole travel for the film), in the isotropic scene's pixels; a frame is a few
translations of these canvases. Sizes scale with the frame height: the same eye seen by
another camera.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from .config import SynthConfig

LASH_SHADE = 0.7  # how much of the light a lash blocks


@dataclass(frozen=True)
class Geometry:
    """Where the eye lies at rest, in the isotropic scene's pixels (before any pixel aspect)."""

    height: int
    width: int  # isotropic width: the delivered width divided by the pixel aspect
    margin: int
    pupil_x: float
    pupil_y: float
    pupil_r: float
    iris_r: float
    lid_y: float  # lower lid margin below the pupil
    lid_curve: float  # rise of the lid towards the sides, px per (px / width)^2

    @classmethod
    def of(cls, cfg: SynthConfig) -> Geometry:
        """The geometry of ``cfg``'s eye."""
        h, w = cfg.height, max(64, round(cfg.width / cfg.pixel_aspect))
        eye = cfg.eye
        return cls(
            height=h,
            width=w,
            margin=int(0.25 * max(h, w)),
            pupil_x=eye.pupil_xy[0] * w,
            pupil_y=eye.pupil_xy[1] * h,
            pupil_r=eye.pupil_r * h,
            iris_r=eye.iris_r * h,
            lid_y=eye.lid_y * h,
            lid_curve=eye.lid_curve * h,
        )

    @property
    def px(self) -> float:
        """Scene pixels per pixel of a 480-row frame: texture scales with the frame."""
        return self.height / 480

    def lower_lid_y(self, x: np.ndarray) -> np.ndarray:
        """Lower lid margin at rest: a gentle upward-opening curve near the bottom."""
        return self.lid_y + self.lid_curve * ((x - self.pupil_x) / self.width) ** 2

    def tracked_region(self) -> tuple[int, int]:
        """Rows (y0, y1) at rest of the cornea between the pupil and the lower lid."""
        return (
            int(self.pupil_y + self.pupil_r * 1.2),
            int(self.lower_lid_y(np.array([self.pupil_x]))[0] - 6),
        )

    def canvas_grid(self, extra_rows: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Scene coordinates (x, y) of every canvas pixel."""
        m = self.margin
        y, x = np.mgrid[-m : self.height + m + extra_rows, -m : self.width + m].astype(np.float32)
        return x, y


def make_eye(cfg: SynthConfig, geo: Geometry, rng: np.random.Generator) -> np.ndarray:
    """Diffuse reflectance of the eye (sclera, iris, pupil, glints): canvas float32 (H, W, 3)."""
    look = cfg.eye
    x, y = geo.canvas_grid()
    r = np.hypot(x - geo.pupil_x, y - geo.pupil_y)
    theta = np.arctan2(y - geo.pupil_y, x - geo.pupil_x)
    # radial iris fibres plus crypts: texture fixed to the eye, which the film lies over
    rr = r / geo.px
    fibres = 0.25 * np.sin(theta * 47 + 3 * np.sin(rr / 9.0)) + 0.25 * np.sin(theta * 19 + rr / 6.0)
    crypts = cv2.GaussianBlur(rng.normal(0, 1, x.shape).astype(np.float32), (0, 0), 2.5 * geo.px)
    crypts /= crypts.std() + 1e-6
    tex = look.iris_fibres * 0.2 * fibres + look.iris_crypts * 0.12 * crypts
    if look.texture_blur > 0:
        tex = cv2.GaussianBlur(tex.astype(np.float32), (0, 0), look.texture_blur * geo.px)
    tex = np.clip(0.85 + tex, 0.3, 1.3)[..., None]
    w_iris = np.clip((geo.iris_r - r) / 3.0, 0, 1)[..., None]
    w_pupil = np.clip((geo.pupil_r - r) / 1.5, 0, 1)[..., None]
    sclera = np.array(look.sclera_rgb, np.float32)
    iris = np.array(look.iris_rgb, np.float32)
    eye = sclera * (1 - w_iris) + iris * tex * w_iris
    eye = eye * (1 - w_pupil) + np.float32(0.04) * w_pupil
    if look.glints:
        eye = eye + _glints(cfg, geo, x, y)[..., None]
    return eye.astype(np.float32)


def _glints(cfg: SynthConfig, geo: Geometry, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Corneal reflections of the lamp: small bright spots around the pupil."""
    rng = np.random.default_rng((cfg.seed, 21))
    out = np.zeros(x.shape, np.float32)
    for _ in range(cfg.eye.glints):
        ang, dist = rng.uniform(0, 2 * np.pi), rng.uniform(1.3, 2.6) * geo.pupil_r
        gx, gy = geo.pupil_x + dist * np.cos(ang), geo.pupil_y + dist * np.sin(ang)
        sigma = rng.uniform(0.006, 0.014) * geo.height
        out += rng.uniform(0.6, 1.2) * np.exp(-0.5 * ((x - gx) ** 2 + (y - gy) ** 2) / sigma**2)
    return out


def make_skin(cfg: SynthConfig, geo: Geometry, rng: np.random.Generator) -> np.ndarray:
    """Texture of the eyelids' skin (canvas sized)."""
    x, _ = geo.canvas_grid()
    t = cv2.GaussianBlur(rng.normal(0, 1, x.shape).astype(np.float32), (0, 0), 4.0 * geo.px)
    t /= t.std() + 1e-6
    base = np.array([0.72, 0.54, 0.46], np.float32)
    return (base * (0.9 + 0.08 * t[..., None])).astype(np.float32)


@dataclass(frozen=True)
class LowerLid:
    """The lower lid as layers laid over the eye: skin (premultiplied), cover, shade, glow."""

    skin: np.ndarray  # (H, W, 3): the lid's colour times its cover
    cover: np.ndarray  # (H, W): 1 where the lid hides the eye
    shade: np.ndarray  # (H, W): the dark lid margin, a factor on everything
    glow: np.ndarray  # (H, W): the bright tear meniscus, added light


def make_lower_lid(cfg: SynthConfig, geo: Geometry, skin: np.ndarray) -> LowerLid:
    """Skin below the lower lid margin, the dark margin line and the tear meniscus above it."""
    x, y = geo.canvas_grid()
    lid = geo.lower_lid_y(x)
    cover = np.clip((y - lid) / 2.0, 0, 1)
    shade = 1 - 0.6 * np.exp(-0.5 * ((y - lid) / 3.0) ** 2)
    menisc_w = 0.006 * geo.height
    glow = cfg.eye.meniscus * np.exp(-0.5 * ((y - lid + 2.5 * menisc_w) / menisc_w) ** 2)
    return LowerLid(
        skin=(cfg.eye.diffuse * skin * cover[..., None]).astype(np.float32),
        cover=cover.astype(np.float32),
        shade=shade.astype(np.float32),
        glow=glow.astype(np.float32),
    )


def upper_lid_edge(geo: Geometry, frac: float, x: np.ndarray, lid_bottom: np.ndarray) -> np.ndarray:
    """The upper lid's margin when it has come ``frac`` of the way down to the lower lid."""
    return frac * lid_bottom - 0.12 * geo.height * (1 - frac) * np.cos(
        np.pi * (x / geo.width - 0.5)
    )


def make_lashes(cfg: SynthConfig, geo: Geometry) -> np.ndarray:
    """Upper-lid lashes hanging from the open lid's margin: a canvas of how much they shade."""
    mask = np.zeros((geo.height + 2 * geo.margin, geo.width + 2 * geo.margin), np.float32)
    if not cfg.eye.lashes:
        return mask
    rng = np.random.default_rng((cfg.seed, 22))
    m = geo.margin
    for _ in range(cfg.eye.lashes):
        x0 = rng.uniform(0.1, 0.9) * geo.width
        root = float(upper_lid_edge(geo, 0.0, np.array([x0]), np.array([0.0]))[0])
        length = rng.uniform(0.12, 0.24) * geo.height
        bend = rng.uniform(-0.35, 0.35) * length
        s = np.linspace(0, 1, 40)
        xs = x0 + bend * s**2 + m
        ys = root + length * s + m
        pts = np.round(np.column_stack([xs, ys]) * 4).astype(np.int32)  # 2 fractional bits
        width = max(1, round(rng.uniform(1.5, 3.0) * geo.px))
        cv2.polylines(mask, [pts], False, 1.0, width, cv2.LINE_AA, shift=2)
    return cv2.GaussianBlur(mask, (0, 0), 0.8 * geo.px)


@dataclass(frozen=True)
class FilmLayer:
    """One lipid layer's thickness on a canvas, as parts mixed over time (nm, before clipping).

    ``thickness(t) = base + a*cos(t/evolve) + b*sin(t/evolve) + bands*exp(-t/fade)``: a
    pattern that changes within itself over ``evolve_s`` and thick bands near the lid that thin.
    """

    parts: np.ndarray  # (H, W, k): base, a, and where used b and bands

    def weights(self, cfg: SynthConfig, age_s: float) -> np.ndarray:
        """How much of each part is in the layer ``age_s`` after it was laid."""
        film = cfg.film
        w = [1.0, 1.0]
        if film.evolve_s > 0:
            phase = age_s / film.evolve_s
            w = [1.0, float(np.cos(phase)), float(np.sin(phase))]
        if film.bands_nm > 0:
            w.append(float(np.exp(-age_s / film.bands_fade_s)))
        return np.asarray(w, np.float32)


@lru_cache(maxsize=3)
def film_layer(cfg: SynthConfig, geo: Geometry, layer: int, extra_rows: int) -> FilmLayer:
    """A lipid layer: thicker near the lower lid, patchy at several scales, 20-200 nm.

    ``extra_rows`` below the canvas hold the reservoir the layer draws on as it rises.
    """
    h = geo.height + 2 * geo.margin + extra_rows
    w = geo.width + 2 * geo.margin
    lo, hi = cfg.film.thickness_nm
    mid, gain = 0.5 * (lo + hi), (hi - lo) / 5.0
    a = _patchy(np.random.default_rng((cfg.seed, layer, 7)), h, w, geo.px)
    # thicker towards the lid: -1 at the canvas top, +1 one margin below the frame
    gradient = (np.arange(h, dtype=np.float32)[:, None] - (geo.margin + 0.5 * geo.height)) / (
        0.5 * geo.height + geo.margin
    )
    field = a + 0.8 * gradient
    # the classic layer is this field standardised over the frame and its margins
    core = field[: geo.height + 2 * geo.margin]
    mu, sd = float(core.mean()), float(core.std()) + 1e-6
    parts = [mid + gain * (0.8 * gradient - mu) / sd * np.ones_like(a), gain * a / sd]
    if cfg.film.evolve_s > 0:
        b = _patchy(np.random.default_rng((cfg.seed, layer, 8)), h, w, geo.px)
        parts.append(gain * b / sd)
    if cfg.film.bands_nm > 0:
        x, y = geo.canvas_grid(extra_rows)
        lid = geo.lower_lid_y(x)
        band_h = 0.14 * geo.height
        ramp = np.clip((y - (lid - band_h)) / band_h, 0, 1)
        wobble = _patchy(np.random.default_rng((cfg.seed, layer, 9)), h, w, 2 * geo.px)
        parts.append(cfg.film.bands_nm * ramp * (1 + 0.25 * wobble))
    return FilmLayer(np.ascontiguousarray(np.stack(parts, axis=-1), np.float32))


def _patchy(rng: np.random.Generator, h: int, w: int, px: float) -> np.ndarray:
    """Unit-variance smooth noise at several scales (the layer's patchiness)."""
    field = np.zeros((h, w), np.float32)
    for sigma, weight in ((24.0, 1.0), (8.0, 0.7), (3.0, 0.45)):
        f = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), sigma * px)
        field += weight * f / (f.std() + 1e-6)
    return field / (field.std() + 1e-6)
