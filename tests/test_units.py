"""µm and µm/s beside px, from a pixel size given, recorded or configured."""

from __future__ import annotations

import json

import pytest
from tfll_cli import SMALL_CFG, tfll

from tfll_live.cli import main
from tfll_live.io import read_results
from tfll_live.report import build_report
from tfll_live.synth import SynthConfig, SyntheticStream, write_stream
from tfll_live.units import add_physical_units


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    path = tmp_path_factory.mktemp("units") / "s.ome.tif"
    write_stream(SyntheticStream(SynthConfig(height=240, width=320, n_frames=400, seed=1)), path)
    return path


def test_um_values_follow_from_the_pixel_size_with_the_spec_sign_kept(stream, tmp_path):
    assert main(["analyze", str(stream), "--out", str(tmp_path / "px")]) == 0
    assert (
        main(["analyze", str(stream), "--out", str(tmp_path / "um"), "--pixel-size-um", "2.5"]) == 0
    )
    px, um = read_results(tmp_path / "px"), read_results(tmp_path / "um")
    assert px.get("pixel_size_um") is None and um["pixel_size_um"] == 2.5
    fitted = [
        (a, b)
        for a, b in zip(px["intervals"], um["intervals"], strict=True)
        if a["kinetics"] is not None
    ]
    assert fitted
    for a, b in fitted:
        # the px fields are untouched; each µm twin is px x 2.5 with the same sign
        assert {k: b["kinetics"][k] for k in a["kinetics"]} == a["kinetics"]
        assert "amplitude_um" not in a["kinetics"] and "initial_velocity_um_s" not in a["spread"]
        for obj in ("spread", "kinetics"):
            assert b[obj]["amplitude_um"] == pytest.approx(2.5 * a[obj]["amplitude_px"])
            assert b[obj]["initial_velocity_um_s"] == pytest.approx(
                2.5 * a[obj]["initial_velocity_px_s"]
            )
        assert b["kinetics"]["drift_um_s"] == pytest.approx(2.5 * a["kinetics"]["drift_px_s"])
    page = build_report(tmp_path / "um")
    assert "2.500 µm" in page and "µm/s" in page
    assert "µm/s" not in build_report(tmp_path / "px")
    assert "displacements in px only" in build_report(tmp_path / "px")


def test_thickness_says_uncalibrated_until_a_calibration_is_loaded(stream, tmp_path):
    assert main(["analyze", str(stream), "--out", str(tmp_path / "a")]) == 0
    assert "uncalibrated (no camera calibration loaded)" in build_report(tmp_path / "a")


def test_a_recording_keeps_the_pixel_size_given_to_tfll_live(tmp_path):
    (tmp_path / "small.cfg").write_text(SMALL_CFG)
    proc = tfll(
        "live",
        "--config",
        "small.cfg",
        "--record",
        "take",
        "--duration",
        "0.5",
        "--pixel-size-um",
        "3.2",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert read_results(tmp_path / "take.tfll")["pixel_size_um"] == 3.2
    # and tfll analyze of the recording takes it from there
    assert main(["analyze", str(tmp_path / "take.ome.zarr"), "--out", str(tmp_path / "re")]) == 0
    assert read_results(tmp_path / "re")["pixel_size_um"] == 3.2


def test_bad_pixel_sizes_are_one_line_errors(stream, tmp_path, capsys):
    assert main(["analyze", str(stream), "--pixel-size-um", "-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "must be positive" in err
    with pytest.raises(ValueError, match="not a size"):
        add_physical_units({"pixel_size_um": float("inf"), "intervals": []})
    doc = json.loads(json.dumps({"pixel_size_um": 0, "intervals": [{"spread": None}]}))
    assert add_physical_units(doc) == doc  # 0: Micro-Manager's "no pixel size configured"
