"""Named synthetic streams, from the project's first cartoon eye to footage like the clinic's.

Each preset is one way real footage differs from the cartoon; ``clinic`` puts them together as
the published clip looks (a bluish-grey iris filling the frame, the pupil high, a film barely
visible once its post-blink bands have faded, travelling 25-45% of the frame height).
"""

from __future__ import annotations

from dataclasses import replace

from .config import CLINIC_EYE, FilmLook, SynthConfig

# the clinic's film: thin and faint over a strong eye, bands of colour just after a blink
CLINIC_FILM = FilmLook(
    thickness_nm=(25.0, 65.0),
    gain=0.26,
    bands_nm=140.0,
    bands_fade_s=2.5,
    evolve_s=6.0,
    sideways=0.12,
)

# what every realistic preset shares: the clinic's eye and film, real travel, a moving eye
_REAL = SynthConfig(
    height=480,
    width=640,
    fps=30.0,
    n_frames=600,
    blink_interval_s=(6.0, 10.0),
    first_blink_s=(0.4, 1.0),
    partial_blink_fraction=0.2,
    spread_amplitude_frac=(0.25, 0.45),
    spread_tau_s=(0.8, 2.5),
    saccades_per_s=0.25,
    saccade_px=(3.0, 15.0),
    motion_blur=True,
    noise_dn=2.5,
    exposure_drift=0.15,
    focus_changes_per_s=0.05,
    eye=CLINIC_EYE,
    film=CLINIC_FILM,
)

PRESETS: dict[str, tuple[str, SynthConfig]] = {
    "classic": (
        "the first synthetic eye (centred pupil, vivid film travelling 4-12% of the height): "
        "kept to compare with earlier figures",
        SynthConfig(),
    ),
    "clinic": (
        "the published clip's look: 438x668 at 29.97 frames/s stretched sideways, faint film "
        "over a strong eye, travel 25-45%, saccades with blur and refocusing, H.264 mp4",
        replace(_REAL, height=438, width=668, fps=29.97, pixel_aspect=1.22, video="h264"),
    ),
    "long-travel": (
        "slow, long spreads (tau 2-4 s, 35-45% of 768 rows): the layer passes the whole "
        "tracked region, features must chain on over hundreds of pixels",
        replace(
            _REAL,
            height=768,
            width=1024,
            n_frames=900,
            blink_interval_s=(12.0, 15.0),
            spread_amplitude_frac=(0.35, 0.45),
            spread_tau_s=(2.0, 4.0),
        ),
    ),
    "fast-short": (
        "quick, short spreads (tau 0.3-0.8 s, 10-20%) at 60 frames/s",
        replace(
            _REAL,
            fps=60.0,
            n_frames=900,
            blink_interval_s=(3.0, 5.0),
            spread_amplitude_frac=(0.10, 0.20),
            spread_tau_s=(0.3, 0.8),
        ),
    ),
    "faint-noisy": (
        "a film a few grey levels deep on a noisy camera (read noise 6 DN): the eye's texture "
        "is ten times the film",
        replace(_REAL, noise_dn=6.0, film=replace(CLINIC_FILM, gain=0.12, bands_nm=80.0)),
    ),
    "saccades": (
        "no blink, frequent saccades up to 15 px with motion blur, refocusing and exposure "
        "steps: none of it is a blink",
        replace(
            _REAL,
            first_blink_s=(100.0, 100.0),
            saccades_per_s=1.2,
            saccade_px=(6.0, 15.0),
            focus_changes_per_s=0.3,
            exposure_jumps_per_s=0.2,
            spread_tau_s=(1.5, 3.0),
        ),
    ),
    "closures": (
        "long closures (2-5 s with the eye shut) among ordinary and partial blinks",
        replace(
            _REAL,
            n_frames=900,
            blink_interval_s=(5.0, 8.0),
            closure_fraction=0.35,
            spread_tau_s=(0.8, 1.8),
        ),
    ),
    "mono12": (
        "a 12-bit monochrome camera: no colour to tell the film from the eye",
        replace(_REAL, rgb=False, bit_depth=12),
    ),
    "mono16-large": (
        "a 16-bit monochrome camera at 1024x1280, the largest frames",
        replace(_REAL, rgb=False, bit_depth=16, height=1024, width=1280, spread_tau_s=(0.8, 2.0)),
    ),
    "mjpeg": (
        "an MJPEG camera at ordinary JPEG quality (75), colour 8-bit",
        replace(_REAL, jpeg_quality=75),
    ),
}


def preset(name: str, **changes: object) -> SynthConfig:
    """The preset ``name``'s configuration, with ``changes`` (seed, n_frames...) applied."""
    try:
        config = PRESETS[name][1]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}") from None
    return replace(config, **changes)  # type: ignore[arg-type]
