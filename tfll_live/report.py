"""A session report: one self-contained HTML page from an analysis folder.

``tfll report RESULTS_DIR`` reads ``results.json`` and ``frames.csv`` (spec/analysis-output.md)
and writes ``report.html`` beside them: a summary table, the blink timeline, the displacement
over the session, the thickness over time, each interval's displacement with its fits, and the
method's parameters. Plots are inline SVG drawn here; the page needs no network, no scripts and
no fonts beyond the browser's, so it can be mailed or archived as it is.

Long sessions are decimated for drawing (every curve keeps its minimum and maximum per pixel
column, so spikes stay visible); all numbers are computed from the full data.
"""

from __future__ import annotations

import html
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .blinkstats import BlinkStats, blink_stats
from .io import (
    StreamError,
    check_output,
    one_line,
    read_frames_csv,
    read_results,
    write_text_replacing,
)
from .kinetics import (
    MIN_CHOICE_S,
    MODELS_APART_PX,
    SMOOTH_FRACTION,
    SMOOTH_MIN_S,
    THRESHOLD,
    analyze_spread,
    model_word,
)
from .thickness import thickness_summary
from .visit import Visit

MAX_INTERVAL_PLOTS = 60  # a 10-minute session has ~100 intervals; the table lists them all
MAX_POINTS = 600  # per curve after decimation (min/max pairs per column)

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px auto;max-width:1000px;color:#222}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 8px;border-bottom:1px solid #eee;
text-align:right}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
.note{background:#fff6dd;border-left:4px solid #e0b000;padding:6px 10px;margin:8px 0}
.grid{display:flex;flex-wrap:wrap;gap:8px}.grid figure{margin:0}figcaption{font-size:12px}
svg text{font:11px system-ui,sans-serif;fill:#333}.muted{color:#777}
.identity{font-size:15px}dl.glossary dt{font-weight:600;margin-top:6px}
dl.glossary dd{margin-left:18px}
"""


# -- formatting ----------------------------------------------------------------------------------
def fmt(value: float | int | None, unit: str = "", digits: int = 2) -> str:
    """A number with its unit, or an em dash when unknown."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return str(value)  # not a number after all (a crafted file): shown as the text it is
    text = f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"
    return f"{text} {unit}".strip()


def median_iqr(values: Sequence[float], unit: str, digits: int) -> str:
    """A spread of values in one cell: median (IQR q1–q3, n count), or an em dash."""
    if not len(values):
        return "—"
    q1, med, q3 = np.percentile(values, [25, 50, 75])
    return (
        f"{fmt(float(med), unit, digits)} (IQR {fmt(float(q1), '', digits)}–"
        f"{fmt(float(q3), '', digits)}, n {len(values)})"
    )


def _median(values: Iterable[float | None]) -> float | None:
    v = [x for x in values if x is not None and math.isfinite(x)]
    return statistics.median(v) if v else None


# -- SVG -----------------------------------------------------------------------------------------
def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not hi > lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + k * step for k in range(int((hi - first) / step + 1e-9) + 1)]


def decimate(
    x: np.ndarray, y: np.ndarray, columns: int = MAX_POINTS // 2
) -> tuple[np.ndarray, np.ndarray]:
    """At most ``2*columns`` points: the min and max of ``y`` in each of ``columns`` x-bins.

    NaNs split a curve into pieces, so they are kept (one per bin that has only NaN).
    """
    if x.size <= 2 * columns:
        return x, y
    bins = np.minimum(((x - x[0]) / (x[-1] - x[0] + 1e-12) * columns).astype(int), columns - 1)
    edges = np.flatnonzero(np.diff(bins)) + 1
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for seg_x, seg_y in zip(np.split(x, edges), np.split(y, edges), strict=True):
        ok = np.isfinite(seg_y)
        if not ok.any():
            xs.append(seg_x[:1])
            ys.append(np.array([np.nan]))
            continue
        i, j = np.nanargmin(seg_y), np.nanargmax(seg_y)
        order = sorted({int(i), int(j)})
        xs.append(seg_x[order])
        ys.append(seg_y[order])
    return np.concatenate(xs), np.concatenate(ys)


@dataclass
class Plot:
    """A small line/marker chart drawn as inline SVG (no libraries, no scripts)."""

    x_range: tuple[float, float]
    y_range: tuple[float, float]
    width: int = 900
    height: int = 220
    x_label: str = ""
    y_label: str = ""
    invert_y: bool = False
    y_ticks: bool = True
    y_pad: float = 0.05  # share of the y range added above and below, so lines clear the frame
    # what each series is, drawn above the plot: (label, colour, "line" | "dash" | "dot" | "box")
    legend: Sequence[tuple[str, str, str]] = ()
    # a second y axis on the right in other units (µm beside px): its value = y * y2_scale
    y2_scale: float | None = None
    y2_label: str = ""

    def __post_init__(self) -> None:
        self._parts: list[str] = []
        # left, right, top, bottom margins (the legend goes in the top one, never over data)
        self._m = (52, 52 if self.y2_scale else 12, 24 if self.legend else 16, 34)
        lo, hi = self.y_range
        if not hi > lo:
            lo, hi = lo - 1.0, hi + 1.0
        pad = self.y_pad * (hi - lo)
        self.y_range = (lo - pad, hi + pad)
        lo, hi = self.x_range
        if not hi > lo:
            self.x_range = (lo, lo + 1.0)

    def _px(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        left, right, top, bottom = self._m
        (x0, x1), (y0, y1) = self.x_range, self.y_range
        px = left + (np.asarray(x, float) - x0) / (x1 - x0) * (self.width - left - right)
        fy = (np.asarray(y, float) - y0) / (y1 - y0)
        if not self.invert_y:
            fy = 1.0 - fy
        return px, top + fy * (self.height - top - bottom)

    def line(
        self,
        x: np.ndarray,
        y: np.ndarray,
        colour: str,
        width: float = 1.2,
        dash: str = "",
        kind: str = "data",
    ) -> None:
        """A polyline, broken at NaNs; ``kind`` (``data``, ``fit``) is its SVG class."""
        x, y = decimate(np.asarray(x, float), np.asarray(y, float))
        px, py = self._px(x, y)
        ok = np.isfinite(py)
        runs = np.split(np.arange(px.size), np.flatnonzero(np.diff(ok.astype(int))) + 1)
        style = f' stroke-dasharray="{dash}"' if dash else ""
        for run in runs:
            if run.size > 1 and ok[run[0]]:
                pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px[run], py[run], strict=True))
                self._parts.append(
                    f'<polyline class="{kind}" fill="none" stroke="{colour}" '
                    f'stroke-width="{width}"{style} points="{pts}"/>'
                )

    def dots(
        self, x: np.ndarray, y: np.ndarray, colour: str, r: float = 1.4, opacity: float = 1.0
    ) -> None:
        """Measured values as markers (decimated like lines).

        Drawn in the order called: call after the fits, so the data stay on top.
        """
        x, y = decimate(np.asarray(x, float), np.asarray(y, float))
        px, py = self._px(x, y)
        alpha = f' fill-opacity="{opacity:g}"' if opacity < 1 else ""
        self._parts.extend(
            f'<circle class="data" cx="{a:.1f}" cy="{b:.1f}" r="{r}" fill="{colour}"{alpha}/>'
            for a, b in zip(px, py, strict=True)
            if math.isfinite(b)
        )

    def span(
        self,
        x0: float,
        x1: float,
        colour: str,
        title: str = "",
        y0: float | None = None,
        y1: float | None = None,
    ) -> None:
        """A shaded band between two x values (full height unless y0/y1 are given)."""
        lo, hi = self.y_range
        px, py = self._px(
            np.array([x0, x1]), np.array([lo if y0 is None else y0, hi if y1 is None else y1])
        )
        top, h = min(py), abs(py[1] - py[0])
        tip = f"<title>{html.escape(title)}</title>" if title else ""
        wide = max(px[1] - px[0], 1.0)
        self._parts.append(
            f'<rect x="{px[0]:.1f}" y="{top:.1f}" width="{wide:.1f}"'
            f' height="{h:.1f}" fill="{colour}">{tip}</rect>'
        )

    def svg(self, title: str = "") -> str:
        """The finished SVG element with axes, ticks and labels."""
        left, right, top, bottom = self._m
        w, h = self.width, self.height
        axes = [
            f'<rect x="{left}" y="{top}" width="{w - left - right}" '
            f'height="{h - top - bottom}" fill="none" stroke="#999"/>'
        ]
        for tx in _nice_ticks(*self.x_range, n=8):
            px, _ = self._px(np.array([tx]), np.array([self.y_range[0]]))
            axes.append(
                f'<line x1="{px[0]:.1f}" x2="{px[0]:.1f}" y1="{h - bottom}" '
                f'y2="{h - bottom + 4}" stroke="#999"/><text x="{px[0]:.1f}" '
                f'y="{h - bottom + 15}" text-anchor="middle">{tx:g}</text>'
            )
        for ty in _nice_ticks(*self.y_range, n=4) if self.y_ticks else []:
            _, py = self._px(np.array([self.x_range[0]]), np.array([ty]))
            axes.append(
                f'<line x1="{left - 4}" x2="{left}" y1="{py[0]:.1f}" y2="{py[0]:.1f}" '
                f'stroke="#999"/><text x="{left - 6}" y="{py[0] + 4:.1f}" '
                f'text-anchor="end">{ty:g}</text>'
            )
        if self.y2_scale:
            lo, hi = self.y_range
            scale = self.y2_scale
            for tu in _nice_ticks(lo * scale, hi * scale, n=4):
                _, py = self._px(np.array([self.x_range[0]]), np.array([tu / scale]))
                axes.append(
                    f'<line x1="{w - right}" x2="{w - right + 4}" y1="{py[0]:.1f}" '
                    f'y2="{py[0]:.1f}" stroke="#999"/><text x="{w - right + 6}" '
                    f'y="{py[0] + 4:.1f}" text-anchor="start">{tu:g}</text>'
                )
            mid = (top + h - bottom) / 2
            axes.append(
                f'<text x="{w - 8}" y="{mid}" text-anchor="middle" '
                f'transform="rotate(90 {w - 8} {mid})">{html.escape(self.y2_label)}</text>'
            )
        axes.append(self._legend())
        axes.append(
            f'<text x="{(left + w - right) / 2}" y="{h - 3}" text-anchor="middle">'
            f"{html.escape(self.x_label)}</text>"
        )
        axes.append(
            f'<text x="12" y="{(top + h - bottom) / 2}" text-anchor="middle" '
            f'transform="rotate(-90 12 {(top + h - bottom) / 2})">'
            f"{html.escape(self.y_label)}</text>"
        )
        label = f' aria-label="{html.escape(title)}"' if title else ""
        return (
            f'<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img"{label}>'
            + "".join(self._parts + axes)
            + "</svg>"
        )


    def _legend(self) -> str:
        """The legend in the top margin: a swatch and a label per series, left to right."""
        if not self.legend:
            return ""
        x, y = float(self._m[0]), 12.0
        items = []
        for label, colour, kind in self.legend:
            if kind == "dot":
                swatch = f'<circle cx="{x + 7:.1f}" cy="{y - 4}" r="2.5" fill="{colour}"/>'
            elif kind == "box":
                swatch = f'<rect x="{x:.1f}" y="{y - 8}" width="14" height="8" fill="{colour}"/>'
            else:
                dash = ' stroke-dasharray="4 3"' if kind == "dash" else ""
                swatch = (
                    f'<line x1="{x:.1f}" x2="{x + 14:.1f}" y1="{y - 4}" y2="{y - 4}" '
                    f'stroke="{colour}" stroke-width="2"{dash}/>'
                )
            items.append(
                f'{swatch}<text x="{x + 18:.1f}" y="{y}">{html.escape(label)}</text>'
            )
            x += 18 + 6.0 * len(label) + 12  # about 6 px a character at 11 px
        return f'<g class="legend">{"".join(items)}</g>'


