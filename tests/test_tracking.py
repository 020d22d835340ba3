"""The tracker against the ground truth of synthetic streams, stage by stage and whole."""

from __future__ import annotations

import functools

import cv2
import numpy as np
import pytest

from tfll_live.evaluate import score
from tfll_live.synth import SynthConfig, SyntheticStream, preset
from tfll_live.tracking import EyeState, FlowMethod, Tracker, TrackerConfig
from tfll_live.tracking.frame import FrameError
from tfll_live.tracking.spread import SpreadFitter, fit_spread
from tfll_live.tracking.stabilize import Stabilizer


def run(stream: SyntheticStream, config: TrackerConfig | None = None):
    tracker = Tracker(config)
    results = [tracker.push(stream.render(i), i / stream.config.fps) for i in range(len(stream))]
    return results, tracker.finish()


SEEDS = (7001, 7002, 7003)  # seeds never used while developing the tracker


@functools.cache
def track_seed(seed: int):
    """A default stream of ``seed`` through the tracker, scored (once per test session)."""
    stream = SyntheticStream(SynthConfig(n_frames=650, seed=seed, partial_blink_fraction=0.4))
    results, summary = run(stream)
    return stream, results, summary, score(results, summary, stream.truth)


@pytest.fixture(scope="module", params=SEEDS)
def tracked(request):
    return track_seed(request.param)


def test_blinks_found_and_partial_blinks_flagged(tracked):
    _, _, _, acc = tracked
    assert acc.blink_f1 >= 0.95
    assert acc.partial_correct == 1.0


def test_eye_motion_within_half_a_pixel(tracked):
    assert tracked[3].eye_rmse_px <= 0.5


def test_lipid_displacement_and_tau_match_truth(tracked):
    # measured on these streams: lipid 0.3-0.8 px, tau 0.2-6.4%; the texture tracker before
    # issue 9 did 0.1-0.4 px and 0.3-1.2% here, but followed a fraction of the travel on
    # footage like the clinic's (test_realism.py)
    acc = tracked[3]
    assert acc.lipid_rmse_px <= 1.5
    assert acc.n_intervals_scored >= 1
    assert acc.tau_rel_error_median <= 0.07


def test_spread_time_matches_truth_over_the_seeds():
    """The spread-time bound is a median over the preset's intervals, as bench_accuracy scores.

    One to two intervals a stream end after the spread; a single one is no median.
    """
    errors = [e for seed in SEEDS for e in track_seed(seed)[3].spread_time_rel_errors]
    assert len(errors) >= 3
    assert np.median(errors) <= 0.10


def test_intervals_and_states_are_consistent(tracked):
    _, results, summary, _ = tracked
    for r in results:
        assert (r.interval == -1) == (r.state is EyeState.BLINK)
        if r.state is EyeState.BLINK:
            assert r.lipid_dy_px is None
    for iv, nxt in zip(summary.intervals[:-1], summary.intervals[1:], strict=True):
        assert iv.end_frame < nxt.start_frame
    # the layer moves up after a blink: negative displacement, as in the paper
    assert any(iv.spread is not None and iv.spread.c < 0 for iv in summary.intervals)


def test_stabilizer_alone_follows_the_pupil():
    stream = SyntheticStream(SynthConfig(n_frames=120, seed=7010, first_blink_s=(5.0, 6.0)))
    stab = Stabilizer()
    import cv2

    est = np.array(
        [
            (m.dx_px, m.dy_px)
            for m in (
                stab.push(cv2.cvtColor(stream.render(i), cv2.COLOR_RGB2GRAY)) for i in range(120)
            )
        ]
    )
    truth = np.column_stack([stream.truth.eye_dx_px, stream.truth.eye_dy_px])[:120]
    err = est[5:] - truth[5:] - (est[5] - truth[5])
    assert np.sqrt(np.mean(np.sum(err**2, axis=1))) < 0.5
    assert np.ptp(truth[:, 1]) > 1.0  # the eye did move


