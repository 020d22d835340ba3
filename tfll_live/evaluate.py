"""Accuracy of the tracker against the ground truth of synthetic streams.

Used by the accuracy tests and ``benchmarks/bench_accuracy.py``; kept in the package so the same
scoring applies to any stream written with its truth (``tfll synth``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .synth import GroundTruth
from .tracking import FrameResult, Summary


@dataclass(frozen=True)
class Accuracy:
    """Scores of one tracked stream against its truth."""

    blink_f1: float
    partial_correct: float  # share of matched blinks whose complete/partial flag is right
    eye_rmse_px: float
    lipid_rmse_px: float
    tau_rel_error_median: float
    n_intervals_scored: int
    spread_time_rel_error_median: float = float("nan")  # measured vs tau*ln(1/threshold)
    n_spread_times_scored: int = 0


def score(results: list[FrameResult], summary: Summary, truth: GroundTruth) -> Accuracy:
    """Compare per-frame results and blinks/intervals with the truth."""
    n = len(results)
    est_blinks = [(b.start_frame, b.end_frame, b.complete) for b in summary.blinks]
    true_blinks = [
        (b["start_frame"], b["end_frame"], b["complete"])
        for b in truth.blinks
        if b["start_frame"] < n
    ]
    matched, flags = 0, 0
    used: set[int] = set()
    for s, e, c in true_blinks:
        for k, (es, ee, ec) in enumerate(est_blinks):
            if k not in used and es <= e + 2 and ee >= s - 2:
                used.add(k)
                matched += 1
                flags += int(ec == c)
                break
    precision = matched / len(est_blinks) if est_blinks else float(not true_blinks)
    recall = matched / len(true_blinks) if true_blinks else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0

    open_ = np.array([r.state.value == "open" for r in results]) & truth.open[:n]
    ex = np.array([r.eye_dx_px for r in results]) - truth.eye_dx_px[:n]
    ey = np.array([r.eye_dy_px for r in results]) - truth.eye_dy_px[:n]
    eye_rmse = float(np.sqrt(np.nanmean(ex[open_] ** 2 + ey[open_] ** 2)))

    # lipid: compare within each true interval the tracker also tracked, relative to the start
    errs = []
    tau_errs = []
    spread_errs: list[float] = []
    for iv in truth.intervals:
        s, e = iv["start_frame"], min(iv["end_frame"], n - 1)
        if e - s < 10:
            continue
        est = np.array(
            [
                np.nan if results[k].lipid_dy_px is None else results[k].lipid_dy_px
                for k in range(s, e + 1)
            ]
        )
        ok = np.isfinite(est) & truth.open[s : e + 1]
        if ok.sum() < 10:
            continue
        errs.append(est[ok] - truth.lipid_dy_px[s : e + 1][ok])
        mid = (s + e) // 2
        fitted = [v for v in summary.intervals if v.start_frame <= mid <= v.end_frame]
        if fitted and fitted[0].spread is not None and e - s > 2 * iv["tau_s"] * truth.fps:
            tau_errs.append(abs(fitted[0].spread.tau_s - iv["tau_s"]) / iv["tau_s"])
        kin = fitted[0].kinetics if fitted else None
        if kin is not None and kin.spread_time_s is not None:
            # the true speed, less any steady drift, falls below threshold*initial at tau*ln(1/t)
            true_spread = iv["tau_s"] * np.log(1.0 / kin.threshold)
            spread_errs.append(abs(kin.spread_time_s - true_spread) / true_spread)
    lipid = float(np.sqrt(np.mean(np.concatenate(errs) ** 2))) if errs else float("nan")
    tau = float(np.median(tau_errs)) if tau_errs else float("nan")
    spread = float(np.median(spread_errs)) if spread_errs else float("nan")
    return Accuracy(
        f1,
        flags / matched if matched else float("nan"),
        eye_rmse,
        lipid,
        tau,
        len(tau_errs),
        spread,
        len(spread_errs),
    )
