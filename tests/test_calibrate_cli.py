"""`tfll calibrate` and `--calibration` end to end: reference images of known thickness seen by a
camera with its own white balance and black level, the calibration file, and its use by
`tfll analyze` and `tfll live`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from tfll_live.cli import main
from tfll_live.io import read_frames_csv, read_results
from tfll_live.synth import FilmLook, SynthConfig, SyntheticStream, write_stream
from tfll_live.thickness import Calibration
from tfll_live.thinfilm import CameraResponse, rgb_lut

WB = np.array([1.35, 1.0, 0.7])  # the camera's own channel gains (white balance)
BLACK = np.array([12.0, 10.0, 14.0])  # and black level, in counts
CHART_NM = (20.0, 60.0, 110.0, 160.0, 220.0)


def camera(linear: np.ndarray) -> np.ndarray:
    """What the camera records (8-bit) of a scene whose model-linear RGB is ``linear``."""
    return np.clip(np.asarray(linear, float) * WB + BLACK, 0, 255).round().astype(np.uint8)


def reference_image(d_nm: float, shape: tuple[int, int] = (60, 80), exposure: float = 1.0,
                    seed: int = 0) -> np.ndarray:
    """A reference film of ``d_nm`` on black, lit like the synthetic stream, with sensor noise."""
    resp = CameraResponse.gaussian()
    scale = 0.45 * 255 / rgb_lut(resp).max()  # the synthetic light: see SyntheticStream.render
    film = exposure * scale * resp.rgb(np.full(shape, d_nm))
    return camera(film + np.random.default_rng(seed).normal(0, 2.0, film.shape))


def write_reference(path: Path, d_nm: float, **kw) -> Path:
    tifffile.imwrite(path, reference_image(d_nm, **kw), photometric="rgb")
    return path


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("tfll")
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def chart(tmp_path) -> list[Path]:
    """Photographs of a chart's films, one per thickness (the first as OME-TIFF)."""
    names = ["chart.ome.tif"] + [f"ref{d:g}.tif" for d in CHART_NM[1:]]
    return [write_reference(tmp_path / n, d, seed=i)
            for i, (n, d) in enumerate(zip(names, CHART_NM, strict=True))]


# -- tfll calibrate -------------------------------------------------------------------------------


def test_a_chart_recovers_the_white_balance_and_black_level(chart, capsys):
    code, out, err = _run(capsys, "calibrate", *chart, "--thickness", *CHART_NM)
    assert code == 0, err
    path = chart[0].parent / "chart.tfllcal.json"  # default: beside the first, its stem
    assert out.strip().splitlines() == [out.strip()] and f"wrote {path}" in out
    assert "(fitted)" in out
    assert float(re.search(r"residual (\S+) counts RMS", out)[1]) < 1.0  # the chart agrees
    cal = Calibration.load(path)
    np.testing.assert_allclose(cal.offset, BLACK, atol=1.5)
    np.testing.assert_allclose(np.array(cal.gain) / cal.gain[1], WB / WB[1], rtol=0.02)
    for c, g in zip("RGB", cal.gain, strict=True):
        assert f"{c} {g:.3f}" in out
    assert f"{cal.film_gain:.4g}" in out
    assert "chart.ome.tif[15:45,20:60] 20 nm" in cal.source  # the default region, traced


def test_a_thickness_given_out_of_order_shows_in_the_residual(chart, capsys):
    swapped = (CHART_NM[0], CHART_NM[2], CHART_NM[1], *CHART_NM[3:])
    code, out, err = _run(capsys, "calibrate", *chart, "--thickness", *swapped)
    assert code == 0, err
    assert float(re.search(r"residual (\S+) counts RMS", out)[1]) > 5.0


def test_one_reference_with_the_black_level_recovers_the_gains(tmp_path, capsys):
    ref = write_reference(tmp_path / "film120.tif", 120.0)
    code, out, err = _run(capsys, "calibrate", ref, "--thickness", 120,
                          "--black", *BLACK, "--region", 10, 50, 10, 70)
    assert code == 0, err
    cal = Calibration.load(tmp_path / "film120.tfllcal.json")
    assert cal.offset == tuple(BLACK) and "(given)" in out
    np.testing.assert_allclose(np.array(cal.gain) / cal.gain[1], WB / WB[1], rtol=0.02)
    assert "film120.tif[10:50,10:70] 120 nm" in cal.source
    # the film gain: the stream's light and exposure, so thin layers get the curve's scale
    chart = Calibration.fit(np.stack([np.median(reference_image(d).reshape(-1, 3), 0)
                                      for d in CHART_NM]), np.array(CHART_NM))
    assert cal.film_gain == pytest.approx(chart.film_gain, rel=0.02)

    # without --black the black level is taken as 0, and the line says so
    code, out, _ = _run(capsys, "calibrate", ref, "--thickness", 120, "--out",
                        tmp_path / "noblack.json")
    assert code == 0 and "assumed 0" in out
    assert Calibration.load(tmp_path / "noblack.json").offset == (0.0, 0.0, 0.0)