def test_fit_recovers_the_papers_example():
    t = np.arange(450) / 45.0
    y = 220.9 * np.exp(-0.511 * t) - 186.9 + np.random.default_rng(0).normal(0, 1.0, t.size)
    fit = fit_spread(t, y)
    assert fit is not None
    assert fit.b == pytest.approx(0.511, rel=0.02)
    assert fit.c == pytest.approx(-186.9, abs=2)
    assert fit.r2 > 0.99
    assert fit.tau_s == pytest.approx(1 / 0.511, rel=0.02)
    # the output format's example: the layer travels |c - y(0)| = 186.9 px from the interval's
    # first frame; a = 220.9 carries the exponential back over the third of a second before
    # it started to move
    assert fit.amplitude_px == pytest.approx(186.9, abs=2)
    assert fit.initial_velocity_px_s == pytest.approx(112.9, rel=0.03)


def test_a_layer_that_starts_late_travels_its_own_amplitude():
    """Amplitude is the travel from the interval's first frame (0) to rest, however late it set off.

    The lid can leave the view a frame or two before the layer sets off (the tracker's samples
    start only once it moves): ``|a|`` would add the exponential's run over those frames.
    """
    from tfll_live.kinetics import analyze_spread

    onset, tau, travel = 0.05, 0.5, 24.0
    t = np.arange(onset + 1 / 60, 3.0, 1 / 60)
    y = -travel * (1 - np.exp(-(t - onset) / tau))
    fit = fit_spread(t, y)
    kinetics = analyze_spread(t, y)
    assert fit is not None and kinetics is not None
    assert abs(fit.a) == pytest.approx(travel * np.exp(onset / tau), rel=0.01)  # 10% more
    assert fit.amplitude_px == pytest.approx(travel, rel=0.01)
    assert kinetics.amplitude_px == pytest.approx(travel, rel=0.01)


def test_fitter_updates_live_and_refuses_short_intervals():
    fitter = SpreadFitter(fit_every=5, min_fit_s=0.5)
    t = np.arange(90) / 45
    y = -10 * (1 - np.exp(-t))
    assert all(fitter.update(t[:k], y[:k]) is None for k in range(1, 11))
    assert fitter.finish(t[:10], y[:10]) is None  # 0.2 s is too short
    for k in range(11, 91):
        fit = fitter.update(t[:k], y[:k])
    assert fit is not None and fit.tau_s == pytest.approx(1.0, rel=0.05)
    assert fitter.finish(t, y).final


@pytest.mark.parametrize("flow", [FlowMethod.FARNEBACK, FlowMethod.SSD])
def test_alternative_flow_methods_follow_the_layer(flow):
    stream = SyntheticStream(SynthConfig(n_frames=200, seed=7020, first_blink_s=(0.3, 0.4)))
    results, _ = run(stream, TrackerConfig(flow=flow))
    truth = stream.truth
    iv = truth.intervals[1]
    k = iv["end_frame"] if iv["end_frame"] < 199 else 199
    assert results[k].lipid_dy_px is not None
    assert results[k].lipid_dy_px == pytest.approx(
        truth.lipid_dy_px[k], abs=max(3.0, 0.25 * abs(truth.lipid_dy_px[k]))
    )


@pytest.mark.parametrize(("rgb", "bits"), [(False, 8), (False, 16), (True, 16)])
def test_mono_and_16_bit_streams_are_tracked(rgb, bits):
    stream = SyntheticStream(
        SynthConfig(n_frames=300, seed=7030, rgb=rgb, bit_depth=bits, partial_blink_fraction=0.0)
    )
    results, summary = run(stream)
    acc = score(results, summary, stream.truth)
    assert acc.blink_f1 >= 0.95
    assert acc.eye_rmse_px <= 1.0


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((64, 64), np.int32),
        np.zeros((64, 64, 4), np.uint8),
        np.zeros((2, 64, 64, 3), np.uint8),
        np.zeros((8, 8), np.uint8),
        [[1, 2], [3, 4]],
    ],
)
def test_malformed_frames_get_one_line_errors(bad):
    with pytest.raises(FrameError) as err:
        Tracker().push(bad, 0.0)
    assert "\n" not in str(err.value)


