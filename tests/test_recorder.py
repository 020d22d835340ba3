"""Recording during live acquisition: formats read back, never overwrite, replay equals live."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import ome_types
import pytest
import tifffile
import zarr
from waiting import wait_until

from tfll_live.acquisition import CaptureLoop, make_core
from tfll_live.acquisition.recorder import Recording, analysis_dir_for, free_path
from tfll_live.io import open_stream, read_frames_csv, read_results
from tfll_live.synth import SynthConfig, SyntheticStream

CFG = SynthConfig(height=120, width=160, fps=200.0, n_frames=1000, seed=3,
                  first_blink_s=(0.25, 0.3), blink_interval_s=(1.0, 1.2))
FORMATS = ["ome-zarr", "ome-tiff"]


def record_live(out: Path, fmt: str, n_frames: int, cfg: SynthConfig = CFG) -> tuple[Path, list]:
    """Record about ``n_frames`` of the synthetic camera; the path and the live results.

    The tracker never skips a frame, however far behind a busy machine leaves it (200 frames/s
    outrun it here): these recordings are compared with their replay, which tracks every frame.
    """
    loop = CaptureLoop(make_core(synth=cfg), max_track_lag_s=float("inf"))
    results: list = []
    loop.events.frame_tracked.connect(results.append)
    loop.start()
    path = loop.start_recording(out, fmt)  # type: ignore[arg-type]
    assert wait_until(lambda: loop.stats.recorded >= n_frames)
    assert loop.stop_recording() == path
    loop.stop()
    return path, results


@pytest.fixture(scope="module", params=FORMATS)
def live_recording(request, tmp_path_factory) -> tuple[Path, str, list]:
    out = tmp_path_factory.mktemp(request.param) / "session"
    path, results = record_live(out, request.param, 300)
    return path, request.param, results


# -- what a recording holds ---------------------------------------------------------------------


def test_recording_reads_back_with_every_frame_and_its_camera_time(live_recording):
    path, fmt, _ = live_recording
    assert path.name == ("session.ome.zarr" if fmt == "ome-zarr" else "session.ome.tif")
    meta = [json.loads(line) for line in
            (analysis_dir_for(path) / "camera_frames.jsonl").read_text().splitlines()]
    stream = SyntheticStream(CFG)
    with open_stream(path) as src:
        assert src.n_frames == len(meta) >= 300
        # the delivered rate, by the frames' real times: 200 frames/s on an idle machine, less
        # where a busy one made the camera miss exposures (never the configured rate as such)
        delivered = (len(meta) - 1) / (meta[-1]["time_s"] - meta[0]["time_s"])
        assert src.fps == pytest.approx(delivered, rel=1e-6) and src.fps < 200.0 * 1.05
        assert src.times_s is not None
        # times since the recording's first frame, exactly as the tracker saw them
        assert [src.frame_time(i) for i in range(5)] == [m["time_s"] for m in meta[:5]]
        for i in (0, 1, len(meta) - 1):
            source_frame = int(meta[i]["tfll.source_frame"])
            np.testing.assert_array_equal(src.read(i), stream.render(source_frame))
    assert [int(m["ImageNumber"]) for m in meta] == list(
        range(int(meta[0]["ImageNumber"]), int(meta[0]["ImageNumber"]) + len(meta)))


def test_recording_is_standard_ome_for_zarr_and_tifffile(live_recording):
    path, fmt, _ = live_recording
    n = json.loads((analysis_dir_for(path) / "results.json").read_text())["n_frames"]
    if fmt == "ome-zarr":
        root = zarr.open_group(str(path), mode="r")
        assert root.attrs["ome"] == {"version": "0.5", "bioformats2raw.layout": 3}
        image = root["0"]  # the image group holds nothing but the image
        assert list(image.array_keys()) == ["0"] and not list(image.group_keys())
        ome = image.attrs["ome"]
        assert ome["version"] == "0.5"
        axes = [(a["name"], a.get("unit")) for a in ome["multiscales"][0]["axes"]]
        assert axes == [("t", "second"), ("c", None), ("y", None), ("x", None)]  # no px size
        scale = ome["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"]
        assert scale[0] == pytest.approx(1 / 200.0)
        channels = ome["omero"]["channels"]
        assert [(c["label"], c["color"]) for c in channels] == [
            ("Red", "FF0000"), ("Green", "00FF00"), ("Blue", "0000FF")]
        arr = image["0"]
        assert arr.shape == (n, 3, 120, 160) and arr.chunks == (1, 3, 120, 160)
        assert [type(c).__name__ for c in arr.compressors] == ["BloscCodec"]  # lossless
        tfll = root.attrs["tfll"]
        assert tfll["complete"] is True and tfll["n_frames"] == n
        assert tfll["tracker_config"]["max_features"] > 0 and tfll["camera"] == "Camera"
        xml = (path / "OME" / "METADATA.ome.xml").read_text()
    else:
        with tifffile.TiffFile(path) as tif:
            assert tif.is_ome
            series = tif.series[0]
            assert series.axes == "TYXS" and series.shape == (n, 120, 160, 3)
            page = tif.pages[0]
            assert page.compression == tifffile.COMPRESSION.ADOBE_DEFLATE and page.predictor == 2
            xml = tif.ome_metadata
        tfll = _annotations(xml)
        assert tfll["complete"] == "true" and json.loads(tfll["n_frames"]) == n
    # the OME-XML is valid against the schema, with the camera, times and exposures
    ome = ome_types.from_xml(xml, validate=True)
    image = ome.images[0]
    assert image.instrument_ref.id == ome.instruments[0].id
    model = ome.instruments[0].detectors[0].model
    assert model == "SyntheticCamera (tfll_live.acquisition.synthetic_camera)"
    pixels = image.pixels
    assert pixels.size_t == n and pixels.time_increment == pytest.approx(1 / 200.0)
    assert pixels.channels[0].detector_settings.id == ome.instruments[0].detectors[0].id
    planes = [p for p in pixels.planes if p.the_c == 0]
    assert [p.the_t for p in planes] == list(range(n))
    # the frames' real times: 5 ms apart, or a whole number of exposures where a busy machine
    # made the camera miss one (CI: 0.0, 0.005, 0.015)
    steps = np.diff([p.delta_t for p in planes[:10]]) / 0.005
    assert planes[0].delta_t == 0.0 and np.all(steps >= 0.99)
    assert np.allclose(steps, np.round(steps), atol=0.01)
    assert all(p.exposure_time == pytest.approx(0.005) for p in planes)
    # the session's record is linked to the image, and names the analysis folder
    [ref] = image.annotation_refs
    record = next(a for a in ome.structured_annotations.map_annotations if a.id == ref.id)
    values = {m.k: m.value for m in record.value.ms}
    assert values["analysis"] == analysis_dir_for(path).name
    assert (path.parent / values["results"]).is_file()
    frames = json.loads(values["frames"])
    assert frames == {"acquired": n, "recorded": n, "lost": 0, "lost_in_camera_buffer": 0,
                      "tracked": frames["tracked"], "complete": True}


def _annotations(xml: str) -> dict[str, str]:
    ome = ome_types.from_xml(xml)
    [record] = ome.structured_annotations.map_annotations
    return {m.k: m.value for m in record.value.ms}


def test_analysis_beside_the_recording_matches_the_live_results(live_recording):
    path, _, results = live_recording
    out = analysis_dir_for(path)
    doc = read_results(out)
    csv = read_frames_csv(out)
    n = doc["n_frames"]
    assert len(csv["frame"]) == n and list(csv["frame"][:3]) == [0, 1, 2]
    with open_stream(path) as src:  # the rate the recording delivered (see above)
        assert doc["source"] == path.name and doc["fps"] == pytest.approx(src.fps, rel=1e-6)
    assert doc["tracker"]["max_features"] > 0 and "incomplete" not in doc
    # the recording started a new session: its rows are the live results from frame 0 on,
    # and say which frames were tracked
    first = max(i for i, r in enumerate(results) if r.frame == 0)
    live = {r.frame: r for r in results[first:]}
    tracked = csv["state"] != "untracked"
    assert doc["frames"]["tracked"] == tracked.sum() and set(csv["frame"][tracked]) <= set(live)
    assert [live[f].state.value for f in csv["frame"][tracked]] == list(csv["state"][tracked])
    assert doc["blinks"], "the session should contain a blink"


# -- replay equals live -------------------------------------------------------------------------


def replay_and_record(src: Path, out: Path, fmt: str) -> Path:
    loop = CaptureLoop(make_core(replay=src, realtime=False))
    stopped: list = []
    loop.events.stopped.connect(stopped.append)
    path = loop.start_recording(out, fmt)  # type: ignore[arg-type]  # armed: from frame 0 on
    loop.start()
    # a replay played once ends the loop by itself, after tracking every frame (slow on a busy
    # machine: the camera waits for the tracker)
    assert wait_until(lambda: bool(stopped), timeout_s=180)
    assert stopped[0].lost == 0
    return path


def _numbers(doc: dict) -> dict:
    return {k: doc[k] for k in ("n_frames", "frame_shape", "fps", "blinks", "intervals")}


@pytest.mark.parametrize("fmt", FORMATS)
def test_replaying_a_recording_gives_the_same_results_as_live(live_recording, tmp_path, fmt):
    path, _, _ = live_recording
    live_doc = read_results(analysis_dir_for(path))
    assert live_doc["frames"]["tracked"] == live_doc["n_frames"], "live skipped frames"
    replayed = replay_and_record(path, tmp_path / "replayed", fmt)
    replay_doc = read_results(analysis_dir_for(replayed))
    assert replay_doc["n_frames"] == live_doc["n_frames"]
    assert _numbers(replay_doc) == _numbers(live_doc)  # identical numbers, not approximately
    assert live_doc["blinks"] and len(live_doc["intervals"]) >= 2  # a session with content
    assert (analysis_dir_for(replayed) / "frames.csv").read_text() == \
        (analysis_dir_for(path) / "frames.csv").read_text()


def test_tfll_analyze_of_a_recording_agrees_with_live(live_recording, tmp_path):
    from tfll_live.analyze import analyze

    path, _, _ = live_recording
    out = analyze(path, out=tmp_path / "offline")
    assert _numbers(read_results(out)) == _numbers(read_results(analysis_dir_for(path)))


# -- never overwrite --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_existing_recording_is_never_overwritten(tmp_path, fmt):
    first = Recording.create(tmp_path / "rec", fmt)  # type: ignore[arg-type]
    first.close(None)
    marker = analysis_dir_for(first.path) / "mine.txt"
    marker.write_text("keep me")
    second = Recording.create(tmp_path / "rec", fmt)  # type: ignore[arg-type]
    second.close(None)
    assert second.path != first.path and second.path.name.startswith("rec-1.")
    assert marker.read_text() == "keep me"
    # an analysis folder alone also takes the name
    (tmp_path / "other.tfll").mkdir()
    assert free_path(tmp_path / "other", fmt).name.startswith("other-1.")  # type: ignore[arg-type]


def test_suffix_is_added_and_kept():
    assert free_path("/nonexistent/a", "ome-zarr").name == "a.ome.zarr"
    assert free_path("/nonexistent/a.ome.tiff", "ome-tiff").name == "a.ome.tiff"
    assert free_path("/nonexistent/a.ome.zarr", "ome-tiff").name == "a.ome.tif"
    with pytest.raises(ValueError, match="unknown recording format"):
        free_path("/nonexistent/a", "avi")  # type: ignore[arg-type]


# -- start/stop recording while live ----------------------------------------------------------


def test_start_and_stop_recording_repeatedly_while_live(tmp_path):
    loop = CaptureLoop(make_core(synth=CFG))
    stopped: list = []
    loop.events.recording_stopped.connect(lambda p, e: stopped.append((p, e)))
    loop.start()
    paths = []
    for k in range(3):
        paths.append(loop.start_recording(tmp_path / "take", FORMATS[k % 2]))  # type: ignore[arg-type]
        with pytest.raises(RuntimeError, match="already recording"):
            loop.start_recording(tmp_path / "other")
        assert wait_until(lambda: loop.stats.recorded >= 20)
        loop.stop_recording()
    assert loop.stop_recording() is None
    assert loop.is_running
    loop.stop()
    # take.tfll/ (the analysis of the first take) also holds the name "take"
    assert [p.name for p in paths] == ["take.ome.zarr", "take-1.ome.tif", "take-2.ome.zarr"]
    assert [e for _, e in stopped] == [None, None, None]
    for p in paths:
        with open_stream(p) as src:
            assert src.n_frames == read_results(analysis_dir_for(p))["n_frames"] >= 20


@pytest.mark.parametrize("fmt", FORMATS)
def test_stop_while_recording_finalises_the_recording(tmp_path, fmt):
    loop = CaptureLoop(make_core(synth=CFG))
    loop.start()
    path = loop.start_recording(tmp_path / "rec", fmt)  # type: ignore[arg-type]
    assert wait_until(lambda: loop.stats.recorded >= 30)
    stats = loop.stop()
    assert stats.recorded == stats.acquired - _frames_before_recording(path, stats)
    doc = read_results(analysis_dir_for(path))
    assert doc["n_frames"] == stats.recorded and "incomplete" not in doc
    with open_stream(path) as src:
        assert src.n_frames == stats.recorded


def _frames_before_recording(path: Path, stats) -> int:
    with (analysis_dir_for(path) / "camera_frames.jsonl").open() as f:
        first = json.loads(f.readline())
    return int(first["ImageNumber"])


# -- faults -----------------------------------------------------------------------------------


def test_unwritable_path_is_refused_in_one_line_and_acquisition_goes_on(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    loop = CaptureLoop(make_core(synth=CFG))
    loop.start()
    for bad in (blocker / "rec", Path("/proc/tfll-nope/rec")):
        with pytest.raises(OSError) as err:
            loop.start_recording(bad)
        assert "\n" not in str(err.value) and "cannot record" in str(err.value)
    n = loop.stats.tracked
    assert wait_until(lambda: loop.stats.tracked > n + 10) and loop.is_running
    assert not loop.is_recording
    loop.stop()


def test_recording_whose_folder_vanishes_stops_with_a_message_and_tracking_goes_on(tmp_path):
    loop = CaptureLoop(make_core(synth=CFG))
    errors: list = []
    stopped: list = []
    loop.events.error.connect(errors.append)
    loop.events.recording_stopped.connect(lambda p, e: stopped.append((p, e)))
    loop.start()
    path = loop.start_recording(tmp_path / "rec")
    assert wait_until(lambda: loop.stats.recorded >= 20)
    while path.exists():  # the disk under the recording goes away (while it is written to)
        shutil.rmtree(path, ignore_errors=True)
    assert wait_until(lambda: bool(stopped))
    assert stopped[0][0] == path and "No such file" in stopped[0][1]
    assert len(errors) == 1 and errors[0].startswith("recording stopped")
    n = loop.stats.tracked
    assert wait_until(lambda: loop.stats.tracked > n + 20)
    assert loop.is_running and not loop.is_recording
    stats = loop.stop()
    assert stats.state.value == "idle"
