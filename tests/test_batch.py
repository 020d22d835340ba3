"""`tfll batch` on Dask and the study it writes: the results of `tfll analyze`, resumable."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tfll_live.analyze import analyze
from tfll_live.batch import MANIFEST, find_recordings, recording_names
from tfll_live.cli import main
from tfll_live.io import read_results
from tfll_live.study import INTERVAL_COLUMNS, RECORDING_COLUMNS, load_study, write_tables
from tfll_live.synth import SynthConfig, SyntheticStream, write_stream

pytest.importorskip("distributed")
pytest.importorskip("pyarrow")

ROOT = Path(__file__).resolve().parents[1]
GOOD = ("p1/eye.ome.tif", "p2/eye.ome.tif", "other.ome.tif")
NAMES = {"p1/eye.ome.tif": "p1__eye", "p2/eye.ome.tif": "p2__eye", "other.ome.tif": "other"}


def _batch(*argv: object) -> tuple[int, str, str]:
    """Run `tfll batch` in this process, capturing what it prints."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["batch", *map(str, argv)])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Three short synthetic streams (two with the same file name) and a broken one."""
    folder = tmp_path_factory.mktemp("archive")
    for k, rel in enumerate(GOOD):
        path = folder / rel
        path.parent.mkdir(exist_ok=True)
        write_stream(SyntheticStream(SynthConfig(height=96, width=128, n_frames=140, seed=k)), path)
    good = (folder / "other.ome.tif").read_bytes()
    (folder / "p2" / "broken.ome.tif").write_bytes(good[:100])  # header only: truncated
    return folder


@pytest.fixture(scope="module")
def local_study(inputs, tmp_path_factory) -> tuple[Path, int, str]:
    """`tfll batch` over the archive folder on a local cluster of two worker processes."""
    study = tmp_path_factory.mktemp("study") / "s"
    code, out, err = _batch(inputs, "--out", study, "--workers", 2)
    return study, code, out + err


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_each_recording_gets_the_results_of_tfll_analyze_and_the_broken_one_fails_alone(
    inputs, local_study, tmp_path
):
    study, code, printed = local_study
    assert code == 1, printed
    failed = [line for line in printed.splitlines() if "failed:" in line]
    assert len(failed) == 1 and "broken.ome.tif" in failed[0] and "truncated" in failed[0]
    assert "3 analysed, 0 skipped (current), 1 failed" in printed
    assert re.search(r"Dask dashboard: http://127\.0\.0\.1:\d+/status", printed)
    for rel, name in NAMES.items():
        direct = analyze(inputs / rel, out=tmp_path / name)
        assert read_results(study / name) == read_results(direct)
        for f in ("frames.csv", "tracks.csv"):
            assert (study / name / f).read_bytes() == (direct / f).read_bytes(), (name, f)
        assert (study / name / "report.html").is_file()
        manifest = json.loads((study / name / MANIFEST).read_text())
        assert manifest["status"] == "complete"
        assert manifest["fingerprint"]["input"] == str((inputs / rel).resolve())


def test_the_study_tables_have_a_row_per_interval_and_per_recording(local_study):
    import pyarrow.parquet as pq

    study, _, _ = local_study
    intervals = _rows(study / "study.csv")
    expected = sum(len(read_results(study / n)["intervals"]) for n in NAMES.values())
    assert len(intervals) == expected > 0
    assert list(intervals[0]) == [c.name for c in INTERVAL_COLUMNS]
    assert {r["recording"] for r in intervals} == set(NAMES.values())
    recordings = {r["recording"]: r for r in _rows(study / "recordings.csv")}
    assert recordings["broken"]["status"] == "failed"
    assert "truncated" in recordings["broken"]["reason"]
    assert all(recordings[n]["status"] == "complete" for n in NAMES.values())
    table = pq.read_table(study / "study.parquet")
    assert table.num_rows == len(intervals)
    assert table.schema.field("tau_s").type == "double"
    assert table.schema.field("spread_censored").type == "bool"
    rec = pq.read_table(study / "recordings.parquet").to_pylist()
    assert [r["recording"] for r in rec] == list(recordings)


