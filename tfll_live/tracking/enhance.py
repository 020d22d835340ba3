"""The paper's visual enhancement of the faint interference pattern before tracking."""

from __future__ import annotations

import cv2
import numpy as np

from .config import Enhancement

TEMPORAL_ALPHA = 0.5  # weight of the newest frame: averages noise over ~2 frames, little lag
SMOOTH_FRACTION = 1 / 160  # low-pass scale, as a fraction of the frame height


class Enhancer:
    """Sharpen (unsharp mask), Laplacian edge boost, or temporal averaging of luminance."""

    def __init__(self, mode: Enhancement = Enhancement.SHARPEN) -> None:
        self.mode = Enhancement(mode)
        self._avg: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the temporal average (after a blink the pattern is new)."""
        self._avg = None

    def push(self, gray: np.ndarray) -> np.ndarray:
        """Enhanced uint8 image.

        Every mode starts with a low-pass: lipid thickness, hence the interference pattern,
        varies smoothly, while camera noise and the fine texture of the eye behind the film do
        not; left in, that eye-fixed texture drags the tracked features back.
        """
        gray = cv2.GaussianBlur(gray, (0, 0), max(1.0, SMOOTH_FRACTION * gray.shape[0]))
        if self.mode is Enhancement.SHARPEN:
            blur = cv2.GaussianBlur(gray, (0, 0), 2.0)
            return cv2.addWeighted(gray, 2.0, blur, -1.0, 0)
        if self.mode is Enhancement.LAPLACIAN:
            lap = cv2.Laplacian(cv2.GaussianBlur(gray, (3, 3), 0), cv2.CV_16S, ksize=3)
            return np.clip(gray.astype(np.int16) - lap, 0, 255).astype(np.uint8)
        if self.mode is Enhancement.TEMPORAL:
            if self._avg is None or self._avg.shape != gray.shape:
                self._avg = gray.astype(np.float32)
            else:
                cv2.accumulateWeighted(gray, self._avg, TEMPORAL_ALPHA)
            return cv2.convertScaleAbs(self._avg)
        return gray
