"""Lipid tracking: the layer's displacement relative to the eye since a blink.

The camera sees the film over the eye's own texture (iris fibres and crypts, reflections), which
is fixed to the eye and often as strong as the film or stronger: features tracked on the frames
lock onto it and measure a fraction of the layer's travel. In eye coordinates (the frame shifted
back by the eye's measured motion) that texture is the same in every frame, so the difference of
two frames, ``W(t) - W(t-L)``, holds the moving film alone, at the midpoint of where it was at
``t-L`` and ``t``.

The lag ``L`` is chosen so that the layer moves about a step between the two frames (one frame
while it spreads fast, up to half a second as it settles): enough signal, and the film's two copies
in the difference keep one shape. A keyframe difference is kept for a few tenths of a second;
each new difference of the same lag is measured against it: features by Lucas-Kanade (default),
or Farneback's dense flow, or SSD templates, as in the paper. The robust median of the features'
shifts is the layer's displacement at the midpoint time, once a check that the shifted
difference still looks like the keyframe has ruled out noise (a layer at rest leaves little else
in a difference). These samples make the interval's displacement curve, which the spread fit
uses; the live value is the curve carried forward by half a lag. A layer that slows below what
a difference shows still creeps on toward rest: past the curve's last sample the live value,
the next keyframe's place and the check of each new sample follow the spread fit through the
samples, once the fit is trustworthy (``carry_along``); so does the bend that puts a
difference's midpoint off the curve.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from .config import FlowMethod

STEP_FRACTION = 1 / 60  # the layer's move between a difference's two frames (of the height)
MAX_LAG_S = 0.5  # longest gap between the two frames of a difference, by the layer's speed
MAX_QUIET_LAG_S = 1.0  # and where shorter gaps show nothing but noise (a faint, slow layer)
MAX_LAG_FRAMES = 60  # and in frames (bounds the frames kept)
SMEAR_FRACTION = 1 / 150  # of the height: an eye moving this far in a frame smears it
KEYFRAME_S = 0.4  # a keyframe is measured against for at most this long
KEYFRAME_REST_S = 2.0  # or this long while the layer moves less than a step in that time
MAX_MISSES = 3  # failed measurements in a row before a keyframe is replaced
LAG_RANGE = (0.67, 1.5)  # a keyframe is kept while the lag the speed asks for is within these
# multiples of its own
KEYFRAME_TRAVEL = 0.1  # or until the layer has moved this share of the frame height
GATE_FRACTION = 1 / 120  # a sample this far (of the height) off the curve's prediction is refused
REST_GATE_FRACTION = 0.05  # of a step: the gate while the layer is at rest
BEND_MAX = 0.25  # of a step: the largest correction for the curve's bend
CARRY_S = 0.3  # the curve is carried on past its last sample for at most this long
SMOOTH_SAMPLES = 8  # a keyframe's place is read from a line through this many samples
ANCHOR_SAMPLES = 8  # the curve's start is placed from this many samples
OUTLIER_STEPS = 0.25  # a sample this many steps off the line through its neighbours is wild
CONFIRM_SAMPLES = 3  # refused samples in a row that agree overrule the curve's prediction
MIN_FEATURES = 6
MEDIAN_ERROR_PX = 0.25  # standard error of the features' median shift beyond which it is noise
MIN_LIKENESS = 0.2  # a difference must correlate this well with its keyframe where it moved to
MIN_GAIN = 0.02  # and better there than where the keyframe was
LK_LEVELS = 2
LK_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01)
WINDOW_FRACTION = 1 / 11  # LK window and feature spacing scale with the frame (21 px at 240)
FB_MAX_PX = 0.5  # forward-backward disagreement beyond which a feature's shift is refused
CONTRAST = 40.0  # grey levels per RMS of a difference image, stored as uint8 around 128
LANCZOS_A = 4  # the frames are moved into eye coordinates with a Lanczos kernel of 2A taps


@dataclass(frozen=True, slots=True)
class LipidSample:
    """The layer's displacement relative to the eye since the interval start, and its features.

    ``dx_px``/``dy_px`` are for this frame: the measured curve carried forward.
    """

    dx_px: float
    dy_px: float
    points: np.ndarray  # (N, 2) float32 x, y image px
    ids: np.ndarray  # (N,) int64, stable while a feature lives
    point_dy_px: np.ndarray  # (N,) float32


def robust_median(values: np.ndarray) -> tuple[float, np.ndarray]:
    """Median after rejecting values more than 3 robust sigmas from it; and the inlier mask."""
    med = float(np.median(values))
    mad = 1.4826 * float(np.median(np.abs(values - med)))
    keep = np.abs(values - med) <= max(3.0 * mad, 0.5)
    return float(np.median(values[keep])), keep


class DisplacementCurve:
    """The interval's measured displacements (x, y) at midpoint times, kept in time order.

    Each sample remembers the newest frame it used, so the samples from frames later found to
    be in a blink can be dropped.
    """

    def __init__(self) -> None:
        self.t: list[float] = []
        self.m: list[np.ndarray] = []
        self.newest: list[float] = []
        self.key: list[int] = []

    def __len__(self) -> int:
        return len(self.t)

    def add(self, t: float, m: np.ndarray, newest: float, key: int = 0) -> None:
        """A sample at time ``t`` (s since the interval start); ``key``: ``_Keyframe.placed``."""
        k = bisect.bisect_right(self.t, t)
        self.t.insert(k, t)
        self.m.insert(k, np.asarray(m, float))
        self.newest.insert(k, newest)
        self.key.insert(k, key)

    def truncate(self, newest_before: float) -> None:
        """Drop samples that used a frame at or after ``newest_before``."""
        keep = [k for k, n in enumerate(self.newest) if n < newest_before]
        self.t = [self.t[k] for k in keep]
        self.m = [self.m[k] for k in keep]
        self.newest = [self.newest[k] for k in keep]
        self.key = [self.key[k] for k in keep]

    def at(self, t: float) -> np.ndarray:
        """The displacement at time ``t``: interpolated, or carried on at the recent speed.

        Carried on for ``CARRY_S`` past the last sample, then held: a layer that gives no
        samples for that long has come to rest. Nor further than the samples span: the slope
        of a few samples a frame apart is mostly their noise.
        """
        if not self.t:
            return np.zeros(2)
        m = np.array(self.m)
        if t <= self.t[-1]:
            return np.array([np.interp(t, self.t, m[:, k]) for k in range(2)])
        reach = min(t - self.t[-1], CARRY_S, self.t[-1] - self.t[0])
        return m[-1] + self.velocity() * reach

    def smoothed(self, t: float, n: int = SMOOTH_SAMPLES, outlier_px: float = np.inf) -> np.ndarray:
        """The displacement at ``t`` from a line through the ``n`` samples nearest it.

        A new keyframe takes its place from the curve; one sample's error would carry into
        every sample measured against it, the line's is a fraction of it. Samples further than
        ``outlier_px`` (and 3 robust sigmas) off the line are left out of it: a wild one would
        move the line by a fraction of its error, and every later sample with it.
        """
        if len(self.t) < 3:
            return self.at(t)
        if t > self.t[-1]:
            # past the last sample the line's slope is no measurement: carried on as the
            # curve is (a little, then held), so a layer at rest is not walked on by keyframes
            return self.smoothed(self.t[-1], n, outlier_px) + self.at(t) - self.at(self.t[-1])
        ts = np.asarray(self.t)
        near = np.argsort(np.abs(ts - t))[:n]
        m = np.array(self.m)[near]
        return np.array([_robust_poly(ts[near] - t, m[:, k], 1, outlier_px)[-1] for k in range(2)])

    def curvature(self, t: float, window_s: float) -> np.ndarray:
        """The curve's second derivative (px/s^2) over ``window_s`` up to ``t`` (0 if unknown)."""
        ts = np.asarray(self.t)
        sel = (ts >= t - window_s) & (ts <= t)
        if sel.sum() < 5 or np.ptp(ts[sel]) < 0.5 * window_s:
            return np.zeros(2)
        tc = ts[sel] - t
        m = np.array(self.m)[sel]
        return np.array([2 * np.polyfit(tc, m[:, k], 2)[0] for k in range(2)])

    def velocity(self) -> np.ndarray:
        """The layer's recent speed (px/s): least-squares slope of the last samples."""
        n = min(len(self.t), 6)
        t = np.asarray(self.t[-n:])
        if n < 2 or np.ptp(t) <= 0:
            return np.zeros(2)
        m = np.array(self.m[-n:])
        tc = t - t.mean()
        return (tc @ (m - m.mean(axis=0))) / float(tc @ tc)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Times (s) and vertical displacements (px)."""
        return np.asarray(self.t, float), np.array([m[1] for m in self.m], float)


@dataclass(slots=True)
class _Keyframe:
    """A difference image that later differences (of the same lag) are measured against."""

    time_s: float  # of its newest frame
    t_mid: float  # midway between its two frames (absolute s)
    lag: int
    image: np.ndarray  # uint8 difference, 128 = no change
    mask: np.ndarray  # where both of its frames show the region
    m: np.ndarray  # the layer's displacement (x, y) at its midpoint time
    points: np.ndarray  # (N, 2) features, eye coordinates
    ids: np.ndarray
    # which keyframe's place this one's rests on: its own if placed past the samples (carried
    # on from their slope, it has an error of its own), else that of the one they came from
    placed: int = 0
    misses: int = 0
    measured: int = 0  # samples it gave


class LipidTracker:
    """Follows the layer through difference images in eye coordinates (module docstring)."""

    def __init__(
        self, method: FlowMethod = FlowMethod.LUCAS_KANADE, max_features: int = 150
    ) -> None:
        self.method = FlowMethod(method)
        self.max_features = max_features
        self._next_id = 0
        self.reset()

    def reset(self) -> None:
        """Forget the interval (a blink ended or the stream restarted)."""
        # (time, frame in eye coordinates, region there, smeared by the eye's motion)
        self._frames: deque[tuple[float, np.ndarray, np.ndarray, bool]] = deque(
            maxlen=MAX_LAG_FRAMES + 1
        )
        self._eye = (0.0, 0.0)
        self._t0 = 0.0
        self._until = 0.0
        self._key: _Keyframe | None = None
        self._placed = 0  # the newest keyframe's ``placed``
        self._n_keys = 0
        self._curve = DisplacementCurve()
        self._anchored = False
        self._lag_floor = 1  # raised while short lags show nothing but noise
        self._last_key: tuple[_Keyframe, np.ndarray, np.ndarray] | None = None
        self._crept: np.ndarray | None = None  # a sample at rest that showed a creep, unconfirmed
        # samples refused against the curve's prediction, in a row: (keyframe, t, m, newest)
        self._refused: list[tuple[_Keyframe, float, np.ndarray, float]] = []
        self._model: Callable[[float], float] | None = None

    # -- public -------------------------------------------------------------------------------
    def push(
        self, image: np.ndarray, mask: np.ndarray, eye_xy: tuple[float, float], time_s: float
    ) -> LipidSample:
        """Measure the layer in this frame; ``mask`` is where it may be tracked (image coords)."""
        h, w = image.shape
        self._height = h
        self._window = max(9, int(h * WINDOW_FRACTION) | 1)
        self._step = max(1.5, STEP_FRACTION * h)
        back = np.float32([[1, 0, eye_xy[0]], [0, 1, eye_xy[1]]])  # into eye coordinates
        frame = to_eye(image.astype(np.float32), *eye_xy)
        region = cv2.warpAffine(
            mask, back, (w, h), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP
        )
        if not self._frames:
            self._t0 = time_s
        self._until = time_s - self._t0  # the interval's newest frame
        # a frame the eye moved across is smeared (and refocused, often): the eye's texture
        # in it does not cancel against a sharp frame's
        moved = np.hypot(eye_xy[0] - self._eye[0], eye_xy[1] - self._eye[1])
        smeared = bool(self._frames) and moved > SMEAR_FRACTION * h
        self._eye = eye_xy
        self._frames.append((time_s, frame, region, smeared))
        if len(self._frames) >= 2 and not smeared:
            if self._key is None:
                self._new_keyframe()
            else:
                self._measure()
        return self._sample(time_s, eye_xy)

    def samples(self) -> tuple[np.ndarray, np.ndarray]:
        """The interval's displacement curve: times (s since its first frame) and dy (px).

        Empty until the curve's start is placed (a few frames into the interval).
        """
        if not self._anchored:
            return np.zeros(0), np.zeros(0)
        return self._curve.arrays()

    def held_s(self) -> float:
        """Seconds from the curve's last sample to the newest frame: the layer held at rest."""
        if not self._curve:
            return 0.0
        return max(0.0, self._until - self._curve.t[-1])

    def carry_along(self, model: Callable[[float], float] | None) -> None:
        """Carry the curve past its last sample along ``model`` (px, of s since start).

        Held instead, a creeping layer's displacement would stop short of its travel; the
        spread fit through the measured samples says how much further it goes. The live dy,
        the next keyframe's place and the check of new samples all follow it, and a
        difference's bend is read from it. None holds it.
        """
        self._model = model

    def truncate(self, before_s: float) -> None:
        """Forget what frames from ``before_s`` on showed (they were in a blink after all)."""
        self._curve.truncate(before_s - self._t0)
        self._crept, self._refused = None, []  # samples waiting for confirmation used them too
        open_ = [f[0] - self._t0 for f in self._frames if f[0] < before_s]
        self._until = min(self._until, open_[-1] if open_ else 0.0)

    # -- measuring ----------------------------------------------------------------------------
    def _difference(self, lag: int) -> tuple[np.ndarray, np.ndarray, float] | None:
        """The newest frame minus the one ``lag`` before, as uint8 contrast.

        With the region both frames show and the time midway between them; None if that
        region is too small or the difference flat.
        """
        t1, a, ma, _ = self._frames[-1]
        t0, b, mb, _ = self._frames[-1 - lag]
        both = cv2.bitwise_and(ma, mb)
        sel = both > 0
        if np.count_nonzero(sel) < 64:
            return None
        # an exposure change scales everything, the eye's texture included: undo it first
        gain = float(a[sel].mean()) / max(float(b[sel].mean()), 1e-6)
        diff = a - gain * b
        vals = diff[sel]
        rms = float(vals.std())
        if rms <= 1e-6:
            return None
        alpha = CONTRAST / rms
        image = cv2.convertScaleAbs(diff, alpha=alpha, beta=128.0 - alpha * float(vals.mean()))
        return image, both, 0.5 * (t0 + t1)

    def _new_keyframe(self, lag: int | None = None) -> None:
        """Start measuring against the newest difference, its lag set by the layer's speed.

        The last keyframe's lag is kept while it is still about right: each change of lag
        costs a little accuracy.
        """
        old = self._key
        if old is not None:
            # a keyframe that showed nothing to measure: noise hides the layer's change over
            # this lag, a longer one shows more of it; one that measured well: try shorter
            if not old.measured and old.misses:
                self._lag_floor = min(2 * old.lag, self._max_lag(MAX_QUIET_LAG_S))
            elif old.measured >= 3:
                self._lag_floor = max(1, self._lag_floor // 2)
        if lag is None:
            lag = self._choose_lag()
            if old is not None and _lag_fits(old.lag, lag):
                lag = min(old.lag, len(self._frames) - 1)
        while lag > 1 and self._frames[-1 - lag][3]:
            lag -= 1  # not from a smeared frame
        diff = None if self._frames[-1 - lag][3] else self._difference(lag)
        if diff is None:
            self._key = None
            return
        image, region, t_mid = diff
        points = self._features(image, region)
        ids = np.arange(self._next_id, self._next_id + len(points), dtype=np.int64)
        self._next_id += len(points)
        half = 0.5 * (self._frames[-1][0] - self._frames[-1 - lag][0])
        # past the last sample the line's slope is no measurement: the curve carries on there
        t = t_mid - self._t0
        inside = min(t, self._curve.t[-1]) if self._curve else t
        m = (
            self._curve.smoothed(inside, outlier_px=self._outlier_px())
            + self._at(t)
            - self._at(inside)
            + self._bend(t_mid, half)
        )
        self._n_keys += 1
        if not self._curve or t > self._curve.t[-1]:
            self._placed = self._n_keys
        self._key = _Keyframe(
            self._frames[-1][0], t_mid, lag, image, region, m, points, ids, self._placed
        )

    def _choose_lag(self) -> int:
        """Frames between a difference's two images so that the layer moves about a step."""
        if not self._curve:
            return self._lag_floor  # the layer spreads fastest just after a blink
        speed = float(np.hypot(*self._curve.velocity()))
        lag = int(np.ceil(self._step / max(speed * self._frame_interval(), 1e-6)))
        lag = min(lag, self._max_lag(MAX_LAG_S))
        return int(np.clip(max(lag, self._lag_floor), 1, self._max_lag(MAX_QUIET_LAG_S)))

    def _max_lag(self, longest_s: float) -> int:
        """The longest lag up to ``longest_s`` that the frames kept allow."""
        return int(
            max(1, min(MAX_LAG_FRAMES, longest_s / self._frame_interval(), len(self._frames) - 1))
        )

    def _resting(self) -> bool:
        """Whether the layer is nearly at rest: it would move under half a step in a while.

        Both the last samples' slope and the spread fit (once trusted) must say so: the slope
        dips by chance, and a layer once called resting gives no samples to raise it again.
        """
        speed = float(np.hypot(*self._curve.velocity()))
        if self._model is not None:
            fitted = abs(self._model(self._until + 0.05) - self._model(self._until - 0.05)) / 0.1
            speed = max(speed, fitted)
        return len(self._curve) >= ANCHOR_SAMPLES and speed * KEYFRAME_REST_S < 0.5 * self._step

    def _measure(self) -> None:
        key = self._key
        assert key is not None
        if key.lag < len(self._frames) and self._frames[-1 - key.lag][3]:
            return  # the difference would start on a smeared frame
        diff = self._difference(key.lag) if key.lag < len(self._frames) else None
        if diff is None:
            self._new_keyframe()
            return
        image, region, t_mid = diff
        guess = self._at(t_mid - self._t0) - key.m
        if np.hypot(*guess) < self._step:
            # small moves are within reach from where the keyframe was; starting from the
            # prediction would let features on a pattern at rest follow the prediction away
            guess = np.zeros(2)
        shifts, ok = self._shifts(key, image, region, guess)
        measured = resting = False
        spread, error = _spread(shifts[ok])
        both = key.mask & region
        if error <= MEDIAN_ERROR_PX:
            dy, keep = robust_median(shifts[ok, 1])
            shift = np.array([float(np.median(shifts[ok, 0][keep])), dy])
            likeness = _likeness(key.image, image, both, shift)
            # a layer nearly at rest: its own slow changes (thinning, a pattern that evolves)
            # then dominate the differences and move the features every which way, their
            # median with them; wait (on the same keyframe) until the layer has moved clearly
            resting = likeness >= MIN_LIKENESS and (
                likeness - _likeness(key.image, image, both, np.zeros(2)) < MIN_GAIN
                or float(np.hypot(*shift)) < spread
            )
            if likeness >= MIN_LIKENESS and not resting:
                if not self._curve:  # the interval's first measurement
                    self._place_first(key, t_mid, shift)
                    measured = True
                else:
                    half = 0.5 * (self._frames[-1][0] - self._frames[-1 - key.lag][0])
                    m = key.m + shift - self._bend(t_mid, half)
                    newest = self._frames[-1][0] - self._t0
                    if self._plausible(t_mid, key.m + shift):
                        self._refused.clear()
                        self._curve.add(t_mid - self._t0, m, newest, key.placed)
                        measured = True
                    else:
                        measured = self._take_refused(key, t_mid - self._t0, m, newest)
        if measured:
            self._last_key = (key, shifts, ok)
            if not self._anchored and len(self._curve) >= ANCHOR_SAMPLES:
                self._anchor()
        key.misses = 0 if measured or resting else key.misses + 1
        key.measured += measured
        if self._keyframe_done(key, ok, measured or resting):
            self._new_keyframe()

    def _at(self, t: float) -> np.ndarray:
        """The layer's displacement at ``t`` (s since the start) by the curve.

        Past the curve's last sample it follows the spread fit once that is trusted
        (``carry_along``), not the last samples' slope: a layer at rest is not walked on by
        keyframes placed there, a creeping one is followed.
        """
        now = self._curve.at(t)
        if self._model is not None and self._curve and t > self._curve.t[-1]:
            last = self._curve.t[-1]
            now[1] = self._curve.m[-1][1] + self._model(t) - self._model(last)
        return now

    def _bend(self, t_mid: float, half_s: float) -> np.ndarray:
        """How far a difference's midpoint lies off the curve at its midpoint time.

        The curve holds the layer's places, a difference the mean of two: the curve bends as
        the layer slows, and that mean lies d''*h^2/2 off it for frames h either side.
        """
        t = t_mid - self._t0
        curvature = self._curve.curvature(t, max(0.3, 2 * half_s))
        if self._model is not None:
            # a parabola through the last samples bends as their middle does, a quarter more
            # than the newest on a layer slowing over a second; the fit bends where asked
            e = 0.05
            curvature[1] = (self._model(t + e) - 2 * self._model(t) + self._model(t - e)) / e**2
        bend = 0.5 * half_s**2 * curvature
        # a layer nearly at rest gives few, noisy samples: the correction stays a correction
        return np.clip(bend, -BEND_MAX * self._step, BEND_MAX * self._step)

    def _plausible(self, t_mid: float, m: np.ndarray) -> bool:
        """A sample near the curve's prediction (the layer moves smoothly).

        Not a pure check: at rest it remembers a sample that shows a creep, which the next
        sample must confirm.
        """
        if len(self._curve) < 3:
            return True
        pred = self._at(t_mid - self._t0)
        off = float(np.hypot(*(m - pred)))
        gate = max(1.0, GATE_FRACTION * self._height) + 0.5 * self._step
        crept, self._crept = self._crept, None
        if not self._resting():
            return off <= gate
        # at rest the film's own slow changes masquerade as small moves: hold the curve, but
        # "at rest" is slower than half a step in KEYFRAME_REST_S, not still: a layer creeping
        # on at that speed is taken up again once it has measurably moved (held still, a
        # 7.9 px travel was measured as half of it). Two samples in a row must show the
        # creep: one alone, from a keyframe with few features left, moved a layer at rest
        # by 1.6 px for good (classic seed 9502)
        rest = REST_GATE_FRACTION * self._step
        since = max(0.0, t_mid - self._t0 - self._curve.t[-1])
        creep = 0.5 * self._step / KEYFRAME_REST_S * since
        if off <= rest:
            return True
        if off > min(gate, rest + creep):
            return False
        self._crept = m
        return crept is not None and float(np.hypot(*(m - crept))) <= OUTLIER_STEPS * self._step

    def _take_refused(self, key: _Keyframe, t: float, m: np.ndarray, newest: float) -> bool:
        """Keep a sample refused as implausible; take it and those before it if they agree.

        Refused samples in a row, from one keyframe and on the line through each other, say
        the curve's prediction was off, not they: after the smeared frames of a saccade just
        after a blink the curve, carried on no further than its few samples span, fell behind
        a layer moving 6 px a frame, three such samples were refused and the keyframe placed
        at the stale prediction lost 28 px of a 216 px travel (closures seed 10301). A layer
        at rest keeps its gate: there the film's own changes agree with themselves too.
        """
        if self._resting() or (self._refused and self._refused[-1][0] is not key):
            self._refused.clear()
            return False
        self._refused.append((key, t, m, newest))
        if len(self._refused) < CONFIRM_SAMPLES:
            return False
        ts = np.array([r[1] for r in self._refused])
        ms = np.array([r[2] for r in self._refused])
        if not _on_a_line(ts, ms, OUTLIER_STEPS * self._step):
            self._refused.pop(0)
            return False
        for refused_key, tk, mk, nk in self._refused:
            self._curve.add(tk, mk, nk, refused_key.placed)
        self._refused.clear()
        return True

    def _keyframe_done(self, key: _Keyframe, ok: np.ndarray, working: bool) -> bool:
        """Whether to start a new keyframe: old, far, failing, short of features, wrong lag.

        A slow layer keeps its keyframe longer, until it has moved measurably from it.
        """
        now = self._frames[-1][0]
        travelled = float(np.hypot(*(self._at(now - self._t0) - key.m)))
        # the layer slows: a longer lag would show it moving a step again
        wrong_lag = len(self._curve) >= ANCHOR_SAMPLES and not _lag_fits(
            key.lag, self._choose_lag()
        )
        slow = float(np.hypot(*self._curve.velocity())) * KEYFRAME_S < self._step
        return (
            key.misses >= MAX_MISSES
            or now - key.time_s > (KEYFRAME_REST_S if slow else KEYFRAME_S)
            or travelled > KEYFRAME_TRAVEL * self._height
            or (ok.sum() < 0.5 * len(ok) and not working)
            or wrong_lag
        )

    def _shifts(
        self, key: _Keyframe, image: np.ndarray, region: np.ndarray, guess: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each feature's shift from the keyframe into ``image``, and which are trustworthy."""
        pts = key.points
        if not len(pts):
            return np.zeros((0, 2)), np.zeros(0, bool)
        if self.method is FlowMethod.FARNEBACK:
            flow = cv2.calcOpticalFlowFarneback(key.image, image, None, 0.5, 2, 15, 3, 5, 1.1, 0)
            xi, yi = np.round(pts[:, 0]).astype(int), np.round(pts[:, 1]).astype(int)
            shifts = flow[yi, xi].astype(np.float64)
        elif self.method is FlowMethod.SSD:
            shifts = _ssd_shifts(key.image, image, pts, guess, self._window)
        else:
            shifts = _lk_shifts(key.image, image, pts, guess, self._window)
        h, w = image.shape
        to = pts + np.nan_to_num(shifts).astype(np.float32)
        xi = np.clip(to[:, 0], 0, w - 1).astype(int)
        yi = np.clip(to[:, 1], 0, h - 1).astype(int)
        ok = np.isfinite(shifts).all(axis=1) & (region[yi, xi] > 0)
        return shifts, ok

    def _features(self, image: np.ndarray, region: np.ndarray) -> np.ndarray:
        """Where the keyframe's difference has texture to measure, inside its region."""
        spacing = max(4, self._window // 2 - 2)
        if self.method is not FlowMethod.LUCAS_KANADE:  # dense methods: an even grid
            ys, xs = np.nonzero(region[spacing // 2 :: spacing, spacing // 2 :: spacing])
            pts = (np.column_stack([xs, ys]) * spacing + spacing // 2).astype(np.float32)
            return pts[:: max(1, len(pts) // self.max_features)][: self.max_features]
        inner = cv2.erode(region, np.ones((3, 3), np.uint8), iterations=max(1, self._window // 4))
        found = cv2.goodFeaturesToTrack(
            image,
            self.max_features,
            qualityLevel=0.01,
            minDistance=spacing,
            mask=inner,
            blockSize=7,
        )
        return np.zeros((0, 2), np.float32) if found is None else found.reshape(-1, 2)

    # -- the curve's start --------------------------------------------------------------------
    def _place_first(self, key: _Keyframe, t_mid: float, shift: np.ndarray) -> None:
        """Place the interval's first difference from its first measurement, for now.

        The layer starts at 0 in the interval's first frame and moves on at about the speed the
        first measurement shows, so the first difference's midpoint lies that speed times its
        time since the first frame along. ``_anchor`` refines this from more samples.
        """
        speed = shift / max(t_mid - key.t_mid, 1e-9)
        key.m = speed * (key.t_mid - self._t0)
        self._curve.add(key.t_mid - self._t0, key.m, key.time_s - self._t0, key.placed)
        self._curve.add(
            t_mid - self._t0, key.m + shift, self._frames[-1][0] - self._t0, key.placed
        )

    def _anchor(self) -> None:
        """Place the first samples so that the curve through them starts at 0.

        The first keyframe's samples share its unknown place. A keyframe placed past the last
        sample was carried on from the samples' slope no further than they span (a few samples
        a frame apart give a poor one): where the first samples failed for a few frames, while
        the layer moves fastest, it was placed that many frames' travel short (6 px of a 172 px
        travel at 30 frames/s, on another renderer's stream). One quadratic through all of
        them, with an offset for each such keyframe and those placed from its samples, puts
        them on one curve, which, carried back to the interval's first frame, must give 0.
        """
        t = np.asarray(self._curve.t)
        m = np.array(self._curve.m)
        keys, segment = np.unique(np.asarray(self._curve.key), return_inverse=True)
        if t.size < len(keys) + 4:  # too few samples for an offset per keyframe
            segment = np.zeros(t.size, np.int64)
        starts = np.stack(
            [_segment_starts(t, m[:, k], segment, self._outlier_px()) for k in range(2)], 1
        )
        self._curve.m = [mk - starts[j] for mk, j in zip(self._curve.m, segment, strict=True)]
        if self._key is not None:  # placed from the newest samples
            own = np.flatnonzero(keys == self._key.placed)
            self._key.m = self._key.m - starts[own[0] if len(own) else segment[-1]]
        self._anchored = True

    def _outlier_px(self) -> float:
        """How far off the line through its neighbours a sample must be to be left out of it."""
        return OUTLIER_STEPS * self._step

    # -- output -------------------------------------------------------------------------------
    def _frame_interval(self) -> float:
        if len(self._frames) < 2:
            return 1.0
        span = self._frames[-1][0] - self._frames[0][0]
        return max(span / (len(self._frames) - 1), 1e-6)

    def _sample(self, time_s: float, eye_xy: tuple[float, float]) -> LipidSample:
        now = self._at(time_s - self._t0)
        if self._last_key is None or self._last_key[0] is not self._key:
            empty = np.zeros((0, 2), np.float32)
            return LipidSample(
                float(now[0]),
                float(now[1]),
                empty,
                np.zeros(0, np.int64),
                np.zeros(0, np.float32),
            )
        key, shifts, ok = self._last_key
        pts = (key.points[ok] + shifts[ok].astype(np.float32)) + np.float32(eye_xy)
        dy = (key.m[1] + shifts[ok, 1]).astype(np.float32)
        return LipidSample(float(now[0]), float(now[1]), pts, key.ids[ok], dy)


def to_eye(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``image`` in eye coordinates: the pixel at (x, y) is the image's at (x + dx, y + dy).

    Moved with a windowed sinc (Lanczos, 8 taps), not bilinear interpolation: that blurs an
    image by an amount that depends on the shift's fraction of a pixel, so an eye drifting
    steadily leaves its texture, sharper in one frame than the next, in every difference; on
    a slow layer those ghosts outweighed the film and the samples stalled.
    """
    ix, iy = int(np.floor(dx)), int(np.floor(dy))
    moved = cv2.sepFilter2D(
        image,
        -1,
        _lanczos_taps(dx - ix),
        _lanczos_taps(dy - iy),
        anchor=(LANCZOS_A - 1, LANCZOS_A - 1),
        borderType=cv2.BORDER_REPLICATE,
    )
    if ix == 0 and iy == 0:
        return moved
    h, w = image.shape[:2]
    whole = np.float32([[1, 0, ix], [0, 1, iy]])
    return cv2.warpAffine(
        moved,
        whole,
        (w, h),
        flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )


def _lanczos_taps(frac: float) -> np.ndarray:
    """Weights of the pixels at offsets 1-A .. A for a sample ``frac`` of a pixel along."""
    k = np.arange(1 - LANCZOS_A, LANCZOS_A + 1) - frac
    taps = np.sinc(k) * np.sinc(k / LANCZOS_A)
    return (taps / taps.sum()).astype(np.float32)


def _lag_fits(lag: int, wanted: int) -> bool:
    """Whether a keyframe's ``lag`` is close enough to the ``wanted`` one to keep.

    One rule for keeping a keyframe and for keeping the lag of its successor. With two that
    disagreed at the edge (9 frames too long when 6 were wanted, yet kept for the next), a
    keyframe was replaced by one of the same lag in every frame and, a frame old each time,
    never saw the layer move again.
    """
    return LAG_RANGE[0] * lag <= wanted <= LAG_RANGE[1] * lag


def _on_a_line(t: np.ndarray, m: np.ndarray, within_px: float) -> bool:
    """Whether the displacements ``m`` (n, 2) at times ``t`` lie on a line through them."""
    if np.ptp(t) <= 0:
        return False
    line = np.column_stack([np.polyval(np.polyfit(t, m[:, k], 1), t) for k in range(2)])
    return float(np.hypot(*(m - line).T).max()) <= within_px


def _robust_poly(t: np.ndarray, y: np.ndarray, degree: int, outlier_px: float) -> np.ndarray:
    """``np.polyfit`` coefficients, refitted without samples far off the first fit.

    Far: beyond both ``outlier_px`` and 3 robust sigmas of the residuals. The constant term,
    last, is the value at ``t = 0``.
    """
    if t.size <= degree or np.ptp(t) <= 0:
        return np.r_[np.zeros(degree), y.mean()]
    coef = np.polyfit(t, y, degree)
    residual = np.abs(y - np.polyval(coef, t))
    keep = residual <= max(outlier_px, 3 * 1.4826 * float(np.median(residual)))
    if not keep.all() and keep.sum() > degree + 1 and np.ptp(t[keep]) > 0:
        coef = np.polyfit(t[keep], y[keep], degree)
    return coef


def _segment_starts(
    t: np.ndarray, y: np.ndarray, segment: np.ndarray, outlier_px: float
) -> np.ndarray:
    """Per segment, where one quadratic through all of ``y`` (each segment offset) is at t=0.

    Samples far off the first fit (``_robust_poly``'s rule) are left out of the second.
    """
    n_seg = int(segment.max()) + 1
    design = np.column_stack([t**2, t, np.eye(n_seg)[segment]])
    coef = np.linalg.lstsq(design, y, rcond=None)[0]
    residual = np.abs(y - design @ coef)
    keep = residual <= max(outlier_px, 3 * 1.4826 * float(np.median(residual)))
    if not keep.all() and np.linalg.matrix_rank(design[keep]) == design.shape[1]:
        coef = np.linalg.lstsq(design[keep], y[keep], rcond=None)[0]
    return coef[2:]


def _spread(shifts: np.ndarray) -> tuple[float, float]:
    """The features' robust spread (px) and the standard error of their median shift.

    Both infinite with too few features.
    """
    if len(shifts) < MIN_FEATURES:
        return np.inf, np.inf
    spread = float(np.hypot(*(1.4826 * np.median(np.abs(shifts - np.median(shifts, axis=0)), 0))))
    return spread, 1.2533 * spread / np.sqrt(len(shifts))


def _likeness(ref: np.ndarray, cur: np.ndarray, mask: np.ndarray, shift: np.ndarray) -> float:
    """How well ``cur`` moved back by ``shift`` correlates with ``ref`` over ``mask``.

    The layer's pattern does, noise does not (features on noise stay near where they were
    told to start).
    """
    h, w = cur.shape
    back = np.float32([[1, 0, shift[0]], [0, 1, shift[1]]])
    moved = cv2.warpAffine(cur, back, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    sel = mask > 0
    a = ref[sel].astype(np.float32) - 128.0
    b = moved[sel].astype(np.float32) - 128.0
    denom = float(np.sqrt((a @ a) * (b @ b)))
    return float(a @ b) / denom if denom > 0 else 0.0


def _lk_shifts(
    ref: np.ndarray, cur: np.ndarray, pts: np.ndarray, guess: np.ndarray, window: int
) -> np.ndarray:
    """Pyramidal Lucas-Kanade from ``pts`` in ``ref`` into ``cur``, checked backwards."""
    lk = {"winSize": (window, window), "maxLevel": LK_LEVELS, "criteria": LK_CRITERIA}
    start = (pts + guess.astype(np.float32)).reshape(-1, 1, 2)
    flags = cv2.OPTFLOW_USE_INITIAL_FLOW
    nxt, st, _ = cv2.calcOpticalFlowPyrLK(
        ref, cur, pts.reshape(-1, 1, 2), start.copy(), flags=flags, **lk
    )
    back, st2, _ = cv2.calcOpticalFlowPyrLK(
        cur, ref, nxt, pts.reshape(-1, 1, 2).copy(), flags=flags, **lk
    )
    fb = np.linalg.norm((back - pts.reshape(-1, 1, 2)).reshape(-1, 2), axis=1)
    shifts = (nxt.reshape(-1, 2) - pts).astype(np.float64)
    shifts[~((st.ravel() == 1) & (st2.ravel() == 1) & (fb < FB_MAX_PX))] = np.nan
    return shifts


def _ssd_shifts(
    ref: np.ndarray, cur: np.ndarray, pts: np.ndarray, guess: np.ndarray, window: int
) -> np.ndarray:
    """Template matching (normalised squared differences) of patches around ``pts``."""
    h, w = cur.shape
    p, s = window // 2, max(4, window // 3)
    gx, gy = np.round(guess).astype(int)
    out = np.full((len(pts), 2), np.nan)
    for k, (cx, cy) in enumerate(np.round(pts).astype(int)):
        sx, sy = cx + gx, cy + gy
        inside = p <= cx < w - p and p <= cy < h - p
        if not (inside and p + s <= sx < w - p - s and p + s <= sy < h - p - s):
            continue
        tmpl = ref[cy - p : cy + p + 1, cx - p : cx + p + 1]
        win = cur[sy - p - s : sy + p + s + 1, sx - p - s : sx + p + s + 1]
        res = cv2.matchTemplate(win, tmpl, cv2.TM_SQDIFF_NORMED)
        _, _, (mx, my), _ = cv2.minMaxLoc(res)
        fx, fy = _subpixel(res, mx, my)
        out[k] = (fx - s + gx, fy - s + gy)
    return out


def _subpixel(res: np.ndarray, x: int, y: int) -> tuple[float, float]:
    """Parabolic refinement of a minimum of a matching cost surface."""

    def vertex(a: float, b: float, c: float) -> float:
        d = a - 2 * b + c
        return 0.0 if abs(d) < 1e-9 else float(np.clip(0.5 * (a - c) / d, -0.5, 0.5))

    h, w = res.shape
    fx = vertex(res[y, x - 1], res[y, x], res[y, x + 1]) if 0 < x < w - 1 else 0.0
    fy = vertex(res[y - 1, x], res[y, x], res[y + 1, x]) if 0 < y < h - 1 else 0.0
    return x + fx, y + fy
