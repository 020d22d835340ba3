"""The paper's pipeline as incremental stages, composed by ``Tracker``."""

from .config import Enhancement, FlowMethod, TrackerConfig
from .results import (
    FRAME_COLUMNS,
    Blink,
    Circle,
    EyeState,
    FrameResult,
    Interval,
    LidCurve,
    SpreadFit,
    Summary,
)
from .tracker import Tracker

__all__ = [
    "FRAME_COLUMNS",
    "Blink",
    "Circle",
    "Enhancement",
    "EyeState",
    "FlowMethod",
    "FrameResult",
    "Interval",
    "LidCurve",
    "SpreadFit",
    "Summary",
    "Tracker",
    "TrackerConfig",
]
