"""The capture loop on real cores and Python cameras: every frame recorded, faults, lifecycle."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
from pymmcore_plus.experimental.unicore import SimpleCameraDevice
from waiting import wait_until

from tfll_live.acquisition import (
    CaptureLoop,
    CaptureStats,
    LoopState,
    ReplayCamera,
    SyntheticCamera,
    make_core,
)
from tfll_live.acquisition.core import add_camera, new_core
from tfll_live.io import read_frames_csv, read_results
from tfll_live.synth import SynthConfig, SyntheticStream, write_stream
from tfll_live.tracking import EyeState, FrameResult, TrackerConfig

FAST = SynthConfig(height=120, width=160, fps=200.0, n_frames=400, seed=2)


class Collect:
    """Records every emission of the loop's signals, from whichever thread."""

    def __init__(self, loop: CaptureLoop) -> None:
        self.results: list[FrameResult] = []
        self.errors: list[str] = []
        self.stopped: list[CaptureStats] = []
        self.started = 0
        self.recordings: list[tuple[object, object]] = []
        loop.events.frame_tracked.connect(self.results.append)
        loop.events.error.connect(self.errors.append)
        loop.events.stopped.connect(self.stopped.append)
        loop.events.started.connect(self._on_started)
        loop.events.recording_stopped.connect(lambda p, e: self.recordings.append((p, e)))

    def _on_started(self) -> None:
        self.started += 1


def _live_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.is_alive()}


# -- every frame, in order ------------------------------------------------------------------------


def test_frames_reach_the_tracker_in_order_with_counts_and_events():
    loop = CaptureLoop(make_core(synth=FAST))
    got = Collect(loop)
    loop.start()
    assert loop.is_running and got.started == 1
    assert wait_until(lambda: loop.stats.tracked >= 100)
    assert loop.latest() is not None
    stats = loop.stop()
    assert not loop.is_running and stats.state is LoopState.IDLE
    assert stats.lost == 0
    # every delivered frame was tracked or skipped by the tracker, none went missing
    assert stats.acquired == stats.tracked + stats.untracked
    assert stats.tracked == len(got.results) >= 100
    frames = [r.frame for r in got.results]
    assert frames[0] == 0 and frames == sorted(set(frames)) and frames[-1] < stats.acquired
    # a result is numbered by the camera frame it belongs to, and timed by the camera, not by
    # the jittery arrival times: on the camera's 5 ms clock, each frame at least a slot after
    # the one before (a camera that fell behind on a busy machine skipped slots, never frames)
    slots = np.array([r.time_s for r in got.results]) / 0.005
    np.testing.assert_allclose(slots, np.round(slots), atol=1e-6)
    slots = np.round(slots).astype(int)
    assert slots[0] == 0 and np.all(np.diff(slots) >= np.diff(frames))
    assert got.stopped == [stats] and got.errors == []
    assert stats.latency_ms_median == stats.latency_ms_median  # measured (not NaN)
    frame, result = loop.latest()  # type: ignore[misc]
    assert result.frame == frames[-1]
    # the frame the camera exposed at that time (slots it skipped were never exposed)
    shown = round(result.time_s * FAST.fps) % FAST.n_frames
    np.testing.assert_array_equal(frame, SyntheticStream(FAST).render(shown))


def test_blinks_and_intervals_are_emitted_as_they_happen():
    # the first blink once the tracker has found the pupil (its search at the start may leave
    # it a few tenths of a second behind on a busy machine, and it then skips to newer frames);
    # at 100 frames/s the tracker keeps up on a slow machine, at 200 it skipped the blink's
    # first frames now and then
    cfg = SynthConfig(height=120, width=160, fps=100.0, n_frames=1000, seed=4,
                      first_blink_s=(0.8, 0.8), blink_interval_s=(1.2, 1.4))
    loop = CaptureLoop(make_core(synth=cfg))
    blinks, intervals, times = [], [], {}
    loop.events.blink.connect(blinks.append)
    loop.events.interval_fit.connect(intervals.append)
    loop.events.frame_tracked.connect(lambda r: times.__setitem__(r.frame, r.time_s))
    loop.start()
    assert wait_until(lambda: len(blinks) >= 2, timeout_s=40)
    loop.stop()
    truth = SyntheticStream(cfg).truth
    # by time: a camera that falls behind shows the eye at the real times its frames were
    # taken, so frame numbers drift from the truth's
    # (the first one found: a tracker still searching for the pupil at the start may miss one).
    # A tracker that fell behind skipped frames: the start lies between the last frame it saw
    # before the blink and the first it saw in it, to within the detector's few frames
    started = times[blinks[0].start_frame]
    seen_before = max((t for t in times.values() if t < started), default=0.0)
    true_starts = np.array([truth.time_s[b["start_frame"]] for b in truth.blinks])
    slack = 4 / cfg.fps + 0.01
    assert np.any((true_starts >= seen_before - slack) & (true_starts <= started + slack)), (
        seen_before, started, true_starts)
    assert len(intervals) >= 2  # closed by each blink, and the open one closed by stop()
    assert [iv.index for iv in intervals] == sorted({iv.index for iv in intervals})


