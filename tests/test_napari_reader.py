"""The reader: `tfll analyze` folders and recordings as layers, frame by frame; None otherwise.

And a recording opens in the readers people already have: napari's built-in reader and
napari-ome-zarr.
"""

import numpy as np
import pytest
from npe2 import PluginManager
from waiting import wait_until

from napari_plugin.reader import get_reader, read_tfll
from tfll_live.acquisition import CaptureLoop, make_core
from tfll_live.acquisition.recorder import analysis_dir_for
from tfll_live.analyze import analyze
from tfll_live.io import read_frames_csv, read_results
from tfll_live.synth import SynthConfig, SyntheticStream, write_stream

N = 90


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """A small synthetic OME-TIFF and its `tfll analyze` folder (the real tracker)."""
    d = tmp_path_factory.mktemp("rec")
    stream_path = d / "session.ome.tif"
    write_stream(SyntheticStream(SynthConfig(height=240, width=320, n_frames=N, seed=2)),
                 stream_path)
    out = analyze(stream_path)
    return stream_path, out


def by_name(layers):
    return {kw["name"]: (data, kw, kind) for data, kw, kind in layers}


def test_analysis_opens_as_image_and_per_frame_overlays(analysed):
    _, out = analysed
    path = str(out)
    reader = get_reader(path)
    assert reader is read_tfll
    layers = by_name(reader(path))
    image, meta, kind = layers["session"]
    assert kind == "image" and image.shape == (N, 240, 320, 3) and meta["rgb"]
    np.testing.assert_array_equal(np.asarray(image[5]), SyntheticStream(
        SynthConfig(height=240, width=320, n_frames=N, seed=2)).render(5))
    cols = read_frames_csv(out)
    found = np.isfinite(cols["pupil_r_px"])
    assert found.sum() > N // 2
    # the pupil of every frame where it was found, at that frame's time index
    centres, _, kind = layers["session pupil centre"]
    assert kind == "points"
    np.testing.assert_allclose(centres, np.column_stack(
        [cols["frame"][found], cols["pupil_y_px"][found], cols["pupil_x_px"][found]]))
    shapes, kw, kind = layers["session pupil & lid"]
    assert kind == "shapes" and kw["shape_type"].count("ellipse") == found.sum()
    k = int(np.flatnonzero(found)[3])
    ellipse = shapes[3]
    assert np.all(ellipse[:, 0] == k)
    np.testing.assert_allclose(ellipse[:, 1:].mean(axis=0),
                               [cols["pupil_y_px"][k], cols["pupil_x_px"][k]])
    # the eye state of every frame, as a label at that frame's time index
    labels, kw, kind = layers["session eye state"]
    assert kind == "points" and np.array_equal(labels[:, 0], cols["frame"])
    assert [lab.split()[0] for lab in kw["features"]["label"]] == [
        s.upper() for s in cols["state"]]
    # the eye's motion: one track per interval, one vertex per open frame
    eye, _, kind = layers["session eye motion"]
    intervals = sorted(int(i) for i in np.unique(cols["interval"]) if i >= 0)
    assert kind == "tracks" and sorted(np.unique(eye[:, 0]).astype(int)) == intervals
    moves = eye[eye[:, 0] == intervals[0]]
    first = np.flatnonzero(cols["interval"] == intervals[0])
    np.testing.assert_allclose(np.diff(moves[:, 3]), np.diff(cols["eye_dx_px"][first]))


def test_napari_opens_the_folder_and_time_scrolls_the_overlays(analysed, make_napari_viewer):
    _, out = analysed
    viewer = make_napari_viewer()
    viewer.open(str(out), plugin="tfll-live")
    names = [layer.name for layer in viewer.layers]
    assert names[0] == "session" and "session pupil & lid" in names
    assert viewer.dims.nsteps[0] == N
    # the time axis in seconds, named: not frame numbers on an axis called "-3"
    fps = read_results(out)["fps"]
    assert viewer.dims.axis_labels[0] == "time (s)"
    assert all(layer.scale[0] == pytest.approx(1 / fps) for layer in viewer.layers)
    viewer.dims.set_current_step(0, 40)
    assert viewer.dims.point[0] == pytest.approx(40 / fps)  # where the slider is, in seconds
    cols = read_frames_csv(out)
    pupil = viewer.layers["session pupil centre"]
    # the points drawn at the current time: only frame 40's pupil centre
    np.testing.assert_allclose(pupil._view_data,
                               [[cols["pupil_y_px"][40], cols["pupil_x_px"][40]]])


