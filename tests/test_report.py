"""The session report built from analysis folders written as spec/analysis-output.md says."""

import csv
import json
import re

import numpy as np
import pytest

from tfll_live.cli import main
from tfll_live.io import StreamError
from tfll_live.report import build_report, decimate, write_report
from tfll_live.tracking import FRAME_COLUMNS

FPS = 45.0


def make_results(folder, n_intervals=3, interval_s=5.0, blink_frames=12, thickness=True,
                 seed=0, drift_every=2):
    """A results folder: intervals of known spread (tau 0.8 s, A 30 px), blinks between them."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows, blinks, intervals = [], [], []
    frame = 0
    for k in range(n_intervals):
        n = int(interval_s * FPS)
        t = np.arange(n) / FPS
        drift = -1.5 * t if k % drift_every == 1 else 0.0
        dy = -30 * (1 - np.exp(-t / 0.8)) + drift + rng.normal(0, 0.7, n)
        start = frame
        for j in range(n):
            th = f"{120 + 5 * k + rng.normal(0, 2):.1f}" if thickness else ""
            rows.append([frame, f"{frame / FPS:.6f}", "open", k, "0.000", "0.000", "0.000",
                         f"{dy[j]:.3f}", 40, "160.0", "100.0", "26.0", th])
            frame += 1
        intervals.append({"start_frame": start, "end_frame": frame - 1, "spread": {
            "model": "a*exp(-b*t)+c", "a": 30.0, "b": 1.25, "c": -30.0, "tau_s": 0.8,
            "amplitude_px": 30.0, "initial_velocity_px_s": 37.5, "r2": 0.99}})
        if k < n_intervals - 1:
            blinks.append({"start_frame": frame, "end_frame": frame + blink_frames - 1,
                           "complete": k % 2 == 0})
            for _ in range(blink_frames):
                rows.append([frame, f"{frame / FPS:.6f}", "blink", -1, "0.000", "0.000", "", "",
                             0, "", "", "", ""])
                frame += 1
    with open(folder / "frames.csv", "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(FRAME_COLUMNS)
        w.writerows(rows)
    doc = {"schema": "tfll-results/1", "source": "session <1>.ome.tif", "fps": FPS,
           "n_frames": frame, "frame_shape": [240, 320], "blinks": blinks,
           "intervals": intervals, "tracker": {"flow": "lucas-kanade", "max_features": 150}}
    (folder / "results.json").write_text(json.dumps(doc))
    return doc


def numbers_in(page: str, label: str) -> str:
    """The table row whose first cell is ``label``."""
    m = re.search(rf"<tr><td>{re.escape(label)}</td>(.*?)</tr>", page)
    assert m, label
    return m.group(1)


def test_report_has_sections_numbers_and_no_network(tmp_path):
    make_results(tmp_path / "a.tfll", n_intervals=4)
    path = write_report(tmp_path / "a.tfll")
    assert path == tmp_path / "a.tfll" / "report.html"
    page = path.read_text(encoding="utf-8")
    assert "http" not in page and "<script" not in page and "src=" not in page
    for section in ("Summary", "Blink timeline", "Lipid displacement over the session",
                    "Lipid layer thickness", "Intervals: displacement and fits",
                    "Method and parameters"):
        assert f"<h2>{section}</h2>" in page
    assert page.count("<svg") == 1 + 1 + 1 + 4  # timeline, displacement, thickness, 4 intervals
    assert "session &lt;1&gt;.ome.tif" in page  # the source name is escaped
    assert "3 partial" not in page and "1 partial" in numbers_in(page, "Blinks")
    # 3 blinks over (4*225 + 3*12)/45 = 20.8 s -> 8.65 per minute
    assert "8.7 /min" in numbers_in(page, "Blink rate")
    # tau 0.8 s -> spread time ln(10)*0.8 = 1.84 s
    tau = float(re.search(r"([\d.]+) s", numbers_in(page, "Time constant τ (median)")).group(1))
    assert tau == pytest.approx(0.8, rel=0.1)
    spread = float(re.search(r"([\d.]+) s", numbers_in(page, "Spread time (median)")).group(1))
    assert spread == pytest.approx(np.log(10) * 0.8, rel=0.1)
    assert "2 of 4" in numbers_in(page, "Drift model chosen")
    assert "nm" in numbers_in(page, "Lipid thickness (median)")
    assert "tracker.max_features" in page and "lucas-kanade" in page


def test_kinetics_recorded_in_results_json_are_used(tmp_path):
    doc = make_results(tmp_path / "r", n_intervals=2)
    kin = {"model": "a*exp(-b*t)+c", "tau_s": 9.99, "spread_time_s": 4.44,
           "spread_censored": False, "initial_velocity_px_s": 1.0, "amplitude_px": 3.0,
           "drift_px_s": 0.0, "delta_bic": -3.0, "duration_s": 5.0,
           "fits": {"paper": {"a": 3, "b": 0.1, "c": -3, "d": 0}, "drift": None}}
    doc["intervals"][0]["kinetics"] = kin
    (tmp_path / "r" / "results.json").write_text(json.dumps(doc))
    short = {**kin, "model_decidable": False, "tau_s": 0.5, "duration_s": 1.2}
    doc["intervals"][1]["kinetics"] = short
    (tmp_path / "r" / "results.json").write_text(json.dumps(doc))
    page = build_report(tmp_path / "r")
    assert "9.99 s" in page and "4.44 s" in page
    assert "<td>paper?</td>" in page  # the short interval's model is a default, not a choice
    assert "1 too short to tell" in numbers_in(page, "Drift model chosen")


def test_mono_session_says_why_there_is_no_thickness(tmp_path):
    make_results(tmp_path / "m", n_intervals=2, thickness=False)
    page = build_report(tmp_path / "m")
    assert "mono camera" in page
    assert "—" in numbers_in(page, "Lipid thickness (median)")


def test_missing_frames_csv_gives_a_report_that_says_so(tmp_path):
    make_results(tmp_path / "x", n_intervals=2)
    (tmp_path / "x" / "frames.csv").unlink()
    page = build_report(tmp_path / "x")
    assert "Missing: frames.csv" in page
    assert "<h2>Summary</h2>" in page and "<h2>Blink timeline</h2>" in page


def test_bad_folders_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(StreamError, match="no such results folder"):
        build_report(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StreamError, match=r"results\.json: no such file"):
        build_report(tmp_path / "empty")
    doc = make_results(tmp_path / "old")
    doc["schema"] = "tfll-results/0"
    (tmp_path / "old" / "results.json").write_text(json.dumps(doc))
    with pytest.raises(StreamError, match="schema 'tfll-results/0'"):
        build_report(tmp_path / "old")
    doc["schema"] = "tfll-results/1"
    del doc["intervals"]
    (tmp_path / "old" / "results.json").write_text(json.dumps(doc))
    with pytest.raises(StreamError, match="no 'intervals' field"):
        build_report(tmp_path / "old")
    # through the command: one line on stderr, status 2, no traceback
    assert main(["report", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "results.json" in err


def test_cli_writes_the_report(tmp_path, capsys):
    make_results(tmp_path / "c.tfll", n_intervals=2)
    assert main(["report", str(tmp_path / "c.tfll"), "--out", str(tmp_path / "r.html")]) == 0
    out = capsys.readouterr().out
    assert "r.html" in out and (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")


def test_decimate_keeps_the_extremes():
    x = np.arange(100_000, dtype=float)
    y = np.sin(x / 5000.0)
    y[31_234] = 50.0
    y[70_000:70_010] = np.nan
    dx, dy = decimate(x, y, columns=300)
    assert dx.size <= 600 and np.nanmax(dy) == 50.0 and np.nanmin(dy) == pytest.approx(-1, 1e-3)
    assert np.all(np.diff(dx) >= 0)


def test_the_method_says_which_calibration_the_thickness_came_from(tmp_path):
    doc = make_results(tmp_path / "c", n_intervals=2)
    page = build_report(tmp_path / "c")
    assert "none: the camera" in numbers_in(page, "Thickness calibration")
    doc["thickness"] = {"available": True, "calibration": {
        "file": "/cal/camera.tfllcal.json", "source": "chart <5 films>", "gain": [1.2, 1.0, 0.8],
        "offset": [12.0, 10.0, 14.0], "film_gain": 180.0}}
    (tmp_path / "c" / "results.json").write_text(json.dumps(doc))
    row = numbers_in(build_report(tmp_path / "c"), "Thickness calibration")
    assert "/cal/camera.tfllcal.json" in row and "chart &lt;5 films&gt;" in row
    assert "1.200, 1.000, 0.800" in row and "12.0, 10.0, 14.0" in row


# -- issue 11, item 4: what a reader needs on the page -------------------------------------------


def _identity(page: str) -> str:
    m = re.search(r"<p class='identity'>(.*?)</p>", page)
    assert m, "no identity line"
    return m.group(1)


def _svgs(page: str) -> dict[str, str]:
    """Each plot's SVG by its aria-label."""
    return dict(re.findall(r'<svg [^>]*aria-label="([^"]*)"[^>]*>(.*?)</svg>', page, flags=re.S))