def test_bad_frames_mid_stream_reset_and_say_why():
    stream = SyntheticStream(SynthConfig(n_frames=40, seed=7040, first_blink_s=(5.0, 6.0)))
    tracker = Tracker()
    for i in range(20):
        tracker.push(stream.render(i), i / 45)
    black = tracker.push(np.zeros(stream.shape, np.uint8), 20 / 45)
    assert black.reset_reason == "frame is all black"
    assert black.interval_ended is not None and black.interval_ended.end_frame == 19
    white = tracker.push(np.full(stream.shape, 255, np.uint8), 21 / 45)
    assert white.reset_reason == "frame is saturated"
    nan = np.full(stream.shape, np.nan, np.float32)
    assert "NaN" in tracker.push(nan, 22 / 45).reset_reason
    tracker.push(stream.render(23), 23 / 45)
    resized = tracker.push(stream.render(24)[:200], 24 / 45)
    assert "size changed" in resized.reset_reason
    # and it recovers: tracking resumes with a new interval on good frames
    for i in range(25, 40):
        last = tracker.push(stream.render(i), i / 45)
    assert last.state is EyeState.OPEN and last.lipid_dy_px is not None
    assert len(tracker.finish().intervals) == 3  # before the black frame, 23, and from 25


def test_time_going_backwards_resets():
    stream = SyntheticStream(SynthConfig(n_frames=20, seed=7041, first_blink_s=(5.0, 6.0)))
    tracker = Tracker()
    for i in range(10):
        tracker.push(stream.render(i), 1.0 + i / 45)
    back = tracker.push(stream.render(10), 1.0)
    assert "went back" in back.reset_reason and back.interval_ended is not None


def test_thickness_and_kinetics_reach_the_results(tracked):
    stream, results, summary, _ = tracked
    truth = stream.truth
    est = np.array(
        [np.nan if r.lipid_thickness_nm is None else r.lipid_thickness_nm for r in results]
    )
    ok = np.isfinite(est) & truth.open[: len(est)]
    assert ok.sum() > 0.5 * truth.open.sum()
    assert np.median(np.abs(est[ok] - truth.thickness_nm[ok])) <= 10.0
    assert summary.thickness["available"]
    closed = [iv for iv in summary.intervals if iv.kinetics is not None]
    assert closed and all(iv.thickness["n_frames"] > 0 for iv in closed)
    assert all(iv.to_json()["kinetics"]["tau_s"] > 0 for iv in closed)


def test_mono_camera_says_why_there_is_no_thickness():
    stream = SyntheticStream(SynthConfig(n_frames=60, seed=7050, rgb=False))
    results, summary = run(stream)
    assert all(r.lipid_thickness_nm is None for r in results)
    assert summary.thickness["available"] is False
    assert "colour" in summary.thickness["reason"] or "mono" in summary.thickness["reason"]


def test_drift_model_is_chosen_only_when_the_layer_keeps_creeping(tracked):
    from tfll_live.kinetics import DRIFT_MODEL

    _, _, summary, _ = tracked  # streams without drift
    plain = [iv.kinetics.model for iv in summary.intervals[1:] if iv.kinetics is not None]
    stream = SyntheticStream(SynthConfig(n_frames=900, seed=7070, drift_px_s=(2.0, 4.0),
                                         partial_blink_fraction=0.0))
    _, drifting = run(stream)
    chose = [iv.kinetics.model for iv in drifting.intervals[1:] if iv.kinetics is not None]
    assert plain and chose
    assert sum(m == DRIFT_MODEL for m in plain) <= 1  # per short stream; 9/10 pooled: bench_drift
    assert sum(m == DRIFT_MODEL for m in chose) >= 0.75 * len(chose)


def test_eye_moving_under_the_lid_does_not_shift_the_next_interval():
    # the eye often moves while the lid covers it; the frames the tracker replays at the
    # start of an interval (seen before it knew the blink was over) must take the eye's new
    # position, not the one held from before the blink, or the whole interval is offset
    stream = SyntheticStream(SynthConfig(n_frames=700, seed=7033, saccades_per_s=2.0,
                                         saccade_px=(6.0, 10.0), partial_blink_fraction=0.0))
    truth = stream.truth
    moved = [
        b for b in truth.blinks
        if b["start_frame"] > 0 and b["end_frame"] + 6 < len(stream)
        and np.hypot(truth.eye_dx_px[b["end_frame"] + 1] - truth.eye_dx_px[b["start_frame"] - 1],
                     truth.eye_dy_px[b["end_frame"] + 1] - truth.eye_dy_px[b["start_frame"] - 1])
        > 4.0
    ]
    assert moved, "the stream should have a blink with the eye moving under the lid"
    results, summary = run(stream)
    for b in moved:
        s = b["end_frame"] + 1  # the true first open frame
        ivs = [iv for iv in summary.intervals if abs(iv.start_frame - s) <= 3]
        assert ivs and ivs[0].kinetics is not None
        iv = ivs[0]
        # the frames measured first (those right after the lid, if the eye was still moving,
        # are smeared: nothing to measure in them)
        first = [k for k in range(iv.start_frame, iv.start_frame + 20)
                 if results[k].lipid_dy_px is not None and results[k].n_tracked > 0][:8]
        assert len(first) == 8
        est = np.array([results[k].lipid_dy_px for k in first])
        true = truth.lipid_dy_px[first] - truth.lipid_dy_px[iv.start_frame]
        assert np.max(np.abs(est - true)) < 1.0, (b, est, true)
        assert iv.kinetics.noise_px < 0.3  # no step in the replayed samples


