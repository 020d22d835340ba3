"""Whether an eye is in view: a pupil margin seen within the last few seconds.

A camera that sees no eye (a test target, Micro-Manager's demo camera, an empty chin rest)
still shows dark, round-ish patches that the pupil search returns. What they lack is a
pupil's margin: a step of 12-14 grey levels a pixel from a dark disc to the iris (on every
synthetic preset, the clinic's soft, textured look included), about a third of it at its
steepest point, the disc 35-50 grey levels darker than the ring around it. The demo
camera's waves step 1.6 grey levels a pixel; an even background, less; noise steps hard
everywhere but is neither sharp in that sense nor dark inside. (Roundness to within a
pixel tells them apart on clean frames, but not on the clinic's soft margin: 0.11.)

Blinks hide the margin for a fraction of a second, and an eye may be held shut for seconds
(the blink detector may then read it as open: the lid no longer moves), so the eye counts as
gone only after ``NO_EYE_AFTER_S`` without a margin, or ``SHUT_EYE_MAX_S`` while the blink
detector holds a blink. A camera that never saw an eye says so from its first frame. While
no eye is in view the tracker only looks for one: where the pupil was last seen, every frame
(one margin fit), and in the whole frame every ``SEARCH_EVERY_S``.
"""

from __future__ import annotations

import numpy as np

from .anatomy import PupilRefiner, _darkness, find_pupil
from .results import Circle

MIN_STEP = 4.0  # grey levels a pixel across the margin (eyes 12-14 at a normal exposure)
SHARPNESS = (0.15, 2.0)  # steepest gradient over the whole rise (eyes ~0.3, waves 0.11)
MIN_DARKNESS = 10.0  # grey levels the disc is darker than the ring around it (eyes 35-50)
NO_EYE_AFTER_S = 6.0  # longer than an eye is held shut (2-5 s in the clinic's footage)
SHUT_EYE_MAX_S = 10.0  # the same while the blink detector holds a blink
# a whole-frame search costs ~0.1 s (more on a busy machine), and the frames behind it wait:
# every 2 s keeps that to ~5% of a core and of the frames
SEARCH_EVERY_S = 2.0


class EyePresence:
    """Follows whether an eye is in view; starts with none until a pupil margin is found."""

    def __init__(self) -> None:
        self._refiner = PupilRefiner()
        self.reset()

    def reset(self) -> None:
        """No eye known (a new stream): search at once."""
        self.in_view = False
        self._seen_at = float("-inf")
        self._searched_at: float | None = None
        self._last: Circle | None = None  # where a pupil margin was last seen

    def search(self, gray: np.ndarray, time_s: float) -> Circle | None:
        """The pupil if it is in view again (then the eye is), else None.

        Where the pupil was last seen it is looked for in every frame (an eye that was shut or
        looked away comes back there); the whole frame is searched at most every
        ``SEARCH_EVERY_S``.
        """
        found = None if self._last is None else self._margin(gray, self._last, dark=True)
        last = self._searched_at
        if found is None and (last is None or not 0.0 <= time_s - last < SEARCH_EVERY_S):
            self._searched_at = time_s
            candidate = find_pupil(gray, self._refiner)
            found = None if candidate is None else self._margin(gray, candidate, dark=True)
        if found is not None:
            self.in_view, self._seen_at, self._last = True, time_s, found
        return found

    def still_in_view(
        self, gray: np.ndarray, pupil: Circle | None, time_s: float, blinking: bool = False
    ) -> bool:
        """Note this frame's pupil; False once no pupil margin was seen for too long."""
        margin = None if pupil is None else self._margin(gray, pupil, dark=False)
        limit = SHUT_EYE_MAX_S if blinking else NO_EYE_AFTER_S
        if margin is not None:
            self._seen_at, self._last = time_s, margin
        elif time_s - self._seen_at > limit or time_s < self._seen_at:
            self.in_view = False
            self._searched_at = time_s
        return self.in_view

    def _margin(self, gray: np.ndarray, circle: Circle, *, dark: bool) -> Circle | None:
        """The circle fitted to a pupil's margin near ``circle``, if there is one.

        ``dark``: also check that the disc is darker than its surround (a full-frame mask:
        when finding an eye, not for every frame of one being followed).
        """
        fit = self._refiner.refine(gray, circle)
        if fit is None or fit.step < MIN_STEP:
            return None
        if not SHARPNESS[0] <= fit.sharpness <= SHARPNESS[1]:
            return None
        if dark and _darkness(gray, fit.circle) < MIN_DARKNESS:
            return None
        return fit.circle
