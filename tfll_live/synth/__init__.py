"""Synthetic micro-interferometer streams of the tear film, with ground truth (``stream``)."""

from .config import CLINIC_EYE, EyeLook, FilmLook, SynthConfig
from .files import truth_path_for, write_stream, write_video
from .presets import PRESETS, preset
from .stream import SyntheticStream
from .truth import GroundTruth

__all__ = [
    "CLINIC_EYE",
    "PRESETS",
    "EyeLook",
    "FilmLook",
    "GroundTruth",
    "SynthConfig",
    "SyntheticStream",
    "preset",
    "truth_path_for",
    "write_stream",
    "write_video",
]
