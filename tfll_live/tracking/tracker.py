"""The incremental tracker: one frame in, one FrameResult out, causally, at camera rate."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from tfll_live.kinetics import analyze_spread
from tfll_live.thickness import (
    Calibration,
    ThicknessEstimator,
    ThicknessUnavailable,
    thickness_summary,
)

from .anatomy import PupilRefiner, find_lower_lid
from .blink import BlinkDetector
from .config import TrackerConfig
from .enhance import Enhancer
from .frame import Luminance, bad_frame_reason, check_frame
from .lipid import LipidSample, LipidTracker
from .presence import EyePresence
from .results import Blink, Circle, EyeState, FrameResult, Interval, LidCurve, Summary
from .spread import SpreadFitter
from .stabilize import Stabilizer

IRIS_EVERY = 15  # frames between iris-margin refits; in between it moves with the eye
WORK_HEIGHT_PX = 240  # the low-passed pattern (sigma = height/160) holds no finer detail
HISTORY = 8  # recent frames kept so an interval can start at its true first open frame
CLEARANCE = 0.025  # of the frame height: keeps features off eye-fixed edges (lid, iris margin)


@dataclass(slots=True)
class _Recent:
    """A recent frame as the lipid tracker needs it."""

    index: int
    time_s: float
    enhanced: np.ndarray
    eye_xy: tuple[float, float]
    eye_seen: bool  # False: the pupil was not measured (under the lid), eye_xy is the last known
    mask: np.ndarray | None


class Tracker:
    """Composes the paper's stages; the only tracking object the loop and the GUI know.

    ``push(frame, t)`` takes mono (Y, X) or RGB (Y, X, 3) uint8/uint16 frames (float frames
    are accepted if finite) with their time in seconds; ``finish()`` closes the open interval
    and returns the whole stream's ``Summary``; ``reset()`` forgets everything.
    """

    # per-stream state, (re)set by ``_restart``
    _t0: float | None
    _shape: tuple[int, ...] | None
    _interval_start: int | None
    _work: float | None
    _interval_thickness: list[float]
    _last_thickness: float | None
    _blink_start: int | None
    _lid_last: LidCurve | None
    _iris_rest: Circle | None
    _recent: deque[_Recent]
    _last_t: float
    _thickness_age: int
    _iris_age: int
    _open_ok: bool

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        cfg = self.config
        self._luminance = Luminance()
        self._stabilizer = Stabilizer()
        self._blinks_detector = BlinkDetector(cfg.blink_z_on, cfg.blink_z_off)
        self._enhancer = Enhancer(cfg.enhancement)
        self._lipid = LipidTracker(cfg.flow, cfg.max_features)
        self._fitter = SpreadFitter(cfg.fit_every, cfg.min_fit_s)
        self._iris_refiner = PupilRefiner(innermost=False)
        calibration = (
            Calibration.load(cfg.thickness_calibration) if cfg.thickness_calibration else None
        )
        self._calibration = calibration
        self._thickness = ThicknessEstimator(calibration=calibration)
        self._presence = EyePresence()
        self.reset()

    # -- public API ---------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the stream (new camera, new session)."""
        self._frame = 0
        self._blinks: list[Blink] = []
        self._intervals: list[Interval] = []
        # a histogram (1 nm bins), not a list: memory stays flat over a session of any length
        self._session_thickness = np.zeros(1024, np.int64)
        self._no_thickness: str | None = None if self.config.thickness else "turned off"
        self._thickness.reset()
        self._presence.reset()
        self._restart()

    def summary(self) -> Summary:
        """Blinks and intervals closed so far (the open interval is not included)."""
        return Summary(tuple(self._blinks), tuple(self._intervals), self._thickness_json())

    def finish(self) -> Summary:
        """End of stream: close the open interval (final fit) or blink, return the summary."""
        last = self._frame - 1
        if self._interval_start is not None:
            self._close_interval(last)
        elif self._blinks_detector.blinking and self._blink_start is not None:
            self._blinks.append(Blink(self._blink_start, last, True))
            self._blink_start = None
        return self.summary()

    def gap(self, t: float, reason: str) -> FrameResult:
        """Account for a frame the stream lost (missing or damaged in its file) at time ``t``.

        The frame keeps its number, so later frames keep theirs, and tracking starts over
        after it as after a bad frame: nothing is measured across a hole in the data.
        """
        i = self._frame
        self._frame += 1
        if self._t0 is None:
            self._t0 = float(t)
        return self._reset_mid_stream(i, float(t) - self._t0, reason, self._shape or ())

    def push(self, frame: np.ndarray, t: float) -> FrameResult:
        """Track one frame taken at time ``t`` (seconds, any origin, increasing)."""
        check_frame(frame)
        i = self._frame
        self._frame += 1
        if self._t0 is None:
            self._t0 = float(t)
        time_s = float(t) - self._t0
        reason = None
        if self._shape is not None and frame.shape != self._shape:
            reason = f"frame size changed from {self._shape} to {frame.shape}"
        elif time_s < self._last_t:
            reason = f"frame time went back from {self._last_t:.3f} s to {time_s:.3f} s"
        self._last_t = time_s
        bad = bad_frame_reason(frame, None)
        gray = None if bad else self._luminance(frame)
        bad = bad or bad_frame_reason(frame, gray)
        if reason or bad:
            return self._reset_mid_stream(i, time_s, reason or bad or "", frame.shape)
        self._shape = frame.shape
        assert gray is not None
        if not self._presence.in_view:  # no eye: only look for one, now and then
            found = self._presence.search(gray, time_s)
            if found is None:
                return FrameResult(i, time_s, EyeState.NO_EYE, -1, float("nan"), float("nan"))
            self._stabilizer.seed(found)
        try:
            result = self._track(i, time_s, frame, gray, gray)
        except (cv2.error, np.linalg.LinAlgError) as e:  # a numerical dead end: start over
            first_line = str(e).strip().splitlines()[0] if str(e).strip() else ""
            return self._reset_mid_stream(
                i, time_s, f"tracking failed ({type(e).__name__}: {first_line})", frame.shape
            )
        blinking = self._blinks_detector.blinking
        if not self._presence.still_in_view(gray, result.pupil, time_s, blinking):
            return self._lose_eye(i, time_s)
        return result

    # -- internals ----------------------------------------------------------------------------
    def _restart(self) -> None:
        """Reset every stage; keeps the frame count and the closed blinks and intervals."""
        self._t0 = None
        self._last_t = float("-inf")
        self._shape = None
        for stage in (
            self._luminance,
            self._stabilizer,
            self._blinks_detector,
            self._enhancer,
            self._lipid,
            self._fitter,
        ):
            stage.reset()
        self._interval_start = None
        self._work = None  # lipid tracking scale, fixed on the first frame
        self._interval_thickness = []
        self._thickness_age = 0
        self._last_thickness = None
        self._blink_start = None
        self._lid_last = None
        self._iris_rest = None
        self._iris_age = IRIS_EVERY
        self._recent = deque(maxlen=HISTORY)
        self._open_ok = True  # a stream starts open unless the detector says otherwise

    def _reset_mid_stream(
        self, i: int, time_s: float, reason: str, shape: tuple[int, ...]
    ) -> FrameResult:
        ended = self._close_interval(i - 1) if self._interval_start is not None else None
        t0 = self._t0
        self._restart()
        self._t0 = t0  # times stay relative to the stream's first frame
        return FrameResult(
            i,
            time_s,
            EyeState.BLINK,
            -1,
            float("nan"),
            float("nan"),
            interval_ended=ended,
            reset_reason=reason,
        )

    def _lose_eye(self, i: int, time_s: float) -> FrameResult:
        """No eye in view any more: close what was open, start over once one is found."""
        ended = self._close_interval(i - 1) if self._interval_start is not None else None
        t0 = self._t0
        self._restart()
        self._t0 = t0  # times stay relative to the stream's first frame
        return FrameResult(
            i, time_s, EyeState.NO_EYE, -1, float("nan"), float("nan"), interval_ended=ended
        )

    def _track(
        self, i: int, time_s: float, frame: np.ndarray, gray: np.ndarray, pattern: np.ndarray
    ) -> FrameResult:
        # the pupil is not followed under the lid (a half-covered margin fits badly)
        blinking = self._blinks_detector.blinking
        motion = self._stabilizer.push(gray, hold=blinking)
        eye = (motion.dx_px, motion.dy_px)
        lid = self._lid(gray, motion.pupil)
        iris = self._iris(gray, motion.pupil, eye)
        clearance = max(3.0, CLEARANCE * gray.shape[0])
        rows = _region_rows(motion.pupil, lid, clearance)
        seen = motion.pupil is not None or not self._stabilizer.has_reference
        event = self._blinks_detector.push(i, gray, *eye, rows, eye_seen=seen)
        if blinking and not event.blinking:  # the eye just opened: find it again in this frame
            motion = self._stabilizer.push(gray)
            eye = (motion.dx_px, motion.dy_px)
            self._blinks_detector.rebase(gray, *eye)  # it may have moved under the lid
            lid = self._lid(gray, motion.pupil)
            iris = self._iris(gray, motion.pupil, eye)
        mask = _region_mask(gray.shape, motion.pupil, lid, iris)
        enhanced = self._enhancer.push(self._to_work(pattern, cv2.INTER_AREA))
        work_mask = None if mask is None else self._to_work(mask, cv2.INTER_NEAREST)
        self._recent.append(_Recent(i, time_s, enhanced, eye, motion.pupil is not None, work_mask))
        ended_interval = None
        if event.started is not None:
            self._blink_start = event.started
            self._open_ok = False
            if self._interval_start is not None:
                ended_interval = self._close_interval(event.started - 1)
        ended_blink = None
        if event.ended is not None:
            start, end, complete = event.ended
            ended_blink = Blink(start, end, complete)
            self._blinks.append(ended_blink)
            self._blink_start = None
            self._enhancer.reset()
            self._start_interval(end + 1)
        elif self._interval_start is None and not event.blinking and self._open_ok:
            self._start_interval(i)  # the stream (or a restart) begins with the eye open
        if event.blinking or self._interval_start is None:
            return FrameResult(
                i,
                time_s,
                EyeState.BLINK,
                -1,
                *eye,
                pupil=motion.pupil,
                lid=lid,
                blink_ended=ended_blink,
                interval_ended=ended_interval,
            )
        if mask is None:
            return FrameResult(
                i,
                time_s,
                EyeState.OPEN,
                len(self._intervals),
                *eye,
                pupil=motion.pupil,
                lid=lid,
                blink_ended=ended_blink,
                interval_ended=ended_interval,
            )
        assert work_mask is not None  # the region is known (mask is not None)
        sample = self._push_lipid(self._recent[-1])
        fit = self._fitter.update(*self._lipid_curve())
        thickness = self._estimate_thickness(frame, mask, iris)
        return FrameResult(
            i,
            time_s,
            EyeState.OPEN,
            len(self._intervals),
            *eye,
            lipid_dx_px=sample.dx_px,
            lipid_dy_px=sample.dy_px,
            n_tracked=len(sample.points),
            points=sample.points,
            point_ids=sample.ids,
            point_dy_px=sample.point_dy_px,
            pupil=motion.pupil,
            lid=lid,
            fit=fit,
            lipid_thickness_nm=thickness,
            blink_ended=ended_blink,
            interval_ended=ended_interval,
        )

    def _to_work(self, image: np.ndarray, interpolation: int) -> np.ndarray:
        """``image`` at the lipid tracker's working scale."""
        if self._work is None:
            self._work = min(1.0, WORK_HEIGHT_PX / image.shape[0])
        if self._work == 1.0:
            return image
        return cv2.resize(image, None, fx=self._work, fy=self._work, interpolation=interpolation)

    def _push_lipid(self, recent: _Recent) -> LipidSample:
        """Track the layer at the working scale; the sample comes back in image pixels."""
        k = self._work or 1.0
        assert recent.mask is not None
        eye = (recent.eye_xy[0] * k, recent.eye_xy[1] * k)
        fit = self._fitter.fit
        self._lipid.carry_along(
            (lambda t: k * float(fit.predict(t))) if fit is not None and fit.supported else None
        )
        sample = self._lipid.push(recent.enhanced, recent.mask, eye, recent.time_s)
        return LipidSample(
            sample.dx_px / k,
            sample.dy_px / k,
            sample.points / k,
            sample.ids,
            sample.point_dy_px / k,
        )

    def _lipid_curve(self) -> tuple[np.ndarray, np.ndarray]:
        """The interval's measured displacement curve (s since its start, image px)."""
        t, dy = self._lipid.samples()
        return t, dy / (self._work or 1.0)

    def _start_interval(self, first: int) -> None:
        """Open an interval at frame ``first``, replaying the kept frames since then."""
        self._interval_start = first
        self._fitter.reset()
        self._lipid.reset()
        self._interval_thickness = []
        self._thickness_age = 0
        self._last_thickness = None
        kept = [r for r in self._recent if r.index >= first]
        # the pupil is not followed during a blink, so the first open frames have no region
        # and only the eye position from before the blink (the eye often moves under the lid):
        # the newest measured ones stand in (the eye barely moves in a few frames)
        latest = next((r.mask for r in reversed(self._recent) if r.mask is not None), None)
        seen = next((r.eye_xy for r in reversed(self._recent) if r.eye_seen), None)
        for r in kept:
            r.mask = r.mask if r.mask is not None else latest
            if not r.eye_seen and seen is not None:
                r.eye_xy = seen
        kept = [r for r in kept if r.mask is not None]
        for r in kept[:-1]:  # the newest frame is pushed by the caller
            self._push_lipid(r)
            self._fitter.update(*self._lipid_curve())

    def _close_interval(self, last: int) -> Interval:
        """Close the open interval at frame ``last`` with its final fit."""
        assert self._interval_start is not None
        # drop the measurements that used frames now known to be in the blink
        blinked = [r.time_s for r in self._recent if r.index > last]
        if blinked:
            self._lipid.truncate(min(blinked))
        t, dy = self._lipid_curve()
        kinetics = (
            analyze_spread(t, dy, held_s=self._lipid.held_s())
            if t.size >= 6 and np.ptp(t) >= self.config.min_fit_s
            else None
        )
        interval = Interval(
            len(self._intervals),
            self._interval_start,
            max(last, self._interval_start),
            self._fitter.finish(t, dy),
            kinetics=kinetics,
            thickness=thickness_summary(self._interval_thickness),
        )
        self._intervals.append(interval)
        self._interval_start = None
        return interval

    def _estimate_thickness(
        self, frame: np.ndarray, mask: np.ndarray, iris: Circle | None
    ) -> float | None:
        """Lipid thickness over the tracked region, every few frames (it changes slowly)."""
        if self._no_thickness is not None:
            return None
        self._thickness_age -= 1
        if self._thickness_age > 0:
            return self._last_thickness
        self._thickness_age = self.config.thickness_every
        ys, xs = np.nonzero(mask[::2, ::2])
        ys, xs = ys * 2, xs * 2
        # pixels over the iris and over the sclera see different diffuse backgrounds
        groups = (
            None
            if iris is None
            else (np.hypot(xs - iris.x_px, ys - iris.y_px) > iris.r_px).astype(np.int8)
        )
        pixels = frame[ys, xs] if frame.ndim == 3 else frame[ys, xs, None]
        if frame.dtype.kind == "f" and pixels.size and float(pixels.min()) < 0:
            # colour to thickness compares light intensities; a negative one is not light
            self._no_thickness = (
                "float frames with negative values: lipid thickness needs light intensities "
                "(>= 0), as a camera gives"
            )
            return None
        try:
            value = self._thickness.push(pixels, groups)
        except ThicknessUnavailable as e:
            self._no_thickness = e.reason
            return None
        self._last_thickness = value
        if value is not None:
            self._interval_thickness.append(value)
            self._session_thickness[min(round(value), 1023)] += 1
        return value

    def _thickness_json(self) -> dict[str, object]:
        """Session thickness for results.json: its summary, or why there is none.

        With a calibration, its file and content are included: the file may change or vanish
        later, and a thickness means little without the gains it was computed with.
        """
        cal = self._calibration
        calibration = (
            None if cal is None else {"file": self.config.thickness_calibration, **cal.to_json()}
        )
        counts = self._session_thickness
        n = int(counts.sum())
        if n == 0:
            return {
                "available": False,
                "reason": self._no_thickness or "no estimate yet",
                "calibration": calibration,
            }
        q25, med, q75 = np.searchsorted(np.cumsum(counts), [0.25 * n, 0.5 * n, 0.75 * n])
        return {
            "available": True,
            "median_nm": float(med),
            "iqr_nm": float(q75 - q25),
            "n_frames": n,
            "calibration": calibration,
        }

    def _lid(self, gray: np.ndarray, pupil: Circle | None) -> LidCurve | None:
        """Lower lid, refitted every open frame (it is cheap), else where last seen.

        The lids stay put while saccades turn the eye, so the lid is not carried with it.
        """
        if pupil is not None and not self._blinks_detector.blinking:
            found = find_lower_lid(gray, pupil)
            if found is not None:
                self._lid_last = found
        return self._lid_last

    def _iris(
        self, gray: np.ndarray, pupil: Circle | None, eye: tuple[float, float]
    ) -> Circle | None:
        """Iris margin, refitted every few frames and carried along with the eye in between."""
        self._iris_age += 1
        if pupil is not None and self._iris_age >= IRIS_EVERY:
            self._iris_age = 0
            fit = self._iris_refiner.refine(gray, Circle(pupil.x_px, pupil.y_px, 3.0 * pupil.r_px))
            if fit is not None and fit[1] > 0.4 and fit[0].r_px > 1.5 * pupil.r_px:
                c = fit[0]
                self._iris_rest = Circle(c.x_px - eye[0], c.y_px - eye[1], c.r_px)
        if self._iris_rest is None:
            return None
        c = self._iris_rest
        return Circle(c.x_px + eye[0], c.y_px + eye[1], c.r_px)