def test_an_interval_starts_as_the_lid_opens_after_the_eye_moved_far_under_it():
    # through a long closure the eye wandered 39 px (over half the pupil's radius); refits
    # from where the pupil was before it found no round margin, the full search runs only
    # every 15 frames, and the interval began 9 frames late (the layer's fastest 0.3 s lost)
    stream = SyntheticStream(SynthConfig(
        n_frames=200, seed=7060, closure_fraction=1.0, closure_s=(2.0, 3.0),
        first_blink_s=(0.4, 0.8), saccades_per_s=3.0, saccade_px=(10.0, 15.0),
        partial_blink_fraction=0.0))
    truth = stream.truth
    closure = truth.blinks[0]
    before, after = closure["start_frame"] - 1, closure["end_frame"] + 1
    moved = np.hypot(truth.eye_dx_px[after] - truth.eye_dx_px[before],
                     truth.eye_dy_px[after] - truth.eye_dy_px[before])
    assert moved > 30.0 and closure["end_frame"] - closure["start_frame"] > 60
    _, summary = run(stream)
    starts = [iv.start_frame for iv in summary.intervals if iv.start_frame > before]
    assert starts and abs(starts[0] - after) <= 1, (starts, after)


def test_pupil_search_finds_the_pupil_in_small_frames():
    """At 240x320 a ring of iris texture edges can look as dark and as strong as the pupil
    margin; only the margin is a circle to within a pixel (scored by the robust fit's inlier
    share instead, texture won in 4 of these frames)."""
    import cv2

    from tfll_live.tracking.anatomy import find_pupil

    misses = []
    for seed in range(7201, 7209):
        stream = SyntheticStream(SynthConfig(height=240, width=320, n_frames=500, seed=seed))
        truth = stream.truth
        for i in (0, 150, 450):
            if not truth.open[i]:
                continue
            found = find_pupil(cv2.cvtColor(stream.render(i), cv2.COLOR_RGB2GRAY))
            x0, y0 = stream.pupil_centre
            x, y = x0 + truth.eye_dx_px[i], y0 + truth.eye_dy_px[i]
            off = np.inf if found is None else np.hypot(found.x_px - x, found.y_px - y)
            if off > 0.3 * stream.pupil_radius:
                misses.append((seed, i))
    assert not misses


@pytest.mark.parametrize("seed", [7301, 7302])
def test_eye_moving_far_makes_no_false_blink(seed):
    # in a small frame a saccade of 10-16 px carries the eye past the blink detector's edge
    # margin, and one under the lid leaves it elsewhere when the lid opens: neither is a blink
    stream = SyntheticStream(SynthConfig(height=240, width=320, n_frames=700, seed=seed,
                                         saccades_per_s=1.5, saccade_px=(10.0, 16.0),
                                         partial_blink_fraction=0.0))
    results, summary = run(stream)
    acc = score(results, summary, stream.truth)
    assert acc.blink_f1 == 1.0
    assert acc.eye_rmse_px <= 1.0


def test_eye_motion_is_measured_from_the_first_frame_the_pupil_is_seen_in():
    # the reference waits a few frames for the pupil fit to settle; if the eye moves in those
    # frames, motion must still be counted from where it was first seen, or all of it is offset
    def moving_at_start(seed):
        return SyntheticStream(SynthConfig(n_frames=120, seed=seed, saccades_per_s=6.0,
                                           saccade_px=(8.0, 12.0), first_blink_s=(3.0, 3.5)))

    stream = next(s for s in map(moving_at_start, range(7401, 7500))
                  if np.hypot(s.truth.eye_dx_px[2], s.truth.eye_dy_px[2]) > 2.0)
    results, summary = run(stream)
    assert score(results, summary, stream.truth).eye_rmse_px <= 0.5


