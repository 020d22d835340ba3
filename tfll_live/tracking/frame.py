"""Checking camera frames and turning them into the 8-bit luminance the stages work on."""

from __future__ import annotations

import cv2
import numpy as np

_SUPPORTED = (np.uint8, np.uint16, np.float32, np.float64)


class FrameError(ValueError):
    """A frame the tracker cannot take at all (wrong type or shape): a caller's mistake."""


def check_frame(frame: np.ndarray) -> None:
    """Raise ``FrameError`` (one line) unless ``frame`` is mono (Y, X) or RGB (Y, X, 3)."""
    if not isinstance(frame, np.ndarray):
        raise FrameError(f"frame must be a numpy array, got {type(frame).__name__}")
    if frame.dtype.type not in _SUPPORTED:
        raise FrameError(
            f"frame dtype {frame.dtype} is not supported (uint8, uint16, float32 or float64)"
        )
    if not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 3)):
        raise FrameError(f"frame shape {frame.shape} is neither mono (Y, X) nor RGB (Y, X, 3)")
    if min(frame.shape[:2]) < 32:
        raise FrameError(f"frame of {frame.shape[0]}x{frame.shape[1]} px is too small to track")


class Luminance:
    """Converts frames to uint8 luminance with a gain fixed on the first frame of a stream.

    A fixed gain (rather than per-frame normalisation) keeps brightness changes visible to the
    blink detector. 16-bit frames are camera counts from a black level of 0: they are scaled
    so the first frame's bright end sits near 200, leaving headroom. Float frames have no
    such zero (processed data may carry an offset or negative values), so their own range
    decides: the first frame's 0.5th to 99.5th percentile maps linearly onto 0 to 200, and
    values outside are clipped, never folded (``abs``) back in.
    """

    def __init__(self) -> None:
        self._gain: float | None = None
        self._low = 0.0

    def reset(self) -> None:
        """Forget the gain (new stream)."""
        self._gain = None
        self._low = 0.0

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """Luminance of ``frame`` as a contiguous uint8 (Y, X) array."""
        if frame.dtype == np.float64:  # OpenCV's colour conversion takes float32 only
            frame = frame.astype(np.float32)
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
        if gray.dtype == np.uint8:
            return np.ascontiguousarray(gray)
        floating = gray.dtype.kind == "f"
        if self._gain is None:
            sample = gray[::4, ::4]
            if floating:
                low, top = (float(v) for v in np.percentile(sample, [0.5, 99.5]))
                self._low = low if np.isfinite(low) else 0.0
                span = top - self._low
                self._gain = 200.0 / span if np.isfinite(span) and span > 0 else 1.0
            else:
                top = float(np.percentile(sample, 99.5))
                self._gain = 200.0 / top if top > 0 else 1.0
        if floating:
            scaled = (gray.astype(np.float32, copy=False) - np.float32(self._low)) * np.float32(
                self._gain
            )
            return np.rint(np.clip(scaled, 0, 255)).astype(np.uint8)  # rounded, as OpenCV does
        return cv2.convertScaleAbs(gray.astype(np.float32, copy=False), alpha=self._gain)


def bad_frame_reason(frame: np.ndarray, gray: np.ndarray | None) -> str | None:
    """Why a well-formed frame cannot be tracked (NaNs, black, saturated), else None."""
    if frame.dtype.kind == "f" and not np.isfinite(frame).all():
        return "frame contains NaN or infinite values"
    if gray is None:
        return None
    sample = gray[::8, ::8]
    if int(sample.max()) <= 3:
        return "frame is all black"
    if float((sample >= 254).mean()) > 0.9:
        return "frame is saturated"
    return None
