"""The Python camera devices on real UniMMCore cores: synthetic, replay, config files, BGRA."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from tfll_live.acquisition import ReplayCamera, SyntheticCamera, bgra_to_rgb, make_core
from tfll_live.acquisition._flow import KEY_FLOW, frame_done
from tfll_live.acquisition.core import add_camera, new_core
from tfll_live.acquisition.pixels import camera_frame
from tfll_live.acquisition.synthetic_camera import KEY_SOURCE_FRAME
from tfll_live.io import StreamError, open_stream
from tfll_live.synth import SynthConfig, SyntheticStream, write_stream

SMALL = SynthConfig(height=120, width=160, fps=200.0, n_frames=60, seed=3)


def pop(core, n: int, timeout_s: float = 10.0) -> tuple[list[np.ndarray], list[dict[str, str]]]:
    """Pop ``n`` frames (with metadata) from a running core, in order."""
    frames, mds = [], []
    deadline = time.monotonic() + timeout_s
    while len(frames) < n and time.monotonic() < deadline:
        if core.getRemainingImageCount():
            img, md = core.popNextImageAndMD(fix=False)
            frames.append(img)
            mds.append(dict(md))
            frame_done(mds[-1].get(KEY_FLOW))  # a fast replay waits for its consumer
        else:
            time.sleep(0.001)
    return frames, mds


@pytest.fixture(scope="module")
def small_stream() -> SyntheticStream:
    return SyntheticStream(SMALL)


@pytest.fixture(scope="module")
def recorded_tiff(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("replay") / "s.ome.tif"
    write_stream(SyntheticStream(SynthConfig(height=120, width=160, fps=50.0, n_frames=30, seed=5)),
                 path)
    return path


# -- synthetic camera ---------------------------------------------------------------------------


def test_synthetic_camera_streams_the_synth_frames_in_order_at_its_frame_rate(small_stream):
    core = make_core(synth=SMALL)
    t0 = time.perf_counter()
    core.startSequenceAcquisition(40, 0, True)
    frames, mds = pop(core, 40)
    elapsed = time.perf_counter() - t0
    core.stopSequenceAcquisition()
    assert len(frames) == 40
    # each frame is the stream frame its metadata names, at that frame's time; a camera that
    # starts late on a busy CPU skips exposures (as hardware does) but never reorders them
    times = [float(m["tfll.time_s"]) for m in mds]
    assert times[0] == 0.0 and times == sorted(set(times))
    shown = [int(m[KEY_SOURCE_FRAME]) for m in mds]
    assert shown == [round(t * 200.0) % SMALL.n_frames for t in times]
    for k in (0, 1, 17, 39):
        np.testing.assert_array_equal(frames[k], small_stream.render(shown[k]))
    assert [int(m["ImageNumber"]) for m in mds] == list(range(40))
    assert elapsed >= 39 / 200.0  # paced by the exposure (5 ms), not as fast as it renders


def test_synthetic_camera_exposure_sets_the_rate_and_samples_the_eye_in_real_time(small_stream):
    core = make_core(synth=SMALL)
    core.setExposure(10.0)  # 100 frames/s: every second frame of the 200 frames/s simulation
    assert core.getExposure() == pytest.approx(10.0)
    core.startSequenceAcquisition(35, 0, True)
    frames, mds = pop(core, 35)
    core.stopSequenceAcquisition()
    assert [float(m["tfll.time_s"]) for m in mds[:3]] == [0.0, 0.01, 0.02]
    assert [int(m["tfll.source_frame"]) for m in mds[:3]] == [0, 2, 4]
    # the 60-frame session loops: camera frame 31 is at 0.31 s = simulated frame 62 -> 2
    assert int(mds[31]["tfll.source_frame"]) == 2
    np.testing.assert_array_equal(frames[31], small_stream.render(2))


def test_prerendered_synthetic_camera_gives_the_same_frames(small_stream):
    core = make_core(synth=SMALL, prerender=True)
    assert core.getProperty("Camera", "Prerender") == "On"
    core.startSequenceAcquisition(10, 0, True)
    frames, mds = pop(core, 10)
    core.stopSequenceAcquisition()
    # the stream's frame each shows (the camera skips ahead when it starts late on a busy CPU)
    shown = [int(md[KEY_SOURCE_FRAME]) for md in mds]
    assert len(frames) == 10 and shown == sorted(set(shown))
    for f, k in zip(frames, shown, strict=True):
        np.testing.assert_array_equal(f, small_stream.render(k))


def test_config_file_of_python_devices_loads_a_mono_16_bit_synthetic_camera(tmp_path):
    cfg = tmp_path / "synth.cfg"
    cfg.write_text(
        "# a Micro-Manager configuration with only Python devices\n"
        "#py pyDevice,Eye,tfll_live.acquisition,SyntheticCamera\n"
        "#py Property,Eye,Width,96\n"
        "#py Property,Eye,Height,80\n"
        "#py Property,Eye,Color,Mono\n"
        "#py Property,Eye,BitDepth,16\n"
        "#py Property,Eye,Seed,9\n"
        "Property,Core,Initialize,1\n"
        "#py Property,Eye,Exposure,4\n"
        "#py Property,Core,Camera,Eye\n"
    )
    core = make_core(config=cfg)
    assert core.getCameraDevice() == "Eye"
    core.startSequenceAcquisition(12, 0, True)
    frames, _ = pop(core, 12)
    core.stopSequenceAcquisition()
    expected = SyntheticStream(SynthConfig(height=80, width=96, rgb=False, bit_depth=16, seed=9))
    assert frames[0].shape == (80, 96) and frames[0].dtype == np.uint16
    # 250 frames/s camera on the 45 frames/s simulation: frame 11 (0.044 s) is simulated frame 2
    np.testing.assert_array_equal(frames[11], expected.render(2))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("#py pyDevice,Cam,tfll_live.acquisition,NoSuchCamera\n", "NoSuchCamera"),
        ("Property,Core,Initialize,1\n", "selects no camera"),
    ],
)
def test_bad_config_is_one_line_value_error(tmp_path, text, needle):
    cfg = tmp_path / "bad.cfg"
    cfg.write_text(text)
    with pytest.raises(ValueError, match=needle) as err:
        make_core(config=cfg)
    assert "\n" not in str(err.value)


def test_missing_config_file_is_one_line_os_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such Micro-Manager configuration"):
        make_core(config=tmp_path / "nope.cfg")


def test_synthetic_camera_that_cannot_initialise_is_refused_in_one_line():
    with pytest.raises(ValueError, match="at least 64x64") as err:
        make_core(synth=SynthConfig(height=32, width=32))
    assert "\n" not in str(err.value)


# -- replay camera ------------------------------------------------------------------------------


def test_replay_once_as_fast_as_consumed_gives_the_files_frames_and_times(recorded_tiff):
    core = make_core(replay=recorded_tiff, realtime=False)
    t0 = time.perf_counter()
    core.startContinuousSequenceAcquisition(0)
    frames, mds = pop(core, 30)
    assert time.perf_counter() - t0 < 0.5 * 29 / 50.0  # not paced at the recorded 50 frames/s
    deadline = time.monotonic() + 2.0
    while core.isSequenceRunning() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not core.isSequenceRunning()  # once: the sequence ends after the last frame
    assert core.getRemainingImageCount() == 0 and len(frames) == 30
    with open_stream(recorded_tiff) as source:
        for i, f in enumerate(frames):
            np.testing.assert_array_equal(f, source.read(i))
        times = [source.frame_time(i) for i in range(30)]
    assert [float(m["tfll.time_s"]) for m in mds] == times
    assert [m.get("tfll.end_of_stream") for m in mds].count("1") == 1
    assert mds[-1]["tfll.end_of_stream"] == "1"


def test_replay_realtime_is_paced_at_the_recorded_rate(recorded_tiff):
    core = make_core(replay=recorded_tiff, realtime=True)
    assert core.getExposure() == pytest.approx(20.0)
    t0 = time.perf_counter()
    core.startContinuousSequenceAcquisition(0)
    frames, _ = pop(core, 30)
    elapsed = time.perf_counter() - t0
    core.stopSequenceAcquisition()
    assert len(frames) == 30
    assert elapsed >= 29 / 50.0 - 0.01


def test_replay_loop_keeps_going_with_increasing_times(recorded_tiff):
    core = make_core(replay=recorded_tiff, realtime=False, loop=True)
    core.startContinuousSequenceAcquisition(0)
    frames, mds = pop(core, 75)
    core.stopSequenceAcquisition()
    assert len(frames) == 75
    np.testing.assert_array_equal(frames[30], frames[0])
    times = [float(m["tfll.time_s"]) for m in mds]
    assert np.all(np.diff(times) > 0)
    assert times[30] == pytest.approx(30 / 50.0)
    assert "tfll.end_of_stream" not in mds[29]


def test_replay_camera_from_config_file_property(tmp_path, recorded_tiff):
    cfg = tmp_path / "replay.cfg"
    cfg.write_text(
        "#py pyDevice,Replay,tfll_live.acquisition,ReplayCamera\n"
        f"#py Property,Replay,File,{recorded_tiff}\n"
        "#py Property,Replay,Realtime,No\n"
        "Property,Core,Initialize,1\n"
        "#py Property,Core,Camera,Replay\n"
    )
    core = make_core(config=cfg)
    core.startContinuousSequenceAcquisition(0)
    frames, _ = pop(core, 30)
    core.stopSequenceAcquisition()
    assert len(frames) == 30


def _truncated(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


@pytest.mark.parametrize("case", ["missing", "truncated-to-nothing", "text", "empty-dir"])
def test_bad_replay_file_is_a_one_line_error(tmp_path, recorded_tiff, case):
    if case == "missing":
        path = tmp_path / "gone.ome.tif"
    elif case == "truncated-to-nothing":
        path = tmp_path / "cut.tif"
        path.write_bytes(recorded_tiff.read_bytes()[:300])
    elif case == "text":
        path = tmp_path / "notes.txt"
        path.write_text("not an image stream\n")
    else:
        path = tmp_path / "x.ome.zarr"
        path.mkdir()
    with pytest.raises(StreamError) as err:
        make_core(replay=path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_truncated_replay_plays_its_intact_frames_then_fails_the_sequence(tmp_path, recorded_tiff):
    path = _truncated(recorded_tiff, tmp_path / "half.ome.tif")
    camera = ReplayCamera(path, realtime=False, fps=50.0)  # a cut OME-TIFF loses its rate
    intact = camera.source.n_frames
    assert intact is not None and 0 < intact < 30
    # the generator itself, as the core drives it: the intact frames, then the reader's error
    buf = np.empty(camera.shape(), camera.dtype())
    got = []
    with pytest.raises(StreamError, match="truncated"):
        for md in camera.start_sequence(None, lambda shape, dtype: buf):
            got.append(buf.copy())
            frame_done(md[KEY_FLOW])
    camera.shutdown()
    assert len(got) == intact


# -- pixels from C++ cameras --------------------------------------------------------------------


def test_bgra_to_rgb_converts_micro_managers_packed_32_bit_pixels():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    bgra = np.empty((5, 7, 4), np.uint8)
    bgra[..., :3] = rgb[..., ::-1]  # blue, green, red in memory order
    bgra[..., 3] = 255
    packed = bgra.view(np.uint32).reshape(5, 7)  # how the C++ core returns an RGB32 image
    out = bgra_to_rgb(packed)
    assert out.shape == (5, 7, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, rgb)
    np.testing.assert_array_equal(bgra_to_rgb(bgra), rgb)
    np.testing.assert_array_equal(camera_frame(packed, 4), rgb)


def test_bgra_to_rgb_converts_64_bit_pixels_of_16_bit_channels():
    rgb = np.arange(2 * 3 * 3, dtype=np.uint16).reshape(2, 3, 3) * 1000
    bgra = np.stack([rgb[..., 2], rgb[..., 1], rgb[..., 0], np.full((2, 3), 65535, np.uint16)], -1)
    packed = bgra.astype("<u2").view("<u8").reshape(2, 3)
    np.testing.assert_array_equal(bgra_to_rgb(packed), rgb)


def test_mono_frames_pass_unchanged():
    mono = np.arange(12, dtype=np.uint16).reshape(3, 4)
    assert camera_frame(mono, 1) is mono
    with pytest.raises(ValueError, match="BGRA"):
        bgra_to_rgb(mono)


# -- Python devices next to each other --------------------------------------------------------


def test_two_python_cameras_in_one_core_switch(recorded_tiff):
    core = new_core()
    add_camera(core, "Synth", SyntheticCamera(SMALL))
    add_camera(core, "Replay", ReplayCamera(recorded_tiff, realtime=False), select=False)
    assert core.getCameraDevice() == "Synth"
    core.setCameraDevice("Replay")
    core.startContinuousSequenceAcquisition(0)
    frames, _ = pop(core, 3)
    core.stopSequenceAcquisition()
    assert frames[0].shape == (120, 160, 3)
    with open_stream(recorded_tiff) as source:
        np.testing.assert_array_equal(frames[0], source.read(0))


# -- real Micro-Manager adapters ----------------------------------------------------------------


@pytest.mark.parametrize("pixel_type", ["8bit", "16bit", "32bitRGB"])
def test_demo_config_runs_with_cpp_democamera(demo_cfg, pixel_type):
    from tfll_live.acquisition import CaptureLoop

    core = make_core(config=demo_cfg)  # adapters found through MICROMANAGER_PATH
    core.setProperty(core.getCameraDevice(), "PixelType", pixel_type)
    core.setExposure(5)
    loop = CaptureLoop(core)
    loop.start()
    deadline = time.monotonic() + 10
    while loop.stats.tracked < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    stats = loop.stop()
    assert stats.tracked >= 5
    frame, _ = loop.latest() or (None, None)
    assert frame is not None
    assert frame.ndim == (3 if pixel_type == "32bitRGB" else 2)
