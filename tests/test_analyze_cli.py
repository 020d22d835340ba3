"""`tfll analyze` and `tfll synth` end to end: real files in, results and one-line errors out."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

import tfll_live
from tfll_live.analyze import analyze, default_out_dir, track_stream
from tfll_live.cli import ProgressLine, main
from tfll_live.io import StreamError, open_stream, read_frames_csv, read_results
from tfll_live.synth import SynthConfig, SyntheticStream, write_stream
from tfll_live.tracking import FRAME_COLUMNS, Tracker

H, W = 120, 160


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("tfll")
    for needle in needles:
        assert needle in lines[0]


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> tuple[Path, SyntheticStream]:
    """A short synthetic recording (one blink) written by `tfll synth`."""
    path = tmp_path_factory.mktemp("rec") / "eye.ome.tif"
    assert main(["synth", str(path), "--frames", "200", "--height", str(H), "--width", str(W),
                 "--seed", "3"]) == 0
    return path, SyntheticStream(SynthConfig(height=H, width=W, n_frames=200, seed=3))


# -- tfll synth -----------------------------------------------------------------------------------


def test_synth_writes_a_readable_stream_and_its_truth(tmp_path, capsys):
    out = tmp_path / "s.ome.tif"
    code, stdout, _ = _run(capsys, "synth", out, "--frames", 30, "--height", 64, "--width", 96,
                           "--fps", 30, "--mono", "--bit-depth", 16, "--seed", 7,
                           "--partial-fraction", 1)
    assert code == 0
    truth_path = tmp_path / "s.truth.json"
    assert str(truth_path) in stdout
    truth = json.loads(truth_path.read_text())
    assert truth["config"]["seed"] == 7 and truth["config"]["partial_blink_fraction"] == 1.0
    assert all(not b["complete"] for b in truth["blinks"])
    with open_stream(out) as src:
        assert (src.n_frames, src.shape, src.dtype) == (30, (64, 96), np.uint16)
        assert src.fps == pytest.approx(30.0)
        np.testing.assert_array_equal(src.read(0), SyntheticStream(SynthConfig(
            height=64, width=96, fps=30, n_frames=30, seed=7, rgb=False, bit_depth=16,
            partial_blink_fraction=1.0)).render(0))


@pytest.mark.parametrize(("argv", "needle"), [
    (["synth", "{tmp}/s.png"], "name the output *.ome.tif"),
    (["synth", "{tmp}/no/such/dir/s.ome.tif"], "does not exist"),
    (["synth", "{tmp}/s.ome.tif", "--height", "30"], "at least 64x64"),
    (["synth", "{tmp}/s.ome.tif", "--frames", "0"], "must be positive"),
    (["synth", "{tmp}/s.ome.tif", "--partial-fraction", "2"], "between 0 and 1"),
    (["synth", "{tmp}/s.ome.tif", "--bit-depth", "10"], "invalid choice"),
    (["synth", "{tmp}/s.mp4", "--preset", "cartoon"], "invalid choice"),
])
def test_synth_bad_arguments_are_one_line_errors(tmp_path, capsys, argv, needle):
    code, _, err = _run(capsys, *[a.format(tmp=tmp_path) for a in argv])
    _assert_one_line_error(code, err, needle)


# -- tfll analyze: refusals before any tracking ---------------------------------------------------


def _bad_inputs(tmp: Path) -> dict[str, tuple[list[str], tuple[str, ...]]]:
    tifffile.imwrite(tmp / "plain.tif", np.zeros((4, 64, 64), np.uint8), photometric="minisblack")
    tifffile.imwrite(tmp / "int16.tif", np.zeros((4, 64, 64), np.int16), photometric="minisblack")
    tifffile.imwrite(tmp / "tz.ome.tif", np.zeros((4, 2, 64, 64), np.uint8), ome=True,
                     metadata={"axes": "TZYX"})
    (tmp / "junk.mp4").write_bytes(b"\x00junk" * 100)
    good = tmp / "good.ome.tif"
    write_stream(SyntheticStream(SynthConfig(height=64, width=64, n_frames=5)), good)
    (tmp / "head.ome.tif").write_bytes(good.read_bytes()[:100])
    return {
        "missing file": (["missing.tif"], ("missing.tif", "no such file")),
        "unreadable file": (["junk.mp4"], ("junk.mp4", "not a readable image stream")),
        "truncated header": (["head.ome.tif"], ("head.ome.tif", "truncated")),
        "no frame rate": (["plain.tif"], ("plain.tif", "no frame rate", "pass --fps")),
        "wrong dtype": (["int16.tif", "--fps", "10"], ("int16.tif", "pixel type int16")),
        "wrong shape": (["tz.ome.tif", "--fps", "10"], ("tz.ome.tif", "unsupported array shape")),
        "zero fps": (["plain.tif", "--fps", "0"], ("--fps", "must be positive")),
        "bad flow": (["plain.tif", "--flow", "magic"], ("--flow", "invalid choice")),
    }


def test_analyze_refuses_bad_input_with_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for case, (args, needles) in _bad_inputs(tmp_path).items():
        code, _, err = _run(capsys, "analyze", *args)
        try:
            _assert_one_line_error(code, err, *needles)
        except AssertionError as e:
            raise AssertionError(f"{case}: {e}") from e
    assert not list(tmp_path.glob("*.tfll"))  # nothing half-written for refused input


def test_debug_shows_the_traceback(tmp_path, capsys):
    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((5, 64, 64), np.uint8))
    code, _, err = _run(capsys, "analyze", tmp_path / "plain.tif", "--debug")
    assert code == 2
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("tfll: error:")


def test_command_line_entry_point_gives_one_line_error(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(tfll_live.__file__).parents[1])}
    proc = subprocess.run([sys.executable, "-m", "tfll_live.cli", "analyze", "gone.ome.tif"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "tfll: error: gone.ome.tif: no such file"


def test_no_command_prints_help(capsys):
    code, _, err = _run(capsys)
    assert code == 2 and "analyze" in err and "synth" in err


def test_progress_line_redraws_one_line():
    buf = io.StringIO()
    progress = ProgressLine("x.tif", stream=buf, live=True, interval_s=0.0)
    for i in range(1, 51):
        progress(i, 50)
    progress.finish()
    text = buf.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    last = text.rstrip("\n").split("\r")[-1]
    assert "50/50 frames" in last and "100%" in last and "frames/s" in last
    quiet = io.StringIO()
    ProgressLine("x.tif", stream=quiet, live=False)(1, 2)
    assert quiet.getvalue() == ""


def test_default_output_directory_is_beside_the_input():
    assert default_out_dir("/data/s1.ome.tif") == Path("/data/s1.tfll")
    assert default_out_dir("clip.mp4") == Path("clip.tfll")


# -- tfll analyze through the real Tracker --------------------------------------------------------


def test_analyze_finds_the_blinks_of_the_truth(recording, capsys):
    path, stream = recording
    code, stdout, err = _run(capsys, "analyze", path)
    assert code == 0, err
    out = path.parent / "eye.tfll"
    assert f"-> {out}" in stdout and "200 frames" in stdout
    doc = read_results(out)
    truth = stream.truth
    assert doc["source"] == "eye.ome.tif" and doc["n_frames"] == 200
    assert doc["frame_shape"] == [H, W] and doc["fps"] == pytest.approx(45.0)
    assert doc["timestamps"] == "file"
    assert len(doc["blinks"]) == len(truth.blinks) >= 1
    for found, real in zip(doc["blinks"], truth.blinks, strict=True):
        assert abs(found["start_frame"] - real["start_frame"]) <= 3
        assert abs(found["end_frame"] - real["end_frame"]) <= 3
        assert found["complete"] == real["complete"]
    assert len(doc["intervals"]) == len(truth.intervals)
    assert (out / "frames.csv").read_text().splitlines()[0] == ",".join(FRAME_COLUMNS)
    cols = read_frames_csv(out)
    assert list(cols["frame"]) == list(range(200))
    np.testing.assert_allclose(cols["time_s"], truth.time_s, atol=1e-6)
    assert set(cols["state"]) == {"open", "blink"}
    assert json.loads((path.parent / "eye.truth.json").read_text())["blinks"] == truth.blinks


def test_offline_analysis_equals_pushing_the_live_frames(recording, tmp_path):
    """The file path (reader + analyze) and a live loop (render + push) give identical rows."""
    path, stream = recording
    out = analyze(path, out=tmp_path / "a", fps=None)
    rows = (out / "frames.csv").read_text().splitlines()[1:]
    tracker = Tracker()
    live = [",".join(r.csv_row()) for r in track_stream(
        ((stream.render(i), i / 45.0) for i in range(len(stream))), tracker)]
    assert rows == live


def test_analyze_options_and_progress(recording, tmp_path):
    path, _ = recording
    buf = io.StringIO()
    out = analyze(path, out=tmp_path / "opt", fps=50.0,
                  config=tfll_live.tracking.TrackerConfig(enhancement="laplacian", flow="ssd"),
                  progress=ProgressLine("eye", stream=buf, live=True, interval_s=0.0))
    doc = read_results(out)
    assert doc["fps"] == 50.0 and doc["timestamps"] == "frame rate"
    assert doc["tracker"]["enhancement"] == "laplacian" and doc["tracker"]["flow"] == "ssd"
    assert read_frames_csv(out)["time_s"][50] == pytest.approx(1.0)
    assert "200/200 frames" in buf.getvalue() and "100%" in buf.getvalue()


def test_truncated_recording_is_analysed_up_to_the_cut_and_reported(recording, tmp_path, capsys):
    path, _ = recording
    with tifffile.TiffFile(path) as tif:
        start = tif.series[0].dataoffset
    cut = tmp_path / "cut.ome.tif"
    cut.write_bytes(path.read_bytes()[: start + 120 * H * W * 3 + 7])
    code, _, err = _run(capsys, "analyze", cut, "--fps", "45")
    _assert_one_line_error(code, err, "cut.ome.tif", "truncated", "results for the 120 frames")
    doc = read_results(tmp_path / "cut.tfll")
    assert doc["n_frames"] == 120 and doc["incomplete"]["frames_read"] == 120
    assert len(read_frames_csv(tmp_path / "cut.tfll")["frame"]) == 120


def test_video_ending_early_is_analysed_and_reported(recording, tmp_path, capsys):
    _, stream = recording
    clip = tmp_path / "clip.avi"
    vw = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 45.0, (W, H))
    for i in range(80):
        vw.write(cv2.cvtColor(stream.render(i), cv2.COLOR_RGB2BGR))
    vw.release()
    cut = tmp_path / "short.avi"
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    code, _, err = _run(capsys, "analyze", cut)
    _assert_one_line_error(code, err, "short.avi", "video ends early")
    doc = read_results(tmp_path / "short.tfll")
    n = doc["incomplete"]["frames_read"]
    assert 10 < n < 80 and doc["n_frames"] == n and doc["source_format"] == "video"


@pytest.mark.parametrize(("dtype", "bad"), [
    (np.uint8, {20: "black", 30: "saturated"}),
    (np.float32, {40: "nan"}),
])
def test_bad_frames_inside_a_stream_reset_the_tracker_and_are_reported(tmp_path, capsys, dtype,
                                                                       bad):
    """All-black, saturated and NaN frames inside a stream: analysed, each reset reported."""
    stream = SyntheticStream(SynthConfig(height=H, width=W, n_frames=60, seed=5, rgb=False))
    frames = np.stack([stream.render(i) for i in range(60)]).astype(dtype)
    for i, kind in bad.items():
        if kind == "black":
            frames[i] = 0
        elif kind == "saturated":
            frames[i] = 255
        else:
            frames[i, 10:20, 10:20] = np.nan
    path = tmp_path / "bad.ome.tif"
    tifffile.imwrite(path, frames, ome=True, metadata={"axes": "TYX", "TimeIncrement": 1 / 45})
    code, stdout, err = _run(capsys, "analyze", path)
    assert code == 0, err
    assert f"{len(bad)} tracker resets" in stdout
    doc = read_results(tmp_path / "bad.tfll")
    assert [e["frame"] for e in doc["resets"]["events"]] == list(bad)
    assert doc["resets"]["count"] == len(bad)
    cols = read_frames_csv(tmp_path / "bad.tfll")
    assert len(cols["frame"]) == 60
    assert all(cols["state"][i] == "blink" and cols["interval"][i] == -1 for i in bad)


def test_frame_size_change_mid_stream_resets_the_tracker():
    small = SyntheticStream(SynthConfig(height=H, width=W, n_frames=10, seed=1))
    large = SyntheticStream(SynthConfig(height=H + 8, width=W, n_frames=10, seed=1))
    frames = [small.render(i) for i in range(5)] + [large.render(i) for i in range(5, 10)]
    results = list(track_stream(((f, i / 45) for i, f in enumerate(frames)), Tracker()))
    assert len(results) == 10
    assert results[5].reset_reason is not None and "size" in results[5].reset_reason
    assert all(r.reset_reason is None for r in results[6:])


def test_frame_the_tracker_refuses_names_the_stream_and_frame(tmp_path):
    frames = [np.zeros((16, 16), np.uint8)]
    with pytest.raises(StreamError, match=r"tiny\.tif: frame 0: .*too small"):
        list(track_stream(((f, 0.0) for f in frames), Tracker(), "tiny.tif"))