@functools.cache
def classic_7302():
    """Classic seed 7302 through the tracker (once per test session): its fourth interval,
    after a partial blink, travels 11 px slowly."""
    stream = SyntheticStream(SynthConfig(seed=7302))
    return stream, *run(stream)


def test_a_slow_layer_is_followed_when_its_last_samples_dip_by_chance():
    # classic seed 7302's fourth interval creeps on for seconds at about the rest speed; a
    # slope through a few samples once dipped below it, the layer was called resting, its
    # curve held and every later move refused (amplitude 77% off, travel 44% over)
    stream, results, summary = classic_7302()
    slow = next(s for s in score(results, summary, stream.truth).intervals if s.start_frame > 500)
    assert slow.long_enough
    assert slow.amplitude_error <= 0.10, slow
    assert abs(slow.measured_travel_px - slow.true_travel_px) <= 0.15 * slow.true_travel_px, slow


def test_the_live_value_does_not_run_off_on_the_first_samples_after_a_partial_blink():
    # the first two samples of classic seed 7302's fourth interval, a frame apart, slope the
    # wrong way; carried on at that slope for 0.3 s, the live value ran 15.6 px off a layer
    # that travels 11 px
    stream, results, _ = classic_7302()
    truth = stream.truth
    iv = next(v for v in truth.intervals if v["start_frame"] > 500 and v["starts_after_partial"])
    s, e = iv["start_frame"], iv["end_frame"]
    live = np.array([np.nan if r.lipid_dy_px is None else r.lipid_dy_px for r in results])
    live = live[s : e + 1]
    shown = np.isfinite(live) & truth.open[s : e + 1]
    assert shown.sum() > 0.9 * (e - s)
    assert np.max(np.abs(live - truth.lipid_dy_px[s : e + 1])[shown]) <= 8.0


@pytest.mark.parametrize("seed", [9501, 9802])
def test_a_small_travel_after_a_partial_blink_is_measured_whole(seed):
    # 7.9 px and 16.4 px travels, slow, with the head drifting about as fast as the layer
    # moves over the eye: bilinear moves into eye coordinates left the eye's texture in every
    # difference and the samples stalled (27.7% and 18.6% short), and a layer called at rest
    # was held still for good while it crept on for half its travel
    stream = SyntheticStream(SynthConfig(seed=seed))
    results, summary = run(stream)
    partial = {v["start_frame"] for v in stream.truth.intervals if v["starts_after_partial"]}
    scored = score(results, summary, stream.truth).intervals
    small = [s for s in scored if s.start_frame in partial and s.long_enough]
    assert small
    for s in small:
        assert s.amplitude_error <= 0.12, s


def test_one_sample_after_a_long_rest_does_not_move_a_layer_at_rest():
    # classic seed 9502's second interval: the layer is at rest from about frame 150 on; a
    # keyframe left with 15 of its 36 features measured 1.6 px of creep at frame 184, which
    # the creep allowance of a long rest let in and the curve then held to the interval's end
    stream = SyntheticStream(SynthConfig(seed=9502))
    results, _ = run(stream)
    interval = stream.truth.intervals[1]
    rest = range(150, interval["end_frame"] + 1)
    live = np.array([results[i].lipid_dy_px for i in rest], float)
    assert np.max(np.abs(live - stream.truth.lipid_dy_px[rest])) <= 0.5


def test_samples_that_agree_after_a_saccade_overrule_a_stale_prediction():
    # closures seed 10301 (fresh in its benchmark run): a saccade smears frames 259-261 just
    # after a blink while the layer moves 6 px a frame; the curve, carried on no further than
    # its few samples span, fell behind, the three samples after it were refused against it
    # and the rest of the interval was measured 19-31 px short
    stream = SyntheticStream(preset("closures", seed=10301))
    results, _ = run(stream)
    assert stream.truth.intervals[2]["start_frame"] == 254
    after = range(264, 315)
    live = np.array([results[i].lipid_dy_px for i in after], float)
    assert np.max(np.abs(live - stream.truth.lipid_dy_px[after])) <= 2.0


