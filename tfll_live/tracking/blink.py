"""Blink detection: the lid crossing the eye.

Each downsampled frame is compared, band by band from the top, with a running reference of the
open eye, both as the eye sees it (its motion undone) and as the camera does (lids and lashes
stay put while saccades turn the eye), at the reference's exposure: what neither view explains
is change. Its distance from the reference is z-scored against its own open-eye statistics;
a blink starts when a band leaves them suddenly (a lid moves fast; the spreading layer drifts
slowly). It ends once the lid has stopped moving with the pupil whole in view, backdated to the
last frame the lid moved in. A blink is partial when the lid never covered the tracked region
(its rows never left their open-eye statistics).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

SMALL_ROWS = 36
REF_ALPHA = 0.05  # reference follows slow changes (lipid spreading, illumination) of open frames
STATS_ALPHA = 0.03
N_BANDS = 6
QUIET_FRAMES = 5  # frames with the lid still and the pupil whole (all but one) that end a blink
EDGE = 3  # small-image pixels (~1/12 of the frame height) ignored at each edge
BLUR_PX = 2.0  # small-image blur: shifting a strong iris texture by a fraction of a pixel then
# changes it little, and a lid is a large shape
RELEARN_FRAMES = 10  # frames after a blink while the reference catches up with the new layer


@dataclass(frozen=True, slots=True)
class BlinkEvent:
    """What the detector concluded in this frame."""

    blinking: bool
    started: int | None = None  # start frame of a blink first detected in this frame
    ended: tuple[int, int, bool] | None = None  # (start, end, complete) of a blink that just ended


class _RunningStats:
    """Exponentially weighted mean and mean absolute deviation of a signal (scalar or array)."""

    def __init__(self) -> None:
        self.n = 0
        self.mean: np.ndarray | float = 0.0
        self.dev: np.ndarray | float = 0.0

    def z(self, value: np.ndarray | float, floor: float) -> np.ndarray | float:
        if self.n < 3:
            return value * 0.0
        scale = np.maximum(
            np.maximum(np.multiply(self.dev, 1.25), floor), np.multiply(self.mean, 0.05)
        )
        return (value - self.mean) / scale

    def add(self, value: np.ndarray | float) -> None:
        a = max(STATS_ALPHA, 1.0 / (self.n + 1))
        if self.n == 0:
            self.mean = value
        self.dev = self.dev + a * (np.abs(value - self.mean) - self.dev)
        self.mean = self.mean + a * (value - self.mean)
        self.n += 1


class BlinkDetector:
    """Causal blink detector with hysteresis; frames are numbered by the caller."""

    def __init__(self, z_on: float = 6.0, z_off: float = 3.0) -> None:
        self.z_on, self.z_off = z_on, z_off
        self.reset()

    def reset(self) -> None:
        """Forget the reference (new stream)."""
        self._ref: _Views | None = None
        self._prev: _Views | None = None
        self._bands = _RunningStats()
        self._region = _RunningStats()
        self._step_bands = _RunningStats()
        self._moving = False
        self._recent_z: deque[tuple[int, float]] = deque(maxlen=12)
        self._blinking = False
        self._start = 0
        self._region_peak_z = 0.0
        self._quiet = 0  # frames in a row, in a blink, with the lid still
        self._seen: deque[bool] = deque(maxlen=QUIET_FRAMES)  # pupil whole, since the lid stopped
        self._fresh = 0
        self._over = 0
        self._gain = self._step_gain = 1.0
        self._gains: deque[tuple[int, float]] = deque(maxlen=12)  # (frame, exposure gain)

    @property
    def blinking(self) -> bool:
        """Whether the eye is currently in a blink."""
        return self._blinking

    def push(
        self,
        i: int,
        gray: np.ndarray,
        eye_dx_px: float,
        eye_dy_px: float,
        region_rows: tuple[float, float] | None,
        eye_seen: bool = True,
    ) -> BlinkEvent:
        """Classify frame ``i``; ``region_rows`` are the tracked region's rows (full-res px).

        ``eye_seen``: the pupil's whole margin is in view (a blink cannot end without it).
        """
        scale = SMALL_ROWS / gray.shape[0]
        views = self._views(gray, eye_dx_px, eye_dy_px)
        if self._ref is None or self._prev is None:
            self._ref, self._prev = views, views
            return BlinkEvent(False)
        if not self._blinking:
            self._gain = _exposure(views, self._ref)
            self._step_gain = _exposure(views, self._prev)
            self._gains.append((i, self._gain))
        else:  # a lid over the eye is no exposure change
            self._step_gain = 1.0
        rows = _change(views, self._ref, self._gain).mean(axis=1)
        bands = rows[: N_BANDS * (len(rows) // N_BANDS)].reshape(N_BANDS, -1).mean(axis=1)
        r0, r1 = _small_rows(region_rows, scale, len(rows))
        region = float(rows[r0:r1].mean())
        step_rows = _change(views, self._prev, self._step_gain).mean(axis=1)
        step_bands = step_rows[: N_BANDS * (len(rows) // N_BANDS)].reshape(N_BANDS, -1).mean(axis=1)
        self._prev = views
        # the lid sweeps down from the top: a band that leaves its own open-eye statistics
        # reveals even a partial blink that the spreading lipid would hide in the frame mean.
        # It reaches the bottom band last: a change there alone is the eye sliding under the
        # lower lid in a saccade (27 px in three frames on a 240-row frame), never a blink
        z = float(np.max(self._bands.z(bands, floor=0.5)[:-1]))
        z_region = self._region.z(region, floor=0.5)
        z_moving = float(np.max(self._step_bands.z(step_bands, floor=0.3)))
        self._recent_z.append((i, z))
        if not self._blinking:
            # a lid moves fast: demand a sudden frame-to-frame change too, so the slow drift of
            # the spreading layer away from the reference never reads as a blink
            self._moving = z_moving > self.z_on or (self._moving and z > self.z_off)
            # just after a blink the new layer spreads fastest and the reference is one frame
            # old: the reference then follows quickly and only a strong change counts
            z_on = 2 * self.z_on if self._fresh else self.z_on
            self._over = self._over + 1 if z > z_on and self._moving else 0
            if self._over >= 2 or (z > 2 * z_on and self._moving):
                self._blinking = True
                self._start = self._first_above_off(i)
                # the exposure as it was before the lid came into view
                self._gain = next((g for j, g in self._gains if j == self._start - 1), self._gain)
                self._region_peak_z, self._quiet = z_region, 0
                return BlinkEvent(True, started=self._start)
            if self._fresh:
                self._fresh -= 1
                self._ref = self._ref.blend(views, 0.5)
                return BlinkEvent(False)
            self._bands.add(bands)
            self._region.add(region)
            self._step_bands.add(step_bands)
            self._ref = self._ref.blend(views, REF_ALPHA)
            return BlinkEvent(False)
        self._region_peak_z = max(self._region_peak_z, z_region)
        # the lid is a high-contrast edge sweeping across the bands: while it moves, some band
        # changes far more from frame to frame than the open eye's do (twice the threshold:
        # the new layer spreads fast near the lid); once it has stopped and the pupil is whole
        # again, the eye is open - and it has been since the last frame the lid moved in
        lid_moved = float(np.max(self._step_bands.z(step_bands, floor=0.3))) > 2 * self.z_on
        # the pupil's margin must be seen whole in the last frames, but one miss is allowed:
        # a fast new layer crossing it spoils a fit now and then (mono16-large seed 9903: an
        # interval begun 11 frames late, 83 px of the travel lost)
        if lid_moved:
            self._quiet = 0
            self._seen.clear()
        else:
            self._quiet += 1
            self._seen.append(eye_seen)
        if self._quiet >= QUIET_FRAMES and eye_seen and sum(self._seen) >= QUIET_FRAMES - 1:
            end = i - self._quiet
            self._blinking = False
            self._ref = views  # a fresh layer: this is what the open eye looks like now
            self._fresh = RELEARN_FRAMES
            self._recent_z.clear()  # a later blink is never backdated into this one
            self._over = 0
            self._moving = False
            return BlinkEvent(
                False,
                ended=(self._start, max(end, self._start), bool(self._region_peak_z > self.z_on)),
            )
        return BlinkEvent(True)

    def rebase(self, gray: np.ndarray, eye_dx_px: float, eye_dy_px: float) -> None:
        """Take ``gray`` as the open eye at the eye's measured position.

        Under the lid the eye is not followed, so the frame that ended a blink was compared at
        the eye's position before it. Once the eye is found again it may have moved (a saccade
        under the lid): the new reference must be that frame at the eye's real position, or the
        next frame differs from it by the whole move and reads as another blink.
        """
        if self._ref is not None and not self._blinking:
            self._ref = self._views(gray, eye_dx_px, eye_dy_px)
            self._prev = self._ref

    def _views(self, gray: np.ndarray, eye_dx_px: float, eye_dy_px: float) -> _Views:
        """The frame small and blurred, as the eye sees it and as the head (camera) does.

        Saccades turn the eye under still lids: what moved with the eye matches the reference
        shifted back by the eye's motion, what stayed (lids, lashes) matches it unshifted.
        """
        scale = SMALL_ROWS / gray.shape[0]
        small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA).astype(
            np.float32
        )
        # blurred so that sub-pixel motion compensation interpolates smoothly
        small = cv2.GaussianBlur(small, (0, 0), BLUR_PX)
        m = np.float32([[1, 0, eye_dx_px * scale], [0, 1, eye_dy_px * scale]])
        size, flags = small.shape[::-1], cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        shifted = cv2.warpAffine(small, m, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
        # the frame edges show what the eye's motion brought in or pushed out: leave them out
        eye = np.ascontiguousarray(shifted[EDGE:-EDGE, EDGE:-EDGE])
        head = np.ascontiguousarray(small[EDGE:-EDGE, EDGE:-EDGE])
        if self._ref is not None:
            # where a large shift reached past the frame (beyond EDGE) the eye is not in view:
            # such pixels keep the reference's value (no difference, nothing learnt)
            seen = cv2.warpAffine(
                np.ones_like(small), m, size, flags=flags, borderMode=cv2.BORDER_CONSTANT
            )[EDGE:-EDGE, EDGE:-EDGE]
            eye = np.where(seen > 0.999, eye, self._ref.eye)
        return _Views(eye, head)

    def _first_above_off(self, i: int) -> int:
        """Backdate a blink's start to the first frame of the run above the low threshold."""
        start = i
        for j, z in reversed(self._recent_z):
            if z <= self.z_off:
                break
            start = j
        return start


