"""Accuracy on streams from a second renderer, written apart from ``tfll_live.synth``.

The tracker is developed on the project's own generator; a measurement that only holds there is
a property of that generator. This renderer shares no code with it and models the same eye
differently: radial iris fibres and two reflections fixed to the eye, a rigid film texture (a
random thickness field through thin-film interference) that changes within itself at
``--morph`` rad/s, thick bands above the lid that fade as they rise, a lid with lashes, slow eye
drift and saccades with motion blur and refocusing, an exposure ramp, JPEG or 12/16-bit mono.

Prints, per case, the blinks found against the true ones and, per inter-blink interval, the
fitted amplitude (travel from the interval's first frame) and tau against the truth, with the
measured and true displacement side by side at eight frames of it::

    python benchmarks/bench_other_renderer.py                  # every case (~15 min)
    python benchmarks/bench_other_renderer.py --case clinic --morph 0.15 0.3 0.6
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace

import cv2
import numpy as np

from tfll_live.tracking import Tracker

WAVELENGTHS_NM = np.array([610.0, 550.0, 460.0], np.float32)
FILM_INDEX = 1.48
MARGIN = 40  # px of eye rendered beyond the frame, so that it can move


@dataclass
class Case:
    """One stream: its look and its events (times in s)."""

    h: int = 438
    w: int = 668
    fps: float = 29.97
    n_frames: int = 600
    blinks: tuple[float, ...] = (0.5, 10.5)  # when the lid starts to close
    travel_frac: tuple[float, ...] = (0.40, 0.25)  # per interval, of the frame height
    tau_s: tuple[float, ...] = (2.0, 1.0)
    saccades: tuple[tuple[float, float, float], ...] = ((4.0, 10, 2), (14.0, -8, 12))
    contrast: float = 0.10  # the film's modulation of the light the eye returns
    morph_rad_s: float = 0.15  # how fast the film's pattern changes within itself
    noise: float = 2.0  # grey levels
    jpeg: int = 75  # quality; 0 for none
    mono_bits: int = 0  # 12 or 16 for a mono camera
    seed: int = 1


CASES = {
    "clinic": Case(),
    "faint-noisy": Case(contrast=0.05, noise=6.0, jpeg=0, seed=3),
    "long-slow": Case(
        h=768,
        w=1024,
        fps=30,
        n_frames=720,
        blinks=(0.5, 12.0),
        travel_frac=(0.33, 0.33),
        tau_s=(3.0, 3.0),
        seed=2,
    ),
    "fast-60fps": Case(
        h=480,
        w=640,
        fps=60,
        n_frames=900,
        blinks=(0.5, 7.5),
        travel_frac=(0.12, 0.2),
        tau_s=(0.3, 0.5),
        seed=4,
    ),
    "mono12": Case(h=480, w=640, fps=30, mono_bits=12, contrast=0.07, seed=8),
    "mono16-large": Case(
        h=1024, w=1280, fps=30, n_frames=450, blinks=(0.5, 8.0), mono_bits=16, seed=7
    ),
    "saccades-no-blink": Case(
        n_frames=330,
        blinks=(-5.0,),
        saccades=((2.0, 15, 0), (4.0, -10, 8), (6.0, 0, -15), (8.0, 12, 12)),
        seed=5,
    ),
}

BLINK_S = 0.3  # lid closing, shut and opening


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    n = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), sigma)
    return n / n.std()


class OtherEye:
    """Renders a ``Case`` frame by frame and knows where the layer truly is."""

    def __init__(self, case: Case) -> None:
        self.case = c = case
        rng = np.random.default_rng(c.seed)
        big_h, big_w = c.h + 2 * MARGIN, c.w + 2 * MARGIN
        yy, xx = np.mgrid[0:big_h, 0:big_w].astype(np.float32)
        cx, cy = MARGIN + 0.42 * c.w, MARGIN + 0.27 * c.h  # the published clip's pupil
        r, th = np.hypot(xx - cx, yy - cy), np.arctan2(yy - cy, xx - cx)
        pupil_r = 0.1 * c.w
        fibres = np.zeros_like(r)
        for k, weight in ((60, 0.5), (140, 0.3), (300, 0.2)):
            ph = rng.uniform(0, 2 * np.pi, 3)
            fibres += weight * sum(np.cos(k * th + ph[j] + 0.02 * j * r) for j in range(3)) / 3
        blotches = _smooth_noise(rng, (big_h, big_w), 25)
        grey = 112 + 14 * fibres * np.clip((r - pupil_r) / 20, 0, 1) + 10 * blotches
        inside = np.clip((pupil_r + 1.5 - r) / 3, 0, 1)
        grey = grey * (1 - inside) + (25 + 4 * blotches) * inside
        for rx, ry, size in (
            (cx + 0.6 * pupil_r, cy - 0.5 * pupil_r, 5),
            (cx - 1.8 * pupil_r, cy + 1.5 * pupil_r, 8),
        ):
            grey += 120 * np.exp(-((xx - rx) ** 2 + (yy - ry) ** 2) / (2 * size**2))
        bluish = np.stack([0.92 * grey, grey, 1.12 * grey], -1)
        self.eye = cv2.GaussianBlur(bluish.astype(np.float32), (0, 0), 1.0)
        self.fields = [
            (_smooth_noise(rng, (3 * c.h, big_w), 12), _smooth_noise(rng, (3 * c.h, big_w), 12))
            for _ in c.blinks
        ]
        self.lid_rest = 0.9 * c.h
        self.drift_phase = rng.uniform(0, 6, 2)

    # -- truth --------------------------------------------------------------------------------
    def lid_y(self, t: float) -> float:
        """The lower lid's row: at rest near the bottom, up past the top in a blink."""
        for start in self.case.blinks:
            u = (t - start) / BLINK_S
            if 0 <= u < 1:
                closed = min(1.0, u / 0.33) if u < 0.5 else 1.0 - (u - 0.5) / 0.5
                return self.lid_rest - closed * (self.lid_rest + 0.1 * self.case.h)
        return self.lid_rest

    def layer(self, t: float) -> tuple[int, float, float]:
        """Interval index (-1 before the first blink), time since the lid opened, travel px."""
        c = self.case
        k = max((i for i, b in enumerate(c.blinks) if t >= b + BLINK_S), default=-1)
        if k < 0:
            return k, 0.0, 0.0
        since = t - (c.blinks[k] + BLINK_S)
        return k, since, c.travel_frac[k] * c.h * (1 - np.exp(-since / c.tau_s[k]))

    def eye_shift(self, t: float) -> tuple[float, float]:
        """The eye's displacement: a slow drift and the saccades."""
        dx = 1.5 * np.sin(0.7 * t + self.drift_phase[0])
        dy = 1.0 * np.sin(0.5 * t + self.drift_phase[1])
        for start, sx, sy in self.case.saccades:
            p = float(np.clip((t - start) / 0.06, 0, 1))
            dx, dy = dx + sx * p, dy + sy * p
        return dx, dy

    # -- pixels -------------------------------------------------------------------------------
    def _light(self, t: float) -> np.ndarray:
        c = self.case
        dx, dy = self.eye_shift(t)
        to_frame = np.float32([[1, 0, -MARGIN + dx], [0, 1, -MARGIN + dy]])
        img = cv2.warpAffine(self.eye, to_frame, (c.w, c.h), borderMode=cv2.BORDER_REFLECT)
        k, since, travel = self.layer(t)
        rows = np.arange(c.h, dtype=np.float32)[:, None]
        if k >= 0:  # frame (x, y) shows the film's (x + M - dx, y + h/2 + travel - dy)
            to_film = np.float32([[1, 0, MARGIN - dx], [0, 1, c.h // 2 + travel - dy]])
            a, b = (
                cv2.warpAffine(
                    f, to_film, (c.w, c.h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
                )
                for f in self.fields[k]
            )
            phase = c.morph_rad_s * since
            nm = 90 + 30 * (np.cos(phase) * a + np.sin(phase) * b)
            film_row = rows + travel - dy  # bands ride on the layer, thick just above the lid
            band = np.exp(-np.clip(self.lid_rest - film_row, 0, None) / (0.08 * c.h))
            nm = nm + 120 * np.exp(-since / 1.2) * band * (1 + 0.3 * np.sin(film_row / 6.0))
            img = img * (
                1 + c.contrast * np.cos(4 * np.pi * FILM_INDEX * nm[..., None] / WAVELENGTHS_NM)
            )
        lid = self.lid_y(t)
        below = np.clip((rows - lid) / 3, 0, 1)[..., None]
        cols = np.arange(c.w, dtype=np.float32)[None, :]
        lashes = 1 - 0.5 * (
            (np.abs(np.sin(cols / 7.0 + rows / 40)) < 0.08) & (rows - lid > 3) & (rows - lid < 25)
        )
        skin = np.float32([150, 118, 108]) * ((0.9 + 0.1 * np.sin(rows / 9)) * lashes)[..., None]
        img = img * (1 - below) + skin * below
        img = img + 60 * np.exp(-((rows - lid) ** 2) / 4)[..., None]  # the tear meniscus
        return img * (1.0 + 0.12 * t * c.fps / c.n_frames)  # exposure creeping up

    def render(self, i: int) -> np.ndarray:
        """Frame ``i`` as the camera delivers it."""
        c = self.case
        t = i / c.fps
        if any(0 <= t - s < 0.1 for s, *_ in c.saccades):  # smeared and out of focus
            img = np.mean([self._light(t + dt) for dt in np.linspace(-0.015, 0.015, 5)], 0)
            img = cv2.GaussianBlur(img, (0, 0), 1.2)
        else:
            img = self._light(t)
        img = np.clip(
            img + np.random.default_rng(c.seed * 100_000 + i).normal(0, c.noise, img.shape), 0, 255
        )
        if c.mono_bits:
            return (img.mean(-1) * (2**c.mono_bits - 1) / 255).astype(np.uint16)
        out = img.astype(np.uint8)
        if c.jpeg:
            _, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, c.jpeg])
            out = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
        return out


def run(name: str, case: Case) -> None:
    """Track one stream and print what was found against the truth."""
    eye = OtherEye(case)
    tracker = Tracker()
    t0 = time.perf_counter()
    results = [tracker.push(eye.render(i), i / case.fps) for i in range(case.n_frames)]
    summary = tracker.finish()
    true_blinks = [round(b * case.fps) for b in case.blinks if b >= 0]
    found = [b.start_frame for b in summary.blinks]
    print(
        f"{name} (morph {case.morph_rad_s} rad/s, {case.h}x{case.w}"
        f"{f' mono {case.mono_bits}-bit' if case.mono_bits else ''}): blinks start at frames "
        f"{found}, true {true_blinks}  ({time.perf_counter() - t0:.0f} s)"
    )
    for iv in summary.intervals:
        k, _, start_travel = eye.layer(iv.start_frame / case.fps)
        if k < 0 or iv.end_frame - iv.start_frame < 10:
            continue
        frames = range(iv.start_frame, iv.end_frame + 1)
        true = np.array([eye.layer(i / case.fps)[2] for i in frames]) - start_travel
        measured = np.array(
            [np.nan if results[i].lipid_dy_px is None else -results[i].lipid_dy_px for i in frames]
        )
        amp = case.travel_frac[k] * case.h - start_travel
        tau = case.tau_s[k]
        fit = iv.spread
        fitted = (
            "no fit"
            if fit is None
            else f"amplitude {fit.amplitude_px:.1f} px (true {amp:.1f}, "
            f"{100 * (fit.amplitude_px - amp) / amp:+.1f}%), tau {fit.tau_s:.2f} s "
            f"(true {tau:.2f}, {100 * (fit.tau_s - tau) / tau:+.1f}%)"
        )
        ok = np.isfinite(measured)
        rmse = float(np.sqrt(np.mean((measured[ok] - true[ok]) ** 2))) if ok.any() else np.nan
        print(f"  interval {iv.start_frame}-{iv.end_frame}: {fitted}; lipid RMSE {rmse:.1f} px")
        at = np.linspace(0, len(frames) - 1, 8).astype(int)
        print(
            "    measured / true px: "
            + "  ".join(f"{measured[j]:.1f}/{true[j]:.1f}" for j in at if np.isfinite(measured[j]))
        )


def main() -> None:
    """Run the chosen cases, each at the chosen rates of internal change."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument(
        "--morph",
        nargs="+",
        type=float,
        default=None,
        help="rates of the film's internal change, rad/s (default: the case's)",
    )
    args = parser.parse_args()
    cv2.setNumThreads(1)
    for name in args.case:
        for morph in args.morph or [CASES[name].morph_rad_s]:
            run(name, replace(CASES[name], morph_rad_s=morph))


if __name__ == "__main__":
    main()
