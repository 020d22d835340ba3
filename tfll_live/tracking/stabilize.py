"""Video stabilization: the eye's translation against the reference frame, sub-pixel.

The eye is located by its pupil margin (``anatomy``): a sharp edge fixed to the eye, which the
lipid interference pattern drifting over the cornea does not drag along, unlike whole-frame
correlation, which locks partly onto the moving lipid texture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import PupilRefiner, find_pupil
from .results import Circle

REDETECT_EVERY = 15  # frames between full searches while the pupil is lost (~80 ms at 480x640)
MIN_INLIERS = 0.45
NEAR_REACH = (0.5, 1.0)  # guesses this many pupil radii from the last place, after a blink
NEAR_DIRECTIONS = 8
# of those guesses, this many a frame, in turn, while the margin stays hidden: all 16 refits in
# every frame under a closed lid made a blink frame cost 4x an open one, so on a busy machine the
# tracker fell behind in every blink and skipped its frames. An eye found a few frames late only
# delays the blink's end being known (the end is backdated to the lid's last movement)
NEAR_PER_FRAME = 4
SETTLE_FRAMES = 3  # consecutive good pupil fits before the first one becomes the reference
# share of the margin on its circle to within a pixel: 0.8-1.0 for an open eye, below 0.55
# while the lid covers part of the pupil (the robust fit's inlier share stays near 1 there)
WHOLE_ROUNDNESS = 0.7


@dataclass(frozen=True, slots=True)
class EyeMotion:
    """The eye's displacement from the reference (full-resolution px) and its pupil."""

    dx_px: float
    dy_px: float
    pupil: Circle | None  # None when the pupil was not seen in this frame


class Stabilizer:
    """Follows the pupil frame to frame; the first pupil seen is the reference position."""

    def __init__(self) -> None:
        self._refiner = PupilRefiner()
        self.reset()

    def reset(self) -> None:
        """Forget the reference (new stream)."""
        self._ref: Circle | None = None
        self._last: Circle | None = None
        self._motion = (0.0, 0.0)
        self._since_search = REDETECT_EVERY
        self._streak = 0
        self._next_guess = 0  # which guess around the last place comes next
        self._first_seen: np.ndarray | None = None  # the frame that began the settling streak

    def seed(self, pupil: Circle) -> None:
        """Start following from a pupil found elsewhere (no search of its own)."""
        self._last = pupil

    @property
    def has_reference(self) -> bool:
        """Whether the eye's rest position is known."""
        return self._ref is not None

    def push(self, gray: np.ndarray, hold: bool = False) -> EyeMotion:
        """Eye motion in this frame.

        With ``hold`` (in a blink) the last motion is kept unless the whole margin is in view:
        the lid may have lifted off the pupil while the blink is not over yet, and the eye may
        have moved under it; its motion is needed to see that the eye is open again.
        """
        if hold:
            pupil = self._whole_margin(gray)
            if pupil is None or self._ref is None:
                return EyeMotion(*self._motion, None)
            self._motion = (pupil.x_px - self._ref.x_px, pupil.y_px - self._ref.y_px)
            return EyeMotion(*self._motion, pupil)
        pupil = self._follow(gray)
        if pupil is None:
            self._streak = 0
            return EyeMotion(*self._motion, None)
        self._streak += 1
        if self._ref is None:
            # a fresh detection may still be converging onto the margin: wait for it to settle
            if self._streak == 1:
                self._first_seen = gray
            if self._streak < SETTLE_FRAMES:
                return EyeMotion(*self._motion, pupil)
            self._ref = self._at_first_seen(pupil)
        self._motion = (pupil.x_px - self._ref.x_px, pupil.y_px - self._ref.y_px)
        return EyeMotion(*self._motion, pupil)

    def _follow(self, gray: np.ndarray) -> Circle | None:
        if self._last is not None:
            fit = self._refiner.refine(gray, self._last)
            if fit is not None and fit[1] >= MIN_INLIERS and self._plausible(fit[0]):
                self._last = fit[0]
                self._since_search = 0
                return fit[0]
        self._since_search += 1
        if self._since_search < REDETECT_EVERY:
            return None
        self._since_search = 0
        found = find_pupil(gray, self._refiner)
        if found is not None and not self._plausible(found):
            found = None
        if found is not None:
            self._last = found
        return found

    def _at_first_seen(self, settled: Circle) -> Circle:
        """The pupil in the streak's first frame, refitted from the settled circle.

        The reference is where the eye was when the pupil was first seen (those frames report
        no motion), not where it is once the fit has settled: the eye may have moved meanwhile.
        """
        first, self._first_seen = self._first_seen, None
        refitted = None if first is None else self._round_fit(first, settled)
        return refitted or settled

    def _whole_margin(self, gray: np.ndarray) -> Circle | None:
        """The pupil if its margin is seen whole, else None.

        Looked for at its last place, every few frames around it, and now and then anywhere:
        the eye may have moved far while the lid covered it.
        """
        found = None
        if self._last is not None:
            found = self._round_fit(gray, self._last)
            if found is None:
                found = self._round_fit_around(gray, self._last)
        if found is not None:
            self._since_search = self._next_guess = 0
        else:
            self._since_search += 1
            if self._since_search >= REDETECT_EVERY:
                self._since_search = 0
                seen = find_pupil(gray, self._refiner)
                found = None if seen is None else self._round_fit(gray, seen)
        if found is not None:
            self._last = found
        return found

    def _round_fit_around(self, gray: np.ndarray, last: Circle) -> Circle | None:
        """The whole pupil refitted from the next few guesses around its last place.

        The eye may have moved while the lid covered it, by up to a pupil radius or so (a
        saccade under a long closure): rays cast from a centre that far off miss much of the
        margin, and a full search, which would find it, runs only every few frames.
        """
        n_guesses = len(NEAR_REACH) * NEAR_DIRECTIONS
        for k in range(self._next_guess, self._next_guess + NEAR_PER_FRAME):
            reach = NEAR_REACH[(k % n_guesses) // NEAR_DIRECTIONS]
            angle = (k % NEAR_DIRECTIONS) * 2 * np.pi / NEAR_DIRECTIONS
            guess = Circle(
                last.x_px + reach * last.r_px * float(np.cos(angle)),
                last.y_px + reach * last.r_px * float(np.sin(angle)),
                last.r_px,
            )
            found = self._round_fit(gray, guess)
            if found is not None:
                self._next_guess = 0
                return found
        self._next_guess = (self._next_guess + NEAR_PER_FRAME) % n_guesses
        return None

    def _round_fit(self, gray: np.ndarray, guess: Circle) -> Circle | None:
        """The pupil refitted near ``guess`` if its whole margin is round and its size plausible.

        A second refit from the first: rays cast from a centre a few pixels off (the eye moved
        while the lid covered it) meet the margin obliquely, and the first fit is rough.
        """
        fit = self._refiner.refine(gray, guess)
        if fit is not None and fit.roundness < WHOLE_ROUNDNESS:
            fit = self._refiner.refine(gray, fit.circle)
        if fit is None or fit.roundness < WHOLE_ROUNDNESS or not self._plausible(fit.circle):
            return None
        return fit.circle

    def _plausible(self, pupil: Circle) -> bool:
        """A pupil changes size slowly: a circle far from the reference size is something else."""
        return self._ref is None or abs(pupil.r_px - self._ref.r_px) < 0.3 * self._ref.r_px