# -- the report ----------------------------------------------------------------------------------
@dataclass
class _Session:
    results: dict[str, Any]
    frames: dict[str, np.ndarray] | None
    missing: list[str]


def load_session(results_dir: str | Path) -> _Session:
    """results.json (required) and frames.csv (optional: the report says it is missing)."""
    path = Path(results_dir)
    if not path.exists():
        raise StreamError(f"{path}: no such results folder")
    results = read_results(path)
    for key in ("fps", "n_frames", "blinks", "intervals"):
        if key not in results:
            raise StreamError(f"{path}/results.json: no {key!r} field (not a complete analysis)")
    problem = results_problem(results)
    if problem is not None:
        raise StreamError(f"{path}/results.json: malformed: {problem}")
    missing = []
    try:
        frames: dict[str, np.ndarray] | None = read_frames_csv(path)
    except StreamError as e:
        frames = None
        missing.append(
            f"frames.csv could not be used ({e}): no curves, thickness or per-frame "
            "times; the numbers below come from results.json alone"
        )
    if "incomplete" in results:
        inc = results["incomplete"]
        missing.append(
            f"the analysis stopped early: {inc.get('reason', '') if isinstance(inc, dict) else inc}"
        )
    return _Session(results, frames, missing)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _show(v: object) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


_KINETICS_NUMBERS = (
    "tau_s",
    "spread_time_s",
    "initial_velocity_px_s",
    "amplitude_px",
    "drift_px_s",
    "delta_bic",
    "duration_s",
)


