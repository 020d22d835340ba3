"""The synthetic interferometer's ground truth is what it renders."""

import numpy as np

from tfll_live.synth import GroundTruth, SynthConfig, SyntheticStream


def test_truth_round_trips_and_drift_adds_a_steady_creep():
    plain = SyntheticStream(SynthConfig(n_frames=400, seed=31, height=120, width=160))
    drifting = SyntheticStream(SynthConfig(n_frames=400, seed=31, height=120, width=160,
                                           drift_px_s=(3.0, 3.0)))
    assert all(iv["drift_px_s"] == 0 for iv in plain.truth.intervals)
    iv = drifting.truth.intervals[1]
    s, e = iv["start_frame"], iv["end_frame"]
    t = drifting.truth.time_s[s : e + 1] - drifting.truth.time_s[s]
    expected = -iv["amplitude_px"] * (1 - np.exp(-t / iv["tau_s"])) - 3.0 * t
    np.testing.assert_allclose(drifting.truth.lipid_dy_px[s : e + 1], expected, atol=1e-9)
    back = GroundTruth.from_json(drifting.truth.to_json())
    np.testing.assert_allclose(back.lipid_dy_px, drifting.truth.lipid_dy_px, atol=1e-3)
    assert back.blinks == drifting.truth.blinks


def test_frames_are_deterministic_and_of_the_configured_kind():
    cfg = SynthConfig(n_frames=10, seed=5, height=96, width=128, rgb=False, bit_depth=16)
    a, b = SyntheticStream(cfg), SyntheticStream(cfg)
    f = a.render(3)
    assert f.shape == (96, 128) and f.dtype == np.uint16
    np.testing.assert_array_equal(f, b.render(3))
    assert not np.array_equal(f, a.render(4))


def test_a_new_layer_does_not_jump_when_the_lid_has_opened():
    # after a complete blink the new layer lies where it starts spreading from as soon as the
    # lid is up: the frame that ends the blink (lid fully open) and the interval's first frame
    # differ no more than two open frames do
    stream = SyntheticStream(SynthConfig(n_frames=400, seed=41, fps=100.0, drift_px=0.0,
                                         saccades_per_s=0.0, partial_blink_fraction=0.0))
    blink = stream.truth.blinks[0]
    e = blink["end_frame"]
    assert stream.truth.open[e]  # the lid is up in the blink's last frame
    frames = [stream.render(i).astype(float) for i in (e, e + 1, e + 2)]
    at_opening = np.abs(frames[1] - frames[0]).mean()
    while_open = np.abs(frames[2] - frames[1]).mean()
    assert at_opening < 2.0 * while_open