def test_a_slow_tracker_skips_to_newer_frames_and_never_holds_up_the_recording(tmp_path):
    loop = CaptureLoop(make_core(synth=FAST), max_track_lag_s=0.05)
    got = Collect(loop)
    # deliberately slow: this slot runs on the tracking thread, 25 ms a frame at 200 frames/s
    loop.events.frame_tracked.connect(lambda _r: time.sleep(0.025))
    path = loop.start_recording(tmp_path / "slow")
    loop.start()
    assert wait_until(lambda: loop.stats.recorded >= 300)
    stats = loop.stop()
    assert stats.lost == 0 and stats.untracked > 100 and stats.tracked >= 20
    assert stats.recorded == stats.acquired == stats.tracked + stats.untracked
    frames = [r.frame for r in got.results]
    assert frames == sorted(frames) and max(np.diff(frames)) > 1  # it skipped ahead
    doc = read_results(path.parent / "slow.tfll")
    assert doc["frames"] == {"acquired": stats.acquired, "recorded": stats.recorded, "lost": 0,
                             "lost_in_camera_buffer": 0, "tracked": stats.tracked,
                             "complete": True}
    cols = read_frames_csv(path.parent / "slow.tfll")
    assert list(cols["frame"]) == list(range(stats.recorded))  # one row per recorded frame
    tracked = cols["state"] != "untracked"
    assert list(cols["frame"][tracked]) == frames
    assert np.isnan(cols["eye_dx_px"][~tracked]).all() and (cols["interval"][~tracked] == -1).all()


def test_frames_lost_in_the_camera_buffer_are_reported_at_once_and_recorded_as_lost(tmp_path):
    loop = CaptureLoop(make_core(synth=FAST), buffer_s=0.05)  # the minimum: 16 frames
    lost_events: list[tuple[int, int]] = []
    loop.events.frames_lost.connect(lambda n, total: lost_events.append((n, total)))
    path = loop.start_recording(tmp_path / "gap", "ome-tiff")
    loop.start()
    assert wait_until(lambda: loop.stats.recorded >= 20)
    with loop._lock:  # hold the capture thread, as a full recorder queue would: 0.5 s of frames
        time.sleep(0.5)  # (100 on an idle machine, fewer where a busy one slows the camera)
    assert wait_until(lambda: bool(lost_events))
    stats = loop.stop()
    total = sum(n for n, _ in lost_events)
    assert total > 0 and lost_events[-1][1] == total == stats.lost
    assert stats.acquired == stats.recorded + stats.lost
    doc = read_results(path.parent / "gap.tfll")
    assert doc["frames"]["lost"] == doc["frames"]["lost_in_camera_buffer"] == stats.lost
    assert doc["frames"]["complete"] is False and doc["recording"]["complete"] is False
    numbers = [int(json.loads(line)["ImageNumber"]) for line in
               (path.parent / "gap.tfll" / "camera_frames.jsonl").read_text().splitlines()]
    assert len(numbers) == stats.recorded and numbers[-1] + 1 == stats.acquired
    assert int(np.max(np.diff(numbers))) > 1  # the gap is in the recording's own record


# -- lifecycle ------------------------------------------------------------------------------------