def test_the_header_gives_date_patient_and_eye_and_says_what_was_stored(tmp_path):
    doc = make_results(tmp_path / "v", n_intervals=2)
    doc["visit"] = {"patient_id": "P-<42>", "eye": "OD", "operator": None, "notes": None,
                    "started_utc": "2026-03-01T09:30:05+00:00"}
    doc["recorded_utc"] = "2026-03-01T09:31:00+00:00"
    (tmp_path / "v" / "results.json").write_text(json.dumps(doc))
    page = build_report(tmp_path / "v")
    head = _identity(page)
    assert "2026-03-01 09:30 UTC" in head and "visit started" in head  # the visit's, first
    assert "P-&lt;42&gt;" in head and "OD (right)" in head
    assert "Stored: patient_id, eye, started_utc." in page
    # no visit: the recording's time, and a line that nothing identifying was stored
    del doc["visit"]
    (tmp_path / "v" / "results.json").write_text(json.dumps(doc))
    page = build_report(tmp_path / "v")
    head = _identity(page)
    assert "2026-03-01 09:31 UTC" in head and "recording started" in head
    assert "patient and eye not entered" in head and "nothing identifying is stored." in page
    # a crafted time reaches the page as text
    doc["recorded_utc"] = "<script>alert(1)</script>"
    (tmp_path / "v" / "results.json").write_text(json.dumps(doc))
    assert "<script" not in build_report(tmp_path / "v")
    # neither: said, never guessed (not the time of the analysis)
    del doc["recorded_utc"]
    (tmp_path / "v" / "results.json").write_text(json.dumps(doc))
    head = _identity(build_report(tmp_path / "v"))
    assert "not stored" in head and not re.search(r"\d{4}-\d\d-\d\d", head)


