"""Physical units beside pixels: µm and µm/s from a pixel size, never instead of px.

The tracker measures in image pixels; a clinician compares eyes and cameras in micrometres.
With a pixel size (the core's pixel-size configuration, the recording's metadata, or the user's
``--pixel-size-um``), every px value of an interval's ``spread`` and ``kinetics`` gets a
``*_um`` / ``*_um_s`` twin in results.json, with the spec's sign kept (up is negative in y, as
in ``lipid_dy_px``; amplitudes and velocities are the upward magnitudes they are in px).
"""

from __future__ import annotations

import math
from typing import Any

# px field -> its µm twin (the same quantity, the same sign)
UM_FIELDS = {
    "amplitude_px": "amplitude_um",
    "initial_velocity_px_s": "initial_velocity_um_s",
    "drift_px_s": "drift_um_s",
    "noise_px": "noise_um",
}


def check_pixel_size(value: object, what: str = "pixel size") -> float | None:
    """A pixel size in µm as stored (None when unknown or 0, Micro-Manager's "not set").

    Raises ValueError (one line) for a negative, non-finite or non-numeric size.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} {value!r} is not a number of µm")
    size = float(value)
    if not math.isfinite(size) or size < 0:
        raise ValueError(f"{what} {value!r} µm is not a size (finite, > 0)")
    return size or None


def with_um(obj: dict[str, Any] | None, pixel_size_um: float) -> dict[str, Any] | None:
    """``obj`` (a spread or kinetics object) with the µm twin after each px field it has."""
    if obj is None:
        return None
    out: dict[str, Any] = {}
    for key, value in obj.items():
        out[key] = value
        twin = UM_FIELDS.get(key)
        if twin is not None and isinstance(value, (int, float)) and math.isfinite(value):
            out[twin] = value * pixel_size_um
    return out


def add_physical_units(doc: dict[str, Any]) -> dict[str, Any]:
    """results.json with µm values beside px when it has a ``pixel_size_um`` (else as it is)."""
    size = check_pixel_size(doc.get("pixel_size_um"), "pixel_size_um")
    if size is None:
        return doc
    intervals = []
    for iv in doc.get("intervals", []):
        iv = dict(iv)
        for key in ("spread", "kinetics"):
            if isinstance(iv.get(key), dict):
                iv[key] = with_um(iv[key], size)
        intervals.append(iv)
    return {**doc, "intervals": intervals}


def px_to_um(value_px: float | None, pixel_size_um: float | None) -> float | None:
    """``value_px`` (px or px/s) in µm (or µm/s); None without a pixel size or a finite value."""
    if value_px is None or not pixel_size_um or not math.isfinite(value_px):
        return None
    return value_px * pixel_size_um


def upward_um_or_px(dy_px: Any, pixel_size_um: float | None) -> tuple[Any, str]:
    """Vertical displacements as upward travel (positive up) in µm, else px; with the unit.

    Files keep the spec's sign (y down: the layer rising is negative ``lipid_dy_px``); a plot
    for a clinician shows the travel up the eye as positive.
    """
    if pixel_size_um:
        return -dy_px * pixel_size_um, "µm"
    return -dy_px, "px"
