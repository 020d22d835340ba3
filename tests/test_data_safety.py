"""Nothing lost, nothing silently replaced (issue 12): overwrites, interruptions, symlinks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tfll_live.analyze import analyze
from tfll_live.cli import main
from tfll_live.io import read_results
from tfll_live.synth import SynthConfig, SyntheticStream, write_stream

H, W, N = 64, 96, 90


def _run(capsys, *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture
def stream(tmp_path) -> Path:
    path = tmp_path / "eye.ome.tif"
    write_stream(SyntheticStream(SynthConfig(height=H, width=W, n_frames=N, seed=1)), path)
    return path


# -- item 1: nothing replaced without --force; interrupted runs leave the earlier results -------


def test_synth_keeps_an_existing_file_unless_forced(tmp_path, capsys):
    out = tmp_path / "rec.ome.tif"
    out.write_bytes(b"a recording")
    code, _, err = _run(capsys, "synth", out, "--frames", 20, "--height", H, "--width", W)
    _one_line_error(code, err, str(out), "--force")
    assert out.read_bytes() == b"a recording"
    assert not (tmp_path / "rec.truth.json").exists()
    code, _, err = _run(
        capsys, "synth", out, "--frames", 20, "--height", H, "--width", W, "--force"
    )
    assert code == 0, err
    assert out.read_bytes() != b"a recording"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.ome.tif", "rec.truth.json"]


def test_synth_keeps_an_existing_truth_file_unless_forced(tmp_path, capsys):
    truth = tmp_path / "s.truth.json"
    truth.write_text("mine")
    code, _, err = _run(capsys, "synth", tmp_path / "s.ome.tif", "--frames", 20)
    _one_line_error(code, err, str(truth), "--force")
    assert truth.read_text() == "mine" and not (tmp_path / "s.ome.tif").exists()


def test_analyze_keeps_an_earlier_analysis_unless_forced(stream, capsys):
    out = analyze(stream)
    (out / "report.html").write_text("report of the earlier results")
    before = _files(out)
    code, _, err = _run(capsys, "analyze", stream)
    _one_line_error(code, err, str(out), "--force", "--out")
    assert _files(out) == before
    code, _, err = _run(capsys, "analyze", stream, "--force")
    assert code == 0, err
    # replaced whole: the out-of-date report is gone, no temporary is left
    assert sorted(p.name for p in out.iterdir()) == ["frames.csv", "results.json", "tracks.csv"]
    assert read_results(out)["n_frames"] == N


def test_an_interrupted_reanalysis_leaves_the_earlier_results_whole(stream):
    out = analyze(stream)
    before = _files(out)

    def interrupt(done: int, total: int | None) -> None:
        if done == N // 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        analyze(stream, force=True, progress=interrupt)
    assert _files(out) == before


def test_an_interrupted_first_analysis_leaves_no_partial_results(stream):
    def interrupt(done: int, total: int | None) -> None:
        if done == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        analyze(stream, progress=interrupt)
    assert list((stream.parent / "eye.tfll").iterdir()) == []


# -- item 3: SIGTERM and SIGHUP finish `tfll live` as Ctrl-C does (end to end in
# test_acquisition_cli.py); the handlers are the live session's only


def test_stop_signals_raise_keyboard_interrupt_inside_and_are_restored_after():
    import os
    import signal
    import time

    from tfll_live.acquisition.live import stop_signals

    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    caught: list[str] = []
    with pytest.raises(KeyboardInterrupt), stop_signals(caught):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # not reached: the handler raises as soon as os.kill returns
    assert caught == ["SIGTERM"]
    assert {s: signal.getsignal(s) for s in before} == before


# -- item 7: the report escapes whatever a results.json holds, and refuses malformed ones -------

INJECTED = "<x-injected"


def _kinetics() -> dict:
    return {
        "model": "a*exp(-b*t)+c",
        "tau_s": 0.8,
        "spread_time_s": 1.8,
        "spread_censored": False,
        "initial_velocity_px_s": 37.0,
        "amplitude_px": 30.0,
        "drift_px_s": 0.0,
        "delta_bic": -3.0,
        "duration_s": 5.0,
        "fits": {"paper": {"a": 30, "b": 1.25, "c": -30, "d": 0}, "drift": None},
    }


@pytest.fixture(scope="module")
def results_folder(tmp_path_factory) -> tuple[Path, dict]:
    """A report-ready folder whose results.json has every kind of field the report shows."""
    import json

    from test_report import make_results

    folder = tmp_path_factory.mktemp("crafted") / "x.tfll"
    doc = make_results(folder, n_intervals=2)
    doc["intervals"][0]["kinetics"] = _kinetics()
    doc["thickness"] = {
        "available": True,
        "calibration": {
            "file": "/cal/c.tfllcal.json",
            "source": "chart",
            "gain": [1.2, 1.0, 0.8],
            "offset": [12.0, 10.0, 14.0],
            "film_gain": 180.0,
        },
    }
    doc["timestamps"] = "file"
    doc["incomplete"] = {"reason": "cut short", "frames_read": doc["n_frames"]}
    (folder / "results.json").write_text(json.dumps(doc))
    return folder, doc


def _places(v: object, path: tuple = ()) -> list[tuple]:
    """Every value and every key in a JSON document, as paths (a key: its path + ("<key>",))."""
    if isinstance(v, dict):
        out = []
        for k, x in v.items():
            out += [(*path, k, "<key>"), *_places(x, (*path, k))]
        return out
    if isinstance(v, list):
        return [p for i, x in enumerate(v) for p in _places(x, (*path, i))] + [path]
    return [path]


def _put(doc: object, place: tuple, text: str) -> None:
    *parents, last = place
    if last == "<key>":
        *parents, key = parents
        for p in parents:
            doc = doc[p]  # type: ignore[index]
        doc[text] = doc.pop(key)  # type: ignore[union-attr]
        return
    for p in parents:
        doc = doc[p]  # type: ignore[index]
    doc[last] = text  # type: ignore[index]


def test_the_issue_s_crafted_frame_shape_is_refused_in_one_line(results_folder, capsys):
    import json

    folder, doc = results_folder
    crafted = folder.parent / "shape.tfll"
    crafted.mkdir()
    (crafted / "results.json").write_text(
        json.dumps({**doc, "frame_shape": ["<script>alert(1)</script>", 640]})
    )
    code, _, err = _run(capsys, "report", crafted)
    _one_line_error(code, err, "results.json", "malformed", "frame_shape")
    assert not (crafted / "report.html").exists()


def test_table_cells_from_the_file_are_escaped(results_folder):
    import json

    from tfll_live.report import build_report

    folder, doc = results_folder
    crafted = folder.parent / "cells.tfll"
    crafted.mkdir()
    (crafted / "frames.csv").write_bytes((folder / "frames.csv").read_bytes())
    tracker = {"<script>k</script>": "<script>v</script>"}
    timestamps = "<img src=x onerror=alert(1)>"
    (crafted / "results.json").write_text(
        json.dumps({**doc, "tracker": tracker, "timestamps": timestamps})
    )
    page = build_report(crafted)
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;v&lt;/script&gt;" in page


def _report_or_refusal(folder: Path, doc: dict) -> str | None:
    import json

    from tfll_live.io import StreamError
    from tfll_live.report import build_report

    (folder / "results.json").write_text(json.dumps(doc))
    try:
        return build_report(folder)
    except StreamError as e:
        assert "\n" not in str(e)
        return None


try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:  # the test extra installs it
    given = None


if given is not None:

    @settings(
        max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(data=st.data(), text=st.text(max_size=12))
    def test_no_string_in_results_json_reaches_the_report_as_markup(results_folder, data, text):
        import copy

        folder, doc = results_folder
        mine = folder.parent / "property.tfll"  # the shared folder's results.json stays valid
        if not mine.exists():
            mine.mkdir()
            (mine / "frames.csv").write_bytes((folder / "frames.csv").read_bytes())
        doc = copy.deepcopy(doc)
        place = data.draw(st.sampled_from(_places(doc)))
        _put(doc, place, f"{INJECTED}{text}>")
        page = _report_or_refusal(mine, doc)
        assert page is None or INJECTED not in page, place


# -- item 8: outputs never write through a symbolic link ----------------------------------------


@pytest.mark.parametrize("force", [False, True])
def test_analyze_refuses_an_output_file_that_is_a_link(stream, tmp_path, capsys, force):
    elsewhere = tmp_path / "precious.txt"
    elsewhere.write_text("precious")
    out = tmp_path / "eye.tfll"
    out.mkdir()
    (out / "frames.csv").symlink_to(elsewhere)
    code, _, err = _run(capsys, "analyze", stream, *(["--force"] if force else []))
    _one_line_error(code, err, str(out / "frames.csv"), "symbolic link")
    assert elsewhere.read_text() == "precious"


def test_analyze_refuses_an_output_folder_that_is_a_link(stream, tmp_path, capsys):
    target = tmp_path / "target"
    target.mkdir()
    (tmp_path / "eye.tfll").symlink_to(target)
    code, _, err = _run(capsys, "analyze", stream, "--force")
    _one_line_error(code, err, "eye.tfll", "symbolic link")
    assert list(target.iterdir()) == []


@pytest.mark.parametrize("dangling", [False, True])
def test_synth_refuses_a_link_even_when_forced(tmp_path, capsys, dangling):
    elsewhere = tmp_path / "precious.ome.tif"
    if not dangling:
        elsewhere.write_bytes(b"precious")
    link = tmp_path / "s.ome.tif"
    link.symlink_to(elsewhere)
    code, _, err = _run(capsys, "synth", link, "--frames", 20, "--force")
    _one_line_error(code, err, str(link), "symbolic link")
    assert (elsewhere.read_bytes() == b"precious") if not dangling else not elsewhere.exists()


def test_calibrate_refuses_a_link_even_when_forced(tmp_path, capsys):
    from test_calibrate_cli import write_reference

    ref = write_reference(tmp_path / "ref.tif", 120.0)
    elsewhere = tmp_path / "precious.json"
    elsewhere.write_text("precious")
    link = tmp_path / "cal.json"
    link.symlink_to(elsewhere)
    code, _, err = _run(capsys, "calibrate", ref, "--thickness", 120, "--out", link, "--force")
    _one_line_error(code, err, str(link), "symbolic link")
    assert elsewhere.read_text() == "precious"


def test_report_refuses_a_link(results_folder, tmp_path, capsys):
    folder, _ = results_folder
    elsewhere = tmp_path / "precious.html"
    elsewhere.write_text("precious")
    link = tmp_path / "r.html"
    link.symlink_to(elsewhere)
    code, _, err = _run(capsys, "report", folder, "--out", link)
    _one_line_error(code, err, str(link), "symbolic link")
    assert elsewhere.read_text() == "precious"


@pytest.mark.parametrize("fmt", ["ome-zarr", "ome-tiff"])
def test_a_recording_never_takes_the_name_of_a_dangling_link(tmp_path, fmt):
    from tfll_live.acquisition.recorder import FORMATS, Recording

    target = tmp_path / "elsewhere"
    (tmp_path / f"rec{FORMATS[fmt]}").symlink_to(target)
    rec = Recording.create(tmp_path / "rec", fmt)  # type: ignore[arg-type]
    rec.close(None)
    assert rec.path.name == f"rec-1{FORMATS[fmt]}" and not target.exists()


# -- items 4 and 5: missing or damaged Zarr chunks are lost frames, named, not black ones -------

NZ = 60


@pytest.fixture
def zarr_recording(tmp_path) -> Path:
    """A tfll OME-Zarr recording (one chunk file per frame) of a synthetic eye."""
    from tfll_live.acquisition.recorder import Recording

    stream = SyntheticStream(SynthConfig(height=H, width=W, n_frames=NZ, seed=1))
    rec = Recording.create(tmp_path / "rec", "ome-zarr", {"fps": 45.0})
    for i in range(NZ):
        rec.write(stream.render(i), i / 45.0, {})
    assert rec.close(None) is None
    return rec.path


def _chunk(rec: Path, i: int) -> Path:
    path = rec / "0" / "0" / f"c.{i}.0.0.0"
    assert path.is_file()
    return path


def test_missing_zarr_chunks_are_named_and_the_rest_analysed(zarr_recording, capsys):
    import csv

    from tfll_live.io import StreamError, open_stream

    for i in (5, 17):
        _chunk(zarr_recording, i).unlink()
    out = zarr_recording.parent / "again.tfll"
    code, _, err = _run(capsys, "analyze", zarr_recording, "--out", out)
    assert code == 0, err
    warning = [line for line in err.splitlines() if line.strip()]
    assert len(warning) == 1 and "2 frame(s) missing" in warning[0] and "(5, 17:" in warning[0]
    doc = read_results(out)
    assert doc["n_frames"] == NZ
    assert doc["lost_frames"] == {
        "count": 2,
        "frames": [5, 17],
        "reasons": ["its chunk file is missing"],
    }
    with open(out / "frames.csv", newline="") as fh:
        states = {int(r["frame"]): r["state"] for r in csv.DictReader(fh)}
    assert states[5] == states[17] == "untracked" and states[6] != "untracked"
    # read frame by frame, a lost frame is refused by name, never handed over as a black one
    with open_stream(zarr_recording) as src:
        with pytest.raises(StreamError, match="frame 5 is missing"):
            src.read(5)
        with pytest.raises(StreamError, match=r"frame 5 is lost \(its chunk file is missing\)"):
            list(src)


def test_a_zarr_recording_without_any_chunk_is_refused(zarr_recording, capsys):
    for path in (zarr_recording / "0" / "0").glob("c.*"):
        path.unlink()
    code, _, err = _run(capsys, "analyze", zarr_recording, "--out", zarr_recording.parent / "o")
    _one_line_error(code, err, str(zarr_recording), "no frame data", f"{NZ} frames")


def test_an_inflated_zarr_shape_reads_the_frames_there_are_and_says_so(zarr_recording, capsys):
    import json

    meta_path = zarr_recording / "0" / "0" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["shape"][0] = 100000
    meta_path.write_text(json.dumps(meta))
    out = zarr_recording.parent / "o"
    code, _, err = _run(capsys, "analyze", zarr_recording, "--out", out)
    _one_line_error(code, err, "100000 frames", f"end after frame {NZ - 1}")
    doc = read_results(out)
    assert doc["n_frames"] == NZ and "100000" in doc["incomplete"]["reason"]


def test_one_damaged_chunk_of_a_zarr_v2_store_costs_only_its_frame(tmp_path, capfd):
    import numpy as np
    import zarr

    stream = SyntheticStream(SynthConfig(height=H, width=W, n_frames=NZ, seed=1))
    path = tmp_path / "v2.ome.zarr"
    g = zarr.open_group(str(path), mode="w", zarr_format=2)
    g.create_array("0", shape=(NZ, H, W, 3), chunks=(1, H, W, 3), dtype="uint8")[:] = np.stack(
        [stream.render(i) for i in range(NZ)]
    )
    g.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": [
                {"name": "t", "type": "time", "unit": "second"},
                {"name": "y", "type": "space"},
                {"name": "x", "type": "space"},
                {"name": "c", "type": "channel"},
            ],
            "datasets": [
                {
                    "path": "0",
                    "coordinateTransformations": [
                        {"type": "scale", "scale": [1 / 45.0, 1.0, 1.0, 1.0]}
                    ],
                }
            ],
        }
    ]
    chunk = path / "0" / "7.0.0.0"
    chunk.write_bytes(np.random.default_rng(0).bytes(chunk.stat().st_size))
    code = main(["analyze", str(path)])
    _, err = capfd.readouterr()
    assert code == 0, err
    assert "Task was destroyed" not in err
    doc = read_results(tmp_path / "v2.tfll")
    assert doc["n_frames"] == NZ and doc["lost_frames"]["frames"] == [7]
    assert "damaged" in doc["lost_frames"]["reasons"][0]


# -- item 9: physically impossible calibrations are refused in one line -------------------------


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"offset": [-1e9, 0, 0]}, "black level"),
        ({"gain": [1e300, 1, 1]}, "gains"),
        ({"gain": [1e-9, 1, 1]}, "gains"),
        ({"film_gain": 1e300}, "film_gain"),
    ],
)
def test_impossible_calibrations_are_refused_in_one_line(stream, tmp_path, capsys, change, needle):
    import json

    cal = tmp_path / "bad.tfllcal.json"
    cal.write_text(
        json.dumps(
            {
                "schema": "tfll-calibration/1",
                "gain": [1.0, 1.0, 1.0],
                "offset": [10.0, 10.0, 10.0],
                "film_gain": 180.0,
                **change,
            }
        )
    )
    code, _, err = _run(capsys, "analyze", stream, "--calibration", cal)
    _one_line_error(code, err, str(cal), needle)
    assert not (stream.parent / "eye.tfll").exists()


# -- item 6: float frames by their own range: an offset or negative values change nothing -------


def _track(frames, fps: float):
    from tfll_live.tracking import Tracker

    tracker = Tracker()
    for i, f in enumerate(frames):
        tracker.push(f, i / fps)
    return tracker.finish()


def test_float_luminance_follows_the_stack_s_own_range_not_its_zero():
    """An offset or a sign change of float data maps to the same 8-bit luminance."""
    import numpy as np

    from tfll_live.tracking.frame import Luminance

    stream = SyntheticStream(SynthConfig(height=120, width=160, n_frames=60, seed=3))
    first, later = (stream.render(i).astype(np.float32) / 255 for i in (0, 50))
    plain = Luminance()
    want = [plain(first).astype(int), plain(later).astype(int)]
    for name, shift in {"offset": 1000.0, "negative": -0.5}.items():
        lum = Luminance()
        got = [lum(first + shift).astype(int), lum(later + shift).astype(int)]
        for g, w in zip(got, want, strict=True):
            assert np.abs(g - w).max() <= 1, name


def test_float_frames_keep_their_blinks_whatever_their_offset_sign_or_precision():
    import numpy as np

    cfg = SynthConfig(height=120, width=160, n_frames=400, seed=3)
    stream = SyntheticStream(cfg)
    base = [stream.render(i).astype(np.float32) / 255 for i in range(cfg.n_frames)]
    plain = [(b.start_frame, b.end_frame) for b in _track(base, cfg.fps).blinks]
    assert len(plain) == 2
    for name, frames in {
        "offset": [f + 1000.0 for f in base],
        "negative": [f - 0.5 for f in base],
        "float64 RGB": [f.astype(np.float64) for f in base],
    }.items():
        got = [(b.start_frame, b.end_frame) for b in _track(frames, cfg.fps).blinks]
        assert got == plain, name


def test_float_frames_with_negative_values_give_no_thickness_and_say_why():
    import numpy as np

    cfg = SynthConfig(height=120, width=160, n_frames=120, seed=3)
    stream = SyntheticStream(cfg)
    summary = _track([stream.render(i).astype(np.float32) / 255 - 0.5 for i in range(120)], cfg.fps)
    assert "negative values" in summary.thickness["reason"]