@dataclass(frozen=True, slots=True)
class _Views:
    """A frame's small image with the eye's motion undone (``eye``) and as taken (``head``)."""

    eye: np.ndarray
    head: np.ndarray

    def blend(self, other: _Views, alpha: float) -> _Views:
        """``(1 - alpha) * self + alpha * other``: a reference following slow changes."""
        return _Views(
            cv2.addWeighted(self.eye, 1 - alpha, other.eye, alpha, 0),
            cv2.addWeighted(self.head, 1 - alpha, other.head, alpha, 0),
        )


def _exposure(now: _Views, ref: _Views) -> float:
    """The factor that brings the frame to the reference's brightness.

    The median of the pixels' ratios in the eye's view over the lower half, which a lid coming
    down reaches last. Pixel by pixel, not a ratio of the two medians: a saccade moves the
    lower lid and the eye's bright and dark parts in and out of the half, which shifts its
    median (saccades seed 9802: a 12 px saccade read as 5% darker, then as a blink).
    """
    low = now.eye.shape[0] // 2
    return float(np.median(ref.eye[low:] / np.maximum(now.eye[low:], 1e-3)))


def _change(now: _Views, ref: _Views, gain: float) -> np.ndarray:
    """Per pixel, how unlike ``ref`` the frame is, whatever moved with the eye or stayed put.

    The smaller of the two views' differences, at the reference's exposure (``gain``).
    """
    return np.minimum(np.abs(now.eye * gain - ref.eye), np.abs(now.head * gain - ref.head))


def _small_rows(rows: tuple[float, float] | None, scale: float, n: int) -> tuple[int, int]:
    if rows is None:
        return n // 2, n
    r0 = int(np.clip(rows[0] * scale - EDGE, 0, n - 1))
    return r0, int(np.clip(np.ceil(rows[1] * scale) - EDGE, r0 + 1, n))
