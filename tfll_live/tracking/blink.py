"""Blink detection: how far each (downsampled, motion-compensated) frame is from the open eye.

The distance to a running reference of open-eye frames is z-scored against its own open-eye
statistics and thresholded with hysteresis. A blink ends when the frame is back near the old
reference, or - since a blink lays down a new lipid layer, so the eye may never look like the old
reference again - when the image has settled (frame-to-frame change back to its open-eye level)
far below the blink's peak distance. A blink is partial when the lid never covered the tracked
region (its rows never left their open-eye statistics).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

SMALL_ROWS = 36
REF_ALPHA = 0.05  # reference follows slow changes (lipid spreading, illumination) of open frames
STATS_ALPHA = 0.03
SETTLE_FRAMES = 2
N_BANDS = 6
STILL_FRAMES = 12
EDGE = 3  # small-image pixels (~1/12 of the frame height) ignored at each edge
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
        self._ref: np.ndarray | None = None
        self._prev: np.ndarray | None = None
        self._bands = _RunningStats()
        self._region = _RunningStats()
        self._step = _RunningStats()
        self._step_bands = _RunningStats()
        self._moving = False
        self._recent_z: deque[tuple[int, float]] = deque(maxlen=12)
        self._blinking = False
        self._start = 0
        self._peak = 0.0
        self._region_peak_z = 0.0
        self._settled = 0
        self._still = 0
        self._fresh = 0
        self._over = 0

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
    ) -> BlinkEvent:
        """Classify frame ``i``; ``region_rows`` are the tracked region's rows (full-res px)."""
        scale = SMALL_ROWS / gray.shape[0]
        small = self._compensated(gray, eye_dx_px, eye_dy_px)
        if self._ref is None:
            self._ref, self._prev = small, small
            return BlinkEvent(False)
        rows = np.abs(small - self._ref).mean(axis=1)
        dist = float(rows.mean())
        bands = rows[: N_BANDS * (len(rows) // N_BANDS)].reshape(N_BANDS, -1).mean(axis=1)
        r0, r1 = _small_rows(region_rows, scale, len(rows))
        region = float(rows[r0:r1].mean())
        step_rows = np.abs(small - self._prev).mean(axis=1)
        step = float(step_rows.mean())
        step_bands = step_rows[: N_BANDS * (len(rows) // N_BANDS)].reshape(N_BANDS, -1).mean(axis=1)
        self._prev = small
        # the lid sweeps down from the top: a band that leaves its own open-eye statistics
        # reveals even a partial blink that the spreading lipid would hide in the frame mean
        z = float(np.max(self._bands.z(bands, floor=0.5)))
        z_region = self._region.z(region, floor=0.5)
        z_step = self._step.z(step, floor=0.3)
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
                self._peak, self._region_peak_z, self._settled, self._still = dist, z_region, 0, 0
                return BlinkEvent(True, started=self._start)
            if self._fresh:
                self._fresh -= 1
                cv2.accumulateWeighted(small, self._ref, 0.5)
                return BlinkEvent(False)
            self._bands.add(bands)
            self._region.add(region)
            self._step.add(step)
            self._step_bands.add(step_bands)
            cv2.accumulateWeighted(small, self._ref, REF_ALPHA)
            return BlinkEvent(False)
        self._peak = max(self._peak, dist)
        self._region_peak_z = max(self._region_peak_z, z_region)
        still = z_step < self.z_off
        self._still = self._still + 1 if still else 0
        settled = still and dist < 0.35 * self._peak
        self._settled = self._settled + 1 if settled else 0
        # a scene that stays still for long is the open eye, however unlike the old reference
        if z < self.z_off or self._settled >= SETTLE_FRAMES or self._still >= STILL_FRAMES:
            end = i - 1 if z < self.z_off else i - min(self._still, SETTLE_FRAMES)
            self._blinking = False
            self._ref = small.copy()  # a fresh layer: this is what the open eye looks like now
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
            self._ref = self._compensated(gray, eye_dx_px, eye_dy_px)
            self._prev = self._ref

    def _compensated(self, gray: np.ndarray, eye_dx_px: float, eye_dy_px: float) -> np.ndarray:
        """The frame small, blurred and shifted back by the eye's motion, its edges cut off."""
        scale = SMALL_ROWS / gray.shape[0]
        small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA).astype(
            np.float32
        )
        # blurred so that sub-pixel motion compensation interpolates smoothly
        small = cv2.GaussianBlur(small, (5, 5), 1.2)
        # undo the eye's motion so saccades do not look like blinks
        m = np.float32([[1, 0, eye_dx_px * scale], [0, 1, eye_dy_px * scale]])
        size, flags = small.shape[::-1], cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        shifted = cv2.warpAffine(small, m, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
        # the frame edges show what the eye's motion brought in or pushed out: leave them out
        inner = np.ascontiguousarray(shifted[EDGE:-EDGE, EDGE:-EDGE])
        if self._ref is None:
            return inner
        # where a large shift reached past the frame (beyond EDGE) the eye is not in view: such
        # pixels keep the reference's value (no difference, nothing learnt)
        seen = cv2.warpAffine(
            np.ones_like(small), m, size, flags=flags, borderMode=cv2.BORDER_CONSTANT
        )[EDGE:-EDGE, EDGE:-EDGE]
        return np.where(seen > 0.999, inner, self._ref)

    def _first_above_off(self, i: int) -> int:
        """Backdate a blink's start to the first frame of the run above the low threshold."""
        start = i
        for j, z in reversed(self._recent_z):
            if z <= self.z_off:
                break
            start = j
        return start


def _small_rows(rows: tuple[float, float] | None, scale: float, n: int) -> tuple[int, int]:
    if rows is None:
        return n // 2, n
    r0 = int(np.clip(rows[0] * scale - EDGE, 0, n - 1))
    return r0, int(np.clip(np.ceil(rows[1] * scale) - EDGE, r0 + 1, n))