def test_a_second_run_skips_everything(inputs, local_study):
    study, _, _ = local_study
    before = {n: (study / n / "results.json").stat().st_mtime_ns for n in NAMES.values()}
    start = time.monotonic()
    code, out, err = _batch(*(inputs / rel for rel in GOOD), "--out", study)
    assert code == 0, err
    assert "0 of 3 recordings to analyse (3 already analysed and current)" in err
    assert "0 analysed, 3 skipped (current), 0 failed" in out
    assert time.monotonic() - start < 5  # no cluster is started for no work
    after = {n: (study / n / "results.json").stat().st_mtime_ns for n in NAMES.values()}
    assert after == before


def test_a_changed_input_is_redone_only_with_force(tmp_path):
    src = tmp_path / "in" / "a.ome.tif"
    src.parent.mkdir()
    write_stream(SyntheticStream(SynthConfig(height=80, width=96, n_frames=60, seed=5)), src)
    study = tmp_path / "study"
    assert _batch(src, "--out", study, "--workers", 1, "--no-reports")[0] == 0
    results = (study / "a" / "results.json").read_bytes()
    os.utime(src, ns=(time.time_ns(), time.time_ns() + 10**9))  # the file was rewritten
    code, _, err = _batch(src, "--out", study)
    assert code == 1
    assert "an earlier version of the input file" in err and "--force" in err
    assert (study / "a" / "results.json").read_bytes() == results
    code, out, _ = _batch(src, "--out", study, "--workers", 1, "--force", "--no-reports")
    assert code == 0 and "1 analysed" in out
    assert read_results(study / "a")["n_frames"] == 60
    code, _, err = _batch(src, "--out", study, "--flow", "farneback")
    assert code == 1 and "with other settings" in err


def test_a_recording_folder_that_is_a_link_is_refused_and_its_target_untouched(inputs, tmp_path):
    study, target = tmp_path / "study", tmp_path / "elsewhere"
    study.mkdir()
    target.mkdir()
    (study / "other").symlink_to(target)
    code, _, err = _batch(inputs / "other.ome.tif", "--out", study)
    assert code == 1 and "symbolic link" in err and "other" in err
    assert list(target.iterdir()) == []


