"""Synthetic micro-interferometer streams of the tear film, with ground truth.

An eye (sclera, textured iris, dark pupil, corneal reflections, lower lid with its tear
meniscus, lashes) is lit by a white source; the camera sees the eye's diffuse light plus the
specular reflection of the tear film, coloured by thin-film interference of a lipid layer
20-250 nm thick (``thinfilm``). After each blink the layer is laid down anew and spreads up the
eye as ``dy(t) = -A*(1 - exp(-t/tau))`` relative to the eye (with a slight sideways drift where
configured), its post-blink bands thinning and its pattern changing slowly within itself. The
head drifts; saccades turn the eye under the lids, smeared over the exposure where configured.
The camera adds exposure drift and steps, refocusing, read and shot noise, its bit depth, a
pixel aspect and JPEG compression. Upper-lid blinks are complete (down to the lower lid),
partial (the lid stops above the tracked region) or long closures.

Frames are rendered on demand (``render(i)``), deterministic in the seed, so a stream can be
played live by a camera, written to a file, or randomly accessed by tests. ``truth`` holds what
the tracker should find, in the delivered frame's pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

from tfll_live.thinfilm import CameraResponse, rgb_lut

from .config import SynthConfig
from .scene import (
    LASH_SHADE,
    FilmLayer,
    Geometry,
    film_layer,
    make_eye,
    make_lashes,
    make_lower_lid,
    make_skin,
    upper_lid_edge,
)
from .schedule import make_schedule
from .truth import GroundTruth

BLUR_STEP_PX = 0.75  # a saccade is smeared over sub-frame positions this far apart
MONO_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)


class SyntheticStream:
    """A synthetic interferometer stream; ``render(i)`` gives frame ``i``."""

    def __init__(self, config: SynthConfig | None = None) -> None:
        self.config = cfg = config or SynthConfig()
        self.geometry = geo = Geometry.of(cfg)
        rng = np.random.default_rng(cfg.seed)
        self._lut = rgb_lut(CameraResponse.gaussian())
        self._lut /= self._lut.max()
        self._eye = make_eye(cfg, geo, rng)
        self._skin = make_skin(cfg, geo, rng)
        self._lower_lid = make_lower_lid(cfg, geo, self._skin)
        self._lashes = make_lashes(cfg, geo)
        self._plan = plan = make_schedule(cfg, rng)
        self._film_rows = int(np.ceil(max(0.0, -float(plan.layer_dy.min())))) + 8
        self._noise = rng.normal(0.0, 1.0, (4, cfg.height, geo.width, 3 if cfg.rgb else 1)).astype(
            np.float32
        )
        self._top_nm = cfg.film.thickness_nm[1] if cfg.film.bands_nm <= 0 else 255.0
        self._eye_exposed = self._exposure_mean_eye()
        self.truth = self._make_truth()

    # geometry of the eye at rest, in the delivered frame's pixels
    @property
    def pupil_centre(self) -> tuple[float, float]:
        """Pupil centre (x, y) at rest."""
        return self.geometry.pupil_x * self._aspect, self.geometry.pupil_y

    @property
    def pupil_radius(self) -> float:
        """Pupil radius at rest (vertical; a pixel aspect widens it sideways)."""
        return self.geometry.pupil_r

    @property
    def iris_radius(self) -> float:
        """Iris radius at rest (vertical)."""
        return self.geometry.iris_r

    def tracked_region(self) -> tuple[int, int]:
        """Rows (y0, y1) at rest of the cornea between the pupil and the lower lid."""
        return self.geometry.tracked_region()

    def region_pixels(self, i: int, margin_px: float = 12.0) -> tuple[np.ndarray, np.ndarray]:
        """Frame ``i``'s colours where a perfectly stabilised tracker samples the layer.

        The rest rows ``tracked_region()`` over the middle half of the columns, moved with the
        true eye motion, minus a ring of ``margin_px`` at the iris margin; with each pixel's
        background group (0 over the iris, 1 over the sclera). For judging thickness estimates
        apart from the tracker.
        """
        cfg, truth, geo = self.config, self.truth, self.geometry
        y0, y1 = self.tracked_region()
        yy, xx = np.mgrid[y0:y1, cfg.width // 4 : 3 * cfg.width // 4]
        cx, cy = self.pupil_centre
        r = np.hypot((xx - cx) / self._aspect, yy - cy)
        keep = np.abs(r - geo.iris_r) > margin_px
        iy = np.clip(np.round(yy + truth.eye_dy_px[i]).astype(int), 0, cfg.height - 1)
        ix = np.clip(np.round(xx + truth.eye_dx_px[i]).astype(int), 0, cfg.width - 1)
        return self.render(i)[iy, ix][keep], (r > geo.iris_r)[keep].astype(int)

    @property
    def _aspect(self) -> float:
        """Delivered pixels per scene pixel, sideways."""
        return self.config.width / self.geometry.width

    # -- truth --------------------------------------------------------------------------------
    def _exposure_mean_eye(self) -> np.ndarray:
        """The eye's position averaged over each frame's exposure (what a smeared frame shows)."""
        eye = self._plan.eye_xy
        if not self.config.motion_blur:
            return eye
        mean = np.stack(
            [
                np.array([self._sub_positions(i)[:, k].mean() for i in range(len(self))])
                for k in range(2)
            ]
        )
        return mean - mean[:, :1]  # motion from the first frame, as a tracker measures it

    def _sub_positions(self, i: int) -> np.ndarray:
        """Eye positions (k, 2) over frame ``i``'s exposure: one unless it is smeared."""
        eye = self._plan.eye_xy
        here = eye[:, i]
        if not self.config.motion_blur:
            return here[None, :]
        n = len(self)
        before = eye[:, max(i - 1, 0)]
        after = eye[:, min(i + 1, n - 1)]
        step = max(np.hypot(*(here - before)), np.hypot(*(after - here)))
        if step < BLUR_STEP_PX:
            return here[None, :]
        k = int(min(8, np.ceil(step / BLUR_STEP_PX)))
        ts = i + (np.arange(k) + 0.5) / k - 0.5  # the exposure spans half a frame either side
        frames = np.arange(n)
        return np.column_stack([np.interp(ts, frames, eye[0]), np.interp(ts, frames, eye[1])])

    def _make_truth(self) -> GroundTruth:
        cfg, geo, plan = self.config, self.geometry, self._plan
        y0, y1 = geo.tracked_region()
        m = geo.margin
        x0, x1 = m + geo.width // 4, m + 3 * geo.width // 4
        thickness = np.empty(cfg.n_frames)
        for i in range(cfg.n_frames):  # the part of the layer over the tracked region now
            off = round(-plan.layer_dy[i])
            layer = self._film(int(plan.layer[i]))
            region = layer.parts[y0 + m + off : y1 + m + off : 2, x0:x1:2]
            nm = region @ layer.weights(cfg, float(plan.layer_age_s[i]))
            thickness[i] = np.median(np.clip(nm, cfg.film.thickness_nm[0], self._top_nm))
        eye = self._eye_exposed
        return GroundTruth(
            fps=cfg.fps,
            time_s=plan.time_s.copy(),
            open=plan.open.copy(),
            eye_dx_px=eye[0] * self._aspect,
            eye_dy_px=eye[1].copy(),
            lipid_dy_px=plan.spread_dy.copy(),
            thickness_nm=thickness,
            blinks=list(plan.blinks),
            intervals=list(plan.intervals),
            lipid_dx_px=plan.spread_dx * self._aspect,
        )

    def _film(self, layer: int) -> FilmLayer:
        return film_layer(self.config, self.geometry, layer, self._film_rows)

    # -- rendering ----------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one frame."""
        cfg = self.config
        return (cfg.height, cfg.width, 3) if cfg.rgb else (cfg.height, cfg.width)

    @property
    def dtype(self) -> np.dtype:
        """Pixel type of the frames."""
        return np.dtype(np.uint8 if self.config.bit_depth == 8 else np.uint16)

    def __len__(self) -> int:
        return self.config.n_frames

    def render(self, i: int, out: np.ndarray | None = None) -> np.ndarray:
        """Frame ``i`` (modulo the stream length), optionally written into ``out``."""
        cfg, plan = self.config, self._plan
        i = int(i) % cfg.n_frames
        lids = plan.lids_xy[:, i]
        positions = self._sub_positions(i)
        eye = np.zeros((cfg.height, self.geometry.width, 3), np.float32)
        film = np.zeros_like(eye)
        for ex, ey in positions:  # several only while a saccade smears the eye
            eye += self._warp(self._eye, ex, ey)
            film += self._film_rgb(i, ex, ey)
        if len(positions) > 1:
            eye /= len(positions)
            film /= len(positions)
        img = self._compose(i, eye, film, lids)
        return self._camera(i, img, out)

    def _warp(self, canvas: np.ndarray, dx: float, dy: float, border: int = cv2.BORDER_REFLECT):
        """The frame-sized part of a canvas moved by (dx, dy)."""
        geo = self.geometry
        m = geo.margin
        mat = np.array([[1, 0, dx - m], [0, 1, dy - m]], np.float32)
        return cv2.warpAffine(
            canvas, mat, (geo.width, geo.height), flags=cv2.INTER_LINEAR, borderMode=border
        )

    def _film_rgb(self, i: int, ex: float, ey: float) -> np.ndarray:
        """The film's reflected colour over the frame, the layer moved with the eye."""
        cfg, plan = self.config, self._plan
        layer = self._film(int(plan.layer[i]))
        parts = self._warp(layer.parts, ex + plan.layer_dx[i], ey + plan.layer_dy[i])
        if parts.ndim == 2:
            parts = parts[..., None]
        nm = parts @ layer.weights(cfg, float(plan.layer_age_s[i]))
        return self._lut[np.clip(nm, cfg.film.thickness_nm[0], self._top_nm).astype(np.uint8)]

    def _compose(self, i: int, eye: np.ndarray, film: np.ndarray, lids: np.ndarray) -> np.ndarray:
        """Eye and film under the lids: the scene's light in reflectance units."""
        cfg, lid = self.config, self._lower_lid
        lx, ly = lids
        cover = self._warp(lid.cover, lx, ly)[..., None]
        # the film lies on the cornea only (above the lower lid)
        img = (cfg.eye.diffuse * eye + cfg.film.gain * film) * (1 - cover)
        img += self._warp(lid.skin, lx, ly)
        img *= self._warp(lid.shade, lx, ly)[..., None]
        if cfg.eye.meniscus > 0:
            img += self._warp(lid.glow, lx, ly)[..., None]
        frac = float(self._plan.lid[i])
        if frac > 0:
            img = self._draw_upper_lid(img, frac, lx, ly)
        if cfg.eye.lashes:
            shift = self._lash_drop(frac, lx)
            lashes = self._warp(self._lashes, lx, ly + shift, cv2.BORDER_CONSTANT)
            img *= (1 - LASH_SHADE * lashes)[..., None]
        return img

    def _lash_drop(self, frac: float, lx: float) -> float:
        """How far the lashes have come down with the upper lid, at the eye's middle."""
        if frac <= 0:
            return 0.0
        geo = self.geometry
        x = np.array([0.5 * geo.width - lx])
        bottom = geo.lower_lid_y(x)
        return float(
            upper_lid_edge(geo, frac, x, bottom)[0] - upper_lid_edge(geo, 0.0, x, bottom)[0]
        )

    def _draw_upper_lid(self, img: np.ndarray, frac: float, lx: float, ly: float) -> np.ndarray:
        geo = self.geometry
        x = np.arange(geo.width, dtype=np.float32) - lx
        edge = upper_lid_edge(geo, frac, x, geo.lower_lid_y(x) + ly)
        yy = np.arange(geo.height, dtype=np.float32)[:, None]
        cover = np.clip((edge[None, :] - yy) / 2.0, 0, 1)[..., None]
        m = geo.margin
        skin = self._skin[m : m + geo.height, m : m + geo.width]
        return img * (1 - cover) + (skin * 0.9) * cover

    def _camera(self, i: int, img: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        """What the camera makes of the scene's light: exposure, focus, noise, pixels."""
        cfg, plan = self.config, self._plan
        if plan.gain[i] != 1.0:
            img = img * plan.gain[i]
        focus = float(plan.focus[i])
        if focus > 0:
            img = cv2.GaussianBlur(img, (0, 0), focus)
        elif focus < 0:  # a focus hunting past the eye: the image sharpens
            img = cv2.addWeighted(img, 1 - focus, cv2.GaussianBlur(img, (0, 0), 1.5), focus, 0)
        h, w = img.shape[:2]
        rng_slot = self._noise[i % len(self._noise)]
        shift = (i * 7919) % (h * w)
        noise = np.roll(rng_slot.reshape(-1, rng_slot.shape[-1]), shift, axis=0).reshape(
            rng_slot.shape
        )
        dn = img * 255.0
        dn = dn + noise[..., : img.shape[-1]] * np.sqrt(cfg.noise_dn**2 + 0.05 * np.abs(dn))
        if not cfg.rgb:
            dn = dn @ MONO_WEIGHTS
        if w != cfg.width:
            dn = cv2.resize(dn, (cfg.width, cfg.height), interpolation=cv2.INTER_LINEAR)
        frame = np.clip(dn * (cfg.max_dn / 255.0), 0, cfg.max_dn).astype(self.dtype)
        if cfg.jpeg_quality is not None:
            frame = _jpeg(frame, cfg.jpeg_quality)
        if out is not None:
            out[...] = frame
            return out
        return frame


def _jpeg(frame: np.ndarray, quality: int) -> np.ndarray:
    """The frame after a JPEG round trip at ``quality`` (what an MJPEG camera delivers)."""
    bgr = frame[..., ::-1] if frame.ndim == 3 else frame
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    dec = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return np.ascontiguousarray(dec[..., ::-1]) if frame.ndim == 3 else dec
