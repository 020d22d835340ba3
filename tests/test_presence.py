"""No eye in view: a state of its own, from the first frame, and when the eye leaves and returns."""

from __future__ import annotations

import numpy as np

from tfll_live.synth import SynthConfig, SyntheticStream
from tfll_live.tracking import EyeState, Tracker
from tfll_live.tracking.presence import NO_EYE_AFTER_S, SEARCH_EVERY_S, SHUT_EYE_MAX_S

CFG = SynthConfig(height=240, width=320, fps=50.0, n_frames=400, seed=5)


def _waves(n: int, shape: tuple[int, int] = (240, 320)) -> list[np.ndarray]:
    """No eye: moving sine waves with noise, as Micro-Manager's demo camera shows."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[: shape[0], : shape[1]]
    return [
        np.clip(2000 + 1500 * np.sin(x / 25.0 + y / 80.0 + 0.3 * k)
                + rng.normal(0, 30, shape), 0, 65535).astype(np.uint16)
        for k in range(n)
    ]


def test_a_camera_that_sees_no_eye_reports_no_eye_and_no_pupil():
    tracker = Tracker()
    results = [tracker.push(f, k / 50.0) for k, f in enumerate(_waves(100))]
    assert {r.state for r in results} == {EyeState.NO_EYE}
    assert all(r.pupil is None and r.interval == -1 and r.fit is None for r in results)
    summary = tracker.finish()
    assert summary.intervals == () and summary.blinks == ()


def test_an_eye_in_view_is_tracked_from_the_first_frame():
    stream = SyntheticStream(CFG)
    tracker = Tracker()
    results = [tracker.push(stream.render(k), k / CFG.fps) for k in range(60)]
    assert EyeState.NO_EYE not in {r.state for r in results}
    assert results[0].state is EyeState.OPEN and results[0].pupil is not None
    assert results[-1].n_tracked > 0


def test_the_eye_leaving_view_ends_the_interval_and_tracking_resumes_when_it_returns():
    stream = SyntheticStream(CFG)
    frames = [stream.render(k) for k in range(200)]
    grey = np.full_like(frames[0], 118)  # the patient leaves: an even, lit background
    away = int((SHUT_EYE_MAX_S + 2) * CFG.fps)
    sequence = frames[:50] + [grey] * away + frames[50:]
    tracker = Tracker()
    results = [tracker.push(f, k / CFG.fps) for k, f in enumerate(sequence)]
    states = [r.state for r in results]
    gone = states.index(EyeState.NO_EYE)
    # no pupil margin for NO_EYE_AFTER_S makes it "no eye", and closes the open interval;
    # SHUT_EYE_MAX_S if the sudden change reads as a blink that never ends (no pupil again)
    assert 50 + NO_EYE_AFTER_S * CFG.fps <= gone <= 52 + SHUT_EYE_MAX_S * CFG.fps
    # the interval open when the eye left is closed, as a blink starts or when it is gone
    closing = [r.interval_ended for r in results[50 : gone + 1] if r.interval_ended is not None]
    assert len(closing) == 1 and closing[0].end_frame in (49, gone - 1)
    ended = closing[0]
    assert all(r.pupil is None and r.n_tracked == 0 for r in results[gone:50 + away])
    # the eye back in view is found by the next search (at most SEARCH_EVERY_S later)
    back = next(k for k in range(50 + away, len(results)) if states[k] is not EyeState.NO_EYE)
    assert back <= 50 + away + SEARCH_EVERY_S * CFG.fps + 1
    assert results[-1].state is EyeState.OPEN and results[-1].pupil is not None
    assert results[-1].interval > ended.index  # a new interval


def test_an_eye_held_shut_for_seconds_stays_in_view():
    stream = SyntheticStream(CFG)
    closed_frames = np.flatnonzero(~stream.truth.open)
    closed = int(closed_frames[len(closed_frames) // 8])  # the lid well down, in a blink
    frames = [stream.render(k) for k in range(closed + 1)]
    shut = [frames[-1]] * int(3 * CFG.fps)  # the lid held there for 3 s
    reopened = [stream.render(k) for k in range(closed + 1, closed + 101)]
    tracker = Tracker()
    results = [tracker.push(f, k / CFG.fps) for k, f in enumerate(frames + shut + reopened)]
    assert EyeState.NO_EYE not in {r.state for r in results}
    assert results[-1].state is EyeState.OPEN and results[-1].n_tracked > 0
