"""When things happen in a synthetic stream: blinks, spreads, eye and head motion, camera events.

Everything is drawn up front from the seed, so any frame can be rendered on its own. Draws for
the realism options come from generators of their own, so a stream that does not use an option
draws exactly what it did before the option existed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import SynthConfig

SACCADE_FRAMES = 3  # frames over which a saccade moves the eye
FOCUS_FRAMES = (1, 3)  # how long a refocusing lasts


@dataclass(frozen=True)
class Schedule:
    """Per-frame state of the scene (eye coordinates of the isotropic scene, px)."""

    time_s: np.ndarray
    lid: np.ndarray  # upper lid, fraction of the way from the top to the lower lid (0: open)
    blinks: list[dict]
    intervals: list[dict]
    spread_dy: np.ndarray  # the layer's travel relative to the eye since its interval began
    spread_dx: np.ndarray
    layer: np.ndarray  # which layer (thickness field) is on the eye
    layer_dy: np.ndarray  # where that layer lies relative to where it was laid
    layer_dx: np.ndarray
    layer_age_s: np.ndarray  # time since that layer was laid (its bands fade)
    eye_xy: np.ndarray  # (2, n): the eye's (pupil's) motion, head and gaze together
    lids_xy: np.ndarray  # (2, n): the lids' motion (the head's, or the eye's in the cartoon)
    gain: np.ndarray  # exposure: brightness relative to the first frame
    focus: np.ndarray  # blur sigma (> 0) or sharpening amount (< 0) of each frame, 0 in focus

    @property
    def open(self) -> np.ndarray:
        """Frames with no lid over the eye."""
        return self.lid <= 0.0


def make_schedule(cfg: SynthConfig, rng: np.random.Generator) -> Schedule:
    """Draw the whole stream's events."""
    n, fps = cfg.n_frames, cfg.fps
    t = np.arange(n) / fps
    lid, blinks = _blinks(cfg, rng)
    is_open = lid <= 0.0
    starts = [0] + [b["end_frame"] + 1 for b in blinks]
    ends = [b["start_frame"] - 1 for b in blinks] + [n - 1]
    spread = np.zeros(n)
    intervals: list[dict] = []
    for k, (s, e) in enumerate(zip(starts, ends, strict=True)):
        amp = rng.uniform(*cfg.spread_amplitude_frac) * cfg.height
        tau = rng.uniform(*cfg.spread_tau_s)
        after_partial = k > 0 and not blinks[k - 1]["complete"]
        if after_partial:
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
                "starts_after_partial": bool(after_partial),
            }
        )
    slopes = np.random.default_rng((cfg.seed, 11)).uniform(-1, 1, len(intervals))
    slopes *= cfg.film.sideways
    spread_dx = np.zeros(n)
    for iv, slope in zip(intervals, slopes, strict=True):
        s, e = iv["start_frame"], iv["end_frame"]
        spread_dx[s : e + 1] = slope * spread[s : e + 1]
    layer, layer_dy, layer_dx, laid = _layers(blinks, ends, spread, spread_dx, n)
    age = t - t[laid]
    eye, lids, saccades = _motion(cfg, rng, n)
    return Schedule(
        time_s=t,
        lid=lid,
        blinks=blinks,
        intervals=intervals,
        spread_dy=np.where(is_open, spread, 0.0),
        spread_dx=np.where(is_open, spread_dx, 0.0),
        layer=layer,
        layer_dy=layer_dy,
        layer_dx=layer_dx,
        layer_age_s=age,
        eye_xy=eye,
        lids_xy=lids,
        gain=_exposure(cfg, t),
        focus=_focus(cfg, saccades),
    )


