"""The visit (patient, eye, operator, notes) from the command line to the files and the report."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
import zarr
from tfll_cli import SMALL_CFG, tfll

from tfll_live.cli import main
from tfll_live.io import read_results
from tfll_live.report import build_report
from tfll_live.synth import SynthConfig, SyntheticStream, write_stream
from tfll_live.visit import Visit, check_eye, default_study_folder, visit_folder

IDENTIFYING = ("P-0042", "Dr Okafor", "after lipid drops")


@pytest.fixture(scope="module")
def stream(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("visit") / "s.ome.tif"
    write_stream(SyntheticStream(SynthConfig(height=120, width=160, fps=45.0, n_frames=90)), path)
    return path


def test_eye_is_od_or_os_in_any_case_and_nothing_else():
    assert check_eye(" od ") == "OD" and check_eye("OS") == "OS" and check_eye("") is None
    with pytest.raises(ValueError, match="'left' is not OD"):
        check_eye("left")


def test_a_visit_given_to_tfll_live_is_in_the_recording_results_and_report(tmp_path):
    (tmp_path / "small.cfg").write_text(SMALL_CFG)
    before = datetime.now(timezone.utc)
    proc = tfll(
        "live",
        "--config",
        "small.cfg",
        "--record",
        "take",
        "--duration",
        "0.5",
        "--patient",
        "P-0042",
        "--eye",
        "os",
        "--operator",
        "Dr Okafor",
        "--notes",
        "after lipid drops",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    visit = read_results(tmp_path / "take.tfll")["visit"]
    assert {k: visit[k] for k in ("patient_id", "eye", "operator", "notes")} == {
        "patient_id": "P-0042",
        "eye": "OS",
        "operator": "Dr Okafor",
        "notes": "after lipid drops",
    }
    assert datetime.fromisoformat(visit["started_utc"]) >= before.replace(microsecond=0)
    # the recording's own metadata carries it, and tfll analyze of the recording keeps it
    assert zarr.open_group(tmp_path / "take.ome.zarr", mode="r").attrs["tfll"]["visit"] == visit
    assert (
        main(
            [
                "analyze",
                str(tmp_path / "take.ome.zarr"),
                "--out",
                str(tmp_path / "re"),
                "--fps",
                "200",
            ]
        )
        == 0
    )
    assert read_results(tmp_path / "re")["visit"] == visit
    page = build_report(tmp_path / "take.tfll")
    assert all(text in page for text in IDENTIFYING) and "OS (left eye)" in page
    assert "Stored: patient_id, eye, operator, notes, started_utc." in page


def test_a_visit_given_to_tfll_analyze_is_in_results_and_report(stream, tmp_path):
    out = tmp_path / "a"
    assert (
        main(["analyze", str(stream), "--out", str(out), "--patient", "P-0042", "--eye", "OD"]) == 0
    )
    # no time is guessed for a file: the visit's time is the recording's, which a file lacks
    assert read_results(out)["visit"] == {
        "patient_id": "P-0042",
        "eye": "OD",
        "operator": None,
        "notes": None,
        "started_utc": None,
    }
    page = build_report(out)
    assert "P-0042" in page and "Stored: patient_id, eye." in page


def test_with_nothing_entered_nothing_identifying_is_written(stream, tmp_path):
    out = tmp_path / "a"
    assert main(["analyze", str(stream), "--out", str(out)]) == 0
    assert "visit" not in read_results(out)
    text = (out / "results.json").read_text() + (out / "frames.csv").read_text()
    assert not any(word in text for word in ("patient", "operator", "notes"))
    assert "nothing identifying is stored" in build_report(out)


def test_a_bad_eye_is_a_one_line_error(stream, tmp_path, capsys):
    assert main(["analyze", str(stream), "--eye", "right"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'right' is not OD (right) or OS (left)" in err
    assert not (stream.parent / "s.tfll").exists()


def test_a_crafted_visit_in_results_json_is_refused_in_one_line(stream, tmp_path):
    out = tmp_path / "a"
    assert main(["analyze", str(stream), "--out", str(out), "--eye", "OD"]) == 0
    doc = json.loads((out / "results.json").read_text())
    doc["visit"]["eye"] = "<script>"
    (out / "results.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="is not OD"):
        build_report(out)


def test_recordings_go_to_a_visit_folder_in_the_users_data_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    study = default_study_folder()
    assert study == tmp_path / "data" / "tfll-live" / "recordings"
    when = datetime(2026, 3, 1, 9, 30, 5, tzinfo=timezone.utc)
    local = when.astimezone().strftime("%Y-%m-%d_%H%M%S")
    assert visit_folder(study, Visit(eye="OD"), when) == study / f"{local}_OD"
    started = Visit(patient_id="P-1").started(when)
    assert visit_folder(study, started) == study / local  # no eye entered: none in the name
    assert "P-1" not in str(visit_folder(study, started))
