"""Accuracy of the tracker against synthetic ground truth, over seeds and frame sizes.

    python benchmarks/bench_accuracy.py [--seeds 9001 9002 ...] [--frames 900] [--size 480 640]
                                        [--flow lucas-kanade|farneback|ssd] [--fps 45]
                                        [--noise-dn 2] [--mono] [--bits 8|16]

Prints, per stream and overall: blink F1 (partial blinks flagged right), eye-motion RMSE, lipid
displacement RMSE, median relative tau error, thickness median absolute error.
"""

from __future__ import annotations

import argparse

import numpy as np

from tfll_live.evaluate import score
from tfll_live.synth import SynthConfig, SyntheticStream
from tfll_live.tracking import Tracker, TrackerConfig


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[9001, 9002, 9003, 9004, 9005])
    ap.add_argument("--frames", type=int, default=900)
    ap.add_argument("--size", type=int, nargs=2, default=(480, 640))
    ap.add_argument("--flow", default="lucas-kanade")
    ap.add_argument("--fps", type=float, default=45.0)
    ap.add_argument("--noise-dn", type=float, default=2.0, help="read noise, 8-bit counts")
    ap.add_argument("--mono", action="store_true", help="a monochrome camera (no thickness)")
    ap.add_argument("--bits", type=int, choices=[8, 16], default=8)
    args = ap.parse_args()
    rows = []
    for seed in args.seeds:
        stream = SyntheticStream(
            SynthConfig(
                height=args.size[0],
                width=args.size[1],
                n_frames=args.frames,
                seed=seed,
                partial_blink_fraction=0.3,
                fps=args.fps,
                noise_dn=args.noise_dn,
                rgb=not args.mono,
                bit_depth=args.bits,
            )
        )
        tracker = Tracker(TrackerConfig(flow=args.flow))
        results = [
            tracker.push(stream.render(i), i / stream.config.fps) for i in range(len(stream))
        ]
        acc = score(results, tracker.finish(), stream.truth)
        th = np.array(
            [np.nan if r.lipid_thickness_nm is None else r.lipid_thickness_nm for r in results]
        )
        ok = np.isfinite(th) & stream.truth.open
        th_err = (
            float(np.median(np.abs(th[ok] - stream.truth.thickness_nm[ok])))
            if ok.any()
            else float("nan")
        )
        rows.append(
            (
                acc.blink_f1,
                acc.partial_correct,
                acc.eye_rmse_px,
                acc.lipid_rmse_px,
                acc.tau_rel_error_median,
                th_err,
                acc.spread_time_rel_error_median,
            )
        )
        print(
            f"seed {seed}: blink F1 {acc.blink_f1:.2f} (partial flags {acc.partial_correct:.2f}), "
            f"eye RMSE {acc.eye_rmse_px:.2f} px, lipid RMSE {acc.lipid_rmse_px:.2f} px, "
            f"tau error {100 * acc.tau_rel_error_median:.1f}% ({acc.n_intervals_scored} "
            f"intervals), spread time error {100 * acc.spread_time_rel_error_median:.1f}% "
            f"({acc.n_spread_times_scored}), thickness MAE {th_err:.1f} nm"
        )
    a = np.array(rows)
    print(
        f"all: blink F1 min {a[:, 0].min():.2f}, eye RMSE max {a[:, 2].max():.2f} px, "
        f"lipid RMSE max {a[:, 3].max():.2f} px (mean {a[:, 3].mean():.2f}), "
        f"tau error median {100 * np.nanmedian(a[:, 4]):.1f}%, "
        f"spread time error median {100 * np.nanmedian(a[:, 6]):.1f}% (max of streams "
        f"{100 * np.nanmax(a[:, 6]):.1f}%), "
        f"thickness MAE max {np.nanmax(a[:, 5]):.1f} nm  "
        "(targets: F1 >= 0.95, eye <= 1 px, lipid <= 3 px, tau and spread time <= 10%, "
        "thickness <= 10 nm)"
    )


if __name__ == "__main__":
    main()