def test_start_stop_repeatedly_neither_hangs_nor_leaks_threads():
    loop = CaptureLoop(make_core(synth=FAST))
    got = Collect(loop)
    before = _live_threads()
    for _ in range(6):
        loop.start()
        assert wait_until(lambda: loop.stats.tracked >= 3)
        t0 = time.monotonic()
        stats = loop.stop(timeout_s=2.0)
        assert time.monotonic() - t0 < 2.5
        assert stats.tracked >= 3 and stats.lost == 0
    assert got.started == 6 and len(got.stopped) == 6 and got.errors == []
    assert wait_until(lambda: _live_threads() <= before, timeout_s=3)
    assert loop.stop().state is LoopState.IDLE  # stopping again is harmless


def test_each_start_is_a_new_session_from_frame_zero():
    loop = CaptureLoop(make_core(synth=FAST))
    got = Collect(loop)
    for _ in range(2):
        got.results.clear()
        loop.start()
        assert wait_until(lambda: len(got.results) >= 5)
        loop.stop()
        assert got.results[0].frame == 0 and got.results[0].time_s == 0.0


def test_switching_camera_while_live(tmp_path):
    replay_file = tmp_path / "r.ome.tif"
    write_stream(SyntheticStream(SynthConfig(height=96, width=128, fps=100.0, n_frames=40)),
                 replay_file)
    core = new_core()
    add_camera(core, "Synth", SyntheticCamera(FAST))
    add_camera(core, "Replay", ReplayCamera(replay_file, realtime=True, loop=True), select=False)
    loop = CaptureLoop(core)
    got = Collect(loop)
    before = _live_threads()
    loop.start()
    for label, shape in [("Replay", (96, 128, 3)), ("Synth", (120, 160, 3)),
                         ("Replay", (96, 128, 3))]:
        t0 = time.monotonic()
        loop.switch_camera(label)
        assert time.monotonic() - t0 < 3.0
        assert loop.is_running and core.getCameraDevice() == label
        assert wait_until(lambda: loop.stats.tracked >= 5)
        assert loop.latest()[0].shape == shape  # type: ignore[index]
    loop.stop()
    assert got.errors == [] and got.started == 4
    assert wait_until(lambda: _live_threads() <= before, timeout_s=3)


def test_set_tracker_config_applies_from_the_next_frame_and_not_while_recording(tmp_path):
    # no frame skipped; at 50 frames/s the backlog the new session waits behind stays short
    # (at 200 a loaded machine's tracker fell seconds behind)
    slow = SynthConfig(height=120, width=160, fps=50.0, n_frames=400, seed=2)
    loop = CaptureLoop(make_core(synth=slow), max_track_lag_s=10.0)
    got = Collect(loop)
    loop.start()
    assert wait_until(lambda: len(got.results) >= 10)
    new = TrackerConfig(max_features=40)
    loop.set_tracker_config(new)
    n = len(got.results)
    last = got.results[n - 1].frame
    assert loop.tracker_config == new
    # a new session started: frame numbers start again (after frames already handed over)
    assert wait_until(lambda: any(r.frame < last for r in got.results[n:]), timeout_s=60)
    loop.start_recording(tmp_path / "rec")
    with pytest.raises(RuntimeError, match="stop recording"):
        loop.set_tracker_config(TrackerConfig())
    loop.stop()


def test_replay_once_ends_the_loop_normally(tmp_path):
    path = tmp_path / "short.ome.tif"
    write_stream(SyntheticStream(SynthConfig(height=96, width=128, fps=100.0, n_frames=25)), path)
    loop = CaptureLoop(make_core(replay=path, realtime=False))
    got = Collect(loop)
    loop.start()
    assert wait_until(lambda: bool(got.stopped))
    assert got.errors == [] and len(got.stopped) == 1
    stats = got.stopped[0]
    assert stats.tracked == stats.acquired == 25 and stats.state is LoopState.IDLE


def test_backlog_says_how_far_the_tracker_is_behind_the_camera(tmp_path):
    # an unthrottled replay delivers frames faster than they are tracked: they queue up
    path = tmp_path / "fast.ome.tif"
    write_stream(SyntheticStream(SynthConfig(height=240, width=320, n_frames=150)), path)
    loop = CaptureLoop(make_core(replay=path, realtime=False))
    got = Collect(loop)
    seen: list[int] = []
    loop.start()
    assert wait_until(lambda: seen.append(loop.backlog) or bool(got.stopped), timeout_s=60)
    assert max(seen) >= 5 and loop.stats.backlog == 0  # all tracked in the end
    assert got.stopped[0].tracked == 150


# -- faults ---------------------------------------------------------------------------------------


