"""The realism presets: the synthetic eye looks like the clinic's, and the tracker follows it.

Bounds are issue 9's (amplitude error median <= 5% and max <= 15%, tau median <= 10%, eye RMSE
<= 0.5 px, no false blink), with margin where one short stream holds only a few intervals. Seeds
72xx are used nowhere else; the benchmark (`bench_accuracy.py`) runs more, longer streams.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from tfll_live.analyze import default_out_dir
from tfll_live.cli import main
from tfll_live.evaluate import score, track
from tfll_live.io import open_stream, read_results
from tfll_live.synth import PRESETS, SyntheticStream, preset, write_stream
from tfll_live.synth.files import truth_path_for, write_video
from tfll_live.synth.scene import Geometry


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_renders_the_frames_it_describes(name):
    cfg = preset(name, n_frames=2)
    frame = SyntheticStream(cfg).render(1)
    assert frame.shape[:2] == (cfg.height, cfg.width)
    assert (frame.ndim == 3) == cfg.rgb
    assert frame.dtype == (np.uint8 if cfg.bit_depth == 8 else np.uint16)
    assert int(frame.max()) < 2**cfg.bit_depth
    assert PRESETS[name][0]  # and says in a line what it is for


def test_the_clinic_preset_looks_like_the_clinic_footage():
    # the published clip, two seconds after a blink: bluish-grey, mean grey 110-117, median
    # saturation 60-70, the film barely visible over the eye's own texture; the dark pupil a
    # fifth of the width across, its centre a quarter of the way down
    cfg = preset("clinic", seed=7210, video=None)
    stream = SyntheticStream(cfg)
    k = stream.truth.intervals[1]["start_frame"] + round(2 * cfg.fps)
    frame = stream.render(k)
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(float)
    saturation = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)[..., 1]
    assert 100 <= grey.mean() <= 125
    assert 50 <= np.median(saturation) <= 80
    assert frame[..., 2].mean() > frame[..., 0].mean()  # bluish
    eye_only = SyntheticStream(replace(cfg, film=replace(cfg.film, gain=0.0))).render(k)
    eye_grey = cv2.cvtColor(eye_only, cv2.COLOR_RGB2GRAY).astype(float)
    h = cfg.height
    below = slice(int(0.5 * h), int(0.8 * h))  # between the pupil and the lid
    film = grey[below] - eye_grey[below]
    assert film.std() < eye_grey[below].std()  # the eye's texture is the stronger
    geo = Geometry.of(cfg)
    x = geo.pupil_x * cfg.pixel_aspect + stream.truth.eye_dx_px[k]  # delivered pixels
    y = geo.pupil_y + stream.truth.eye_dy_px[k]
    assert 0.17 <= 2 * geo.pupil_r * cfg.pixel_aspect / cfg.width <= 0.25
    assert 0.2 <= y / h <= 0.33
    yy, xx = np.mgrid[:h, : cfg.width]
    r = np.hypot((xx - x) / cfg.pixel_aspect, yy - y)
    pupil = grey[r < 0.6 * geo.pupil_r].mean()
    iris = grey[(r > 1.3 * geo.pupil_r) & (r < 1.8 * geo.pupil_r)].mean()
    assert pupil < 0.6 * iris  # dark, under the film's own reflection


def _bounds_hold(name: str, seed: int) -> None:
    stream = SyntheticStream(preset(name, seed=seed))
    results, summary = track(stream)
    acc = score(results, summary, stream.truth)
    assert acc.false_blinks == 0
    if stream.truth.blinks:
        assert acc.blink_f1 >= 0.98
    assert acc.eye_rmse_px <= 0.5
    full = [s for s in acc.intervals if s.long_enough]
    assert full, "the stream holds an interval longer than two tau"
    for s in full:  # followed to the end (10%, or a few pixels on short travels), not
        # walked on at rest (that added 7% of the height over 10 s on the saccades preset)
        slack = max(0.10 * s.true_travel_px, 0.02 * stream.config.height)
        assert abs(s.measured_travel_px - s.true_travel_px) <= slack, s
    amplitude = np.array([s.amplitude_error for s in full])
    assert np.all(amplitude <= 0.15), amplitude
    assert np.median(amplitude) <= 0.07
    assert acc.tau_rel_error_median <= 0.15


@pytest.mark.parametrize("name", [n for n in PRESETS if n != "classic"])
def test_the_tracker_meets_the_bounds_on_every_preset(name):
    _bounds_hold(name, 7201)


def test_saccades_focus_and_exposure_steps_are_no_blink():
    stream = SyntheticStream(preset("saccades", seed=7202))
    assert not stream.truth.blinks
    x, y = stream.truth.eye_dx_px, stream.truth.eye_dy_px
    jumps = np.hypot(x[4:] - x[:-4], y[4:] - y[:-4])  # a saccade takes a few frames
    assert jumps.max() > 6  # the eye did jump (blurred, the focus changing): none is a blink
    results, summary = track(stream)
    assert not summary.blinks
    assert all(r.interval == 0 for r in results)


def test_full_travel_clinic_mp4s_are_measured_over_their_whole_travel(tmp_path):
    """The clinic's own kind of file, read as `tfll analyze` reads it.

    The layer climbs about 40% of the frame height; over four such streams the fitted amplitude
    meets the presets' bounds (median within 5%, none off by 15%; tau median within 10%).
    Single streams are off by -1% to +2% (tau -2% to +8%): the post-blink bands fading as the
    layer slows make the chained measurement run a few pixels ahead of the layer (without the
    bands it stays within about 1 px).
    """
    errors, tau_errors = [], []
    for seed in (7201, 7202, 7203, 7204):
        cfg = preset(
            "clinic",
            seed=seed,
            n_frames=300,
            first_blink_s=(0.4, 0.6),
            blink_interval_s=(12.0, 14.0),
            spread_amplitude_frac=(0.38, 0.42),
            spread_tau_s=(1.5, 2.0),
        )
        path = tmp_path / f"eye{seed}.mp4"
        truth = write_stream(SyntheticStream(cfg), path)
        assert truth == truth_path_for(path)
        with open_stream(path) as source:
            assert source.shape[:2] == (438, 668)
        assert main(["analyze", str(path)]) == 0
        doc = read_results(default_out_dir(path))
        stream = SyntheticStream(cfg)
        assert len(doc["blinks"]) == len(stream.truth.blinks) == 1
        iv = stream.truth.intervals[1]
        assert iv["amplitude_px"] >= 0.35 * cfg.height
        fitted = doc["intervals"][1]["spread"]
        errors.append(abs(fitted["amplitude_px"] / iv["amplitude_px"] - 1))
        tau_errors.append(abs(fitted["tau_s"] / iv["tau_s"] - 1))
    assert np.median(errors) <= 0.05 and max(errors) <= 0.15, errors
    assert np.median(tau_errors) <= 0.10, tau_errors


def test_tfll_synth_writes_a_preset_as_h264(tmp_path, capsys):
    out = tmp_path / "clinic.mp4"
    assert main(["synth", str(out), "--preset", "clinic", "--frames", "12", "--seed", "1"]) == 0
    assert "clinic" in capsys.readouterr().out
    with open_stream(out) as source:
        frames = list(source)
    assert len(frames) == 12 and frames[0].shape == (438, 668, 3)
    assert truth_path_for(out).is_file()


def test_the_same_stream_always_encodes_to_the_same_h264_file(tmp_path):
    """The figures measured on H.264 presets must not move from run to run."""
    stream = SyntheticStream(preset("clinic", seed=7205, n_frames=40))
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    write_video(stream, a)
    write_video(SyntheticStream(stream.config), b)
    assert a.read_bytes() == b.read_bytes()
