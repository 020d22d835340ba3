"""Recording size and time limits (issue 12, item 2): real recordings on the synthetic camera.

``tfll live --record OUT --max-size SIZE --max-minutes M`` runs in a real process on the real
pymmcore-plus core; the recording must stop within a frame of its limit, read back whole,
and say why it stopped (stderr, results.json, the recording's own metadata).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from tfll_cli import tfll
from waiting import wait_until

from tfll_live.acquisition import CaptureLoop, RecordingLimits, make_core, parse_size
from tfll_live.acquisition.recorder import disk_size
from tfll_live.analyze import analyze
from tfll_live.cli import main
from tfll_live.io import open_stream, read_frames_csv, read_results
from tfll_live.synth import SynthConfig, SyntheticStream


def _frame_sizes(path: Path, fmt: str) -> list[int]:
    """Bytes each recorded frame takes in the file (a Zarr chunk, a TIFF page's strips)."""
    if fmt == "ome-zarr":
        return [p.stat().st_size for p in (path / "0" / "0").glob("c.*")]
    with tifffile.TiffFile(path) as tif:
        return [sum(page.databytecounts) for page in tif.pages]


def _reads_back_as_recorded(path: Path, n: int) -> None:
    """Every recorded frame decodes, and is the camera's frame that its metadata names."""
    meta = [json.loads(x) for x in
            (path.parent / f"{path.name.split('.')[0]}.tfll" / "camera_frames.jsonl")
            .read_text().splitlines()]
    assert len(meta) == n
    stream = SyntheticStream(SynthConfig(height=120, width=160, seed=2))  # exposure: no re-render
    with open_stream(path) as src:
        assert src.n_frames == n and src.problem is None
        frames = list(src)
    assert len(frames) == n
    for i in (0, n // 2, n - 1):
        np.testing.assert_array_equal(frames[i], stream.render(int(meta[i]["tfll.source_frame"])))


@pytest.mark.parametrize("fmt", ["ome-zarr", "ome-tiff"])
def test_size_limit_stops_the_recording_within_a_frame_readable_and_says_why(tmp_path, small_cfg,
                                                                             fmt):
    limit = parse_size("3M")
    proc = tfll("live", "--config", str(small_cfg), "--record", "take", "--format", fmt,
                "--max-size", "3M", "--duration", "20", cwd=tmp_path, timeout=90)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    # said in one line, and the session ended there (not at --duration)
    said = [x for x in proc.stderr.splitlines() if x.startswith("tfll: recording stopped:")]
    assert len(said) == 1 and "size limit of 3.0 MB reached" in said[0], proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith("live (recording limit reached):")
    path = tmp_path / ("take.ome.zarr" if fmt == "ome-zarr" else "take.ome.tif")
    doc = read_results(tmp_path / "take.tfll")
    n = doc["n_frames"]
    sizes = _frame_sizes(path, fmt)
    assert len(sizes) == n >= 20
    # within a frame of the limit, never past it
    size = disk_size(path)
    assert limit - (max(sizes) + 4096) <= size <= limit, (size, limit, max(sizes))
    _reads_back_as_recorded(path, n)
    # the analysis of every recorded frame, and the reason, in results.json
    assert len(read_frames_csv(tmp_path / "take.tfll")["frame"]) == n
    assert doc["frames"]["recorded"] == doc["frames"]["acquired"] == n
    assert doc["frames"]["complete"] and "incomplete" not in doc
    rec = doc["recording"]
    assert rec["complete"] and rec["limits"] == {"max_bytes": limit, "max_s": None}
    assert rec["limit_reached"].startswith("size limit of 3.0 MB reached")
    # and in the recording's own metadata
    if fmt == "ome-zarr":
        attrs = zarr.open_group(str(path), mode="r").attrs["tfll"]
        assert attrs["limit_reached"] == rec["limit_reached"] and attrs["n_frames"] == n
    else:
        with tifffile.TiffFile(path) as tif:
            assert "size limit of 3.0 MB reached" in tif.pages.first.description


def test_time_limit_stops_the_recording_after_that_time(tmp_path, small_cfg):
    proc = tfll("live", "--config", str(small_cfg), "--record", "take", "--max-minutes", "0.02",
                "--duration", "20", cwd=tmp_path, timeout=90)
    assert proc.returncode == 0, proc.stderr
    said = [x for x in proc.stderr.splitlines() if x.startswith("tfll: recording stopped:")]
    assert len(said) == 1 and "time limit of 0.02 min reached" in said[0], proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith("live (recording limit reached):")
    doc = read_results(tmp_path / "take.tfll")
    n = doc["n_frames"]
    with open_stream(tmp_path / "take.ome.zarr") as src:
        assert src.n_frames == n and src.times_s is not None
        times = np.asarray(src.times_s, float)
    last = float(times[-1])
    # the frames of the first 1.2 s by the camera's clock: none later, and not stopped early:
    # the limit lies within the camera's next frame (a loaded machine may skip exposures, past
    # the 0.25 s the camera holds; the longest gap it left between two frames says how far)
    assert last < 1.2
    assert 1.2 - last <= max(0.25, float(np.max(np.diff(times)))) + 1 / 200
    # every frame the camera delivered until then (240 at 200 frames/s; a loaded machine's
    # camera skips exposures and delivers fewer: a loaded CI machine's delivered 92)
    meta = [json.loads(x) for x in (tmp_path / "take.tfll" / "camera_frames.jsonl")
            .read_text().splitlines()]
    assert [int(m["tfll.frame"]) for m in meta] == list(range(n)) and n >= 30
    assert doc["recording"]["limit_reached"].startswith("time limit of 0.02 min reached")
    assert doc["recording"]["limits"] == {"max_bytes": None, "max_s": pytest.approx(1.2)}
    assert doc["frames"]["complete"] and "incomplete" not in doc
    _reads_back_as_recorded(tmp_path / "take.ome.zarr", n)


def test_core_api_limit_ends_the_recording_and_live_tracking_goes_on(tmp_path):
    """What the dock will use: ``start_recording(..., limits=...)`` and the loop's events."""
    loop = CaptureLoop(make_core(synth=SynthConfig(height=120, width=160, fps=200.0, seed=2)))
    events: list[tuple] = []
    loop.events.recording_limit_reached.connect(lambda p, why: events.append(("limit", p, why)))
    loop.events.recording_stopped.connect(lambda p, err: events.append(("stopped", p, err)))
    loop.events.error.connect(lambda e: events.append(("error", e)))
    loop.start()
    try:
        path = loop.start_recording(tmp_path / "rec", "ome-tiff",
                                    limits=RecordingLimits(max_s=0.5))
        assert wait_until(lambda: len(events) >= 2, timeout_s=30)
        assert not loop.is_recording and loop.is_running
        tracked = loop.stats.tracked
        assert wait_until(lambda: loop.stats.tracked > tracked + 20, timeout_s=30)
    finally:
        loop.stop()
    assert [e[0] for e in events] == ["limit", "stopped"]
    assert events[0][1] == path and "time limit" in events[0][2] and "\n" not in events[0][2]
    assert events[1] == ("stopped", path, None)  # not an error: the recording is complete
    doc = read_results(tmp_path / "rec.tfll")
    assert doc["recording"]["limit_reached"] == events[0][2]
    with open_stream(path) as src:
        assert src.n_frames == doc["n_frames"] and float(src.times_s[-1]) < 0.5
    # the recording's time, for the report's date: live, and when analysed again
    started = datetime.fromisoformat(doc["recorded_utc"])
    assert abs((datetime.now(timezone.utc) - started).total_seconds()) < 120
    again = read_results(analyze(path, out=tmp_path / "again"))
    assert again["recorded_utc"] == doc["recorded_utc"]


@pytest.mark.parametrize(("option", "value", "needle"), [
    ("--max-size", "0", "at least one byte"),
    ("--max-size", "-5M", "must be positive"),
    ("--max-size", "lots", "not a size"),
    ("--max-size", "2X", "not a size"),
    ("--max-minutes", "0", "positive number of minutes"),
    ("--max-minutes", "-1", "positive number of minutes"),
    ("--max-minutes", "inf", "positive number of minutes"),
    ("--max-minutes", "soon", "not a number of minutes"),
])
def test_bad_limits_are_refused_in_one_line(tmp_path, capsys, option, value, needle):
    # OPTION=VALUE: argparse takes a bare "-5M" for an option ("expected one argument")
    code = main(["live", "--record", str(tmp_path / "x"), f"{option}={value}"])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert option in lines[0] and needle in lines[0], lines[0]
    assert not list(tmp_path.iterdir())  # refused before anything started


def test_limits_without_a_recording_are_refused_in_one_line(tmp_path, capsys):
    assert main(["live", "--max-minutes", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "give --record" in err and "Traceback" not in err


def test_sizes_parse_in_1024s_and_the_api_refuses_what_cannot_be_met():
    assert parse_size("500M") == 500 * 2**20
    assert parse_size("2G") == parse_size("2 GiB") == parse_size("2gb") == 2 * 2**30
    assert parse_size("123456") == 123456 and parse_size("1.5K") == 1536
    for bad in ({"max_bytes": 0}, {"max_bytes": -1}, {"max_s": 0.0}, {"max_s": float("nan")},
                {"max_s": -3.0}, {"max_bytes": 1.5}):
        with pytest.raises(ValueError):
            RecordingLimits(**bad)  # type: ignore[arg-type]
    assert not RecordingLimits().any and RecordingLimits(max_s=1.0).any
