"""Live acquisition: the capture loop, the Python camera devices and the recorder."""

from .core import CAMERA_LABEL, make_core
from .events import CaptureEvents
from .limits import RecordingLimits, parse_size
from .loop import CaptureLoop, CaptureStats, LoopState
from .pixels import bgra_to_rgb
from .replay_camera import ReplayCamera
from .synthetic_camera import SyntheticCamera

__all__ = [
    "CAMERA_LABEL",
    "CaptureEvents",
    "CaptureLoop",
    "CaptureStats",
    "LoopState",
    "RecordingLimits",
    "ReplayCamera",
    "SyntheticCamera",
    "bgra_to_rgb",
    "make_core",
    "parse_size",
]