def test_tracks_csv_gives_feature_points_and_trajectories(analysed, tmp_path):
    _, out = analysed
    d = tmp_path / "session.tfll"
    d.mkdir()
    for name in ("results.json", "frames.csv"):
        (d / name).write_bytes((out / name).read_bytes())
    (d / "tracks.csv").write_text("frame,point_id,x_px,y_px,dy_px\n"
                                  "0,7,100.0,150.0,0.0\n1,7,100.5,149.0,-1.0\n"
                                  "0,8,120.0,160.0,0.0\n1,8,120.0,158.5,-1.5\n")
    layers = by_name(read_tfll(str(d)))
    assert "session" not in layers  # the stream is not beside this copy: overlays only
    tracks, _, kind = layers["session tracks"]
    assert kind == "tracks" and sorted(np.unique(tracks[:, 0])) == [7, 8]
    points, kw, kind = layers["session features"]
    assert kind == "points"
    np.testing.assert_allclose(points[1], [1, 149.0, 100.5])
    np.testing.assert_allclose(kw["features"]["dy_px"], [0.0, -1.0, 0.0, -1.5])


def test_paths_it_does_not_handle_give_none(analysed, tmp_path):
    stream_path, _ = analysed
    plain = tmp_path / "plain.ome.tif"
    plain.write_bytes(stream_path.read_bytes())  # a stream with no analysis beside it
    empty = tmp_path / "empty.tfll"
    empty.mkdir()
    half = tmp_path / "half.tfll"
    half.mkdir()
    (half / "results.json").write_text("{not json")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    other_zarr = tmp_path / "other.ome.zarr"
    other_zarr.mkdir()
    (other_zarr / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group", '
                                          '"attributes": {"ome": {"version": "0.5"}}}')
    for path in (plain, empty, half, text, other_zarr, tmp_path / "missing.tif", tmp_path, "",
                 "a\x00b"):
        assert get_reader(str(path)) is None, path
    assert get_reader([str(stream_path), str(plain)]) is None


def test_a_tiff_that_is_not_a_tfll_recording_is_not_claimed(analysed):
    """Not even with its analysis beside it; and napari never asks the plugin about TIFFs."""
    stream_path, out = analysed
    assert (out / "results.json").is_file()
    assert get_reader(str(stream_path)) is None
    plugins = {r.plugin_name for r in PluginManager.instance().iter_compatible_readers(
        [str(stream_path)])}
    assert "tfll-live" not in plugins and "napari" in plugins  # so no "which reader?" dialog
    assert "tfll-live" in {r.plugin_name for r in PluginManager.instance()
                           .iter_compatible_readers([str(out)])}


# -- the project's recordings ---------------------------------------------------------------------

REC = SynthConfig(height=120, width=160, fps=100.0, n_frames=300, seed=3)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """One short live recording in each format, from the synthetic camera."""
    out = tmp_path_factory.mktemp("recordings")
    paths = {}
    for fmt in ("ome-zarr", "ome-tiff"):
        loop = CaptureLoop(make_core(synth=REC))
        paths[fmt] = loop.start_recording(out / "visit", fmt)
        loop.start()
        assert wait_until(lambda loop=loop: loop.stats.recorded >= 40)
        loop.stop()
    return paths


@pytest.mark.parametrize("fmt", ["ome-zarr", "ome-tiff"])
def test_a_recording_is_claimed_by_its_content_and_opens_with_its_analysis(recordings, fmt):
    path = recordings[fmt]
    renamed = path.with_name("no-telling-name" + path.suffix)  # the name is not what counts
    path.rename(renamed)
    try:
        assert get_reader(str(renamed)) is read_tfll
        layers = {kw["name"]: (data, kind) for data, kw, kind in read_tfll(str(renamed))}
    finally:
        renamed.rename(path)
    image, kind = layers["no-telling-name"]
    n = len(read_frames_csv(analysis_dir_for(path))["frame"])
    assert kind == "image" and image.shape == (n, 120, 160, 3)
    assert "no-telling-name eye state" in layers  # found through the recording's own link


def test_napari_builtin_reader_and_napari_ome_zarr_open_a_recording(recordings,
                                                                    make_napari_viewer):
    path = recordings["ome-zarr"]
    n = len(read_frames_csv(analysis_dir_for(path))["frame"])
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(path), plugin="napari")  # napari's built-in reader
    assert layer.data.shape == (n, 3, 120, 160)
    np.testing.assert_array_equal(np.asarray(layer.data[5, 0]),
                                  np.asarray(read_tfll(str(path))[0][0][5])[..., 0])
    viewer.layers.clear()
    layers = viewer.open(str(path), plugin="napari-ome-zarr")  # RGB as red, green, blue
    assert [layer.colormap.name for layer in layers] == ["red", "green", "blue"]
    assert all(layer.data.shape == (n, 120, 160) for layer in layers)
    assert layers[0].scale[0] == pytest.approx(1 / REC.fps)  # the frame period, in s
    viewer.layers.clear()
    [tiff] = viewer.open(str(recordings["ome-tiff"]), plugin="napari")
    assert tiff.rgb and tiff.data.shape[1:] == (120, 160, 3)