def test_a_keyframe_after_the_last_sample_is_carried_as_the_curve_is():
    # a layer at rest gives no samples; a new keyframe then takes its place from the curve,
    # which holds, not from the slope of a line through earlier samples (that walked it on)
    from tfll_live.tracking.lipid import CARRY_S, DisplacementCurve

    curve = DisplacementCurve()
    for k in range(10):
        curve.add(0.1 * k, np.array([0.0, -2.0 * k]), 0.1 * k)  # 20 px/s up
    late = 0.9 + CARRY_S + 2.0
    assert abs(curve.smoothed(late)[1] - curve.at(late)[1]) < 0.5
    assert abs(curve.smoothed(0.45)[1] - curve.at(0.45)[1]) < 0.5  # inside: the line


def test_the_curve_is_carried_no_further_than_its_samples_span():
    # two samples a frame apart, the second 0.4 px off: their slope (18 px/s) is mostly that
    # error; carried on for CARRY_S it put the live value 5 px the wrong way after a partial
    # blink (classic seed 7302), carried as far as they span it stays within a pixel
    from tfll_live.tracking.lipid import CARRY_S, DisplacementCurve

    curve = DisplacementCurve()
    curve.add(0.100, np.array([0.0, 0.0]), 0.1)
    curve.add(0.122, np.array([0.0, 0.4]), 0.122)
    assert curve.at(0.122 + CARRY_S)[1] <= 0.4 + 0.4 + 1e-9
    for k in range(2, 10):  # once they span long enough, the curve is carried at their speed
        curve.add(0.1 + 0.022 * k, np.array([0.0, 0.4 * k]), 0.1 + 0.022 * k)
    last = 0.1 + 0.022 * 9
    assert curve.at(last + 0.1)[1] == pytest.approx(0.4 * 9 + 0.1 * 0.4 / 0.022, rel=1e-6)


def test_eye_fixed_texture_cancels_in_eye_coordinates_whatever_the_shift():
    # an eye drifting 0.15 px a frame: moved back into eye coordinates by bilinear
    # interpolation its texture is blurred more at half-pixel shifts than at whole ones and
    # shows in every difference; the Lanczos kernel moves it back alike at every fraction
    from tfll_live.tracking.lipid import to_eye

    y, x = np.mgrid[0:120, 0:160].astype(np.float64)
    rng = np.random.default_rng(3)
    waves = [(rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3), rng.uniform(0, 6)) for _ in range(12)]

    def texture(dx, dy):  # the eye's texture seen with the eye moved by (dx, dy)
        return sum(
            np.cos(2 * np.pi * (fx * (x - dx) + fy * (y - dy)) + p) for fx, fy, p in waves
        ).astype(np.float32)

    inner = (slice(12, -12), slice(12, -12))
    scale = float(texture(0, 0)[inner].std())
    back = [to_eye(texture(0.15 * k, 0.1 * k), 0.15 * k, 0.1 * k) for k in range(8)]
    worst = max(float((b - back[0])[inner].std()) for b in back)
    assert worst < 0.02 * scale
    shifted = to_eye(texture(0, 0), 3.0, -2.0)  # whole pixels: an exact move
    assert np.array_equal(shifted[inner], texture(0, 0)[10:-14, 15:-9])


def test_a_wild_sample_does_not_place_the_next_keyframe():
    # a keyframe takes its place from a line through the nearest samples; one sample a few
    # pixels off (a smeared frame at the stream's start, say) moved that line by a fraction of
    # its error, and every sample measured against the keyframe with it
    from tfll_live.tracking.lipid import DisplacementCurve

    curve = DisplacementCurve()
    for k in range(8):
        wild = 4.0 if k == 5 else 0.0
        curve.add(0.05 * k, np.array([0.0, -10.0 * 0.05 * k + wild]), 0.05 * k)
    line = -10.0 * 0.2
    assert abs(curve.smoothed(0.2)[1] - line) > 0.3  # every sample counted
    assert curve.smoothed(0.2, outlier_px=1.0)[1] == pytest.approx(line, abs=0.05)


