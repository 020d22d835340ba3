"""Blink statistics from blinks found in a session."""

import json

import numpy as np
import pytest

from tfll_live.blinkstats import blink_stats
from tfll_live.synth import SynthConfig, SyntheticStream
from tfll_live.tracking import Blink


def test_rate_intervals_partial_share_and_durations():
    # 60 s at 45 fps; blinks of 10 frames at 5 s, 20 s (partial), 40 s
    blinks = [Blink(225, 234, True), Blink(900, 909, False), Blink(1800, 1809, True)]
    s = blink_stats(blinks, fps=45.0, n_frames=2700)
    assert s.duration_s == pytest.approx(60.0)
    assert s.n_blinks == 3 and s.n_partial == 1
    assert s.blink_rate_per_min == pytest.approx(3.0)
    assert s.partial_share == pytest.approx(1 / 3)
    np.testing.assert_allclose(s.blink_durations_s, [10 / 45] * 3)
    # open from frame 235 to 899, and 910 to 1799
    np.testing.assert_allclose(s.inter_blink_intervals_s, [665 / 45, 890 / 45])
    d = json.loads(json.dumps(s.to_json()))
    assert d["inter_blink_interval_s"]["median"] == pytest.approx((665 / 45 + 890 / 45) / 2)
    assert d["blink_duration_s"]["sd"] == pytest.approx(0.0)


def test_results_json_dicts_and_frame_times():
    """Blinks as read back from results.json, timed by the camera's (jittery) frame times."""
    t = np.arange(450) / 45.0
    t[100:] += 0.5  # a half-second gap in the stream
    blinks = [{"start_frame": 200, "end_frame": 209, "complete": True},
              {"start_frame": 50, "end_frame": 59, "complete": True}]  # out of order
    s = blink_stats(blinks, 45.0, 450, time_s=t)
    assert s.duration_s == pytest.approx(10.5)  # 450 frames + the gap
    assert s.inter_blink_intervals_s[0] == pytest.approx(t[200] - t[60])


def test_no_blinks():
    s = blink_stats([], 30.0, 300)
    assert s.blink_rate_per_min == 0.0 and s.partial_share is None
    assert s.to_json()["inter_blink_interval_s"]["mean"] is None


def test_bad_input():
    with pytest.raises(ValueError, match="fps"):
        blink_stats([], 0.0, 10)
    with pytest.raises(ValueError, match="frame"):
        blink_stats([], 45.0, 0)
    with pytest.raises(ValueError, match="before it starts"):
        blink_stats([Blink(10, 5, True)], 45.0, 100)
    with pytest.raises(ValueError, match="times"):
        blink_stats([], 45.0, 100, time_s=np.zeros(5))


def test_matches_a_synthetic_stream_truth():
    stream = SyntheticStream(SynthConfig(height=64, width=64, n_frames=2700, seed=4,
                                         partial_blink_fraction=0.4))
    truth = stream.truth
    s = blink_stats(truth.blinks, truth.fps, len(stream))
    n = len(truth.blinks)
    assert s.n_blinks == n and n >= 5
    assert s.n_partial == sum(not b["complete"] for b in truth.blinks)
    # the synthetic schedule opens for 4-7 s between blinks
    assert all(4.0 <= g <= 7.0 + 1 / truth.fps for g in s.inter_blink_intervals_s)
    assert 60 / 7.5 <= s.blink_rate_per_min <= 60 / 4.0