def test_every_plot_has_a_legend_naming_its_series(tmp_path):
    make_results(tmp_path / "l", n_intervals=3)
    svgs = _svgs(build_report(tmp_path / "l"))
    expected = {
        "blink timeline": ("complete blink", "partial blink", "open-eye interval"),
        "lipid displacement": ("measured upward travel",),
        "lipid thickness": ("median thickness",),
        "interval 0": ("measured", "paper fit", "drift fit"),
    }
    assert set(expected) <= set(svgs) and "interval 2" in svgs
    for name, labels in expected.items():
        legend = re.search(r'<g class="legend">(.*?)</g>', svgs[name], flags=re.S)
        assert legend, name
        texts = re.findall(r"<text[^>]*>([^<]*)</text>", legend.group(1))
        for label in labels:
            assert any(label in t for t in texts), (name, label, texts)


def test_measured_data_are_drawn_over_the_fits(tmp_path):
    make_results(tmp_path / "z", n_intervals=3)
    svgs = _svgs(build_report(tmp_path / "z"))
    for k in range(3):
        body = svgs[f"interval {k}"]
        fits = [m.start() for m in re.finditer(r'<polyline class="fit"', body)]
        data = [m.start() for m in re.finditer(r'<circle class="data"', body)]
        assert fits and data, k
        assert max(fits) < min(data), f"interval {k}: a fit is drawn over the data"


def _y_ticks(svg: str) -> list[float]:
    return [float(v) for v in re.findall(r'text-anchor="end">(-?[\d.]+)</text>', svg)]


