"""Accuracy of the tracker against the ground truth of synthetic streams.

Used by the accuracy tests and ``benchmarks/bench_accuracy.py``; kept in the package so the same
scoring applies to any stream written with its truth (``tfll synth``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .synth import GroundTruth, SyntheticStream, write_video
from .tracking import EyeState, FrameResult, Summary, Tracker, TrackerConfig

MATCH_SLACK = 2  # frames by which a reported blink may miss the true one and still match it


@dataclass(frozen=True)
class IntervalScore:
    """One true interval against what the tracker made of it."""

    start_frame: int
    end_frame: int
    true_amplitude_px: float
    true_tau_s: float
    fit_amplitude_px: float | None  # the spread fit's amplitude |c|, None without a fit
    fit_tau_s: float | None
    true_travel_px: float  # where the layer really was at the interval's last tracked frame
    measured_travel_px: float  # and where the tracker put it
    long_enough: bool  # lasted over 2 tau: its fit is expected to find the asymptote

    @property
    def amplitude_error(self) -> float:
        """Relative error of the fitted amplitude (nan without a fit)."""
        if self.fit_amplitude_px is None:
            return float("nan")
        return abs(self.fit_amplitude_px - self.true_amplitude_px) / self.true_amplitude_px

    @property
    def tau_error(self) -> float:
        """Relative error of the fitted tau (nan without a fit)."""
        if self.fit_tau_s is None:
            return float("nan")
        return abs(self.fit_tau_s - self.true_tau_s) / self.true_tau_s


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
    false_blinks: int = 0  # reported blinks that match no true one
    blink_delays: tuple[int, ...] = ()  # frames from each found blink's start to its report
    spread_time_rel_errors: tuple[float, ...] = ()  # each scored interval's, for pooled medians
    intervals: tuple[IntervalScore, ...] = ()

    @property
    def amplitude_errors(self) -> np.ndarray:
        """Relative amplitude errors of the intervals long enough to score."""
        return np.array([s.amplitude_error for s in self.intervals if s.long_enough], dtype=float)


def delivered_frames(stream: SyntheticStream, workdir: str | Path) -> Iterator[np.ndarray]:
    """The frames as the tracker receives them.

    Rendered, or decoded from the lossy video the stream's ``video`` setting names (written in
    ``workdir``, read back as ``tfll analyze`` reads videos).
    """
    from .io import open_stream

    cfg = stream.config
    if cfg.video is None:
        yield from (stream.render(i) for i in range(len(stream)))
        return
    path = Path(workdir) / f"stream{'.mp4' if cfg.video == 'h264' else '.avi'}"
    write_video(stream, path)
    with open_stream(path, fps=cfg.fps) as source:
        for frame in source:
            yield frame[: cfg.height, : cfg.width]
    path.unlink()


def track(
    stream: SyntheticStream, config: TrackerConfig | None = None
) -> tuple[list[FrameResult], Summary]:
    """Every frame of the stream through a fresh tracker, as delivered."""
    tracker = Tracker(config)
    with tempfile.TemporaryDirectory(prefix="tfll-eval-") as tmp:
        results = [
            tracker.push(frame, i / stream.config.fps)
            for i, frame in enumerate(delivered_frames(stream, tmp))
        ]
    return results, tracker.finish()


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
    delays: list[int] = []
    used: set[int] = set()
    states = np.array([r.state is EyeState.BLINK for r in results])
    for s, e, c in true_blinks:
        for k, (es, ee, ec) in enumerate(est_blinks):
            if k not in used and es <= e + MATCH_SLACK and ee >= s - MATCH_SLACK:
                used.add(k)
                matched += 1
                flags += int(ec == c)
                said = np.flatnonzero(states[max(0, s - MATCH_SLACK) : e + 1])
                if said.size:  # the first frame the tracker said "blink" in, from the lid's start
                    delays.append(int(said[0]) + max(0, s - MATCH_SLACK) - s)
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
    scored: list[IntervalScore] = []
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
        spread = fitted[0].spread if fitted else None
        long_enough = e - s > 2 * iv["tau_s"] * truth.fps
        if spread is not None and long_enough:
            tau_errs.append(abs(spread.tau_s - iv["tau_s"]) / iv["tau_s"])
        last = int(np.flatnonzero(ok)[-1])
        scored.append(
            IntervalScore(
                s,
                e,
                iv["amplitude_px"],
                iv["tau_s"],
                None if spread is None else spread.amplitude_px,
                None if spread is None else spread.tau_s,
                float(-truth.lipid_dy_px[s + last]),
                float(-est[last]),
                bool(long_enough and iv.get("drift_px_s", 0.0) == 0.0),
            )
        )
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
        false_blinks=len(est_blinks) - len(used),
        blink_delays=tuple(delays),
        spread_time_rel_errors=tuple(spread_errs),
        intervals=tuple(scored),
    )
