"""Before/after: sessions compared side by side on one self-contained HTML page.

``tfll report A B ...`` answers the question after a treatment: did the spread time, tau,
thickness or blink rate change, and by more than they vary within a session? Each measure is
given per session as the median over its intervals with the interquartile range (the spread
over the session's intervals) and the number of intervals, grouped by eye (OD, OS, not
entered) and ordered by the visit's start; a strip plot shows every interval's value.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .io import check_output, write_text_replacing
from .report import _CSS, Plot, _kinetics, _table, fmt, load_session, median_iqr
from .visit import Visit

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


@dataclass(frozen=True)
class Measure:
    """One compared quantity: its name, unit and per-interval values of a session."""

    name: str
    unit: str
    digits: int
    values: Callable[[dict[str, Any], list[dict[str, Any] | None]], list[float]]


def _finite(values: Sequence[object]) -> list[float]:
    out = []
    for v in values:
        if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v):
            out.append(float(v))
    return out


def _blink_rates(res: dict[str, Any], _k: list[dict[str, Any] | None]) -> list[float]:
    """Blinks a minute as each inter-blink interval gives it (60 / interval)."""
    ibis = (res.get("blink_stats") or {}).get("inter_blink_intervals_s") or []
    return [60.0 / v for v in _finite(ibis) if v > 0]


MEASURES = (
    Measure(
        "Spread time",
        "s",
        2,
        lambda _r, ks: _finite([k.get("spread_time_s") for k in ks if k]),
    ),
    Measure("Time constant τ", "s", 2, lambda _r, ks: _finite([k.get("tau_s") for k in ks if k])),
    Measure("Lipid thickness", "nm", 0, lambda _r, _k: []),  # per interval: _thickness
    Measure("Blink rate", "/min", 1, _blink_rates),
)


@dataclass(frozen=True)
class Compared:
    """A session as compared: its folder, visit and each measure's values over its intervals."""

    folder: Path
    results: dict[str, Any]
    visit: Visit
    values: dict[str, list[float]]

    @property
    def title(self) -> str:
        """How the page names the session: eye, date, patient, source."""
        v = self.visit
        parts = [v.eye or "eye not entered"]
        if v.started_utc:
            parts.append(v.started_utc[:16].replace("T", " ") + " UTC")
        if v.patient_id:
            parts.append(v.patient_id)
        parts.append(str(self.results.get("source", self.folder.name)))
        return " · ".join(parts)


def _thickness(res: dict[str, Any], frames: dict[str, np.ndarray] | None) -> list[float]:
    """Each interval's median thickness: results.json's, else from frames.csv (older files)."""
    out = []
    for iv in res["intervals"]:
        median = (iv.get("thickness") or {}).get("median_nm")
        if median is None and frames is not None:
            f = frames["frame"]
            sel = (f >= iv["start_frame"]) & (f <= iv["end_frame"])
            nm = frames["lipid_thickness_nm"][sel]
            nm = nm[np.isfinite(nm)]
            median = float(np.median(nm)) if nm.size else None
        out += _finite([median])
    return out


def load_compared(folder: str | Path) -> Compared:
    """One analysis folder's measures (refused in one line as ``tfll report`` refuses it)."""
    session = load_session(folder)
    kinetics = _kinetics(session)
    res = session.results
    values = {m.name: m.values(res, kinetics) for m in MEASURES}
    values["Lipid thickness"] = _thickness(res, session.frames)
    return Compared(Path(folder), res, Visit.from_json(res.get("visit")), values)


def _eye_order(c: Compared) -> tuple[int, str]:
    eye = c.visit.eye
    return ({"OD": 0, "OS": 1}.get(eye or "", 2), c.visit.started_utc or "")


def _strip(sessions: list[Compared], m: Measure) -> str:
    """Every interval's value per session (jittered dots), with the session's median."""
    allv = [v for c in sessions for v in c.values[m.name]]
    if not allv:
        return f"<p class='muted'>{html.escape(m.name)}: no values in any session.</p>"
    plot = Plot(
        (0.5, len(sessions) + 0.5),
        (min(allv), max(allv)),
        width=420,
        height=200,
        x_label="session",
        y_label=f"{m.name} ({m.unit})",
    )
    rng = np.random.default_rng(0)  # the same page for the same sessions
    for k, c in enumerate(sessions, start=1):
        v = np.asarray(c.values[m.name])
        if v.size:
            colour = COLOURS[(k - 1) % len(COLOURS)]
            plot.dots(k + rng.uniform(-0.15, 0.15, v.size), v, colour, r=2.5)
            med = float(np.median(v))
            plot.line(np.array([k - 0.3, k + 0.3]), np.array([med, med]), "#222", width=2)
    return f"<figure>{plot.svg(m.name)}<figcaption>{html.escape(m.name)}</figcaption></figure>"


def build_comparison(folders: Sequence[str | Path]) -> str:
    """The comparison page of two or more analysis folders as an HTML string."""
    if len(folders) < 2:
        raise ValueError("a comparison needs two or more analysis folders")
    sessions = sorted((load_compared(f) for f in folders), key=_eye_order)
    head = ["Measure"] + [f"{k}. {c.title}" for k, c in enumerate(sessions, start=1)]
    rows = [
        [f"{m.name} (median over intervals)"]
        + [median_iqr(c.values[m.name], m.unit, m.digits) for c in sessions]
        for m in MEASURES
    ]
    rows.append(["Intervals"] + [fmt(len(c.results["intervals"])) for c in sessions])
    eyes = {c.visit.eye for c in sessions}
    mixed = (
        "<p class='note'>The sessions are of different eyes (or the eye was not entered for "
        "some): compare each eye with itself.</p>"
        if len(eyes) > 1
        else ""
    )
    legend = "".join(
        f"<li><span style='color:{COLOURS[(k - 1) % len(COLOURS)]}'>●</span> {k}. "
        f"{html.escape(c.title)} <span class='muted'>({html.escape(str(c.folder))})</span></li>"
        for k, c in enumerate(sessions, start=1)
    )
    return "\n".join(
        [
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>TFLL comparison of {len(sessions)} sessions</title>"
            f"<style>{_CSS}</style></head><body>",
            f"<h1>Tear film lipid layer: {len(sessions)} sessions compared</h1>",
            f"<p class='muted'>tfll-live {__version__}. Sessions ordered by eye (OD, OS, not "
            "entered), then by the visit's start.</p>",
            f"<ul>{legend}</ul>",
            mixed,
            "<h2>Side by side</h2>",
            _table(head, rows),
            "<p class='muted'>Each value: the median over the session's intervals, with the "
            "interquartile range (IQR: the middle half of the intervals) and the number of "
            "intervals measured (n). A change between sessions larger than the IQRs is more "
            "than the variation within a session. Spread time: until the layer slowed to a "
            "tenth of its initial speed (censored intervals, still moving at the next blink, "
            "are left out). Blink rate: 60 / each inter-blink interval.</p>",
            "<h2>Every interval</h2><div class='grid'>",
            *(_strip(sessions, m) for m in MEASURES),
            "</div></body></html>",
        ]
    )


def write_comparison(
    folders: Sequence[str | Path], out: str | Path | None = None, force: bool = False
) -> Path:
    """Write the comparison (default ``comparison.html`` in the current folder); its path.

    An existing file is replaced only with ``force``: the page may sit among the user's files.
    """
    path = Path(out) if out is not None else Path("comparison.html")
    check_output(path, force, "--out another file")
    return write_text_replacing(path, build_comparison(folders))