def test_the_bend_of_a_slowing_layer_is_read_from_the_fit():
    # a difference shows the mean of the layer's two places, off the curve by its bend; a
    # parabola through the last samples has the bend of their middle, a quarter more than the
    # newest on this layer (the curve then sagged 0.1-0.3 px in a keyframe's life); the
    # spread fit's bend is the newest's
    from tfll_live.tracking.lipid import LipidTracker

    def dy(t):
        return -40.0 * (1.0 - np.exp(-t / 1.0))

    lipid = LipidTracker()
    lipid._step = 4.0
    for t in np.arange(0.0, 1.0, 1 / 45):
        lipid._curve.add(float(t), np.array([0.0, dy(t)]), float(t))
    t, h = 0.98, 0.22
    exact = 0.5 * (dy(t - h) + dy(t + h)) - dy(t)
    lipid.carry_along(dy)
    assert lipid._bend(t, h)[1] == pytest.approx(exact, rel=0.03)


def test_a_keyframe_replaced_for_its_lag_gets_another_lag():
    # keeping a keyframe and keeping its lag for the next one followed two rules that
    # disagreed at the edge (6 frames wanted, 9 kept): the keyframe was replaced by one of the
    # same lag in every frame, each a frame old, and the layer was never measured again
    # (mono16-large seed 9503: 62% of a 120 px travel lost)
    from dataclasses import replace

    from tfll_live.tracking.lipid import LipidTracker

    rng = np.random.default_rng(3)
    texture = cv2.GaussianBlur(rng.normal(128, 40, (320, 320)).astype(np.float32), (0, 0), 3)
    mask = np.full((240, 320), 255, np.uint8)
    lipid = LipidTracker()
    for k in range(40):  # a pattern rising half a pixel per frame
        up = np.float32([[1, 0, 0], [0, 1, 40 - 0.5 * k]])
        frame = cv2.warpAffine(texture, up, (320, 240), flags=cv2.INTER_LINEAR)
        lipid.push(frame, mask, (0.0, 0.0), k / 30)
    assert len(lipid._curve) >= 8 and lipid._key is not None
    key, now = lipid._key, lipid._frames[-1][0]
    everywhere = np.ones(len(key.points), bool)
    for wanted in range(2, 13):
        lipid._choose_lag = lambda wanted=wanted: wanted
        for lag in range(1, 25):
            lipid._key = replace(key, lag=lag, time_s=now, m=lipid._at(now - lipid._t0))
            if lipid._keyframe_done(lipid._key, everywhere, True):
                lipid._new_keyframe()
                assert lipid._key is not None and lipid._key.lag != lag, (wanted, lag)


def test_a_pupil_fit_missed_after_the_lid_stopped_does_not_delay_the_blinks_end():
    # a fast new layer crossing the pupil's margin spoils a fit now and then; the blink ended
    # only after five whole fits in a row, and the interval began late by as many frames
    # (mono16-large seed 9903: 11 frames, 83 px of the travel lost)
    from tfll_live.tracking.blink import BlinkDetector

    stream = SyntheticStream(
        SynthConfig(height=240, width=320, n_frames=200, seed=7301, partial_blink_fraction=0.0)
    )
    truth = stream.truth
    frames = [cv2.cvtColor(stream.render(i), cv2.COLOR_RGB2GRAY) for i in range(len(stream))]

    def ends(missed):
        detector, out = BlinkDetector(), []
        for i, gray in enumerate(frames):
            seen = bool(truth.open[i]) and i not in missed
            event = detector.push(i, gray, truth.eye_dx_px[i], truth.eye_dy_px[i], None, seen)
            if event.ended:
                out.append(event.ended[:2])
        return out

    (blink,) = truth.blinks
    expected = [(blink["start_frame"], blink["end_frame"])]
    assert ends(set()) == expected
    assert ends({blink["end_frame"] + 3, blink["end_frame"] + 7}) == expected


def _blink_starts(stream: SyntheticStream, frames: range) -> list[int]:
    """The blink starts the detector finds in ``frames``, told the eye's true motion."""
    from tfll_live.tracking.blink import BlinkDetector

    truth, detector, starts = stream.truth, BlinkDetector(), []
    for i in frames:
        gray = cv2.cvtColor(stream.render(i), cv2.COLOR_RGB2GRAY)
        event = detector.push(
            i, gray, truth.eye_dx_px[i], truth.eye_dy_px[i], None, bool(truth.open[i])
        )
        if event.started is not None:
            starts.append(event.started)
    return starts