def _frames_problem(what: str, item: object, fields: tuple[str, ...]) -> str | None:
    if not isinstance(item, dict):
        return f"{what} is {_show(item)}, not an object"
    for key in fields:
        if not _is_int(item.get(key)) or item[key] < 0:
            return f"{what}.{key} is {_show(item.get(key))}, not a frame number"
    if item["start_frame"] > item["end_frame"]:
        return f"{what} ends (frame {item['end_frame']}) before it starts"
    return None


def _kinetics_problem(what: str, kin: object) -> str | None:
    if not isinstance(kin, dict):
        return f"{what} is {_show(kin)}, not an object"
    if not isinstance(kin.get("model"), str):
        return f"{what}.model is {_show(kin.get('model'))}, not a model name"
    for key in _KINETICS_NUMBERS:
        if kin.get(key) is not None and not _is_number(kin[key]):
            return f"{what}.{key} is {_show(kin[key])}, not a number"
    fits = kin.get("fits")
    if not isinstance(fits, dict):
        return f"{what}.fits is {_show(fits)}, not an object"
    for name, fit in fits.items():
        if fit is None:
            continue
        if not isinstance(fit, dict) or not all(_is_number(fit.get(c)) for c in "abcd"):
            return f"{what}.fits.{name} is {_show(fit)}, not the numbers a, b, c, d"
    return None


def results_problem(res: dict[str, Any]) -> str | None:
    """What in a results.json the report cannot use as the spec defines it, or None.

    Checked before anything is drawn: a crafted or damaged file is refused in one line
    instead of failing half-way (or reaching the page as markup).
    """
    if not _is_number(res["fps"]) or not math.isfinite(res["fps"]) or res["fps"] <= 0:
        return f"fps is {_show(res['fps'])}, not a positive number"
    if not _is_int(res["n_frames"]) or res["n_frames"] < 0:
        return f"n_frames is {_show(res['n_frames'])}, not a count of frames"
    shape = res.get("frame_shape", [])
    if not isinstance(shape, list) or not all(_is_int(v) and v > 0 for v in shape):
        return f"frame_shape is {_show(shape)}, not a list of sizes"
    if not isinstance(res["blinks"], list):
        return f"blinks is {_show(res['blinks'])}, not a list"
    for k, b in enumerate(res["blinks"]):
        problem = _frames_problem(f"blinks[{k}]", b, ("start_frame", "end_frame"))
        if problem is None and not isinstance(b.get("complete"), bool):
            problem = f"blinks[{k}].complete is {_show(b.get('complete'))}, not true or false"
        if problem is not None:
            return problem
    if not isinstance(res["intervals"], list):
        return f"intervals is {_show(res['intervals'])}, not a list"
    for k, iv in enumerate(res["intervals"]):
        what = f"intervals[{k}]"
        problem = _frames_problem(what, iv, ("start_frame", "end_frame"))
        if problem is None and iv.get("kinetics") is not None:
            problem = _kinetics_problem(f"{what}.kinetics", iv["kinetics"])
        spread = iv.get("spread") if isinstance(iv, dict) else None
        if problem is None and spread is not None:
            if not isinstance(spread, dict):
                problem = f"{what}.spread is {_show(spread)}, not an object"
            else:
                bad = [
                    key
                    for key in ("tau_s", "amplitude_px", "r2")
                    if spread.get(key) is not None and not _is_number(spread[key])
                ]
                if bad:
                    problem = f"{what}.spread.{bad[0]} is {_show(spread[bad[0]])}, not a number"
        if problem is not None:
            return problem
    try:
        Visit.from_json(res.get("visit"))
    except (TypeError, ValueError) as e:
        return str(e)
    return None


