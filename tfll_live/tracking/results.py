"""Typed, frozen results of the tracker: what every consumer (CLI, capture loop, GUI) reads."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from tfll_live.kinetics import fit_supported


class EyeState(str, Enum):
    """Whether the eye is open (lipid tracked), in a blink, or not in view at all."""

    OPEN = "open"
    BLINK = "blink"
    NO_EYE = "no_eye"


@dataclass(frozen=True, slots=True)
class Circle:
    """A circle in image pixels (the pupil)."""

    x_px: float
    y_px: float
    r_px: float


@dataclass(frozen=True, slots=True)
class LidCurve:
    """The lower lid margin as a parabola ``y = a*x**2 + b*x + c`` in image pixels."""

    a: float
    b: float
    c: float

    def y_at(self, x: np.ndarray | float) -> np.ndarray | float:
        """Lid margin height at image column(s) ``x``."""
        return self.a * np.square(x) + self.b * x + self.c

    def polyline(self, width: int, n: int = 33) -> np.ndarray:
        """``(n, 2)`` array of (y, x) vertices across the image, as napari shapes want them."""
        x = np.linspace(0.0, width - 1.0, n)
        return np.column_stack([self.y_at(x), x])


@dataclass(frozen=True, slots=True)
class SpreadFit:
    """Fit of an interval's vertical lipid displacement to ``a*exp(-b*t)+c`` (t in s)."""

    a: float
    b: float
    c: float
    r2: float
    n_points: int
    final: bool = False
    model: str = "a*exp(-b*t)+c"
    tau_se_s: float = math.inf  # standard error of tau (kinetics.tau_standard_error)

    @property
    def supported(self) -> bool:
        """Whether the data support the fit's numbers (``kinetics.fit_supported``)."""
        return fit_supported(self.n_points, self.tau_s if self.b > 0 else math.nan,
                             self.tau_se_s)

    @property
    def tau_s(self) -> float:
        """Time constant of the spread, 1/b."""
        return 1.0 / self.b

    @property
    def amplitude_px(self) -> float:
        """The layer's travel as fitted, from the interval's first frame: ``|c - y(0)|``.

        ``y(0)`` is 0 (the displacement counts from that frame). Not ``|a|``: a layer that
        starts moving a frame or two after the lid has stopped (or left the view) would have
        ``a`` carry the exponential back over frames in which it did not move.
        """
        return abs(self.c)

    @property
    def initial_velocity_px_s(self) -> float:
        """Speed at the start of the interval, ``a*b`` (px/s)."""
        return self.a * self.b

    def predict(self, t_s: np.ndarray | float) -> np.ndarray | float:
        """Displacement predicted by the fit at times ``t_s`` since the interval start."""
        return self.a * np.exp(-self.b * np.asarray(t_s)) + self.c

    def to_json(self) -> dict[str, float | str]:
        """The ``spread`` object of results.json."""
        return {
            "model": self.model,
            "a": self.a,
            "b": self.b,
            "c": self.c,
            "tau_s": self.tau_s,
            "tau_se_s": self.tau_se_s if math.isfinite(self.tau_se_s) else None,
            "amplitude_px": self.amplitude_px,
            "initial_velocity_px_s": self.initial_velocity_px_s,
            "r2": self.r2,
        }


@dataclass(frozen=True, slots=True)
class Blink:
    """One blink: first frame the lid moves over the eye to the last frame before it is open."""

    start_frame: int
    end_frame: int
    complete: bool

    def to_json(self) -> dict[str, int | bool]:
        """The ``blinks[]`` object of results.json."""
        return {
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
            "complete": self.complete,
        }


@dataclass(frozen=True, slots=True)
class Interval:
    """An open-eye period between blinks, with the spread fit of its lipid displacement.

    ``kinetics`` (spread time, drift model; ``tfll_live.kinetics.SpreadKinetics``) and
    ``thickness`` (median/IQR of the frames' lipid thickness, nm) are added when known.
    """

    index: int
    start_frame: int
    end_frame: int
    spread: SpreadFit | None
    kinetics: Any = None
    thickness: dict[str, float | int] | None = None

    def to_json(self) -> dict[str, object]:
        """The ``intervals[]`` object of results.json."""
        return {
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
            "spread": None if self.spread is None else self.spread.to_json(),
            "kinetics": None if self.kinetics is None else self.kinetics.to_json(),
            "thickness": self.thickness,
        }


_NO_POINTS = np.zeros((0, 2), np.float32)
_NO_IDS = np.zeros((0,), np.int64)


@dataclass(frozen=True, slots=True)
class FrameResult:
    """Everything the tracker knows after one frame.

    ``points`` are the tracked lipid features as (x, y) image pixels with stable ``point_ids``
    (for napari tracks); ``point_dy_px`` is each feature's vertical displacement relative to the
    eye since it was seeded. ``blink_ended`` and ``interval_ended`` are set on the one frame where
    that event became known (causally, so a little after it happened). ``reset_reason`` is set
    when the tracker had to reset (bad frame, frame size change).
    """

    frame: int
    time_s: float
    state: EyeState
    interval: int
    eye_dx_px: float
    eye_dy_px: float
    lipid_dx_px: float | None = None
    lipid_dy_px: float | None = None
    n_tracked: int = 0
    points: np.ndarray = field(default_factory=lambda: _NO_POINTS)
    point_ids: np.ndarray = field(default_factory=lambda: _NO_IDS)
    point_dy_px: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    pupil: Circle | None = None
    lid: LidCurve | None = None
    fit: SpreadFit | None = None
    blink_ended: Blink | None = None
    interval_ended: Interval | None = None
    reset_reason: str | None = None
    lipid_thickness_nm: float | None = None

    def csv_row(self) -> list[str]:
        """The frame as a row of frames.csv (column order of ``FRAME_COLUMNS``)."""

        def num(v: float | None, fmt: str = ".3f") -> str:
            return "" if v is None or not np.isfinite(v) else format(v, fmt)

        p = self.pupil
        return [
            str(self.frame),
            num(self.time_s, ".6f"),
            self.state.value,
            str(self.interval),
            num(self.eye_dx_px),
            num(self.eye_dy_px),
            num(self.lipid_dx_px),
            num(self.lipid_dy_px),
            str(self.n_tracked),
            num(None if p is None else p.x_px),
            num(None if p is None else p.y_px),
            num(None if p is None else p.r_px),
            num(self.lipid_thickness_nm, ".1f"),
            num(None if self.lid is None else self.lid.a, ".6g"),
            num(None if self.lid is None else self.lid.b, ".6g"),
            num(None if self.lid is None else self.lid.c, ".6g"),
        ]


FRAME_COLUMNS = (
    "frame",
    "time_s",
    "state",
    "interval",
    "eye_dx_px",
    "eye_dy_px",
    "lipid_dx_px",
    "lipid_dy_px",
    "n_tracked",
    "pupil_x_px",
    "pupil_y_px",
    "pupil_r_px",
    "lipid_thickness_nm",
    # added to the spec's columns: the lower lid, y = a*x**2 + b*x + c in image pixels
    "lid_a",
    "lid_b",
    "lid_c",
)


@dataclass(frozen=True, slots=True)
class Summary:
    """Blinks and intervals of a whole stream: the body of results.json."""

    blinks: tuple[Blink, ...]
    intervals: tuple[Interval, ...]
    # session thickness: {"available": bool, "reason": str | None, "median_nm", "iqr_nm", ...}
    thickness: dict[str, Any] | None = None