def _blinks(cfg: SynthConfig, rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    """The upper lid's travel in every frame, and the blinks it makes."""
    n, fps = cfg.n_frames, cfg.fps
    lid = np.zeros(n, np.float32)
    blinks: list[dict] = []
    closures = np.random.default_rng((cfg.seed, 12))
    tb = rng.uniform(*cfg.first_blink_s)
    close_n = max(2, round(cfg.blink_close_s * fps))
    open_n = max(2, round(cfg.blink_open_s * fps))
    while True:
        hold_s = cfg.blink_hold_s
        long_closure = cfg.closure_fraction > 0 and closures.uniform() < cfg.closure_fraction
        if long_closure:
            hold_s = closures.uniform(*cfg.closure_s)
        hold_n = max(1, round(hold_s * fps))
        start = round(tb * fps)
        end = start + close_n + hold_n + open_n - 1
        if end >= n - 1:
            break
        complete = long_closure or rng.uniform() >= cfg.partial_blink_fraction
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
        tb = end / fps + rng.uniform(*cfg.blink_interval_s)
    return lid, blinks


def _layers(
    blinks: list[dict], ends: list[int], spread: np.ndarray, spread_dx: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Which layer is on the eye in each frame, where it lies, and the frame it was laid in.

    A complete blink lays a new layer (switched while the lid covers the eye, at mid-blink)
    that lies where it starts spreading from (0) as the lid opens; a partial blink leaves the
    layer in place, so it moves on from where it was.
    """
    layer = np.zeros(n, int)
    dy, dx = spread.copy(), spread_dx.copy()
    laid = np.zeros(n, int)
    current, base_y, base_x, laid_at = 0, 0.0, 0.0, 0
    for k, b in enumerate(blinks):
        s0, e0 = b["start_frame"], b["end_frame"]
        prev_y, prev_x = spread[s0 - 1] + base_y, spread_dx[s0 - 1] + base_x
        mid = (s0 + e0) // 2
        dy[s0 : e0 + 1], dx[s0 : e0 + 1] = prev_y, prev_x
        layer[s0:mid], laid[s0:mid] = current, laid_at
        if b["complete"]:
            current, base_y, base_x, laid_at = k + 1, 0.0, 0.0, e0 + 1
            dy[mid : e0 + 1] = dx[mid : e0 + 1] = 0.0
        else:
            base_y, base_x = prev_y, prev_x
        layer[mid : e0 + 1], laid[mid : e0 + 1] = current, laid_at
        nxt = ends[k + 1]
        layer[e0 + 1 : nxt + 1], laid[e0 + 1 : nxt + 1] = current, laid_at
        dy[e0 + 1 : nxt + 1] = spread[e0 + 1 : nxt + 1] + base_y
        dx[e0 + 1 : nxt + 1] = spread_dx[e0 + 1 : nxt + 1] + base_x
    return layer, dy, dx, laid


def _motion(
    cfg: SynthConfig, rng: np.random.Generator, n: int
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The eye's and the lids' motion, and the frames where saccades start.

    The head drifts slowly (eye and lids together); saccades turn the eye under the lids,
    which stay where they are unless the cartoon's ``saccades_move_lids`` is set.
    """
    fps = cfg.fps
    head = np.stack([_smooth_noise(rng, n, fps * 1.5) for _ in range(2)]) * cfg.drift_px
    gaze = np.zeros((2, n))
    saccades = np.flatnonzero(rng.uniform(size=n) < cfg.saccades_per_s / fps).tolist()
    for i in saccades:
        ang = rng.uniform(0, 2 * np.pi)
        mag = rng.uniform(*cfg.saccade_px)
        ramp = np.clip((np.arange(n) - i) / SACCADE_FRAMES, 0, 1)
        gaze += np.outer([np.cos(ang), np.sin(ang)], ramp) * mag
    # keep the eye near the centre: saccades return towards it
    gaze -= _slow_mean(gaze, int(fps * 4))
    eye = head + gaze
    eye -= eye[:, :1]
    lids = eye if cfg.eye.saccades_move_lids else head - head[:, :1]
    return eye, lids, saccades


def _exposure(cfg: SynthConfig, t: np.ndarray) -> np.ndarray:
    """Brightness of each frame relative to the first: slow drift and sudden steps."""
    gain = 1.0 + cfg.exposure_drift * t / 10.0
    if cfg.exposure_jumps_per_s > 0:
        rng = np.random.default_rng((cfg.seed, 13))
        n = len(t)
        for i in np.flatnonzero(rng.uniform(size=n) < cfg.exposure_jumps_per_s / cfg.fps):
            step = rng.choice([-1.0, 1.0]) * rng.uniform(0.05, 0.12)
            gain = gain * (1.0 + step * np.clip((np.arange(n) - i + 1) / 2.0, 0, 1))
    return gain.astype(np.float32)


def _focus(cfg: SynthConfig, saccades: list[int]) -> np.ndarray:
    """Refocusing: a few frames blurred or sharpened, often right after a saccade."""
    n = cfg.n_frames
    focus = np.zeros(n, np.float32)
    if cfg.focus_changes_per_s <= 0:
        return focus
    rng = np.random.default_rng((cfg.seed, 14))
    starts = set(np.flatnonzero(rng.uniform(size=n) < cfg.focus_changes_per_s / cfg.fps).tolist())
    starts |= {i + 1 for i in saccades if rng.uniform() < 0.5}  # the eye left the focal plane
    scale = cfg.height / 480
    for i in sorted(starts):
        length = int(rng.integers(FOCUS_FRAMES[0], FOCUS_FRAMES[1] + 1))
        # blur, or the sharpening of a focus hunting past the eye (Laplacian variance up ~20%)
        amount = rng.uniform(0.8, 2.2) * scale if rng.uniform() < 0.6 else -rng.uniform(0.2, 0.5)
        focus[i : i + length] = amount
    return focus


def _smooth_noise(rng: np.random.Generator, n: int, width: float) -> np.ndarray:
    """Unit-RMS noise smoothed over ``width`` samples (slow drift)."""
    k = np.exp(-0.5 * (np.arange(-3 * width, 3 * width + 1) / width) ** 2)
    x = rng.normal(size=n + len(k) - 1)
    y = np.convolve(x, k / k.sum(), mode="valid")[:n]
    return y / (y.std() + 1e-12)


def _slow_mean(x: np.ndarray, width: int) -> np.ndarray:
    """Causal running mean along the last axis (a slow pull back to the centre)."""
    c = np.cumsum(np.pad(x, ((0, 0), (width, 0)), mode="edge"), axis=1)
    return (c[:, width:] - c[:, :-width]) / width