class FailingCamera(SimpleCameraDevice):
    """A real Python camera whose sequence raises after ``fail_after`` frames."""

    def __init__(self, fail_after: int) -> None:
        super().__init__()
        self.fail_after = fail_after
        self._n = 0
        self.go = threading.Event()  # cleared: no frame until set (e.g. once recording)
        self.go.set()
        self._stream = SyntheticStream(SynthConfig(height=96, width=128, n_frames=50))

    def sensor_shape(self) -> tuple[int, int, int]:
        return (96, 128, 3)

    def dtype(self):
        return np.uint8

    def get_exposure(self) -> float:
        return 5.0

    def set_exposure(self, exposure: float) -> None:
        pass

    def snap(self, buffer: np.ndarray) -> dict[str, str]:
        self.go.wait(10)
        if self._n >= self.fail_after:
            raise OSError("USB cable unplugged")
        self._stream.render(self._n, out=buffer)
        self._n += 1
        time.sleep(0.005)
        return {}


class SilentCamera(FailingCamera):
    """Delivers ``fail_after`` frames, then hangs without delivering (until released)."""

    def __init__(self, fail_after: int) -> None:
        super().__init__(fail_after)
        self.release = threading.Event()

    def snap(self, buffer: np.ndarray) -> dict[str, str]:
        if self._n >= self.fail_after:
            self.release.wait(30)
        return super().snap(buffer) if self._n < self.fail_after else {}


@pytest.mark.parametrize("fmt", ["ome-zarr", "ome-tiff"])
def test_camera_raising_mid_sequence_stops_the_loop_and_finalises_the_recording(tmp_path, fmt):
    core = new_core()
    cam = FailingCamera(fail_after=30)
    cam.go.clear()  # every frame is to be recorded: none before the recording starts
    add_camera(core, "Cam", cam)
    loop = CaptureLoop(core)
    got = Collect(loop)
    loop.start()
    path = loop.start_recording(tmp_path / "rec", fmt)
    cam.go.set()
    assert wait_until(lambda: bool(got.stopped))
    assert len(got.errors) == 1
    assert "USB cable unplugged" in got.errors[0] and "'Cam'" in got.errors[0]
    assert "\n" not in got.errors[0]
    assert loop.stats.state is LoopState.FAILED
    assert got.recordings and got.recordings[0][0] == path and got.recordings[0][1]
    stats = got.stopped[0]
    assert stats.recorded == stats.acquired == stats.tracked + stats.untracked == 30
    from tfll_live.io import open_stream

    with open_stream(path) as src:
        frames = list(src)
    assert len(frames) == 30
    np.testing.assert_array_equal(frames[29], SyntheticStream(
        SynthConfig(height=96, width=128, n_frames=50)).render(29))
    results = read_results(path.parent / "rec.tfll")
    assert results["n_frames"] == 30 and "USB cable" in results["incomplete"]["reason"]
    assert len(read_frames_csv(path.parent / "rec.tfll")["frame"]) == 30
    assert loop.stop().state is LoopState.FAILED  # and stop afterwards returns at once


def test_camera_that_stops_delivering_is_reported_and_stop_does_not_hang(tmp_path):
    cam = SilentCamera(fail_after=12)
    cam.go.clear()  # every frame is to be recorded: none before the recording starts
    core = new_core()
    add_camera(core, "Cam", cam)
    loop = CaptureLoop(core, stall_timeout_s=0.5)
    got = Collect(loop)
    try:
        loop.start()
        path = loop.start_recording(tmp_path / "rec")
        cam.go.set()
        assert wait_until(lambda: bool(got.stopped), timeout_s=10)
        assert len(got.errors) == 1 and "delivered no frame" in got.errors[0]
        t0 = time.monotonic()
        stats = loop.stop(timeout_s=1.0)
        assert time.monotonic() - t0 < 1.5
        assert stats.recorded == stats.tracked + stats.untracked == 12
        from tfll_live.io import open_stream

        with open_stream(path) as src:
            assert src.n_frames == 12
    finally:
        cam.release.set()


def test_start_fails_cleanly_without_a_camera():
    loop = CaptureLoop(new_core())
    with pytest.raises(RuntimeError, match="no camera"):
        loop.start()
    assert not loop.is_running