def _start(*argv: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_an_explicit_dask_scheduler_and_worker_give_the_same_table(
    inputs, local_study, tmp_path
):
    study, _, _ = local_study
    info = tmp_path / "scheduler.json"
    scheduler = _start(
        "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
        "--no-dashboard", "--scheduler-file", str(info),
    )
    worker = None
    try:
        deadline = time.monotonic() + 30
        while not info.exists() and time.monotonic() < deadline:
            assert scheduler.poll() is None, "the scheduler exited"
            time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
        worker = _start(
            "distributed.cli.dask_worker", "--scheduler-file", str(info), "--nthreads", "1",
            "--nworkers", "1", "--no-dashboard",
        )
        code, out, err = _batch(
            *(inputs / rel for rel in GOOD), "--out", tmp_path / "s", "--scheduler", address
        )
    finally:
        if worker is not None:
            _stop(worker)
        _stop(scheduler)
    assert code == 0, err
    assert "3 analysed" in out
    assert (tmp_path / "s" / "study.csv").read_text() == (study / "study.csv").read_text()
    mine = _rows(tmp_path / "s" / "recordings.csv")
    theirs = [r for r in _rows(study / "recordings.csv") if r["recording"] != "broken"]
    assert mine == theirs


# -- finding and naming recordings ----------------------------------------------------------------


def test_inputs_are_files_folders_and_globs(tmp_path):
    a = tmp_path / "a"
    (a / "v1").mkdir(parents=True)
    (a / "v2").mkdir()
    for p in ("v1/take.ome.tif", "v2/take.ome.tif", "x.mp4", "notes.txt", ".hidden.tif"):
        (a / p).write_bytes(b"x")
    (a / "rec.ome.zarr").mkdir()
    (a / "rec.ome.zarr" / "zarr.json").write_text("{}")
    (a / "rec.ome.zarr" / "0").mkdir()
    (a / "rec.ome.zarr" / "0" / "inner.tif").write_bytes(b"x")  # inside a store: not a stream
    (a / "take.tfll").mkdir()
    (a / "take.tfll" / "frames.tif").write_bytes(b"x")  # an analysis folder: passed over
    (a / "study").mkdir()
    (a / "study" / "y.tif").write_bytes(b"x")  # the study folder itself: passed over
    found = find_recordings([a], a / "study")
    assert [p.relative_to(a.resolve()).as_posix() for p in found] == [
        "rec.ome.zarr", "v1/take.ome.tif", "v2/take.ome.tif", "x.mp4",
    ]
    assert find_recordings([str(a / "v*" / "*.tif")]) == found[1:3]
    assert find_recordings([a / "notes.txt"]) == [(a / "notes.txt").resolve()]  # named: taken
    names = recording_names(found)
    assert sorted(names.values()) == ["rec", "v1__take", "v2__take", "x"]
    with pytest.raises(ValueError, match=r"no such file, folder or glob match: .*nope"):
        find_recordings([a, tmp_path / "nope*.tif"])


# -- the study: visit fields, and the report ------------------------------------------------------

INJECTED = "<script>alert(1)</script>"


def _crafted_study(folder: Path, local: Path, text: str) -> Path:
    """A study of one recording (copied from the local run) carrying ``text`` in its files."""
    study = folder / "crafted"
    rec = study / "rec"
    rec.mkdir(parents=True)
    for f in ("results.json", "frames.csv", MANIFEST):
        (rec / f).write_bytes((local / "other" / f).read_bytes())
    doc = json.loads((rec / "results.json").read_text())
    doc["source"] = text
    doc["visit"] = {"patient_id": text, "eye": "OS", "operator": None, "notes": text,
                    "started_utc": "2026-03-01T09:30:05+00:00"}
    (rec / "results.json").write_text(json.dumps(doc))
    run = {"schema": "tfll-batch-run/1", "recordings": [
        {"name": "rec", "input": text, "status": "skipped", "reason": None},
        {"name": text, "input": text, "status": "failed", "reason": text},
    ]}
    (study / "batch.json").write_text(json.dumps(run))
    return study


def test_visit_fields_reach_the_table_and_the_report_escapes_every_value(local_study, tmp_path):
    study = _crafted_study(tmp_path, local_study[0], INJECTED)
    tables = write_tables(study)
    rows = _rows(study / "study.csv")
    assert rows and {(r["patient_id"], r["eye"], r["date"]) for r in rows} == {
        (INJECTED, "OS", "2026-03-01")
    }
    assert [r["status"] for r in tables.recordings] == ["failed", "complete"]
    assert [r["recording"] for r in tables.failures] == [INJECTED]
    code = main(["report", str(study)])
    assert code == 0
    page = (study / "report.html").read_text(encoding="utf-8")
    assert "<script" not in page and "http" not in page.replace("http://www.w3.org", "")
    assert html_escaped(INJECTED) in page
    assert "OS (left)" in page and "<h2>Failures</h2>" in page
    assert re.search(r"<svg", page)


def html_escaped(text: str) -> str:
    import html

    return html.escape(text)


try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:  # the test extra installs it
    given = None


if given is not None:

    @settings(max_examples=25, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(text=st.text(min_size=1, max_size=12))
    def test_no_text_in_a_study_reaches_its_report_as_markup(local_study, tmp_path, text):
        import shutil

        from tfll_live.study_report import build_study_report

        marker = f"<b id=x>{text}"
        folder = tmp_path / "h"
        shutil.rmtree(folder, ignore_errors=True)
        page = build_study_report(_crafted_study(folder, local_study[0], marker))
        assert "<b id=x>" not in page


def test_every_study_column_is_documented():
    text = (ROOT / "docs" / "output.md").read_text()
    documented = set(re.findall(r"`([a-z_0-9]+)`", text))
    for cell in re.findall(r"^\| ([a-z_0-9, ]+) \|", text, flags=re.M):
        documented |= {n.strip() for n in cell.split(",")}
    missing = [c.name for c in (*INTERVAL_COLUMNS, *RECORDING_COLUMNS) if c.name not in documented]
    assert not missing, f"docs/output.md does not document {missing}"


def test_load_study_of_a_missing_folder_is_refused(tmp_path):
    from tfll_live.io import StreamError

    with pytest.raises(StreamError, match="no such study folder"):
        load_study(tmp_path / "none")
