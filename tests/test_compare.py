"""Before/after: tfll report A B compares sessions side by side."""

from __future__ import annotations

import json
import re

import pytest
from test_report import make_results

from tfll_live.compare import build_comparison, load_compared, write_comparison


def _session(folder, eye, started, seed):
    make_results(folder, n_intervals=4, seed=seed)
    doc = json.loads((folder / "results.json").read_text())
    doc["visit"] = {
        "patient_id": "P-0042",
        "eye": eye,
        "operator": None,
        "notes": None,
        "started_utc": started,
    }
    doc["blink_stats"] = {"inter_blink_intervals_s": [4.0, 5.0, 6.0]}
    (folder / "results.json").write_text(json.dumps(doc))
    return folder


def test_the_comparison_shows_both_sessions_side_by_side(tmp_path):
    after = _session(tmp_path / "after", "OD", "2026-03-08T09:00:00+00:00", 1)
    before = _session(tmp_path / "before", "OD", "2026-03-01T09:00:00+00:00", 2)
    page = build_comparison([after, before])
    # both sessions, ordered by the visit's start: before first
    assert page.index("2026-03-01 09:00") < page.index("2026-03-08 09:00")
    assert page.count("P-0042") >= 2
    head = re.search(r"<table><tr>(.*?)</tr>", page).group(1)
    assert "1. OD · 2026-03-01" in head and "2. OD · 2026-03-08" in head
    for measure in ("Spread time", "Time constant τ", "Lipid thickness", "Blink rate"):
        row = re.search(rf"<tr><td>{measure} \(median over intervals\)</td>(.*?)</tr>", page)
        assert row and row.group(1).count("<td>") == 2, measure
    # the spread over intervals: blink rate from 60/IBI = 15, 12, 10 /min
    rate = re.search(r"<tr><td>Blink rate \(median over intervals\)</td><td>(.*?)</td>", page)
    assert rate.group(1) == "12.0 /min (IQR 11.0–13.5, n 3)"
    assert page.count("<svg") == 4 and "different eyes" not in page


def test_sessions_of_different_eyes_are_grouped_and_flagged(tmp_path):
    os_ = _session(tmp_path / "os", "OS", "2026-03-01T09:00:00+00:00", 1)
    od = _session(tmp_path / "od", "OD", "2026-03-01T09:05:00+00:00", 2)
    page = build_comparison([os_, od])
    assert page.index("1. OD") < page.index("2. OS") and "different eyes" in page


def test_the_comparison_is_written_and_never_over_a_file_unasked(tmp_path, monkeypatch):
    a = _session(tmp_path / "a", "OD", None, 1)
    b = _session(tmp_path / "b", "OD", None, 2)
    monkeypatch.chdir(tmp_path)
    out = write_comparison([a, b])
    assert out.name == "comparison.html" and "<svg" in out.read_text()
    with pytest.raises(ValueError, match="exists: pass --force"):
        write_comparison([a, b])
    assert write_comparison([a, b], force=True) == out
    assert load_compared(a).values["Time constant τ"]


def test_one_folder_or_a_bad_one_is_a_one_line_error(tmp_path):
    a = _session(tmp_path / "a", "OD", None, 1)
    with pytest.raises(ValueError, match="two or more"):
        build_comparison([a])
    with pytest.raises(ValueError, match="no such results folder"):
        build_comparison([a, tmp_path / "missing"])


def test_tfll_report_with_two_folders_writes_the_comparison(tmp_path, capsys):
    from tfll_live.cli import main

    a = _session(tmp_path / "a", "OD", None, 1)
    b = _session(tmp_path / "b", "OD", None, 2)
    out = tmp_path / "cmp.html"
    assert main(["report", str(a), str(b), "--out", str(out)]) == 0
    assert "2 sessions compared" in out.read_text() and str(out) in capsys.readouterr().out
    assert main(["report", str(a), str(b), "--out", str(out)]) == 2  # not replaced unasked
    assert "exists: pass --force" in capsys.readouterr().err
