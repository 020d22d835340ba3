"""What really happened in a synthetic stream: the answers the tracker is scored against."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class GroundTruth:
    """Per frame and per blink/interval; coordinates are the delivered frame's pixels."""

    fps: float
    time_s: np.ndarray
    open: np.ndarray  # bool: eye open (no lid over the eye)
    eye_dx_px: np.ndarray
    eye_dy_px: np.ndarray
    lipid_dy_px: np.ndarray  # relative to the eye, since the interval's start; 0 in blinks
    thickness_nm: np.ndarray  # median lipid thickness over the tracked region
    blinks: list[dict] = field(default_factory=list)  # start_frame, end_frame, complete
    intervals: list[dict] = field(
        default_factory=list
    )  # start_frame, end_frame, amplitude_px, tau_s, drift_px_s, starts_after_partial
    lipid_dx_px: np.ndarray | None = None  # the layer's sideways travel, like lipid_dy_px

    def to_json(self) -> dict:
        """JSON-ready dict (arrays as lists)."""
        dx = np.zeros_like(self.lipid_dy_px) if self.lipid_dx_px is None else self.lipid_dx_px
        return {
            "fps": self.fps,
            "blinks": self.blinks,
            "intervals": self.intervals,
            "frames": {
                "time_s": self.time_s.round(6).tolist(),
                "open": self.open.tolist(),
                "eye_dx_px": self.eye_dx_px.round(4).tolist(),
                "eye_dy_px": self.eye_dy_px.round(4).tolist(),
                "lipid_dx_px": dx.round(4).tolist(),
                "lipid_dy_px": self.lipid_dy_px.round(4).tolist(),
                "thickness_nm": self.thickness_nm.round(2).tolist(),
            },
        }

    @classmethod
    def from_json(cls, d: dict) -> GroundTruth:
        """Inverse of ``to_json``."""
        f = d["frames"]
        return cls(
            fps=d["fps"],
            time_s=np.asarray(f["time_s"]),
            open=np.asarray(f["open"], bool),
            eye_dx_px=np.asarray(f["eye_dx_px"]),
            eye_dy_px=np.asarray(f["eye_dy_px"]),
            lipid_dy_px=np.asarray(f["lipid_dy_px"]),
            thickness_nm=np.asarray(f["thickness_nm"]),
            blinks=d["blinks"],
            intervals=d["intervals"],
            lipid_dx_px=np.asarray(f["lipid_dx_px"]) if "lipid_dx_px" in f else None,
        )
