"""A study's tables: one row per interval, and one per recording, over all its recordings.

``tfll batch`` writes ``study.csv``/``study.parquet`` (intervals) and
``recordings.csv``/``recordings.parquet`` (recordings) into the study folder, built here from each
recording folder's ``results.json`` (and ``frames.csv`` for the frame times of files that carry
their own). Every column, its type and its unit is listed in ``INTERVAL_COLUMNS`` and
``RECORDING_COLUMNS`` (documented in docs/output.md), so the CSV, the Parquet and the report
agree, and a column that is empty for every recording still has its type.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .batch import COMPLETE, FAILED, MANIFEST, RUN_RECORD, read_manifest, read_run_record
from .io import StreamError, check_output, read_results, replacing, write_text_replacing
from .visit import Visit

STUDY_TABLE, RECORDINGS_TABLE = "study", "recordings"


@dataclass(frozen=True)
class Column:
    """One column of a study table: its name, type (``str int float bool``) and meaning."""

    name: str
    kind: str


def _columns(spec: str) -> tuple[Column, ...]:
    return tuple(Column(*item.split(":")) for item in spec.split())


INTERVAL_COLUMNS = _columns(
    "recording:str patient_id:str eye:str date:str interval:int start_frame:int end_frame:int "
    "start_s:float duration_s:float model:str tau_s:float amplitude_px:float "
    "initial_velocity_px_s:float amplitude_um:float initial_velocity_um_s:float "
    "drift_px_s:float spread_time_s:float spread_censored:bool "
    "thickness_median_nm:float thickness_iqr_nm:float"
)
RECORDING_COLUMNS = _columns(
    "recording:str status:str reason:str input:str source:str patient_id:str eye:str date:str "
    "started_utc:str fps:float n_frames:int duration_s:float n_blinks:int n_partial:int "
    "blink_rate_per_min:float inter_blink_interval_median_s:float "
    "inter_blink_interval_mean_s:float partial_share:float n_intervals:int "
    "tau_median_s:float spread_time_median_s:float n_censored:int "
    "initial_velocity_median_px_s:float amplitude_median_px:float "
    "thickness_median_nm:float thickness_iqr_nm:float pixel_size_um:float lost_frames:int "
    "tfll_version:str"
)


# -- reading a recording --------------------------------------------------------------------------


def _num(v: object) -> float | None:
    """A finite number from a file, else None (a crafted file's text is not a number)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _obj(v: object) -> dict[str, Any]:
    """An object of a file, or an empty one for anything else (null, a crafted value)."""
    return v if isinstance(v, dict) else {}


def _int(v: object) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _text(v: object) -> str | None:
    return v if isinstance(v, str) else None


def _median(values: Iterable[float | None]) -> float | None:
    v = [x for x in values if x is not None]
    return statistics.median(v) if v else None


def _frame_times(folder: Path, res: dict[str, Any]) -> list[float] | None:
    """Each frame's time from frames.csv when the file had its own times, else None (fps)."""
    if res.get("timestamps") in (None, "frame rate"):
        return None
    try:
        with open(folder / "frames.csv", newline="", encoding="utf-8") as fh:
            rows = csv.reader(fh)
            col = next(rows).index("time_s")
            return [float(r[col]) for r in rows]
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _visit(res: dict[str, Any]) -> Visit:
    try:
        return Visit.from_json(res.get("visit"))
    except (TypeError, ValueError):
        return Visit()


def _visit_fields(visit: Visit) -> dict[str, str | None]:
    started = visit.started_utc
    return {
        "patient_id": visit.patient_id,
        "eye": visit.eye,
        "date": started[:10] if started else None,
    }


def interval_rows(name: str, folder: Path, res: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per interval of a recording's results (see ``INTERVAL_COLUMNS``).

    The measures are the interval's ``kinetics`` (the model chosen at its end), else its
    online ``spread`` fit; values a file holds that are not numbers are left empty.
    """
    fps = _num(res.get("fps")) or 0.0
    times = _frame_times(folder, res)
    visit = _visit_fields(_visit(res))
    size = _num(res.get("pixel_size_um"))
    rows = []
    listed = res.get("intervals")
    intervals: list[Any] = listed if isinstance(listed, list) else []
    for k, iv in enumerate(intervals):
        if not isinstance(iv, dict):
            continue
        start, end = _int(iv.get("start_frame")), _int(iv.get("end_frame"))
        kin = _obj(iv.get("kinetics"))
        fit = kin or _obj(iv.get("spread"))
        thick = _obj(iv.get("thickness"))
        start_s = duration_s = None
        if start is not None and end is not None and fps > 0:
            if times is not None and 0 <= start <= end < len(times):
                start_s, duration_s = times[start], times[end] - times[start] + 1.0 / fps
            else:
                start_s, duration_s = start / fps, (end - start + 1) / fps
        amplitude, velocity = _num(fit.get("amplitude_px")), _num(fit.get("initial_velocity_px_s"))
        rows.append(
            {
                "recording": name,
                **visit,
                "interval": k,
                "start_frame": start,
                "end_frame": end,
                "start_s": start_s,
                "duration_s": duration_s,
                "model": _text(fit.get("model")),
                "tau_s": _num(fit.get("tau_s")),
                "amplitude_px": amplitude,
                "initial_velocity_px_s": velocity,
                "amplitude_um": amplitude * size if amplitude is not None and size else None,
                "initial_velocity_um_s": velocity * size if velocity is not None and size else None,
                "drift_px_s": _num(kin.get("drift_px_s")) if kin else None,
                "spread_time_s": _num(kin.get("spread_time_s")) if kin else None,
                "spread_censored": (
                    kin["spread_censored"] if isinstance(kin.get("spread_censored"), bool) else None
                ),
                "thickness_median_nm": _num(thick.get("median_nm")),
                "thickness_iqr_nm": _num(thick.get("iqr_nm")),
            }
        )
    return rows


def recording_row(
    name: str,
    status: str,
    reason: str | None,
    manifest: dict[str, Any] | None,
    res: dict[str, Any] | None,
    intervals: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    """One recording's row (see ``RECORDING_COLUMNS``): its outcome, visit and summary."""
    fp = (manifest or {}).get("fingerprint") or {}
    row: dict[str, Any] = dict.fromkeys(c.name for c in RECORDING_COLUMNS)
    row.update(
        recording=name,
        status=status,
        reason=reason,
        input=_text(fp.get("input")),
        tfll_version=_text(fp.get("tfll_version")),
    )
    if res is None:
        return row
    visit = _visit(res)
    stats = _obj(res.get("blink_stats"))
    ibi = _obj(stats.get("inter_blink_interval_s"))
    thick = _obj(res.get("thickness"))
    lost = _obj(res.get("lost_frames"))
    row.update(
        source=_text(res.get("source")),
        **_visit_fields(visit),
        started_utc=visit.started_utc,
        fps=_num(res.get("fps")),
        n_frames=_int(res.get("n_frames")),
        duration_s=_num(stats.get("duration_s")),
        n_blinks=_int(stats.get("n_blinks")),
        n_partial=_int(stats.get("n_partial")),
        blink_rate_per_min=_num(stats.get("blink_rate_per_min")),
        inter_blink_interval_median_s=_num(ibi.get("median")),
        inter_blink_interval_mean_s=_num(ibi.get("mean")),
        partial_share=_num(stats.get("partial_share")),
        n_intervals=len(intervals),
        tau_median_s=_median(r["tau_s"] for r in intervals),
        spread_time_median_s=_median(r["spread_time_s"] for r in intervals),
        n_censored=sum(r["spread_censored"] is True for r in intervals),
        initial_velocity_median_px_s=_median(r["initial_velocity_px_s"] for r in intervals),
        amplitude_median_px=_median(r["amplitude_px"] for r in intervals),
        thickness_median_nm=_num(thick.get("median_nm")),
        thickness_iqr_nm=_num(thick.get("iqr_nm")),
        pixel_size_um=_num(res.get("pixel_size_um")),
        lost_frames=_int(lost.get("count")) or 0,
    )
    return row


# -- the study ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Study:
    """A study folder's rows: intervals of its complete recordings, and every recording."""

    folder: Path
    intervals: list[dict[str, Any]]
    recordings: list[dict[str, Any]]

    @property
    def failures(self) -> list[dict[str, Any]]:
        """The recordings that failed, with their reasons."""
        return [r for r in self.recordings if r["status"] == FAILED]


def recording_folder(study: Path, name: str) -> Path | None:
    """A recording's folder in the study, or None when ``name`` (read from a file) cannot be one.

    A name with a path separator or a NUL, or a link, must not lead anywhere outside the study.
    """
    if name in ("", ".", "..") or any(c in name for c in "/\\\0"):
        return None
    folder = study / name
    return None if folder.is_symlink() else folder


def is_study(folder: str | Path) -> bool:
    """Whether ``folder`` is a study folder (written by ``tfll batch``), not one analysis."""
    p = Path(folder)
    if not p.is_dir() or (p / "results.json").exists():
        return False
    return (p / RUN_RECORD).is_file() or any(
        (c / MANIFEST).is_file() for c in p.iterdir() if c.is_dir()
    )


def load_study(folder: str | Path) -> Study:
    """Every recording of a study: those with a ``tfll-batch.json`` and those of the last run.

    A recording's status is the last run's when it was among that run's inputs (a recording it
    refused or could not analyse is failed there, whatever its folder holds), else its
    folder's. Only complete recordings contribute intervals.
    """
    study = Path(folder)
    if not study.is_dir():
        raise StreamError(f"{study}: no such study folder")
    listed = (read_run_record(study) or {}).get("recordings")
    last: dict[str, dict[str, Any]] = {
        r["name"]: r
        for r in (listed if isinstance(listed, list) else [])
        if isinstance(r, dict) and isinstance(r.get("name"), str)
    }
    names = sorted(
        {p.name for p in study.iterdir() if p.is_dir() and (p / MANIFEST).is_file()} | set(last)
    )
    intervals: list[dict[str, Any]] = []
    recordings: list[dict[str, Any]] = []
    for name in names:
        out_dir = recording_folder(study, name)
        manifest = read_manifest(out_dir) if out_dir is not None else None
        ran = last.get(name)
        status = (
            (FAILED if ran.get("status") == FAILED else COMPLETE)
            if ran
            else (manifest or {}).get("status", FAILED)
        )
        reason = _text(ran.get("reason")) if ran else _text((manifest or {}).get("reason"))
        res = None
        if status == COMPLETE and out_dir is None:
            status, reason = FAILED, f"{name!r} is not the name of a recording folder"
        elif status == COMPLETE and out_dir is not None:
            try:
                res = read_results(out_dir)
            except StreamError as e:
                status, reason = FAILED, str(e)
        rows = interval_rows(name, out_dir, res) if res is not None and out_dir else []
        row = recording_row(name, status, reason, manifest, res, rows)
        if row["input"] is None and ran:
            row["input"] = _text(ran.get("input"))
        intervals += rows
        recordings.append(row)
    return Study(study, intervals, recordings)


def _csv_text(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> str:
    """CSV with a header; empty cells for unknown values, ``true``/``false`` for booleans."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(c.name for c in columns)
    for r in rows:
        w.writerow(
            ""
            if r[c.name] is None
            else ("true" if r[c.name] else "false")
            if isinstance(r[c.name], bool)
            else r[c.name]
            for c in columns
        )
    return out.getvalue()


def _write_parquet(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}
    schema = pa.schema([pa.field(c.name, types[c.kind]) for c in columns])
    table = pa.Table.from_pylist([{c.name: r[c.name] for c in columns} for r in rows], schema)
    with replacing(check_output(path, force=True)) as tmp:
        pq.write_table(table, tmp)


def write_tables(folder: str | Path) -> Study:
    """Write ``study.csv``/``.parquet`` and ``recordings.csv``/``.parquet``; return the study.

    Derived files, rebuilt on every run (never through a link, each whole or not at all).
    """
    study = load_study(folder)
    for stem, rows, columns in (
        (STUDY_TABLE, study.intervals, INTERVAL_COLUMNS),
        (RECORDINGS_TABLE, study.recordings, RECORDING_COLUMNS),
    ):
        write_text_replacing(
            check_output(study.folder / f"{stem}.csv", force=True), _csv_text(rows, columns)
        )
        _write_parquet(study.folder / f"{stem}.parquet", rows, columns)
    return study