def test_plots_show_upward_travel_as_positive_and_say_so(tmp_path):
    doc = make_results(tmp_path / "u", n_intervals=2)  # files: the layer rises, dy negative
    page = build_report(tmp_path / "u")
    svgs = _svgs(page)
    for name in ("lipid displacement", "interval 0", "interval 1"):
        labels = re.findall(r'transform="rotate\(-90[^"]*">([^<]*)</text>', svgs[name])
        assert labels and "upward" in labels[0], (name, labels)
        ticks = _y_ticks(svgs[name])
        assert max(ticks) >= 20 and min(ticks) >= -5, (name, ticks)  # 30 px up: positive
    assert "upward" in page[page.index("<h2>Glossary</h2>"):]
    # the files keep the spec's sign
    assert doc["intervals"][0]["spread"]["c"] < 0
    assert "µm" not in svgs["interval 0"]  # no pixel size: px only


def test_um_beside_px_when_the_pixel_size_is_known(tmp_path):
    doc = make_results(tmp_path / "m", n_intervals=2)
    doc["pixel_size_um"] = 2.0
    (tmp_path / "m" / "results.json").write_text(json.dumps(doc))
    page = build_report(tmp_path / "m")
    svgs = _svgs(page)
    for name in ("lipid displacement", "interval 0"):
        right = re.findall(r'transform="rotate\(90[^"]*">([^<]*)</text>', svgs[name])
        assert right and "µm" in right[0], name
        # the right axis' ticks are the px axis times 2
        um_ticks = [float(v) for v in re.findall(r'text-anchor="start">(-?[\d.]+)</text>',
                                                 svgs[name])]
        assert max(um_ticks) >= 40, um_ticks
    row = re.search(r"<tr><td>0</td>(.*?)</tr>", page).group(1)
    assert "px (" in row and "µm)" in row and "µm/s)" in row


def test_the_glossary_explains_the_report_s_terms(tmp_path):
    make_results(tmp_path / "g", n_intervals=2)
    page = build_report(tmp_path / "g")
    assert "<h2>Glossary</h2>" in page
    glossary = page[page.index("<h2>Glossary</h2>"):page.index("<h2>Method and parameters</h2>")]
    terms = re.findall(r"<dt>([^<]*)</dt>", glossary)
    for term in ("τ (tau)", "amplitude", "initial velocity", "spread time", "censored",
                 "paper?", "BIC", "ΔBIC", "partial blink", "IQR", "r²", "paper fit", "drift fit"):
        assert any(term in t for t in terms), (term, terms)
    # the labels the tables use are among them
    assert "by BIC (see the glossary)" in numbers_in(page, "Drift model chosen")


def test_thickness_counts_are_results_json_s(tmp_path):
    """The issue: 564 frames in the report, 115 in results.json. Both now count estimates."""
    from tfll_live.analyze import analyze
    from tfll_live.io import read_frames_csv, read_results
    from tfll_live.synth import SynthConfig, SyntheticStream, write_stream

    path = tmp_path / "s.ome.tif"
    write_stream(SyntheticStream(SynthConfig(height=120, width=160, n_frames=300, seed=4)), path)
    out = analyze(path)
    res = read_results(out)
    assert res["thickness"]["available"]
    n = res["thickness"]["n_frames"]
    held = np.isfinite(read_frames_csv(out)["lipid_thickness_nm"]).sum()
    assert held > n  # frames.csv repeats each estimate: counting it would disagree
    page = build_report(out)
    row = numbers_in(page, "Lipid thickness (median)")
    m = re.search(r"over ([\d,]+) estimates \(one every 5th open frame\)", row)
    assert m and int(m.group(1).replace(",", "")) == n, row
    assert f"{res['thickness']['median_nm']:.0f} nm" in row
    table = page[page.index("<h2>Intervals</h2>"):page.index("<h2>Glossary</h2>")]
    counts = [int(c) for c in re.findall(r", (\d+) estimates\)</td>", table)]
    assert counts == [iv["thickness"]["n_frames"] for iv in res["intervals"] if iv["thickness"]]
    assert sum(counts) == n
