"""Figures for the clinical measures: report build time, fit speed, thickness accuracy and cost.

    python benchmarks/bench_report.py            # everything (~1-2 min on 2 cores)
    python benchmarks/bench_report.py --skip-thickness

Prints:
- the time to build the HTML report of a 10-minute session at 45 frames/s (27,000 rows;
  target < 5 s), and the page size;
- fit_exponential on 1000 points (target < 1 ms) and analyze_spread per interval;
- the thickness estimator's median |error| against synthetic truth (frames whose truth is in
  30-180 nm), per stream and overall (target <= 10 nm), on seeds the estimator was not
  developed on, and its time per frame.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tfll_live.kinetics import analyze_spread, fit_exponential
from tfll_live.report import write_report
from tfll_live.synth import FilmLook, SynthConfig, SyntheticStream
from tfll_live.thickness import Calibration, ThicknessEstimator
from tfll_live.thinfilm import CameraResponse, rgb_lut
from tfll_live.tracking import FRAME_COLUMNS

FPS = 45.0


def write_session(folder: Path, minutes: float = 10.0, seed: int = 0) -> int:
    """A results folder of a long session: blinks every 4-7 s, spreads with noise, thickness."""
    rng = np.random.default_rng(seed)
    n_total = int(minutes * 60 * FPS)
    rows, blinks, intervals = [], [], []
    frame = 0
    while frame < n_total:
        n = min(int(rng.uniform(4, 7) * FPS), n_total - frame)
        t = np.arange(n) / FPS
        dy = -rng.uniform(15, 50) * (1 - np.exp(-t / rng.uniform(0.4, 2.0)))
        dy += rng.normal(0, 0.7, n)
        start = frame
        for j in range(n):
            rows.append(
                [
                    frame,
                    f"{frame / FPS:.6f}",
                    "open",
                    len(intervals),
                    "0.000",
                    "0.000",
                    "0.000",
                    f"{dy[j]:.3f}",
                    60,
                    "320.0",
                    "200.0",
                    "52.0",
                    f"{110 + rng.normal(0, 4):.1f}",
                ]
            )
            frame += 1
        intervals.append({"start_frame": start, "end_frame": frame - 1, "spread": None})
        nb = min(13, n_total - frame)
        if nb > 0:
            blinks.append(
                {
                    "start_frame": frame,
                    "end_frame": frame + nb - 1,
                    "complete": bool(rng.uniform() > 0.25),
                }
            )
            for _ in range(nb):
                rows.append(
                    [
                        frame,
                        f"{frame / FPS:.6f}",
                        "blink",
                        -1,
                        "0.000",
                        "0.000",
                        "",
                        "",
                        0,
                        "",
                        "",
                        "",
                        "",
                    ]
                )
                frame += 1
    with open(folder / "frames.csv", "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(FRAME_COLUMNS)
        w.writerows(rows)
    doc = {
        "schema": "tfll-results/1",
        "source": "bench.ome.tif",
        "fps": FPS,
        "n_frames": frame,
        "frame_shape": [480, 640],
        "blinks": blinks,
        "intervals": intervals,
    }
    (folder / "results.json").write_text(json.dumps(doc))
    return frame


def bench_report() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        n = write_session(folder)
        start = time.perf_counter()
        path = write_report(folder)
        elapsed = time.perf_counter() - start
        size = path.stat().st_size
    print(
        f"report: 10-minute session ({n} frames): built in {elapsed:.2f} s (target < 5 s), "
        f"{size / 1e6:.2f} MB"
    )


def bench_fits() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(1000) / FPS
    y = -30 * (1 - np.exp(-t / 1.2)) + rng.normal(0, 1, t.size)
    fit_exponential(t, y)
    reps = 300
    start = time.perf_counter()
    for _ in range(reps):
        fit_exponential(t, y)
    per = (time.perf_counter() - start) / reps
    t2 = t[:270]
    y2 = y[:270] - 0.5 * t2
    start = time.perf_counter()
    for _ in range(50):
        analyze_spread(t2, y2)
    per2 = (time.perf_counter() - start) / 50
    print(
        f"fit_exponential: {per * 1e3:.3f} ms for 1000 points (target < 1 ms); "
        f"analyze_spread: {per2 * 1e3:.2f} ms for a 6 s interval (both models, spread time)"
    )


def bench_thickness() -> None:
    all_errs, times = [], []
    size = (240, 320)
    lut = rgb_lut(CameraResponse.gaussian())
    # a reference film of 100 nm on black under the synthetic light: fixes the curve's scale
    reference = Calibration.from_reference(
        np.tile(0.45 * 255 * lut[100] / lut.max(), (9, 1)), 100.0, source="100 nm reference"
    )
    cases = [
        (seed, th, None)
        for seed in (41, 42, 43)
        for th in ((0, 60), (10, 90), (40, 160), (80, 200), (20, 200))
    ]
    cases += [(seed, (0, 60), reference) for seed in (41, 42, 43)]
    for seed, thickness, cal in cases:
        stream = SyntheticStream(
            SynthConfig(
                height=size[0],
                width=size[1],
                n_frames=450,
                seed=seed,
                film=FilmLook(thickness_nm=thickness),
            )
        )
        est = ThicknessEstimator(calibration=cal)
        errs = []
        for i in range(0, len(stream), 3):
            if not stream.truth.open[i]:
                continue
            x, grp = stream.region_pixels(i)
            start = time.perf_counter()
            v = est.push(x, grp)
            times.append(time.perf_counter() - start)
            truth = stream.truth.thickness_nm[i]
            if v is not None and 30 <= truth <= 180:
                errs.append(v - truth)
        if errs:
            e = np.abs(errs)
            tr = stream.truth.thickness_nm
            how = "gain from a reference" if cal else "free gain"
            print(
                f"thickness ({how}) seed {seed} layer {thickness} nm (truth {tr.min():.0f}-"
                f"{tr.max():.0f}): median |error| {np.median(e):.1f} nm, 90th pct "
                f"{np.percentile(e, 90):.1f} nm, bias {np.median(errs):+.1f} nm, "
                f"{len(e)} frames"
            )
            if cal is None:
                all_errs += errs
    t = np.array(times) * 1e3
    mae = np.median(np.abs(all_errs))
    print(
        f"thickness overall (free gain): median |error| {mae:.1f} nm over {len(all_errs)} frames "
        f"(target <= 10 nm); {size[0]}x{size[1]} frames, "
        f"time per frame median {np.median(t):.1f} ms, 95th pct {np.percentile(t, 95):.1f} "
        f"ms, max {t.max():.0f} ms (global searches)"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--skip-thickness", action="store_true")
    args = p.parse_args()
    bench_report()
    bench_fits()
    if not args.skip_thickness:
        bench_thickness()
    return 0


if __name__ == "__main__":
    sys.exit(main())