def test_png_references_are_read_as_rgb(chart, tmp_path, capsys):
    """OpenCV reads BGR: unconverted, red and blue gains would swap."""
    pngs = []
    for path, d in zip(chart, CHART_NM, strict=True):
        png = tmp_path / f"png{d:g}.png"
        assert cv2.imwrite(str(png), cv2.cvtColor(tifffile.imread(path), cv2.COLOR_RGB2BGR))
        pngs.append(png)
    assert _run(capsys, "calibrate", *chart, "--thickness", *CHART_NM, "--out",
                tmp_path / "tif.json")[0] == 0
    assert _run(capsys, "calibrate", *pngs, "--thickness", *CHART_NM, "--out",
                tmp_path / "png.json")[0] == 0
    tif, png = Calibration.load(tmp_path / "tif.json"), Calibration.load(tmp_path / "png.json")
    assert (tif.gain, tif.offset) == (png.gain, png.offset)


def test_an_existing_file_is_kept_unless_forced(tmp_path, capsys):
    ref = write_reference(tmp_path / "ref.tif", 120.0)
    out = tmp_path / "cal.json"
    out.write_text("keep me")
    code, _, err = _run(capsys, "calibrate", ref, "--thickness", 120, "--out", out)
    _one_line_error(code, err, str(out), "--force")
    assert out.read_text() == "keep me"
    assert _run(capsys, "calibrate", ref, "--thickness", 120, "--out", out, "--force")[0] == 0
    assert Calibration.load(out).film_gain is not None


def _mono(p: Path) -> None:
    tifffile.imwrite(p, reference_image(120.0)[..., 1])


def _grey(p: Path) -> None:
    tifffile.imwrite(p, np.repeat(reference_image(120.0)[..., 1:2], 3, axis=2),
                     photometric="rgb")


@pytest.mark.parametrize(("make", "argv", "needles"), [
    (None, ["{tmp}/missing.tif", "--thickness", "100"], ["missing.tif", "no such file"]),
    (_mono, ["{ref}", "--thickness", "100"], ["ref.tif", "mono image"]),
    (_grey, ["{ref}", "--thickness", "100"], ["ref.tif", "grey image"]),
    ("saturated", ["{ref}", "--thickness", "100"], ["ref.tif", "channel R saturated", "exposure"]),
    ("text", ["{ref}", "--thickness", "100"], ["ref.tif", "not a TIFF"]),
    ("text", ["{tmp}/ref.png", "--thickness", "100"], ["ref.png", "not a readable image"]),
    ("ok", ["{ref}", "--thickness", "100", "--region", "0", "61", "0", "80"],
     ["ref.tif", "--region 0 61 0 80", "60x80"]),
    ("ok", ["{ref}", "--thickness", "100", "--region", "30", "30", "0", "80"], ["--region"]),
    ("ok", ["{ref}", "{ref}", "--thickness", "100"], ["2 reference(s) but 1 thickness"]),
    ("ok", ["{ref}", "--thickness", "0"], ["--thickness", "must be positive"]),
    ("ok", ["{ref}", "--thickness", "-5"], ["--thickness", "must be positive"]),
    ("ok", ["{ref}", "--thickness", "inf"], ["--thickness", "finite"]),
    ("ok", ["{ref}", "--thickness", "100", "--black", "-1", "0", "0"], ["--black"]),
    ("ok", ["{ref}", "--thickness", "100", "--black", "250", "250", "250"],
     ["calibration failed"]),
    ("ok", ["{ref}", "--thickness", "100", "--out", "{tmp}/no/dir/c.json"], ["does not exist"]),
    ("ok", ["{ref}"], ["--thickness"]),
])
def test_bad_input_is_a_one_line_error(tmp_path, capsys, make, argv, needles):
    ref = tmp_path / "ref.tif"
    if make == "ok":
        write_reference(ref, 100.0)
    elif make == "saturated":
        write_reference(ref, 100.0, exposure=2.0)  # red clips
    elif make == "text":
        ref.write_text("not an image")
        (tmp_path / "ref.png").write_text("not an image")
    elif make is not None:
        make(ref)
    code, out, err = _run(capsys, "calibrate",
                          *[a.format(tmp=tmp_path, ref=ref) for a in argv])
    _one_line_error(code, err, *needles)
    assert not list(tmp_path.glob("*.json")) and out == ""


# -- tfll analyze --calibration -------------------------------------------------------------------


