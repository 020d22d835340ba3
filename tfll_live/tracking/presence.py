"""Whether an eye is in view: a round pupil margin seen within the last second.

A camera that sees no eye (a test target, Micro-Manager's demo camera, an empty chin rest)
still shows dark, round-ish patches that the pupil search returns. A real pupil's margin lies
on its circle to within a pixel nearly all the way round (roundness 0.8-1.0 in an open eye,
at every frame size and noise level of the synthetic streams), those patches on a few rays
(0.01-0.05 on the demo camera's waves). Blinks hide the margin for a fraction of a second, so
the eye counts as gone only after ``NO_EYE_AFTER_S`` without a round margin; while the blink
detector holds a blink (an eye kept shut is in view, closed) only after ``SHUT_EYE_MAX_S``.
While no eye is in view the tracker does nothing but this search, every ``SEARCH_EVERY_S``.
"""

from __future__ import annotations

import numpy as np

from .anatomy import PupilRefiner, find_pupil
from .results import Circle

EYE_ROUNDNESS = 0.5  # share of the margin within a pixel of its circle that makes a pupil
NO_EYE_AFTER_S = 1.0  # longer than a blink hides the pupil
SHUT_EYE_MAX_S = 10.0  # longer than an eye is held shut
# a full pupil search costs ~0.1 s (more on a busy machine), and the frames behind it wait:
# every 2 s keeps that to ~5% of a core and of the frames, and finds an eye within 2 s
SEARCH_EVERY_S = 2.0


class EyePresence:
    """Follows whether an eye is in view; starts with none until a round pupil is found."""

    def __init__(self) -> None:
        self._refiner = PupilRefiner()
        self.reset()

    def reset(self) -> None:
        """No eye known (a new stream): search at once."""
        self.in_view = False
        self._seen_at = float("-inf")
        self._searched_at: float | None = None
        self._last: Circle | None = None  # where the pupil was last seen round

    def search(self, gray: np.ndarray, time_s: float) -> Circle | None:
        """The pupil if it is in view again (then the eye is), else None.

        Where the pupil was last seen it is looked for in every frame (one margin fit: an eye
        that was shut or looked away comes back there); the whole frame is searched at most
        every ``SEARCH_EVERY_S``.
        """
        found = None if self._last is None else self._round(gray, self._last)
        last = self._searched_at
        if found is None and (last is None or not 0.0 <= time_s - last < SEARCH_EVERY_S):
            self._searched_at = time_s
            candidate = find_pupil(gray, self._refiner)
            found = None if candidate is None else self._round(gray, candidate)
        if found is not None:
            self.in_view, self._seen_at, self._last = True, time_s, found
        return found

    def still_in_view(
        self, gray: np.ndarray, pupil: Circle | None, time_s: float, blinking: bool = False
    ) -> bool:
        """Note this frame's pupil; False once no round pupil was seen for too long."""
        limit = SHUT_EYE_MAX_S if blinking else NO_EYE_AFTER_S
        round_pupil = None if pupil is None else self._round(gray, pupil)
        if round_pupil is not None:
            self._seen_at, self._last = time_s, round_pupil
        elif time_s - self._seen_at > limit or time_s < self._seen_at:
            self.in_view = False
            self._searched_at = time_s
        return self.in_view

    def _round(self, gray: np.ndarray, circle: Circle) -> Circle | None:
        """The margin fitted near ``circle`` if it is round enough to be a pupil's."""
        fit = self._refiner.refine(gray, circle)
        return fit.circle if fit is not None and fit.roundness >= EYE_ROUNDNESS else None
