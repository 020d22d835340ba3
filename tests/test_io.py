"""Reading recorded streams back from real files, and the analysis output format."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

import tfll_live
from tfll_live.io import (
    AnalysisWriter,
    StreamError,
    open_stream,
    read_frames_csv,
    read_results,
    stream_stem,
)
from tfll_live.synth import SynthConfig, SyntheticStream, write_stream
from tfll_live.tracking import (
    FRAME_COLUMNS,
    Blink,
    Circle,
    EyeState,
    FrameResult,
    Interval,
    SpreadFit,
    Summary,
)

H, W = 64, 80


def _synth(tmp_path: Path, name: str = "rec.ome.tif", **kw) -> tuple[Path, SyntheticStream]:
    stream = SyntheticStream(SynthConfig(height=H, width=W, n_frames=12, fps=40.0, **kw))
    path = tmp_path / name
    write_stream(stream, path)
    return path, stream


def _read_all(path: Path, fps: float | None = None) -> tuple[list[np.ndarray], StreamError | None]:
    frames: list[np.ndarray] = []
    with open_stream(path, fps) as src:
        try:
            frames.extend(src)
        except StreamError as e:
            return frames, e
    return frames, None


def _ramp(n: int, *shape: int, dtype=np.uint16) -> np.ndarray:
    return (np.arange(n * int(np.prod(shape))) % 60000).astype(dtype).reshape(n, *shape)


# -- formats --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("rgb", "bits"), [(True, 8), (False, 16)])
def test_synth_ome_tiff_reads_back_frames_fps_and_times(tmp_path, rgb, bits):
    path, stream = _synth(tmp_path, rgb=rgb, bit_depth=bits)
    with open_stream(path) as src:
        assert src.shape == stream.shape
        assert src.dtype == stream.dtype
        assert src.n_frames == 12
        assert src.fps == pytest.approx(40.0)
        np.testing.assert_allclose(src.times_s, stream.truth.time_s)
        assert src.frame_time(5) == pytest.approx(5 / 40.0)
        frames = list(src)
        np.testing.assert_array_equal(src.read(7), stream.render(7))
        assert src.metadata["format"] == "ome-tiff"
    assert len(frames) == 12
    for i in (0, 11):
        np.testing.assert_array_equal(frames[i], stream.render(i))


def test_fps_argument_overrides_rate_and_file_times(tmp_path):
    path, _ = _synth(tmp_path)
    with open_stream(path, fps=10.0) as src:
        assert src.fps == 10.0
        assert src.times_s is None
        assert src.frame_time(3) == pytest.approx(0.3)


def test_plane_delta_t_in_ms_gives_times_and_rate(tmp_path):
    times_ms = np.array([0.0, 21.0, 39.5, 61.0, 80.0])
    path = tmp_path / "mm.ome.tif"
    tifffile.imwrite(path, _ramp(5, H, W), ome=True, metadata={
        "axes": "TYX", "Plane": {"DeltaT": times_ms.tolist(), "DeltaTUnit": ["ms"] * 5}})
    with open_stream(path) as src:
        np.testing.assert_allclose(src.times_s, times_ms / 1000)
        assert src.fps == pytest.approx(4 / 0.080)
        assert src.frame_time(2) == pytest.approx(0.0395)


def test_plain_tiff_stack_needs_fps_then_reads(tmp_path):
    data = _ramp(6, H, W)
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, data)
    with pytest.raises(StreamError, match=r"plain\.tif: no frame rate in the file; pass --fps"):
        open_stream(path)
    frames, err = _read_all(path, fps=30)
    assert err is None
    np.testing.assert_array_equal(np.stack(frames), data)
    with open_stream(path, fps=30) as src:
        assert (src.n_frames, src.shape, src.dtype, src.times_s) == (6, (H, W), np.uint16, None)
        assert src.frame_time(3) == pytest.approx(0.1)


def test_imagej_frame_interval_gives_rate(tmp_path):
    path = tmp_path / "ij.tif"
    tifffile.imwrite(path, _ramp(4, H, W, dtype=np.uint8), imagej=True,
                     metadata={"axes": "TYX", "finterval": 0.02})
    with open_stream(path) as src:
        assert src.fps == pytest.approx(50.0)


@pytest.mark.parametrize("layout", ["rgb", "planar-ome", "compressed-ome", "big-endian"])
def test_tiff_layouts_read_as_rgb_or_mono_frames(tmp_path, layout):
    rgb = _ramp(4, H, W, 3, dtype=np.uint8)
    path = tmp_path / f"{layout}.tif"
    if layout == "rgb":
        tifffile.imwrite(path, rgb, photometric="rgb")
        want = rgb
    elif layout == "planar-ome":  # (T, C, Y, X) with C = 3
        tifffile.imwrite(path, np.moveaxis(rgb, -1, 1).copy(), ome=True, metadata={"axes": "TCYX"})
        want = rgb
    elif layout == "compressed-ome":  # read page by page, not as a byte range
        want = _ramp(4, H, W)
        tifffile.imwrite(path, want, ome=True, compression="zlib", metadata={"axes": "TYX"})
    else:
        want = _ramp(4, H, W)
        tifffile.imwrite(path, want, byteorder=">", photometric="minisblack")
    frames, err = _read_all(path, fps=5)
    assert err is None
    np.testing.assert_array_equal(np.stack(frames), want)
    assert frames[0].dtype == want.dtype and frames[0].dtype.isnative


def test_single_image_tiff_is_a_one_frame_stream(tmp_path):
    path = tmp_path / "one.tif"
    tifffile.imwrite(path, _ramp(1, H, W)[0])
    with open_stream(path, fps=1) as src:
        assert src.n_frames == 1
        assert src.shape == (H, W)
        assert len(list(src)) == 1
        with pytest.raises(IndexError):
            src.read(1)


def _write_avi(path: Path, n: int, fps: float = 30.0) -> None:
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (W, H))
    assert vw.isOpened()
    for i in range(n):
        bgr = np.zeros((H, W, 3), np.uint8)
        bgr[..., 0] = 200  # blue, in OpenCV's BGR order
        bgr[:, : 2 * i, 1] = 255
        vw.write(bgr)
    vw.release()


def test_video_reads_rgb_frames_with_header_rate(tmp_path):
    path = tmp_path / "clip.avi"
    _write_avi(path, 20)
    with open_stream(path) as src:
        assert (src.n_frames, src.shape, src.dtype) == (20, (H, W, 3), np.uint8)
        assert src.fps == pytest.approx(30.0)
        assert src.times_s is None
        frames = list(src)
        with pytest.raises(StreamError, match="only be read in order"):
            src.read(3)
    assert len(frames) == 20
    blue = frames[0][..., 2].astype(float).mean()
    red = frames[0][..., 0].astype(float).mean()
    assert blue > 180 and red < 20  # BGR was converted to RGB


def _ome_writers_zarr(path: Path, dims: dict[str, int], n_frames: int, fps: float) -> None:
    ow = pytest.importorskip("ome_writers")
    settings = ow.AcquisitionSettings(root_path=str(path), dtype="uint16", format="zarr",
                                      dimensions=ow.dims_from_standard_axes(dims))
    with ow.create_stream(settings) as st:
        st.set_global_metadata("tfll", {"fps": fps})
        planes = n_frames * dims.get("c", 1)
        for k in range(planes):
            st.append(np.full((dims["y"], dims["x"]), k, np.uint16),
                      frame_metadata={"delta_t": (k // dims.get("c", 1)) / fps})


def test_ome_zarr_mono_reads_frames_times_and_rate(tmp_path):
    path = tmp_path / "rec.ome.zarr"
    _ome_writers_zarr(path, {"t": 6, "y": H, "x": W}, 6, fps=25.0)
    with open_stream(path) as src:
        assert (src.n_frames, src.shape, src.dtype) == (6, (H, W), np.uint16)
        assert src.fps == pytest.approx(25.0)
        np.testing.assert_allclose(src.times_s, np.arange(6) / 25.0)
        assert [int(f[0, 0]) for f in src] == list(range(6))
        assert int(src.read(4)[3, 3]) == 4
        assert src.metadata["format"] == "ome-zarr"


def test_ome_zarr_tcyx_reads_as_rgb(tmp_path):
    path = tmp_path / "rgb.ome.zarr"
    _ome_writers_zarr(path, {"t": 3, "c": 3, "y": H, "x": W}, 3, fps=20.0)
    with open_stream(path) as src:
        assert src.shape == (H, W, 3)
        frames = list(src)
    np.testing.assert_array_equal(frames[1][0, 0], [3, 4, 5])


def test_ome_zarr_v04_time_scale_gives_rate(tmp_path):
    zarr = pytest.importorskip("zarr")
    path = tmp_path / "v04.ome.zarr"
    g = zarr.open_group(str(path), mode="w", zarr_format=2)
    g.create_array("0", shape=(5, H, W, 3), chunks=(2, H, W, 3), dtype="uint8")[:] = _ramp(
        5, H, W, 3, dtype=np.uint8)
    g.attrs["multiscales"] = [{"version": "0.4", "axes": [
        {"name": "t", "type": "time", "unit": "millisecond"},
        {"name": "y", "type": "space"}, {"name": "x", "type": "space"},
        {"name": "c", "type": "channel"}],
        "datasets": [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": [20.0, 1.0, 1.0, 1.0]}]}]}]
    frames, err = _read_all(path)
    assert err is None
    np.testing.assert_array_equal(np.stack(frames), _ramp(5, H, W, 3, dtype=np.uint8))
    with open_stream(path) as src:
        assert src.fps == pytest.approx(50.0)


_RECORD = """
import os, sys, time
import numpy as np
from tfll_live.acquisition.recorder import Recording