def test_recording_armed_before_start_begins_with_the_first_frame(tmp_path):
    loop = CaptureLoop(make_core(synth=FAST))
    got = Collect(loop)
    path = loop.start_recording(tmp_path / "x")
    assert loop.is_recording and not loop.is_running
    loop.start()
    assert wait_until(lambda: loop.stats.recorded >= 10)
    stats = loop.stop()
    assert stats.recorded == stats.acquired == stats.tracked + stats.untracked
    assert got.recordings == [(path, None)]
    assert read_results(path.parent / "x.tfll")["n_frames"] == stats.recorded


def test_eye_states_are_reported_in_stats():
    loop = CaptureLoop(make_core(synth=FAST))
    loop.start()
    assert wait_until(lambda: loop.stats.tracked >= 3)
    assert loop.stats.eye_state in {s.value for s in EyeState}
    assert loop.stats.fps > 0
    loop.stop()


# -- Micro-Manager's real DemoCamera ----------------------------------------------------------


def test_a_slowed_tracker_on_the_democamera_loses_no_recorded_frame(demo_cfg, tmp_path):
    """The C++ DemoCamera at its full rate (10 ms exposure, ~95 frames/s) on a plain
    CMMCorePlus, the tracker deliberately slowed to ~25 frames/s: the recording holds every
    frame the camera delivered (image numbers without a gap), the results say which were
    tracked."""
    from pymmcore_plus import CMMCorePlus

    core = CMMCorePlus()  # adapters through MICROMANAGER_PATH
    core.loadSystemConfiguration(str(demo_cfg))
    core.setExposure(10.0)
    loop = CaptureLoop(core)
    got = Collect(loop)
    loop.events.frame_tracked.connect(lambda _r: time.sleep(0.04))  # on the tracking thread
    path = loop.start_recording(tmp_path / "demo", "ome-zarr")
    loop.start()
    assert wait_until(lambda: loop.stats.recorded >= 200, timeout_s=30)
    stats = loop.stop()
    assert got.errors == [] and stats.lost == 0
    assert stats.recorded == stats.acquired >= 200
    assert stats.untracked > stats.tracked > 0  # well behind, and skipping ahead
    log = (path.parent / "demo.tfll" / "camera_frames.jsonl").read_text().splitlines()
    numbers = [int(json.loads(line)["ImageNumber"]) for line in log]
    assert numbers == list(range(stats.acquired))  # every frame the camera delivered
    doc = read_results(path.parent / "demo.tfll")
    assert doc["frames"] == {"acquired": stats.acquired, "recorded": stats.acquired, "lost": 0,
                             "lost_in_camera_buffer": 0, "tracked": stats.tracked,
                             "complete": True}
    assert doc["pixel_size_um"] == 1.0  # the demo configuration's pixel size
    cols = read_frames_csv(path.parent / "demo.tfll")
    tracked = cols["state"] != "untracked"
    assert len(cols["frame"]) == stats.acquired and tracked.sum() == stats.tracked
    assert list(cols["frame"][tracked]) == [r.frame for r in got.results]
    from tfll_live.io import open_stream

    with open_stream(path) as src:
        assert src.n_frames == stats.acquired and src.shape == (512, 512)
        # the frames' real times: the rate they give is the one the camera delivered (~95 of
        # the 100 frames/s asked; a loaded machine's DemoCamera, which renders its frames on the
        # CPU, delivered 41)
        assert src.times_s is not None
        assert src.fps == pytest.approx(stats.delivered_fps, rel=0.1) and src.fps <= 105
    # the pixel size of the core's pixel-size configuration, in µm, where OME tools read it
    import ome_types
    import zarr

    ome = zarr.open_group(str(path / "0"), mode="r").attrs["ome"]["multiscales"][0]
    assert [a.get("unit") for a in ome["axes"]] == ["second", "micrometer", "micrometer"]
    assert ome["datasets"][0]["coordinateTransformations"][0]["scale"][1:] == [1.0, 1.0]
    xml = ome_types.from_xml((path / "OME" / "METADATA.ome.xml").read_text(), validate=True)
    pixels = xml.images[0].pixels
    assert pixels.physical_size_x == 1.0 and pixels.physical_size_x_unit.value == "µm"
    assert xml.instruments[0].detectors[0].model == "DCam (DemoCamera)"
    assert pixels.planes[0].exposure_time == pytest.approx(0.010)
