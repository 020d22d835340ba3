"""Synthetic micro-interferometer streams of the tear film, with ground truth.

An eye (sclera, textured iris, dark pupil, lower lid) is lit by a white source; the camera sees
the eye's diffuse light plus the specular reflection of the tear film, coloured by thin-film
interference of a lipid layer 20-200 nm thick (``thinfilm``). After each blink the layer is laid
down anew and spreads up the eye as ``dy(t) = -A*(1 - exp(-t/tau))`` relative to the eye, while
the whole eye drifts and makes saccades. Upper-lid blinks are complete (down to the lower lid) or
partial (the lid stops above the tracked region). Camera read and shot noise are added.

Frames are rendered on demand (``render(i)``), deterministic in the seed, so a stream can be
played live by a camera, written to a file, or randomly accessed by tests. ``truth`` holds what
the tracker should find.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from .thinfilm import CameraResponse, rgb_lut


@dataclass(frozen=True)
class SynthConfig:
    """Parameters of a synthetic stream; every random choice derives from ``seed``."""

    height: int = 480
    width: int = 640
    fps: float = 45.0
    n_frames: int = 900
    seed: int = 0
    rgb: bool = True
    bit_depth: int = 8
    blink_interval_s: tuple[float, float] = (4.0, 7.0)
    first_blink_s: tuple[float, float] = (0.3, 0.8)
    partial_blink_fraction: float = 0.25
    blink_close_s: float = 0.09
    blink_hold_s: float = 0.05
    blink_open_s: float = 0.14
    spread_amplitude_frac: tuple[float, float] = (0.04, 0.12)  # A as a fraction of the height
    spread_tau_s: tuple[float, float] = (0.5, 2.5)
    # King-Smith (2009): after the exponential the layer may keep creeping up at a steady speed;
    # (0, 0) means no drift (and draws nothing, so streams without drift are unchanged)
    drift_px_s: tuple[float, float] = (0.0, 0.0)
    drift_px: float = 4.0  # RMS of the slow eye drift
    saccades_per_s: float = 0.3
    saccade_px: tuple[float, float] = (3.0, 12.0)
    noise_dn: float = 2.0  # read noise, in 8-bit counts
    thickness_nm: tuple[float, float] = (20.0, 200.0)


@dataclass
class GroundTruth:
    """What really happened in a synthetic stream, per frame and per blink/interval."""

    fps: float
    time_s: np.ndarray
    open: np.ndarray  # bool: eye open (no lid over the eye)
    eye_dx_px: np.ndarray
    eye_dy_px: np.ndarray
    lipid_dy_px: np.ndarray  # relative to the eye, since the interval's start; 0 in blinks
    thickness_nm: np.ndarray  # median lipid thickness over the tracked region
    blinks: list[dict] = field(default_factory=list)  # start_frame, end_frame, complete
    intervals: list[dict] = field(
        default_factory=list
    )  # start_frame, end_frame, amplitude_px, tau_s

    def to_json(self) -> dict:
        """JSON-ready dict (arrays as lists)."""
        return {
            "fps": self.fps,
            "blinks": self.blinks,
            "intervals": self.intervals,
            "frames": {
                "time_s": self.time_s.round(6).tolist(),
                "open": self.open.tolist(),
                "eye_dx_px": self.eye_dx_px.round(4).tolist(),
                "eye_dy_px": self.eye_dy_px.round(4).tolist(),
                "lipid_dy_px": self.lipid_dy_px.round(4).tolist(),
                "thickness_nm": self.thickness_nm.round(2).tolist(),
            },
        }

    @classmethod
    def from_json(cls, d: dict) -> GroundTruth:
        """Inverse of ``to_json``."""
        f = d["frames"]
        return cls(
            fps=d["fps"],
            time_s=np.asarray(f["time_s"]),
            open=np.asarray(f["open"], bool),
            eye_dx_px=np.asarray(f["eye_dx_px"]),
            eye_dy_px=np.asarray(f["eye_dy_px"]),
            lipid_dy_px=np.asarray(f["lipid_dy_px"]),
            thickness_nm=np.asarray(f["thickness_nm"]),
            blinks=d["blinks"],
            intervals=d["intervals"],
        )


class SyntheticStream:
    """A synthetic interferometer stream; ``render(i)`` gives frame ``i``."""

    def __init__(self, config: SynthConfig | None = None) -> None:
        self.config = cfg = config or SynthConfig()
        if cfg.height < 64 or cfg.width < 64:
            raise ValueError(
                f"synthetic frames must be at least 64x64, got {cfg.height}x{cfg.width}"
            )
        if cfg.bit_depth not in (8, 16):
            raise ValueError(f"bit_depth must be 8 or 16, got {cfg.bit_depth}")
        rng = np.random.default_rng(cfg.seed)
        self._margin = int(0.25 * max(cfg.height, cfg.width))
        self._px = cfg.height / 480  # texture scales with the frame: same eye, other camera
        self._lut = rgb_lut(CameraResponse.gaussian())
        self._lut /= self._lut.max()
        self._eye = self._make_eye(rng)
        self._skin = self._make_skin(rng)
        self._schedule(rng)
        self._noise = rng.normal(0.0, 1.0, (4, cfg.height, cfg.width, 3 if cfg.rgb else 1)).astype(
            np.float32
        )
        self.truth = self._make_truth()

    # geometry of the eye at rest (eye coordinates = image coordinates of frame 0 before motion)
    @property
    def pupil_centre(self) -> tuple[float, float]:
        """Pupil centre (x, y) at rest."""
        return 0.5 * self.config.width, 0.42 * self.config.height

    @property
    def pupil_radius(self) -> float:
        """Pupil radius at rest."""
        return 0.11 * self.config.height

    @property
    def iris_radius(self) -> float:
        """Iris radius at rest."""
        return 0.36 * self.config.height

    def lower_lid_y(self, x: np.ndarray) -> np.ndarray:
        """Lower lid margin at rest: a gentle upward-opening curve near the bottom."""
        cfg = self.config
        xc = (x - 0.5 * cfg.width) / cfg.width
        return 0.86 * cfg.height + 0.35 * cfg.height * xc**2

    def tracked_region(self) -> tuple[int, int]:
        """Rows (y0, y1) at rest of the cornea between the pupil and the lower lid."""
        cx, cy = self.pupil_centre
        return int(cy + self.pupil_radius * 1.2), int(self.lower_lid_y(np.array([cx]))[0] - 6)

    def region_pixels(self, i: int, margin_px: float = 12.0) -> tuple[np.ndarray, np.ndarray]:
        """Frame ``i``'s colours where a perfectly stabilised tracker samples the layer.

        The rest rows ``tracked_region()`` over the middle half of the columns, moved with the
        true eye motion, minus a ring of ``margin_px`` at the iris margin; with each pixel's
        background group (0 over the iris, 1 over the sclera). For judging thickness estimates
        apart from the tracker.
        """
        cfg, truth = self.config, self.truth
        y0, y1 = self.tracked_region()
        yy, xx = np.mgrid[y0:y1, cfg.width // 4 : 3 * cfg.width // 4]
        cx, cy = self.pupil_centre
        r = np.hypot(xx - cx, yy - cy)
        keep = np.abs(r - self.iris_radius) > margin_px
        iy = np.clip(np.round(yy + truth.eye_dy_px[i]).astype(int), 0, cfg.height - 1)
        ix = np.clip(np.round(xx + truth.eye_dx_px[i]).astype(int), 0, cfg.width - 1)
        return self.render(i)[iy, ix][keep], (r > self.iris_radius)[keep].astype(int)

    # -- construction -------------------------------------------------------------------------
    def _canvas_grid(self) -> tuple[np.ndarray, np.ndarray]:
        cfg, m = self.config, self._margin
        y, x = np.mgrid[-m : cfg.height + m, -m : cfg.width + m].astype(np.float32)
        return x, y

    def _make_eye(self, rng: np.random.Generator) -> np.ndarray:
        """Diffuse reflectance of the eye (canvas with margins), float32 (H, W, 3)."""
        x, y = self._canvas_grid()
        cx, cy = self.pupil_centre
        r = np.hypot(x - cx, y - cy)
        theta = np.arctan2(y - cy, x - cx)
        sclera = np.array([0.62, 0.58, 0.56], np.float32)
        iris_col = np.array([0.30, 0.36, 0.42], np.float32)
        # radial iris fibres plus crypts: texture the stabilizer can lock onto
        fibres = (
            0.5
            + 0.25 * np.sin(theta * 47 + 3 * np.sin(r / 9.0))
            + 0.25 * np.sin(theta * 19 + r / 6.0)
        )
        crypts = cv2.GaussianBlur(
            rng.normal(0, 1, x.shape).astype(np.float32), (0, 0), 2.5 * self._px
        )
        crypts /= crypts.std() + 1e-6
        tex = np.clip(0.75 + 0.2 * fibres + 0.12 * crypts, 0.3, 1.3)[..., None]
        w_iris = np.clip((self.iris_radius - r) / 3.0, 0, 1)[..., None]
        w_pupil = np.clip((self.pupil_radius - r) / 1.5, 0, 1)[..., None]
        eye = sclera * (1 - w_iris) + iris_col * tex * w_iris
        eye = eye * (1 - w_pupil) + np.float32(0.04) * w_pupil
        # lower lid: skin below the margin, a dark margin line
        lid = self.lower_lid_y(x)
        below = np.clip((y - lid) / 2.0, 0, 1)[..., None]
        skin = np.array([0.70, 0.52, 0.45], np.float32) * (0.9 + 0.1 * crypts[..., None])
        eye = eye * (1 - below) + skin * below
        margin = np.exp(-0.5 * ((y - lid) / 3.0) ** 2)[..., None]
        return (eye * (1 - 0.6 * margin)).astype(np.float32)

    def _make_skin(self, rng: np.random.Generator) -> np.ndarray:
        """Texture of the upper lid (canvas sized)."""
        x, _ = self._canvas_grid()
        t = cv2.GaussianBlur(rng.normal(0, 1, x.shape).astype(np.float32), (0, 0), 4.0 * self._px)
        t /= t.std() + 1e-6
        base = np.array([0.72, 0.54, 0.46], np.float32)
        return (base * (0.9 + 0.08 * t[..., None])).astype(np.float32)

    def _thickness_field(self, interval: int) -> np.ndarray:
        """Lipid thickness (nm) on the canvas for one interval: a fresh layer after each blink."""
        return _thickness_field(self.config, self._margin, interval, self.tracked_region())

    def _schedule(self, rng: np.random.Generator) -> None:
        """Draw blinks, spreads and eye motion for every frame."""
        cfg = self.config
        n, fps = cfg.n_frames, cfg.fps
        t = np.arange(n) / fps
        self._t = t
        lid = np.zeros(n, np.float32)  # fraction of the way from the top to the lower lid
        blinks: list[dict] = []
        tb = rng.uniform(*cfg.first_blink_s)
        close_n = max(2, round(cfg.blink_close_s * fps))
        hold_n = max(1, round(cfg.blink_hold_s * fps))
        open_n = max(2, round(cfg.blink_open_s * fps))
        while True:
            start = round(tb * fps)
            end = start + close_n + hold_n + open_n - 1
            if end >= n - 1:
                break
            complete = rng.uniform() >= cfg.partial_blink_fraction
            depth = 1.02 if complete else rng.uniform(0.35, 0.55)
            prof = np.concatenate(
                [
                    np.linspace(1.0 / close_n, 1.0, close_n),
                    np.ones(hold_n),
                    np.linspace(1.0, 0.0, open_n + 1)[1:],
                ]
            )
            lid[start : end + 1] = depth * np.sin(0.5 * np.pi * prof) ** 1.5
            blinks.append({"start_frame": start, "end_frame": end, "complete": bool(complete)})
            tb = t[end] + rng.uniform(*cfg.blink_interval_s)
        self._lid = lid
        is_open = lid <= 0.0
        # intervals: open stretches; spread restarts at each interval's first frame
        spread = np.zeros(n)
        intervals: list[dict] = []
        starts = [0] + [b["end_frame"] + 1 for b in blinks]
        ends = [b["start_frame"] - 1 for b in blinks] + [n - 1]
        for k, (s, e) in enumerate(zip(starts, ends, strict=True)):
            amp = rng.uniform(*cfg.spread_amplitude_frac) * cfg.height
            tau = rng.uniform(*cfg.spread_tau_s)
            if k > 0 and not blinks[k - 1]["complete"]:
                amp *= 0.4  # a partial blink leaves most of the layer in place
            creep = rng.uniform(*cfg.drift_px_s) if max(cfg.drift_px_s) > 0 else 0.0
            tt = t[s : e + 1] - t[s]
            spread[s : e + 1] = -amp * (1 - np.exp(-tt / tau)) - creep * tt
            intervals.append(
                {
                    "start_frame": s,
                    "end_frame": e,
                    "amplitude_px": float(amp),
                    "tau_s": float(tau),
                    "drift_px_s": float(creep),
                    "starts_after_partial": bool(k > 0 and not blinks[k - 1]["complete"]),
                }
            )
        # where the layer sits on the eye: a complete blink lays a new layer (switched while the
        # lid covers the eye, at mid-blink) that lies where it starts spreading from (0) as the
        # lid opens; a partial blink leaves the layer in place, so it moves on from where it was
        field_of = np.zeros(n, int)
        field_dy = spread.copy()
        field, base = 0, 0.0
        for k, b in enumerate(blinks):
            s0, e0 = b["start_frame"], b["end_frame"]
            prev_end = spread[s0 - 1] + base
            mid = (s0 + e0) // 2
            field_dy[s0 : e0 + 1] = prev_end
            field_of[s0:mid] = field
            if b["complete"]:
                field, base = k + 1, 0.0
                field_dy[mid : e0 + 1] = 0.0
            else:
                base = prev_end
            field_of[mid : e0 + 1] = field
            nxt_end = ends[k + 1]
            field_of[e0 + 1 : nxt_end + 1] = field
            field_dy[e0 + 1 : nxt_end + 1] = spread[e0 + 1 : nxt_end + 1] + base
        self._spread = spread
        self._field_dy = field_dy
        self._layer = field_of  # which thickness field is on the eye in each frame
        # eye motion: smooth drift plus saccades (fast steps over ~3 frames)
        wander = np.stack([_smooth_noise(rng, n, fps * 1.5) for _ in range(2)]) * cfg.drift_px
        steps = np.zeros((2, n))
        for i in np.flatnonzero(rng.uniform(size=n) < cfg.saccades_per_s / fps):
            ang = rng.uniform(0, 2 * np.pi)
            mag = rng.uniform(*cfg.saccade_px)
            ramp = np.clip((np.arange(n) - i) / 3.0, 0, 1)
            steps += np.outer([np.cos(ang), np.sin(ang)], ramp) * mag
        # keep the eye near the centre: saccades return towards it
        steps -= _slow_mean(steps, int(fps * 4))
        self._eye_xy = wander + steps
        self._eye_xy -= self._eye_xy[:, :1]
        self._blinks, self._intervals, self._open = blinks, intervals, is_open

    def _make_truth(self) -> GroundTruth:
        cfg = self.config
        y0, y1 = self.tracked_region()
        m = self._margin
        x0, x1 = m + cfg.width // 4, m + 3 * cfg.width // 4
        thickness = np.empty(cfg.n_frames)
        for i in range(cfg.n_frames):  # the part of the layer over the tracked region now
            off = round(-self._field_dy[i])
            field = self._thickness_field(int(self._layer[i]))
            thickness[i] = np.median(field[y0 + m + off : y1 + m + off : 2, x0:x1:2])
        return GroundTruth(
            fps=cfg.fps,
            time_s=self._t.copy(),
            open=self._open.copy(),
            eye_dx_px=self._eye_xy[0].copy(),
            eye_dy_px=self._eye_xy[1].copy(),
            lipid_dy_px=np.where(self._open, self._spread, 0.0),
            thickness_nm=thickness,
            blinks=list(self._blinks),
            intervals=list(self._intervals),
        )

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
        cfg, m = self.config, self._margin
        i = int(i) % cfg.n_frames
        h, w = cfg.height, cfg.width
        ex, ey = self._eye_xy[:, i]
        # sample the canvas at frame pixel (x, y) from canvas point (x + m - ex, y + m - ey)
        eye_m = np.array([[1, 0, ex - m], [0, 1, ey - m]], np.float32)
        eye = cv2.warpAffine(
            self._eye, eye_m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
        lip_m = np.array([[1, 0, ex - m], [0, 1, ey + self._field_dy[i] - m]], np.float32)
        thick = cv2.warpAffine(
            self._thickness_field(int(self._layer[i])),
            lip_m,
            (w, h),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT,
        )
        film = self._lut[np.clip(thick, 0, 255).astype(np.uint8)]
        # the film lies on the cornea only (above the lower lid)
        img = 0.65 * eye + 0.45 * film * self._cornea_mask(ex, ey)[..., None]
        lid_frac = float(self._lid[i])
        if lid_frac > 0:
            img = self._draw_upper_lid(img, lid_frac, ex, ey)
        rng_slot = self._noise[i % len(self._noise)]
        shift = (i * 7919) % (h * w)
        noise = np.roll(rng_slot.reshape(-1, rng_slot.shape[-1]), shift, axis=0).reshape(
            rng_slot.shape
        )
        scale = 255.0 if cfg.bit_depth == 8 else 65535.0
        dn = img * 255.0
        dn = dn + noise[..., : img.shape[-1]] * np.sqrt(cfg.noise_dn**2 + 0.05 * dn)
        if not cfg.rgb:
            dn = dn @ np.array([0.299, 0.587, 0.114], np.float32)
        frame = np.clip(dn * (scale / 255.0), 0, scale).astype(self.dtype)
        if out is not None:
            out[...] = frame
            return out
        return frame

    def _cornea_mask(self, ex: float, ey: float) -> np.ndarray:
        cfg = self.config
        x = np.arange(cfg.width, dtype=np.float32) - ex
        lid = self.lower_lid_y(x) + ey
        yy = np.arange(cfg.height, dtype=np.float32)[:, None]
        return np.clip((lid[None, :] - yy) / 2.0, 0, 1).astype(np.float32)

    def _draw_upper_lid(self, img: np.ndarray, frac: float, ex: float, ey: float) -> np.ndarray:
        cfg = self.config
        x = np.arange(cfg.width, dtype=np.float32) - ex
        bottom = self.lower_lid_y(x) + ey
        edge = frac * bottom - 0.12 * cfg.height * (1 - frac) * np.cos(
            np.pi * (x / cfg.width - 0.5)
        )
        yy = np.arange(cfg.height, dtype=np.float32)[:, None]
        cover = np.clip((edge[None, :] - yy) / 2.0, 0, 1)[..., None]
        skin = self._skin[
            self._margin : self._margin + cfg.height, self._margin : self._margin + cfg.width
        ]
        return img * (1 - cover) + (skin * 0.9) * cover


def _smooth_noise(rng: np.random.Generator, n: int, width: float) -> np.ndarray:
    """Unit-RMS noise smoothed over ``width`` samples (slow drift)."""
    x = rng.normal(size=n + int(6 * width))
    k = np.exp(-0.5 * (np.arange(-3 * width, 3 * width + 1) / width) ** 2)
    y = np.convolve(x, k / k.sum(), mode="valid")[:n]
    return y / (y.std() + 1e-12)


def _slow_mean(x: np.ndarray, width: int) -> np.ndarray:
    """Causal running mean along the last axis (a slow pull back to the centre)."""
    c = np.cumsum(np.pad(x, ((0, 0), (width, 0)), mode="edge"), axis=1)
    return (c[:, width:] - c[:, :-width]) / width


@lru_cache(maxsize=4)
def _thickness_field(
    cfg: SynthConfig, margin: int, interval: int, rows: tuple[int, int]
) -> np.ndarray:
    """A lipid layer: thicker near the lower lid, patchy at several scales, 20-200 nm."""
    rng = np.random.default_rng((cfg.seed, interval, 7))
    h, w = cfg.height + 2 * margin, cfg.width + 2 * margin
    field = np.zeros((h, w), np.float32)
    for sigma, weight in ((24.0, 1.0), (8.0, 0.7), (3.0, 0.45)):
        f = cv2.GaussianBlur(
            rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), sigma * cfg.height / 480
        )
        field += weight * f / (f.std() + 1e-6)
    gradient = np.linspace(-1.0, 1.0, h, dtype=np.float32)[:, None]
    field = field / field.std() + 0.8 * gradient
    lo, hi = cfg.thickness_nm
    z = (field - field.mean()) / (field.std() + 1e-6)
    return np.clip(0.5 * (lo + hi) + z * (hi - lo) / 5.0, lo, hi).astype(np.float32)


def write_stream(stream: SyntheticStream, path: str | Path) -> Path:
    """Write a synthetic stream as OME-TIFF with its ground truth beside it (``*.truth.json``)."""
    import tifffile

    path = Path(path)
    cfg = stream.config
    axes = "TYXS" if cfg.rgb else "TYX"
    meta = {
        "axes": axes,
        "TimeIncrement": 1.0 / cfg.fps,
        "TimeIncrementUnit": "s",
        "Plane": {
            "DeltaT": [float(t) for t in stream.truth.time_s],
            "DeltaTUnit": ["s"] * cfg.n_frames,
        },
    }
    with tifffile.TiffWriter(
        path, ome=True, bigtiff=bool(cfg.n_frames * np.prod(stream.shape) > 2**31)
    ) as tw:
        tw.write(
            (stream.render(i) for i in range(cfg.n_frames)),
            shape=(cfg.n_frames, *stream.shape),
            dtype=stream.dtype,
            photometric="rgb" if cfg.rgb else "minisblack",
            metadata=meta,
        )
    truth_path = truth_path_for(path)
    truth_path.write_text(json.dumps({"config": asdict(cfg), **stream.truth.to_json()}))
    return truth_path


def truth_path_for(path: str | Path) -> Path:
    """Where the ground truth of a written synthetic stream lives."""
    path = Path(path)
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif", ".tiff", ".tif"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return path.with_name(name + ".truth.json")