recs = [Recording.create(sys.argv[1] + "/" + fmt, fmt, {}) for fmt in ("ome-zarr", "ome-tiff")]
for i in range(6):
    frame = np.full((64, 80, 3), i, np.uint8)
    frame[..., 2] += 100
    for rec in recs:
        rec.write(frame, 0.025 * i, {})
while any(rec.n_written < 6 for rec in recs):
    time.sleep(0.01)
if sys.argv[2] == "close":
    for rec in recs:
        rec.close(None)
os._exit(0)  # "kill": nothing more is written
"""


@pytest.mark.parametrize("end", ["close", "kill"])
def test_recorder_recordings_read_back_even_when_killed(tmp_path, end):
    """The project's own recordings: every frame, with the camera's times, closed or not."""
    env = {**os.environ, "PYTHONPATH": str(Path(tfll_live.__file__).parents[1])}
    subprocess.run([sys.executable, "-c", _RECORD, str(tmp_path), end], env=env, check=True,
                   timeout=120)
    for name in ("ome-zarr.ome.zarr", "ome-tiff.ome.tif"):
        with open_stream(tmp_path / name) as src:
            assert (src.n_frames, src.shape, src.dtype) == (6, (64, 80, 3), np.uint8), name
            np.testing.assert_allclose(src.times_s, 0.025 * np.arange(6))
            assert src.fps == pytest.approx(40.0)  # from the frame times, not a default scale
            frames = list(src)
            assert src.problem is None
        assert [tuple(f[0, 0]) for f in frames[:2]] == [(0, 0, 100), (1, 1, 101)]


def test_stream_stem_strips_compound_suffixes():
    assert stream_stem("/d/x.ome.tif") == "x"
    assert stream_stem("y.OME.TIFF") == "y"
    assert stream_stem("z.ome.zarr") == "z"
    assert stream_stem("clip.mp4") == "clip"


# -- bad input ------------------------------------------------------------------------------------


def test_missing_empty_and_unreadable_files(tmp_path):
    with pytest.raises(StreamError, match=r"nope\.tif: no such file"):
        open_stream(tmp_path / "nope.tif")
    (tmp_path / "empty.avi").write_bytes(b"")
    with pytest.raises(StreamError, match="file is empty"):
        open_stream(tmp_path / "empty.avi")
    (tmp_path / "junk.avi").write_bytes(b"not a video " * 50)
    with pytest.raises(StreamError, match=r"junk\.avi: not a readable image stream"):
        open_stream(tmp_path / "junk.avi")
    (tmp_path / "junk.tif").write_bytes(b"not a tiff " * 50)
    with pytest.raises(StreamError, match=r"junk\.tif: not a TIFF file"):
        open_stream(tmp_path / "junk.tif")
    (tmp_path / "folder").mkdir()
    with pytest.raises(StreamError, match="not an image stream"):
        open_stream(tmp_path / "folder")


@pytest.mark.parametrize(("data", "axes", "message"), [
    (np.zeros((3, H, W), np.int16), None, "unsupported pixel type int16"),
    (np.zeros((3, H, W), np.uint32), None, "unsupported pixel type uint32"),
    (np.zeros((3, 2, H, W), np.uint8), "TZYX", r"unsupported array shape \(3, 2, 64, 80\)"),
    (np.zeros((3, H, W, 4), np.uint8), None, r"unsupported array shape \(3, 64, 80, 4\)"),
])
def test_unsupported_pixel_types_and_shapes(tmp_path, data, axes, message):
    path = tmp_path / "bad.ome.tif"
    tifffile.imwrite(path, data, ome=axes is not None, metadata={"axes": axes} if axes else {},
                     photometric="minisblack")
    with pytest.raises(StreamError, match=message) as err:
        open_stream(path, fps=10)
    assert "\n" not in str(err.value)


def test_tiff_cut_inside_the_pixels_yields_intact_frames_then_error(tmp_path):
    path, stream = _synth(tmp_path)
    frame_bytes = int(np.prod(stream.shape))
    with tifffile.TiffFile(path) as tif:
        start = tif.series[0].dataoffset
    cut = tmp_path / "cut.ome.tif"
    cut.write_bytes(path.read_bytes()[: start + 5 * frame_bytes + 100])
    # the OME-XML (written last) is gone, so the rate must be given
    with pytest.raises(StreamError, match=r"truncated.*pass --fps"):
        open_stream(cut)
    frames, err = _read_all(cut, fps=40)
    assert len(frames) == 5
    np.testing.assert_array_equal(frames[4], stream.render(4))
    assert err is not None and err.frames_read == 5
    assert "cut.ome.tif" in str(err) and "read 5 frames" in str(err)


def test_tiff_cut_inside_its_index_yields_indexed_frames_then_error(tmp_path):
    path, stream = _synth(tmp_path)
    cut = tmp_path / "cut.ome.tif"
    cut.write_bytes(path.read_bytes()[:-400])  # the trailing IFDs and the OME-XML
    frames, err = _read_all(cut, fps=40)
    assert 0 < len(frames) <= 12
    np.testing.assert_array_equal(frames[-1], stream.render(len(frames) - 1))
    assert err is not None and "truncated or damaged" in str(err)


def test_compressed_tiff_cut_short_keeps_whole_frames(tmp_path):
    data = np.random.default_rng(0).integers(0, 255, (10, H, W), dtype=np.uint8)
    path = tmp_path / "z.ome.tif"
    tifffile.imwrite(path, data, ome=True, compression="zlib", metadata={"axes": "TYX"})
    cut = tmp_path / "zcut.ome.tif"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    frames, err = _read_all(cut, fps=40)
    assert 2 <= len(frames) < 10
    np.testing.assert_array_equal(np.stack(frames), data[: len(frames)])
    assert err is not None and err.frames_read == len(frames)


def test_tiff_cut_in_its_header_is_refused(tmp_path):
    path, _ = _synth(tmp_path)
    cut = tmp_path / "head.ome.tif"
    cut.write_bytes(path.read_bytes()[:100])
    with pytest.raises(StreamError, match=r"head\.ome\.tif: not a readable TIFF, truncated"):
        open_stream(cut, fps=40)


def test_video_that_ends_early_keeps_frames_and_reports(tmp_path):
    path = tmp_path / "clip.avi"
    _write_avi(path, 30)
    cut = tmp_path / "cut.avi"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    frames, err = _read_all(cut)
    assert 5 <= len(frames) < 30
    assert err is not None and err.frames_read == len(frames)
    assert f"video ends early: {len(frames)} of the 30 frames" in str(err)


def test_bad_fps_argument_is_refused(tmp_path):
    path, _ = _synth(tmp_path)
    for bad in (0.0, -5.0, math.nan):
        with pytest.raises(StreamError, match="--fps must be a positive number"):
            open_stream(path, fps=bad)


# -- analysis output ------------------------------------------------------------------------------


def _result(i: int) -> FrameResult:
    blink = i % 10 == 9
    return FrameResult(
        frame=i, time_s=i / 40, state=EyeState.BLINK if blink else EyeState.OPEN,
        interval=-1 if blink else i // 10, eye_dx_px=0.25 * i, eye_dy_px=-0.5,
        lipid_dx_px=None if blink else 0.1, lipid_dy_px=None if blink else -float(i % 10),
        n_tracked=0 if blink else 40, pupil=None if blink else Circle(40.0, 30.0, 7.5),
        lipid_thickness_nm=None if blink else 88.0)


SUMMARY = Summary(
    blinks=(Blink(9, 9, True), Blink(19, 19, False)),
    intervals=(Interval(0, 0, 8, SpreadFit(a=8.0, b=0.5, c=-8.0, r2=0.97, n_points=9, final=True)),
               Interval(1, 10, 18, None)),
)


def test_writer_output_matches_the_spec(tmp_path):
    out = tmp_path / "run.tfll"
    with AnalysisWriter(out, "rec.ome.tif", 40.0, (H, W, 3)) as writer:
        for i in range(25):
            writer.write(_result(i))
        writer.close(SUMMARY, extra={"tracker": {"flow": "lucas-kanade"}})
    assert not list(out.glob("*.tmp"))
    doc = json.loads((out / "results.json").read_text())
    assert doc["schema"] == "tfll-results/1"
    assert doc["source"] == "rec.ome.tif"
    assert doc["fps"] == 40.0 and doc["n_frames"] == 25
    assert doc["frame_shape"] == [H, W] and doc["channels"] == 3
    assert doc["blinks"] == [{"start_frame": 9, "end_frame": 9, "complete": True},
                             {"start_frame": 19, "end_frame": 19, "complete": False}]
    spread = doc["intervals"][0]["spread"]
    assert doc["intervals"][0]["start_frame"] == 0 and doc["intervals"][0]["end_frame"] == 8
    assert spread["model"] == "a*exp(-b*t)+c"
    assert spread["tau_s"] == pytest.approx(2.0)
    assert spread["initial_velocity_px_s"] == pytest.approx(4.0)
    assert set(spread) == {"model", "a", "b", "c", "tau_s", "tau_se_s", "amplitude_px",
                           "initial_velocity_px_s", "r2"}
    assert doc["intervals"][1]["spread"] is None
    assert doc["tracker"] == {"flow": "lucas-kanade"}
    assert read_results(out) == doc

    lines = (out / "frames.csv").read_text().splitlines()
    assert lines[0] == ",".join(FRAME_COLUMNS)
    assert len(lines) == 26
    cols = read_frames_csv(out)
    assert cols["frame"].dtype == np.int64 and list(cols["frame"][:3]) == [0, 1, 2]
    assert cols["state"][9] == "blink" and cols["interval"][9] == -1
    assert np.isnan(cols["lipid_dy_px"][9]) and cols["lipid_dy_px"][3] == pytest.approx(-3.0)
    assert cols["time_s"][4] == pytest.approx(0.1)
    assert cols["pupil_r_px"][0] == pytest.approx(7.5)
    assert cols["n_tracked"][0] == 40


def test_writer_never_writes_nan_into_json_and_refuses_clashing_extras(tmp_path):
    nan_fit = Summary(blinks=(), intervals=(
        Interval(0, 0, 4, SpreadFit(a=1.0, b=1.0, c=0.0, r2=math.nan, n_points=5)),))
    writer = AnalysisWriter(tmp_path, "x.tif", 10.0, (H, W))
    with pytest.raises(ValueError, match="fps"):
        writer.results(nan_fit, extra={"fps": 3})
    writer.close(nan_fit)
    doc = json.loads((tmp_path / "results.json").read_text(),
                     parse_constant=lambda c: pytest.fail(f"{c} in results.json"))
    assert doc["intervals"][0]["spread"]["r2"] is None
    assert doc["channels"] == 1


def test_writer_keeps_rows_of_a_crashed_run_and_drops_stale_results(tmp_path):
    AnalysisWriter(tmp_path, "x.tif", 10.0, (H, W)).close(SUMMARY)
    writer = AnalysisWriter(tmp_path, "x.tif", 10.0, (H, W), flush_every=50)
    assert not (tmp_path / "results.json").exists()  # an earlier run's results are gone
    for i in range(120):
        writer.write(_result(i))
    # the process "crashes" here: what was flushed is on disk
    rows = (tmp_path / "frames.csv").read_text().splitlines()
    assert len(rows) - 1 >= 100
    writer.close()
    assert len(read_frames_csv(tmp_path)["frame"]) == 120
    with pytest.raises(StreamError, match="no such file"):
        read_results(tmp_path)


def test_writer_memory_does_not_grow_per_frame(tmp_path):
    writer = AnalysisWriter(tmp_path, "x.tif", 10.0, (H, W))
    results = [_result(i) for i in range(20)]
    tracemalloc.start()
    try:
        for i in range(500):
            writer.write(results[i % 20])
        before = tracemalloc.get_traced_memory()[0]
        for i in range(5000):
            writer.write(results[i % 20])
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
        writer.close()
    assert after - before < 32_000
    assert not [v for v in vars(writer).values() if isinstance(v, (list, dict, np.ndarray))]


def test_result_readers_refuse_other_files(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps({"schema": "tfll-results/0"}))
    with pytest.raises(StreamError, match="schema 'tfll-results/0' is not 'tfll-results/1'"):
        read_results(tmp_path)
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(StreamError, match="not a readable results file"):
        read_results(tmp_path / "results.json")
    (tmp_path / "frames.csv").write_text("frame,time_s\n0,0.0\n")
    with pytest.raises(StreamError, match="missing columns: state"):
        read_frames_csv(tmp_path)
    with pytest.raises(StreamError, match="no such file"):
        read_frames_csv(tmp_path / "elsewhere")
