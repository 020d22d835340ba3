"""Settings of the tracker, recorded with every analysis so a run can be reproduced."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from enum import Enum


class Enhancement(str, Enum):
    """The paper's visual enhancements of the interference pattern."""

    NONE = "none"
    SHARPEN = "sharpen"
    LAPLACIAN = "laplacian"
    TEMPORAL = "temporal"


class FlowMethod(str, Enum):
    """How the lipid layer is followed: sparse LK (default), dense Farneback, SSD templates."""

    LUCAS_KANADE = "lucas-kanade"
    FARNEBACK = "farneback"
    SSD = "ssd"


@dataclass(frozen=True)
class TrackerConfig:
    """What a user may tune; the defaults are the method as validated on synthetic truth."""

    enhancement: Enhancement = Enhancement.NONE  # low-pass only: measured best on synthetic truth
    flow: FlowMethod = FlowMethod.LUCAS_KANADE
    max_features: int = 150
    blink_z_on: float = 6.0
    blink_z_off: float = 3.0
    min_fit_s: float = 0.5  # an interval shorter than this gets no spread fit
    fit_every: int = 5  # refit the live spread every n frames
    thickness: bool = True  # estimate lipid thickness (nm) from the interference colours
    thickness_every: int = 5  # estimate every n-th open frame; frames between repeat it
    thickness_calibration: str | None = None  # a calibration file (``thickness.Calibration``)

    def __post_init__(self) -> None:
        object.__setattr__(self, "enhancement", Enhancement(self.enhancement))
        object.__setattr__(self, "flow", FlowMethod(self.flow))
        if self.max_features < 4:
            raise ValueError(f"max_features must be at least 4, got {self.max_features}")
        if not self.blink_z_on > self.blink_z_off > 0:
            raise ValueError("blink thresholds need blink_z_on > blink_z_off > 0")

    def to_json(self) -> dict[str, object]:
        """Plain dict for metadata files."""
        return {k: (v.value if isinstance(v, Enum) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, d: dict[str, object]) -> TrackerConfig:
        """Inverse of ``to_json``; unknown keys (from newer versions) are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})  # type: ignore[arg-type]