@pytest.fixture(scope="module")
def camera_stream(tmp_path_factory) -> tuple[Path, SyntheticStream, Path]:
    """A synthetic eye recorded by the white-balanced camera, and that camera's calibration."""
    tmp = tmp_path_factory.mktemp("cam")
    stream = SyntheticStream(SynthConfig(height=240, width=320, n_frames=270, seed=37,
                                         film=FilmLook(thickness_nm=(40, 160))))
    path = tmp / "eye.tif"
    with tifffile.TiffWriter(path) as tw:
        for i in range(len(stream)):
            # the stream's 8-bit frames are the model's linear RGB: through the camera
            tw.write(camera(stream.render(i)), photometric="rgb", contiguous=True)
    refs = [write_reference(tmp / f"ref{d:g}.tif", d, seed=i) for i, d in enumerate(CHART_NM)]
    cal = tmp / "camera.tfllcal.json"
    assert main(["calibrate", *map(str, refs), "--thickness", *map(str, CHART_NM),
                 "--out", str(cal)]) == 0
    return path, stream, cal


def _thickness_error(out_dir: Path, stream: SyntheticStream) -> tuple[float, int]:
    est = read_frames_csv(out_dir)["lipid_thickness_nm"]
    ok = np.isfinite(est) & stream.truth.open
    return float(np.median(np.abs(est[ok] - stream.truth.thickness_nm[ok]))), int(ok.sum())


def test_analyze_with_the_calibration_is_closer_to_the_truth_and_says_so(camera_stream,
                                                                          tmp_path, capsys):
    path, stream, cal = camera_stream
    assert _run(capsys, "analyze", path, "--fps", 45, "--out", tmp_path / "raw")[0] == 0
    code, _, err = _run(capsys, "analyze", path, "--fps", 45, "--out", tmp_path / "cal",
                        "--calibration", cal)
    assert code == 0, err
    raw, n_raw = _thickness_error(tmp_path / "raw", stream)
    fixed, n_fixed = _thickness_error(tmp_path / "cal", stream)
    print(f"median |thickness error|: uncalibrated {raw:.1f} nm ({n_raw} frames), "
          f"calibrated {fixed:.1f} nm ({n_fixed} frames)")
    assert n_fixed > 150
    assert fixed <= 5.0 and fixed < raw / 2

    doc = read_results(tmp_path / "cal")
    assert doc["tracker"]["thickness_calibration"] == str(cal.resolve())
    recorded = doc["thickness"]["calibration"]
    written = json.loads(cal.read_text())
    assert recorded["file"] == str(cal.resolve())
    assert {k: recorded[k] for k in written} == written  # gains, offset, film gain, source
    assert read_results(tmp_path / "raw")["thickness"]["calibration"] is None


@pytest.mark.parametrize(("content", "needle"), [
    (None, "no such calibration file"),
    ("{not json", "not a JSON calibration file"),
    ('{"schema": "other/1"}', "tfll-calibration/1"),
    ("[1, 2, 3]", "tfll-calibration/1"),
    ('{"schema": "tfll-calibration/1", "gain": [1, NaN, 1], "offset": [0, 0, 0]}', "finite"),
])
def test_a_bad_calibration_file_stops_analyze_and_live_before_any_work(tmp_path, capsys,
                                                                       content, needle):
    cal = tmp_path / "cal.json"
    if content is not None:
        cal.write_text(content)
    stream_path = tmp_path / "s.ome.tif"
    write_stream(SyntheticStream(SynthConfig(height=120, width=160, n_frames=10)), stream_path)
    out = tmp_path / "out"
    code, _, err = _run(capsys, "analyze", stream_path, "--out", out, "--calibration", cal)
    _one_line_error(code, err, "cal.json", needle)
    assert not out.exists()  # refused before the analysis folder was made
    code, _, err = _run(capsys, "live", "--replay", stream_path, "--fast", "--record",
                        tmp_path / "rec", "--calibration", cal)
    _one_line_error(code, err, "cal.json", needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["s.ome.tif", "s.truth.json"] + (["cal.json"] if content is not None else []))


def test_live_records_the_calibration_it_used(camera_stream, tmp_path):
    _, _, cal = camera_stream
    replay = tmp_path / "s.ome.tif"
    write_stream(SyntheticStream(SynthConfig(height=120, width=160, fps=50.0, n_frames=60)),
                 replay)
    proc = subprocess.run([sys.executable, "-m", "tfll_live.cli", "live", "--replay", str(replay),
                           "--fast", "--record", "rec", "--calibration", str(cal)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    doc = read_results(tmp_path / "rec.tfll")
    assert doc["tracker"]["thickness_calibration"] == str(cal.resolve())
    assert doc["thickness"]["calibration"]["gain"] == json.loads(cal.read_text())["gain"]
