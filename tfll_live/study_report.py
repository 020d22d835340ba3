"""The study report: one self-contained HTML page over all the recordings of a study folder.

``tfll report STUDY_DIR`` shows how spread time, tau and lipid thickness are distributed over
the study's recordings (each recording's median over its intervals), per eye where the eye is
known, the recordings one by one (with a link to each one's own report), and every recording
that failed with its reason. Like the session report it draws inline SVG, needs no network and
no scripts, and escapes every value read from the files: names, reasons and visit fields are
text, never markup.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from . import __version__
from .io import check_output, write_text_replacing
from .report import _CSS, Plot, _table, fmt, median_iqr
from .study import COMPLETE, Study, load_study, recording_folder

MAX_LISTED = 5000  # recordings listed one by one; the distributions use them all
BINS = 20
EYE_GROUPS = (("OD", "OD (right)"), ("OS", "OS (left)"), (None, "eye not entered"))
COLOURS = {"OD": "#1f77b4", "OS": "#d62728", None: "#7f7f7f"}


@dataclass(frozen=True)
class Distribution:
    """A per-recording measure shown as a distribution: the column, its name, unit, digits."""

    column: str
    name: str
    unit: str
    digits: int


DISTRIBUTIONS = (
    Distribution("spread_time_median_s", "Spread time", "s", 2),
    Distribution("tau_median_s", "Time constant τ", "s", 2),
    Distribution("thickness_median_nm", "Lipid thickness", "nm", 0),
)


def _values(rows: Sequence[dict[str, Any]], column: str) -> list[float]:
    out = []
    for r in rows:
        v = r.get(column)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out.append(float(v))
    return out


def _groups(rows: Sequence[dict[str, Any]]) -> list[tuple[str | None, str, list[dict[str, Any]]]]:
    """The complete recordings by eye: OD, OS, then those whose eye was not entered."""
    done = [r for r in rows if r["status"] == COMPLETE]
    groups = [(eye, label, [r for r in done if r.get("eye") == eye]) for eye, label in EYE_GROUPS]
    return [g for g in groups if g[2]]


def _histogram(values: list[float], edges: np.ndarray, colour: str, d: Distribution) -> str:
    counts, _ = np.histogram(values, bins=edges)
    plot = Plot(
        (float(edges[0]), float(edges[-1])),
        (0.0, float(max(counts.max(), 1))),
        width=300,
        height=170,
        x_label=f"{d.name} ({d.unit})",
        y_label="recordings",
        y_pad=0.0,
    )
    for n, lo, hi in zip(counts, edges[:-1], edges[1:], strict=True):
        if n:
            title = f"{int(n)} recording(s), {lo:.{d.digits}f}–{hi:.{d.digits}f} {d.unit}"
            plot.span(float(lo), float(hi), colour, title, y0=0.0, y1=float(n))
    return plot.svg(d.name)


def _distributions(study: Study) -> str:
    """Per measure: a table by eye (median, IQR, n) and a histogram per eye on one scale."""
    groups = _groups(study.recordings)
    if not groups:
        return "<p class='muted'>No complete recording: nothing to show.</p>"
    head = ["Measure (median per recording)"] + [label for _, label, _ in groups]
    rows = [
        [d.name] + [median_iqr(_values(g, d.column), d.unit, d.digits) for _, _, g in groups]
        for d in DISTRIBUTIONS
    ]
    rows.append(["Recordings"] + [fmt(len(g)) for _, _, g in groups])
    parts = [_table(head, rows)]
    parts.append(
        "<p class='muted'>Each recording counts once, by its median over its intervals; the "
        "table gives the median of those over the recordings, the interquartile range (IQR: "
        "the middle half of the recordings) and their number (n). Spread time: until the "
        "layer slowed to a tenth of its initial speed (censored intervals, still moving at the "
        "next blink, are left out).</p>"
    )
    for d in DISTRIBUTIONS:
        every = _values([r for _, _, g in groups for r in g], d.column)
        parts.append(f"<h3>{html.escape(d.name)} ({html.escape(d.unit)})</h3>")
        if not every:
            parts.append("<p class='muted'>No values in any recording.</p>")
            continue
        lo, hi = min(every), max(every)
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, BINS + 1)
        figures = []
        for eye, label, g in groups:
            v = _values(g, d.column)
            svg = _histogram(v, edges, COLOURS[eye], d) if v else "<p class='muted'>no values</p>"
            figures.append(
                f"<figure>{svg}<figcaption>{html.escape(label)}: "
                f"{html.escape(median_iqr(v, d.unit, d.digits))}</figcaption></figure>"
            )
        parts.append(f"<div class='grid'>{''.join(figures)}</div>")
    return "\n".join(parts)


def _failures(study: Study) -> str:
    failed = study.failures
    if not failed:
        return "<p>None: every recording was analysed.</p>"
    rows = [[r["recording"], r.get("input") or "—", r.get("reason") or "—"] for r in failed]
    return _table(["Recording", "Input", "Reason"], rows)


def _recordings(study: Study) -> str:
    """Every recording, with a link to its own report where it has one."""
    cols = (
        ("patient_id", "Patient", "", 0),
        ("eye", "Eye", "", 0),
        ("date", "Date", "", 0),
        ("n_intervals", "Intervals", "", 0),
        ("blink_rate_per_min", "Blink rate", "/min", 1),
        ("partial_share", "Partial", "", 2),
        ("tau_median_s", "τ median", "s", 2),
        ("spread_time_median_s", "Spread time median", "s", 2),
        ("thickness_median_nm", "Thickness median", "nm", 0),
    )
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ["Recording", "Status"])
    head += "".join(f"<th>{html.escape(label)}</th>" for _, label, _, _ in cols)
    body = []
    for r in study.recordings[:MAX_LISTED]:
        name = html.escape(str(r["recording"]))
        folder = recording_folder(study.folder, str(r["recording"]))
        if folder is not None and (folder / "report.html").is_file():
            href = html.escape(f"{quote(str(r['recording']))}/report.html", quote=True)
            name = f'<a href="{href}">{name}</a>'
        cells = [name, html.escape(str(r["status"]))]
        for key, _, unit, digits in cols:
            v = r.get(key)
            cells.append(html.escape(fmt(v, unit, digits) if not isinstance(v, str) else v))
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    more = len(study.recordings) - MAX_LISTED
    note = f"<p class='muted'>and {more} more (see recordings.csv).</p>" if more > 0 else ""
    return f"<table><tr>{head}</tr>{''.join(body)}</table>{note}"


def build_study_report(folder: str | Path) -> str:
    """The study report of a study folder as an HTML string."""
    study = load_study(folder)
    n = len(study.recordings)
    done = sum(r["status"] == COMPLETE for r in study.recordings)
    return "\n".join(
        [
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>TFLL study: {html.escape(study.folder.name)}</title>"
            f"<style>{_CSS}h3{{font-size:15px}}</style></head><body>",
            f"<h1>Tear film lipid layer: study {html.escape(study.folder.name)}</h1>",
            f"<p>{fmt(n)} recordings: {fmt(done)} analysed, {fmt(len(study.failures))} "
            f"failed; {fmt(len(study.intervals))} intervals. <span class='muted'>tfll-live "
            f"{html.escape(__version__)}; tables: study.csv, recordings.csv (and .parquet)."
            "</span></p>",
            "<h2>Distributions over the recordings</h2>",
            _distributions(study),
            "<h2>Failures</h2>",
            _failures(study),
            "<h2>Recordings</h2>",
            _recordings(study),
            "</body></html>",
        ]
    )


def write_study_report(folder: str | Path, out: str | Path | None = None) -> Path:
    """Write the study report (default ``STUDY_DIR/report.html``, rebuilt freely); its path."""
    page = build_study_report(folder)
    path = check_output(Path(out) if out is not None else Path(folder) / "report.html", True)
    return write_text_replacing(path, page)