def _interval_series(
    frames: dict[str, np.ndarray], iv: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Times since the interval's first frame, displacement, thickness of one interval."""
    f = frames["frame"]
    sel = (f >= iv["start_frame"]) & (f <= iv["end_frame"]) & (frames["state"] == "open")
    t = frames["time_s"][sel]
    t0 = t[0] if t.size else 0.0
    return t - t0, frames["lipid_dy_px"][sel], frames["lipid_thickness_nm"][sel]


def _kinetics(session: _Session) -> list[dict[str, Any] | None]:
    """Each interval's kinetics: from results.json when recorded there, else from frames.csv."""
    out: list[dict[str, Any] | None] = []
    for iv in session.results["intervals"]:
        if iv.get("kinetics") is not None:
            out.append(iv["kinetics"])
        elif session.frames is not None:
            t, y, _ = _interval_series(session.frames, iv)
            k = analyze_spread(t, y) if t.size else None
            out.append(None if k is None else k.to_json())
        else:
            out.append(None)
    return out


def build_report(results_dir: str | Path) -> str:
    """The report of one analysis folder as an HTML string.

    A results.json that passes ``results_problem`` yet holds something else unusable is
    still refused in one line rather than as an unexpected error.
    """
    session = load_session(results_dir)
    try:
        return _page(session)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise StreamError(
            f"{Path(results_dir)}/results.json: malformed ({type(e).__name__}: {one_line(e)})"
        ) from e


def _page(session: _Session) -> str:
    """The page of a loaded session."""
    res, frames = session.results, session.frames
    fps, n_frames = float(res["fps"]), int(res["n_frames"])
    times = frames["time_s"] if frames is not None and frames["time_s"].size == n_frames else None
    if times is not None and not np.all(np.isfinite(times)):
        times = None
    stats = blink_stats(res["blinks"], fps, max(n_frames, 1), time_s=times)
    kinetics = _kinetics(session)
    thick = _session_thickness(res, frames)
    visit = Visit.from_json(res.get("visit"))

    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>TFLL session report: {html.escape(str(res.get('source', '')))}</title>"
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Tear film lipid layer: session report</h1>"
        f"<p><b>{html.escape(str(res.get('source', '')))}</b> — {fmt(n_frames)} frames at "
        f"{fmt(fps, 'frames/s', 1)}, {fmt(stats.duration_s, 's', 1)}, frame "
        f"{html.escape('×'.join(str(v) for v in res.get('frame_shape', [])))} px. "
        f"<span class='muted'>tfll-live {__version__}, {html.escape(str(res['schema']))}"
        f"</span></p>",
        _identity(res, visit),
    ]
    parts.append(_visit(visit))
    parts += [f"<p class='note'>Missing: {html.escape(m)}</p>" for m in session.missing]
    parts.append(_summary_table(stats, kinetics, thick, res))
    parts.append(_timeline(res, stats, fps, times))
    if frames is not None:
        parts.append(_displacement(frames, res))
        parts.append(_thickness(frames))
        parts.append(_interval_plots(frames, res, kinetics))
    parts.append(_interval_table(res, kinetics, frames, fps))
    parts.append(_glossary(res))
    parts.append(_method(res))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(results_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the report (default ``RESULTS_DIR/report.html``) and return its path."""
    page = build_report(results_dir)
    path = Path(out) if out is not None else Path(results_dir) / "report.html"
    check_output(path, force=True)  # a link is refused; the report itself is rebuilt freely
    return write_text_replacing(path, page)


# -- sections ------------------------------------------------------------------------------------
def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    # every cell is text: whatever a file put in it reaches the page as text, never markup
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _utc_text(iso: object) -> str | None:
    """An ISO 8601 time as "2026-03-01 09:30 UTC" (a text that is not one: as it is)."""
    if not isinstance(iso, str) or not iso:
        return None
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if when.tzinfo is not None:
        when = when.astimezone(timezone.utc)
    return when.strftime("%Y-%m-%d %H:%M UTC")


def _identity(res: dict[str, Any], visit: Visit) -> str:
    """The first line a reader looks for: when, whom and which eye (only what was stored)."""
    eyes = {"OD": "OD (right)", "OS": "OS (left)"}
    if visit.started_utc:
        date, source = _utc_text(visit.started_utc), "visit started"
    else:
        date, source = _utc_text(res.get("recorded_utc")), "recording started"
    items = [
        f"<b>Date</b> {html.escape(date)} <span class='muted'>({source})</span>"
        if date
        else "<b>Date</b> not stored <span class='muted'>(the file carries no recording "
        "time, and the time of an analysis is not the visit's)</span>"
    ]
    if visit.patient_id is not None:
        items.append(f"<b>Patient</b> {html.escape(visit.patient_id)}")
    if visit.eye is not None:
        items.append(f"<b>Eye</b> {html.escape(eyes.get(visit.eye, visit.eye))}")
    if visit.patient_id is None and visit.eye is None:
        items.append("<span class='muted'>patient and eye not entered</span>")
    return f"<p class='identity'>{' · '.join(items)}</p>"


def _ordinal(k: int) -> str:
    return f"{k}{'th' if 10 <= k % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(k % 10, 'th')}"


def _estimates_word(res: dict[str, Any]) -> str:
    """What a thickness count counts: the tracker's estimates, made every n-th open frame."""
    tracker = res.get("tracker")
    every = tracker.get("thickness_every") if isinstance(tracker, dict) else None
    if _is_int(every) and every > 1:
        return f"estimates (one every {_ordinal(every)} open frame)"
    return "estimates"


def _thickness_of(obj: object) -> dict[str, float | int] | None:
    """A thickness summary (``median_nm``, ``iqr_nm``, ``n_frames``) as results.json has it."""
    if not isinstance(obj, dict) or obj.get("available") is False:
        return None
    keys = ("median_nm", "iqr_nm", "n_frames")
    if not all(_is_number(obj.get(k)) for k in keys):
        return None
    return {k: obj[k] for k in keys}


def _session_thickness(
    res: dict[str, Any], frames: dict[str, np.ndarray] | None
) -> tuple[dict[str, float | int], str] | None:
    """The session's thickness and what its count counts.

    results.json's own (the tracker's estimates, so the report's count is results.json's
    ``thickness.n_frames``); for a file without it, frames.csv's values, whose frames repeat
    the last estimate in between, and the label says so.
    """
    own = _thickness_of(res.get("thickness"))
    if own is not None:
        return own, _estimates_word(res)
    if frames is None:
        return None
    summary = thickness_summary(frames["lipid_thickness_nm"].tolist())
    return None if summary is None else (summary, "frames with a value in frames.csv")


def _visit(visit: Visit) -> str:
    """The visit as entered, and which of its fields the files hold (nothing is guessed)."""
    eyes = {"OD": "OD (right eye)", "OS": "OS (left eye)"}
    rows = [
        ("Patient ID", visit.patient_id),
        ("Eye", eyes.get(visit.eye or "", visit.eye)),
        ("Operator", visit.operator),
        ("Visit started (UTC)", visit.started_utc),
        ("Notes", visit.notes),
    ]
    table = _table(("Visit", ""), [(k, v) for k, v in rows if v is not None])
    return (
        "<h2>Visit</h2>"
        + (table if visit.entered else "")
        + f"<p class='muted'>{html.escape(visit.stored_text().capitalize())}.</p>"
    )


def _um(px: float | None, size: float) -> float | None:
    return None if px is None else px * size


def _summary_table(
    stats: BlinkStats,
    kinetics: list[dict[str, Any] | None],
    thickness: tuple[dict[str, float | int], str] | None,
    res: dict[str, Any],
) -> str:
    ks = [k for k in kinetics if k]
    ibi = stats.to_json()["inter_blink_interval_s"]
    dur = stats.to_json()["blink_duration_s"]
    n_drift = sum(1 for k in ks if k["model"].endswith("d*t"))
    n_cens = sum(1 for k in ks if k.get("spread_censored"))
    n_short = sum(1 for k in ks if k.get("model_decidable") is False)  # absent in older files
    size = res.get("pixel_size_um") if _is_number(res.get("pixel_size_um")) else None
    v0 = _median(k["initial_velocity_px_s"] for k in ks)
    amp = _median(k["amplitude_px"] for k in ks)
    calibrated = isinstance(res.get("thickness"), dict) and res["thickness"].get("calibration")
    thick, counted = thickness if thickness is not None else (None, "")
    rows = [
        ("Blinks", fmt(stats.n_blinks), f"{fmt(stats.n_partial)} partial"),
        ("Blink rate", fmt(stats.blink_rate_per_min, "/min", 1), ""),
        (
            "Partial blinks",
            fmt(None if stats.partial_share is None else 100 * stats.partial_share, "%", 0),
            "",
        ),
        (
            "Inter-blink interval (median)",
            fmt(ibi["median"], "s"),  # type: ignore[index]
            f"mean {fmt(ibi['mean'], 's')}, sd {fmt(ibi['sd'], 's')}",  # type: ignore[index]
        ),
        ("Blink duration (median)", fmt(dur["median"], "s", 3), ""),  # type: ignore[index]
        ("Intervals", fmt(len(res["intervals"])), f"{fmt(len(ks))} with kinetics"),
        (
            "Spread time (median)",
            fmt(_median(k["spread_time_s"] for k in ks), "s"),
            f"{fmt(n_cens)} censored (layer still moving at the next blink)",
        ),
        ("Time constant τ (median)", fmt(_median(k["tau_s"] for k in ks), "s"), ""),
        (
            "Initial velocity (median)",
            fmt(v0, "px/s", 1),
            "upward" if size is None else f"upward, {fmt(_um(v0, size), 'µm/s', 1)}",
        ),
        (
            "Amplitude (median)",
            fmt(amp, "px", 1),
            "upward travel" if size is None else f"upward travel, {fmt(_um(amp, size), 'µm', 1)}",
        ),
        (
            "Drift model chosen",
            f"{fmt(n_drift)} of {fmt(len(ks) - n_short)}",
            f"by BIC (see the glossary), for a physical creep; {fmt(n_short)} too short "
            "to tell",
        ),
        (
            "Lipid thickness (median)",
            fmt(None if thick is None else thick["median_nm"], "nm", 0),
            ""
            if thick is None
            else f"IQR {fmt(thick['iqr_nm'], 'nm', 0)} over {fmt(thick['n_frames'])} {counted}"
            + ("" if calibrated else "; uncalibrated (no camera calibration loaded)"),
        ),
        (
            "Pixel size",
            fmt(size, "µm", 3),
            "µm beside px" if size else "not known: displacements in px only",
        ),
    ]
    return "<h2>Summary</h2>" + _table(("Measure", "Value", ""), rows)


def _timeline(res: dict[str, Any], stats: BlinkStats, fps: float, times: np.ndarray | None) -> str:
    def at(frame: int) -> float:
        return float(times[min(frame, times.size - 1)]) if times is not None else frame / fps

    plot = Plot(
        (0.0, stats.duration_s),
        (0.0, 1.0),
        height=100,
        x_label="time (s)",
        y_ticks=False,
        y_pad=0.0,
        legend=(
            ("complete blink", "#333", "box"),
            ("partial blink", "#e08a00", "box"),
            ("open-eye interval", "#dfeedd", "box"),
        ),
    )
    for iv in res["intervals"]:
        plot.span(
            at(iv["start_frame"]),
            at(iv["end_frame"]) + 1 / fps,
            "#dfeedd",
            f"interval {iv['start_frame']}-{iv['end_frame']}",
        )
    for b in res["blinks"]:
        kind = "complete" if b["complete"] else "partial"
        plot.span(
            at(b["start_frame"]),
            at(b["end_frame"]) + 1 / fps,
            "#333" if b["complete"] else "#e08a00",
            f"{kind} blink, frames {b['start_frame']}-{b['end_frame']}",
            y0=0.0 if b["complete"] else 0.5,
            y1=1.0,
        )
    return (
        "<h2>Blink timeline</h2><p class='muted'>Complete blinks dark (full height), "
        "partial blinks orange (half height), open-eye intervals green.</p>"
        + plot.svg("blink timeline")
    )


def _pixel_size(res: dict[str, Any]) -> float | None:
    """The pixel size in µm when results.json gives a usable one (µm beside px), else None."""
    size = res.get("pixel_size_um")
    return float(size) if _is_number(size) and math.isfinite(size) and size > 0 else None


UPWARD_NOTE = (
    "Drawn upward positive: the plots show the layer's travel up the eye; the files keep image "
    "coordinates (y down), where the same travel is a negative lipid_dy_px."
)


def _displacement(frames: dict[str, np.ndarray], res: dict[str, Any]) -> str:
    t, up = frames["time_s"], -frames["lipid_dy_px"]  # upward positive for reading
    ok = np.isfinite(up)
    if not ok.any():
        return "<h2>Lipid displacement</h2><p class='note'>No lipid displacement in frames.csv.</p>"
    size = _pixel_size(res)
    plot = Plot(
        (float(np.nanmin(t)), float(np.nanmax(t))),
        (float(np.nanmin(up[ok])), float(np.nanmax(up[ok]))),
        x_label="time (s)",
        y_label="upward travel (px)",
        legend=(("measured upward travel of the layer (relative to the eye)", "#1f5fa8", "line"),),
        y2_scale=size,
        y2_label="upward travel (µm)",
    )
    plot.line(t, up, "#1f5fa8")
    return (
        "<h2>Lipid displacement over the session</h2><p class='muted'>Vertical travel of "
        "the layer relative to the eye since each interval's start. "
        + html.escape(UPWARD_NOTE)
        + "</p>"
        + plot.svg("lipid displacement")
    )


def _thickness(frames: dict[str, np.ndarray]) -> str:
    t, d = frames["time_s"], frames["lipid_thickness_nm"]
    if not np.isfinite(d).any():
        return (
            "<h2>Lipid layer thickness</h2><p class='note'>No thickness in frames.csv: "
            "a mono camera gives none (thickness needs colour), or it was not estimated."
            "</p>"
        )
    lo, hi = np.nanpercentile(d, [1, 99])
    plot = Plot(
        (float(np.nanmin(t)), float(np.nanmax(t))),
        (float(lo) - 5, float(hi) + 5),
        x_label="time (s)",
        y_label="thickness (nm)",
        legend=(("median thickness over the tracked region", "#8a3ab9", "line"),),
    )
    plot.line(t, d, "#8a3ab9")
    return (
        "<h2>Lipid layer thickness</h2><p class='muted'>Median over the tracked region, "
        "per frame (each estimate holds until the next).</p>" + plot.svg("lipid thickness")
    )


FIT_STYLES = (("paper", "#c0392b", "", "paper fit"), ("drift", "#2e7d32", "4 3", "drift fit"))
DATA_COLOUR = "#1f4f8a"


def _interval_plots(
    frames: dict[str, np.ndarray], res: dict[str, Any], kinetics: list[dict[str, Any] | None]
) -> str:
    figs = []
    size = _pixel_size(res)
    legend = (("measured", DATA_COLOUR, "dot"), *((w, c, "dash" if d else "line")
                                                  for _, c, d, w in FIT_STYLES))
    for k, (iv, kin) in enumerate(zip(res["intervals"], kinetics, strict=True)):
        if k >= MAX_INTERVAL_PLOTS:
            break
        t, dy, _ = _interval_series(frames, iv)
        up = -dy  # upward positive for reading; the fits are in dy, negated alike
        ok = np.isfinite(up)
        if ok.sum() < 2:
            continue
        plot = Plot(
            (0.0, float(t[-1])),
            (float(up[ok].min()), float(up[ok].max())),
            width=320,
            height=180,
            x_label="s since opening",
            y_label="upward travel (px)",
            legend=legend,
            y2_scale=size,
            y2_label="(µm)",
        )
        tt = np.linspace(0.0, float(t[-1]), 80)
        if kin:  # the fits first, the measured data over them
            for name, colour, dash, _ in FIT_STYLES:
                f = kin["fits"].get(name)
                if f:
                    fit_dy = f["a"] * np.exp(-f["b"] * tt) + f["c"] + f["d"] * tt
                    plot.line(tt, -fit_dy, colour, 1.6, dash, kind="fit")
        # on top, see-through where dense, so a fit under many points still shows
        plot.dots(t, up, DATA_COLOUR, r=1.6, opacity=0.55)
        caption = (
            f"#{k}: τ {fmt(kin['tau_s'], 's')}, spread time {fmt(kin['spread_time_s'], 's')}, "
            f"model {model_word(kin['model'], kin.get('model_decidable', True))}"
            if kin
            else f"#{k}: no fit"
        )
        figs.append(
            f"<figure>{plot.svg(f'interval {k}')}<figcaption>{html.escape(caption)}"
            "</figcaption></figure>"
        )
    more = len(res["intervals"]) - MAX_INTERVAL_PLOTS
    note = (
        (
            f"<p class='muted'>First {MAX_INTERVAL_PLOTS} intervals drawn; all "
            f"{len(res['intervals'])} are in the table.</p>"
        )
        if more > 0
        else ""
    )
    return (
        "<h2>Intervals: displacement and fits</h2><p class='muted'>Dots: measured upward "
        "travel, drawn over the fits; red: paper fit a·exp(−b·t)+c; green dashed: drift fit "
        "a·exp(−b·t)+c+d·t. " + html.escape(UPWARD_NOTE) + "</p>" + note
        + f"<div class='grid'>{''.join(figs)}</div>"
    )


def _with_um(value: float | None, unit: str, digits: int, size: float | None) -> str:
    """A px value, with its µm twin beside it when the pixel size is known."""
    text = fmt(value, unit, digits)
    if size is None or value is None or not _is_number(value):
        return text
    return f"{text} ({fmt(value * size, unit.replace('px', 'µm'), digits)})"


def _interval_table(
    res: dict[str, Any],
    kinetics: list[dict[str, Any] | None],
    frames: dict[str, np.ndarray] | None,
    fps: float,
) -> str:
    rows = []
    size = _pixel_size(res)
    counted = _estimates_word(res).split(" (")[0]
    for k, (iv, kin) in enumerate(zip(res["intervals"], kinetics, strict=True)):
        # results.json's own (the tracker's estimates), else frames.csv's values
        thick = _thickness_of(iv.get("thickness"))
        what = counted
        if thick is None and "thickness" not in iv and frames is not None:
            thick = thickness_summary(_interval_series(frames, iv)[2].tolist())
            what = "frames"
        spread = iv.get("spread") or {}
        st = (
            "—"
            if not kin
            else (
                f"> {fmt(kin['duration_s'], 's')} (censored)"
                if kin["spread_censored"]
                else fmt(kin["spread_time_s"], "s")
            )
        )
        rows.append(
            (
                f"{k}",
                fmt(iv["start_frame"] / fps, "s"),
                fmt((iv["end_frame"] - iv["start_frame"] + 1) / fps, "s"),
                "—" if not kin else model_word(kin["model"], kin.get("model_decidable", True)),
                fmt(kin["tau_s"], "s") if kin else fmt(spread.get("tau_s"), "s"),
                _with_um(
                    kin["amplitude_px"] if kin else spread.get("amplitude_px"), "px", 1, size
                ),
                _with_um(kin["initial_velocity_px_s"], "px/s", 1, size) if kin else "—",
                st,
                _with_um(kin["drift_px_s"], "px/s", 2, size) if kin else "—",
                fmt(kin["delta_bic"], "", 1) if kin else "—",
                fmt(spread.get("r2"), "", 3),
                "—"
                if thick is None
                else f"{fmt(thick['median_nm'], 'nm', 0)} (IQR {fmt(thick['iqr_nm'], 'nm', 0)}, "
                f"{fmt(thick['n_frames'])} {what})",
            )
        )
    return (
        "<h2>Intervals</h2><p class='muted'>Amplitude, initial velocity and drift are upward "
        "(positive: up the eye)" + (", µm in brackets" if size else "") + ".</p>"
        + _table(
            (
                "#",
                "start",
                "duration",
                "model",
                "τ",
                "amplitude",
                "initial velocity",
                "spread time",
                "drift",
                "ΔBIC",
                "r² (paper fit)",
                "thickness",
            ),
            rows,
        )
    )


def _glossary(res: dict[str, Any]) -> str:
    """What the report's terms and labels mean, in a clinician's words."""
    every = _estimates_word(res)
    terms = (
        ("interval", "an open-eye period between two blinks, in which the layer is tracked"),
        (
            "upward travel",
            "how far the lipid layer has moved up the eye, relative to the eye, since the "
            "interval began; the plots draw it upward positive (results files keep image "
            "coordinates, y down, where it is a negative lipid_dy_px)",
        ),
        (
            "paper fit",
            "the spread fitted as a·exp(−b·t)+c, the model of Kothapalli et al. (2022)",
        ),
        (
            "drift fit",
            "a·exp(−b·t)+c+d·t: the same decay with a steady creep d (King-Smith et al. 2009)",
        ),
        (
            "model: paper / drift",
            "which of the two fits describes the interval better, chosen by BIC",
        ),
        (
            "paper?",
            f"the interval is shorter than {MIN_CHOICE_S:g} s, too short to choose a model: "
            "the paper's model is used by default, not chosen",
        ),
        (
            "BIC, by BIC, ΔBIC",
            "the Bayesian information criterion, which weighs how well a fit follows the data "
            "against how many parameters it uses (lower is better); ΔBIC = BIC(paper) − "
            "BIC(drift): above 0 favours the drift fit",
        ),
        (
            "τ (tau), time constant",
            "1/b of the chosen fit: the time in which the spread still to come falls to 37% "
            "(1/e); a small τ is a fast spread",
        ),
        ("amplitude", "how far the layer travels up in the decay (|c − start| of the fit)"),
        (
            "initial velocity",
            "the layer's upward speed as the eye opens, from the chosen fit (a·b − d)",
        ),
        ("drift", "the steady upward creep after the decay (d of the drift fit; 0 for paper)"),
        (
            "spread time",
            f"the time until the layer's upward speed falls below {THRESHOLD:.0%} of its "
            "initial speed for good, measured from the data",
        ),
        (
            "censored",
            "the layer was still moving at the next blink, so the spread time is only known to "
            "be longer than the interval (shown as > duration)",
        ),
        ("r²", "the share of the displacement's variation that the paper fit explains (1: all)"),
        (
            "complete / partial blink",
            "a partial blink is one whose lid did not cover the tracked region; a complete "
            "blink did",
        ),
        ("blink rate", "blinks per minute over the session"),
        ("inter-blink interval", "from the end of one blink to the start of the next"),
        (
            "thickness median / IQR",
            "the middle value of the lipid thickness estimates, and their interquartile range "
            "(the spread of the middle half: 75th minus 25th percentile), in nm",
        ),
        (
            "thickness estimates",
            f"the count behind a thickness: the tracker's {every}, as results.json counts "
            "them (thickness.n_frames); frames in between repeat the last estimate",
        ),
        ("µm beside px", "a pixel value times the camera's pixel size on the eye, when known"),
    )
    items = "".join(
        f"<dt>{html.escape(term)}</dt><dd>{html.escape(text)}</dd>" for term, text in terms
    )
    return f"<h2>Glossary</h2><dl class='glossary'>{items}</dl>"


def _listed(v: object) -> list[Any]:
    return v if isinstance(v, list) else []


def _calibration_text(thickness: Any) -> str:
    """Which camera calibration the thickness came from (results.json ``thickness.calibration``)."""
    cal = thickness.get("calibration") if isinstance(thickness, dict) else None
    if not isinstance(cal, dict):
        return "none: the camera's response as modelled, gain fitted from the session"
    gains = ", ".join(fmt(g, "", 3) for g in _listed(cal.get("gain")))
    offsets = ", ".join(fmt(o, "", 1) for o in _listed(cal.get("offset")))
    return (
        f"{cal.get('file', '?')} ({cal.get('source') or 'no source'}): gains {gains}, "
        f"black level {offsets}, film gain {fmt(cal.get('film_gain'), '', 1)}"
    )


def _method(res: dict[str, Any]) -> str:
    rows = [
        ("Spread models", "a·exp(−b·t)+c (Kothapalli 2022); a·exp(−b·t)+c+d·t (King-Smith 2009)"),
        (
            "Model choice",
            "BIC = n·ln(SSE/n) + k·ln(n) over the effective samples of correlated residuals; "
            "drift chosen when ΔBIC = BIC(paper) − BIC(drift) > 0 and the creep is physical "
            "(upward, travelling further than the noise and twice the decay's remaining tail, "
            f"its curve parting from the decay's by over {MODELS_APART_PX:g} px); "
            f"intervals under {MIN_CHOICE_S:g} s are too "
            'short to choose ("paper?")',
        ),
        (
            "Spread time",
            f"upward speed (local linear regression over ±max({SMOOTH_MIN_S} s, "
            f"{SMOOTH_FRACTION:g}·t)) minus the fitted drift falls below {THRESHOLD:.0%} of its "
            "initial value for good; censored when still above at the interval's end",
        ),
        ("Initial velocity", "the chosen model's upward speed at the eye's opening, a·b − d"),
        (
            "Thickness",
            "thin-film model air / lipid (n 1.48) / aqueous (n 1.337), camera colour "
            "response; gain and diffuse background fitted over many frames; median over the "
            "tracked region per frame",
        ),
        (
            "Blink statistics",
            "rate = blinks per minute of session; inter-blink interval = end of "
            "one blink to the start of the next; partial = lid did not cover the tracked region",
        ),
        ("Thickness calibration", _calibration_text(res.get("thickness"))),
        ("Timestamps", str(res.get("timestamps", "frame rate"))),
    ]
    tracker = res.get("tracker")
    if isinstance(tracker, dict):
        rows += [(f"tracker.{k}", str(v)) for k, v in tracker.items()]
    return "<h2>Method and parameters</h2>" + _table(("Parameter", "Value"), rows)