def test_a_saccade_is_not_read_as_an_exposure_change_and_a_blink():
    # a 12 px saccade (saccades seed 9802, frames 490-493) moved the lower lid and the eye's
    # bright and dark parts across the lower half: the ratio of its medians read the frame 5%
    # darker, and the whole frame then differed from the reference like a lid
    stream = SyntheticStream(preset("saccades", seed=9802))
    assert _blink_starts(stream, range(440, 500)) == []


def test_the_eye_sliding_under_the_lower_lid_starts_no_blink_and_lids_still_do():
    # a double saccade (27 px in three frames on 240 rows, frame 552) slides the eye under the
    # lower lid: only the bottom band changes, which a lid coming down from the top reaches last
    stream = SyntheticStream(SynthConfig(height=240, width=320, n_frames=700, seed=7301,
                                         saccades_per_s=1.5, saccade_px=(10.0, 16.0),
                                         partial_blink_fraction=0.0))
    starts = _blink_starts(stream, range(len(stream)))
    assert starts == [b["start_frame"] for b in stream.truth.blinks]


def test_a_dark_lash_beyond_the_pupil_margin_does_not_pull_the_fit():
    # saccades seed 9901, frame 318: an eyelash just outside the margin, dark against the
    # bright iris, makes a stronger step than the margin on the rays that cross it; the fit
    # took a circle 2 px larger and 3.7 px off for 11 frames (eye RMSE 0.62 px)
    from tfll_live.tracking.anatomy import PupilRefiner
    from tfll_live.tracking.results import Circle

    stream = SyntheticStream(preset("saccades", seed=9901))
    x = stream.pupil_centre[0] + stream.truth.eye_dx_px[318]
    y = stream.pupil_centre[1] + stream.truth.eye_dy_px[318]
    gray = cv2.cvtColor(stream.render(318), cv2.COLOR_RGB2GRAY)
    fit = PupilRefiner().refine(gray, Circle(x, y, stream.pupil_radius))
    assert fit is not None
    assert np.hypot(fit.circle.x_px - x, fit.circle.y_px - y) < 0.3


def test_a_faint_slow_layer_through_h264_is_followed_to_its_end():
    # clinic seed 10103 (fresh in the 10101-10103 run): a 49 px travel after a partial blink,
    # tau 2.2 s, through H.264. As it slowed, differences half a second apart showed only the
    # compression's noise; with the lag capped there the samples stopped 3 s in and 16% of
    # the travel was lost. A longer lag is tried where shorter ones show nothing
    import tempfile

    from tfll_live.evaluate import delivered_frames

    stream = SyntheticStream(preset("clinic", seed=10103))
    true = stream.truth.intervals[1]
    tracker = Tracker()
    with tempfile.TemporaryDirectory() as tmp:
        for i, frame in enumerate(delivered_frames(stream, tmp)):
            if i > true["end_frame"] + 10:
                break
            tracker.push(frame, i / stream.config.fps)
    (iv,) = [v for v in tracker.summary().intervals
             if abs(v.start_frame - true["start_frame"]) <= 5]
    assert iv.spread is not None
    assert iv.spread.amplitude_px == pytest.approx(true["amplitude_px"], rel=0.05)


def test_each_early_keyframe_is_put_back_on_the_curve_when_its_start_is_placed():
    # the first keyframe's samples failed for a few frames while the layer moved fastest; the
    # next keyframe, placed from two samples carried on no further than they span, was 6 px
    # short, and one quadratic through all the early samples kept that loss for good (another
    # renderer's stream: 7-12 px of a 172 px travel at 30 frames/s)
    from tfll_live.tracking.lipid import LipidTracker

    def true(t):
        return -150.0 * (1 - np.exp(-t / 2.0))

    tracker = LipidTracker()
    blank = np.zeros((240, 320), np.float32)
    tracker.push(blank, np.full(blank.shape, 255, np.uint8), (0.0, 0.0), 0.0)  # its size
    unknown = 5.0  # the first keyframe's place, before the start is known
    for t in (0.100, 0.133):
        tracker._curve.add(t, np.array([0.0, true(t) + unknown]), t, key=1)
    for t in np.arange(0.30, 0.52, 1 / 30):
        tracker._curve.add(t, np.array([0.0, true(t) + unknown + 6.0]), t, key=2)
    tracker._anchor()
    t, dy = tracker._curve.arrays()
    np.testing.assert_allclose(dy, true(t), atol=0.5)