def _region_rows(
    pupil: Circle | None, lid: LidCurve | None, clearance: float
) -> tuple[float, float] | None:
    """Rows of the tracked region at the pupil's column."""
    if pupil is None or lid is None:
        return None
    top = pupil.y_px + 1.15 * pupil.r_px + clearance / 3
    bottom = float(lid.y_at(pupil.x_px)) - clearance
    return (top, bottom) if bottom > top + 8 else None


def _region_mask(
    shape: tuple[int, ...], pupil: Circle | None, lid: LidCurve | None, iris: Circle | None
) -> np.ndarray | None:
    """The cornea between the pupil and the lower lid, as a uint8 mask (None if unknown).

    The iris margin is cut out: seen through the film it is an eye-fixed edge that would
    anchor features and pull the layer's displacement towards zero.
    """
    h, w = shape[:2]
    clearance = max(3.0, CLEARANCE * h)
    rows = _region_rows(pupil, lid, clearance)
    if rows is None or pupil is None or lid is None:
        return None
    x0 = max(0.0, pupil.x_px - 2.5 * pupil.r_px)
    x1 = min(w - 1.0, pupil.x_px + 2.5 * pupil.r_px)
    xs = np.linspace(x0, x1, 24)
    bottom = np.column_stack([xs[::-1], np.asarray(lid.y_at(xs[::-1])) - clearance])
    top = np.array([[x0, rows[0]], [x1, rows[0]]])
    poly = np.round(np.concatenate([top, bottom])).astype(np.int32)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [poly], 255)
    if iris is not None:
        cv2.circle(
            mask,
            (round(iris.x_px), round(iris.y_px)),
            round(iris.r_px),
            0,
            thickness=2 * round(clearance),
        )
    return mask
