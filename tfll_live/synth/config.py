"""What a synthetic stream shows: the eye, the film, the camera, and what happens over time."""

from __future__ import annotations

from dataclasses import dataclass, field

VIDEO_CODECS = ("h264", "mjpeg")


@dataclass(frozen=True)
class EyeLook:
    """The eye behind the film; positions and sizes as fractions of the frame (height for sizes).

    The defaults are the project's first, cartoon eye (centred pupil, lids that follow every
    saccade); ``CLINIC_EYE`` is the eye of the clinic's footage.
    """

    pupil_xy: tuple[float, float] = (0.5, 0.42)  # centre, fractions of the width and height
    pupil_r: float = 0.11
    iris_r: float = 0.36
    lid_y: float = 0.86  # lower lid margin below the pupil
    lid_curve: float = 0.35  # how much the lid margin rises towards the frame's sides
    iris_rgb: tuple[float, float, float] = (0.30, 0.36, 0.42)
    sclera_rgb: tuple[float, float, float] = (0.62, 0.58, 0.56)
    iris_fibres: float = 1.0  # contrast of the iris's radial fibres
    iris_crypts: float = 1.0  # contrast of its crypts (blotches)
    texture_blur: float = 0.0  # softness of the iris texture, px at 480 rows (0: crisp)
    glints: int = 0  # corneal reflections of the light: bright, fixed to the eye
    lashes: int = 0  # upper-lid lashes hanging into the top of the frame
    meniscus: float = 0.0  # brightness of the tear meniscus along the lower lid margin
    diffuse: float = 0.65  # weight of the eye's diffuse light against the film's
    saccades_move_lids: bool = True  # the cartoon; a real saccade turns the eye under still lids


CLINIC_EYE = EyeLook(
    pupil_xy=(0.42, 0.27),
    pupil_r=0.13,
    iris_r=0.62,
    lid_y=0.89,
    lid_curve=0.25,
    iris_rgb=(0.30, 0.37, 0.47),
    sclera_rgb=(0.60, 0.58, 0.57),
    iris_fibres=3.5,
    iris_crypts=1.8,
    texture_blur=1.5,
    glints=2,
    lashes=14,
    meniscus=0.35,
    diffuse=0.62,
    saccades_move_lids=False,
)


@dataclass(frozen=True)
class FilmLook:
    """The lipid layer: its thickness pattern, colours and how it changes after a blink."""

    thickness_nm: tuple[float, float] = (20.0, 200.0)
    gain: float = 0.45  # weight of the film's reflection (low: a barely visible film)
    bands_nm: float = 0.0  # extra thickness of the bands laid just above the lid by a blink
    bands_fade_s: float = 2.0  # how fast those bands thin (and their colours fade)
    evolve_s: float = 0.0  # time over which the pattern changes within itself (0: rigid)
    sideways: float = 0.0  # largest sideways drift of the layer, as dx/dy of its travel


@dataclass(frozen=True)
class SynthConfig:
    """Parameters of a synthetic stream; every random choice derives from ``seed``."""

    height: int = 480
    width: int = 640
    fps: float = 45.0
    n_frames: int = 900
    seed: int = 0
    rgb: bool = True
    bit_depth: int = 8  # 8, 12 (in 16-bit words) or 16
    blink_interval_s: tuple[float, float] = (4.0, 7.0)
    first_blink_s: tuple[float, float] = (0.3, 0.8)
    partial_blink_fraction: float = 0.25
    blink_close_s: float = 0.09
    blink_hold_s: float = 0.05
    blink_open_s: float = 0.14
    closure_fraction: float = 0.0  # share of complete blinks that hold the eye shut for long
    closure_s: tuple[float, float] = (2.0, 5.0)
    spread_amplitude_frac: tuple[float, float] = (0.04, 0.12)  # A as a fraction of the height
    spread_tau_s: tuple[float, float] = (0.5, 2.5)
    # King-Smith (2009): after the exponential the layer may keep creeping up at a steady speed;
    # (0, 0) means no drift (and draws nothing, so streams without drift are unchanged)
    drift_px_s: tuple[float, float] = (0.0, 0.0)
    drift_px: float = 4.0  # RMS of the slow drift of the head (eye and lids together)
    saccades_per_s: float = 0.3
    saccade_px: tuple[float, float] = (3.0, 12.0)
    motion_blur: bool = False  # saccades smear the eye over the exposure
    noise_dn: float = 2.0  # read noise, in 8-bit counts
    exposure_drift: float = 0.0  # relative brightness change per 10 s (auto exposure, lamp)
    exposure_jumps_per_s: float = 0.0  # sudden brightness steps of 5-12% (auto exposure)
    focus_changes_per_s: float = 0.0  # brief refocusing (blur or sharpening for a few frames)
    pixel_aspect: float = 1.0  # > 1: the frame was stretched sideways (a resized video)
    jpeg_quality: int | None = None  # each frame JPEG-compressed (8-bit only)
    video: str | None = None  # delivered as a lossy video file: "h264" (mp4) or "mjpeg" (avi)
    eye: EyeLook = field(default_factory=EyeLook)
    film: FilmLook = field(default_factory=FilmLook)

    def __post_init__(self) -> None:
        if self.height < 64 or self.width < 64:
            raise ValueError(
                f"synthetic frames must be at least 64x64, got {self.height}x{self.width}"
            )
        if self.bit_depth not in (8, 12, 16):
            raise ValueError(f"bit_depth must be 8, 12 or 16, got {self.bit_depth}")
        if (self.jpeg_quality is not None or self.video is not None) and self.bit_depth != 8:
            raise ValueError("JPEG and video streams are 8-bit: set bit_depth=8")
        if self.video is not None and self.video not in VIDEO_CODECS:
            raise ValueError(f"video must be one of {VIDEO_CODECS}, got {self.video!r}")
        if not self.pixel_aspect > 0:
            raise ValueError(f"pixel_aspect must be positive, got {self.pixel_aspect}")

    @property
    def max_dn(self) -> int:
        """The camera's full scale."""
        return (1 << self.bit_depth) - 1
