"""Reader: open a recording with its analysis (or a ``tfll analyze`` folder) as napari layers.

Only this project's own files are claimed, decided by their content, so that napari asks no
question about any other TIFF or Zarr: a recording (OME-Zarr or OME-TIFF whose metadata holds
the recorder's record, which links its analysis folder) and an analysis folder (``*.tfll``
with a ``tfll-results`` results.json, naming its source stream). napari matches files by name
before it asks a reader, so the manifest names ``*.tfll`` folders only; an OME-TIFF recording
is opened through its ``.tfll`` folder (or by calling this reader). Either opens as the image
stack plus, for every frame, what was tracked in it: the pupil circle (shapes), the
pupil centre (points), the eye's motion and the lipid layer's displacement in each interval
(tracks). When the analysis also has ``tracks.csv`` (frame, point_id, x_px, y_px[, dy_px]) the
tracked lipid features themselves are shown as points and tracks; when ``frames.csv`` has lid
columns (``lid_a``, ``lid_b``, ``lid_c``) the lower lid is drawn too. Scrolling the time slider
shows what was tracked when.

Paths this reader does not handle (any other TIFF or Zarr, anything unreadable) give ``None``,
so napari tries its other readers; it never raises.
"""

from __future__ import annotations

import contextlib
import csv
import json
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tfll_live.io import (
    RESULTS_SCHEMA,
    UNTRACKED,
    FrameSource,
    StreamError,
    is_recording,
    open_stream,
    read_frames_csv,
    stream_stem,
)
from tfll_live.tracking import LidCurve

from .layer_data import displacement_colors, lid_path

LayerData = tuple[Any, dict[str, Any], str]
_STREAM_SUFFIXES = (".ome.zarr", ".ome.tiff", ".ome.tif", ".zarr", ".tiff", ".tif")
TRACK_TAIL_FRAMES = 45
TIME_AXIS_LABELS = ("time (s)", "y (px)", "x (px)")
STATE_LABELS = {"blink": "BLINK", "no_eye": "NO EYE IN VIEW", UNTRACKED: "not tracked"}


def get_reader(path: str | list[str]) -> Callable[[str | list[str]], list[LayerData]] | None:
    """Return ``read_tfll`` for this project's recordings and analysis folders, else None."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    try:
        found = find_pair(Path(path))
    except Exception:  # a reader must never raise on a path it is only asked about
        return None
    return read_tfll if found is not None else None


def find_pair(path: Path) -> tuple[Path | None, Path | None] | None:
    """(stream, analysis folder) of a recording or an analysis folder (by content); else None.

    Either may be None: an analysis folder whose stream is not beside it, a recording whose
    analysis never finished (killed; its frames.csv is still shown when there).
    """
    if _is_analysis_dir(path):
        return _source_of(path), path
    if not is_recording(path):
        return None
    linked = _record(path).get("analysis")  # the recording's own link to its analysis
    candidates = [path.parent / linked] if isinstance(linked, str) and linked else []
    candidates.append(path.parent / f"{stream_stem(path)}.tfll")
    return path, next((d for d in candidates if (d / "frames.csv").is_file()), None)


def _is_analysis_dir(d: Path) -> bool:
    return (
        d.is_dir()
        and (d / "frames.csv").is_file()
        and _results(d).get("schema") == RESULTS_SCHEMA
    )


def _results(d: Path) -> dict[str, Any]:
    try:
        doc = json.loads((d / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _record(recording: Path) -> dict[str, Any]:
    """The recorder's record of a recording (what its metadata says about the session)."""
    with contextlib.suppress(StreamError, OSError), open_stream(recording, fps=1.0) as src:
        record = src.metadata.get("tfll") or src.metadata.get("annotations", {}).get("tfll")
        return record if isinstance(record, dict) else {}
    return {}


def _source_of(d: Path) -> Path | None:
    """Find the stream an analysis folder was made from (None if it is not there)."""
    source = _results(d).get("source")
    candidates = []
    if isinstance(source, str) and source:
        s = Path(source)
        candidates += [s] if s.is_absolute() else [d.parent / s, d / s, d.parent / s.name]
    stem = d.name[: -len(".tfll")] if d.name.endswith(".tfll") else d.name
    candidates += [d.parent / f"{stem}{suffix}" for suffix in _STREAM_SUFFIXES]
    return next((c for c in candidates if c.exists() and c != d), None)


class LazyFrames:
    """Array-like (T, Y, X[, 3]) over a FrameSource: napari reads only the frames it shows."""

    def __init__(self, source: FrameSource) -> None:
        assert source.n_frames is not None
        self.source = source
        self.shape = (source.n_frames, *source.shape)
        self.dtype = np.dtype(source.dtype)
        self.ndim = len(self.shape)
        self._lock = threading.Lock()  # one file handle; napari may slice from a worker thread
        # close the file when the layer lets go of the frames (napari has no close hook)
        weakref.finalize(self, source.close)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        t, rest = key[0], key[1:]
        if isinstance(t, (int, np.integer)):
            with self._lock:
                return self.source.read(int(t))[rest]
        idx = np.arange(self.shape[0])[t]
        with self._lock:
            frames = [self.source.read(int(i)) for i in idx]
        stack = np.stack(frames) if frames else np.zeros((0, *self.shape[1:]), self.dtype)
        return stack[(slice(None), *rest)]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.asarray(self[:], dtype=dtype)


def _image_layer(stream: Path, results: dict[str, Any]) -> LayerData | None:
    try:
        source = open_stream(stream)
    except (StreamError, OSError):
        return None
    if source.n_frames is None:  # a video: no random access, load it whole
        with source:
            data: Any = np.stack(list(source))
    else:
        data = LazyFrames(source)
    rgb = len(source.shape) == 3
    meta = {"tfll_results": results, "fps": source.fps, "source": str(stream)}
    return data, {"name": stream_stem(stream), "rgb": rgb, "metadata": meta}, "image"


def read_tracks_csv(d: Path) -> dict[str, np.ndarray] | None:
    """tracks.csv (per-frame tracked features) if the analysis has it."""
    f = d / "tracks.csv"
    if not f.is_file():
        return None
    with f.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if not rows or not {"frame", "point_id", "x_px", "y_px"} <= set(rows[0]):
        return None
    header = rows[0]
    cols = {name: np.asarray([float(r[j]) if j < len(r) and r[j] else np.nan for r in rows[1:]])
            for j, name in enumerate(header)}
    return cols


def analysis_layers(d: Path, name: str) -> list[LayerData]:
    """Overlay layers, frame by frame, from an analysis folder."""
    cols = read_frames_csv(d)
    frame = cols["frame"].astype(float)
    layers: list[LayerData] = []
    px, py, pr = cols["pupil_x_px"], cols["pupil_y_px"], cols["pupil_r_px"]
    found = np.isfinite(px) & np.isfinite(py) & np.isfinite(pr)
    state = cols["state"]
    if found.any():
        t, x, y, r = frame[found], px[found], py[found], pr[found]
        ellipses = [np.array([[ti, yi - ri, xi - ri], [ti, yi - ri, xi + ri],
                              [ti, yi + ri, xi + ri], [ti, yi + ri, xi - ri]])
                    for ti, xi, yi, ri in zip(t, x, y, r, strict=True)]
        shapes: list[np.ndarray] = list(ellipses)
        types = ["ellipse"] * len(ellipses)
        colors = [[0.2, 1.0, 0.2, 1.0]] * len(ellipses)
        if {"lid_a", "lid_b", "lid_c"} <= set(cols):
            width = _frame_width(d)
            for ti, a, b, c in zip(frame, cols["lid_a"], cols["lid_b"], cols["lid_c"], strict=True):
                if np.isfinite([a, b, c]).all():
                    yx = lid_path(LidCurve(float(a), float(b), float(c)), width)
                    shapes.append(np.column_stack([np.full(len(yx), ti), yx]))
                    types.append("path")
                    colors.append([1.0, 0.9, 0.1, 1.0])
        layers.append((shapes, {"name": f"{name} pupil & lid", "shape_type": types,
                                "edge_color": colors, "face_color": "transparent",
                                "edge_width": 2.0}, "shapes"))
        layers.append((np.column_stack([t, y, x]), {
            "name": f"{name} pupil centre", "size": 6, "face_color": "lime",
            "features": {"state": state[found], "interval": cols["interval"][found]},
        }, "points"))
    layers += _motion_tracks(cols, name)
    layers.append(_state_labels(cols, name))
    tracked = read_tracks_csv(d)
    if tracked is not None and len(tracked["frame"]):
        layers += _feature_layers(tracked, name)
    return layers


def _state_labels(cols: dict[str, np.ndarray], name: str) -> LayerData:
    """Eye state of every frame as a text label in the image's top-left corner."""
    frame, state, interval = cols["frame"].astype(float), cols["state"], cols["interval"]
    labels = [f"OPEN  interval {k}" if s == "open" else STATE_LABELS.get(s, s.upper())
              for s, k in zip(state, interval, strict=True)]
    data = np.column_stack([frame, np.zeros_like(frame), np.zeros_like(frame)])
    return data, {"name": f"{name} eye state", "size": 1, "face_color": "transparent",
                  "border_width": 0, "features": {"label": labels},
                  "text": {"string": "{label}", "size": 12, "color": "white",
                           "anchor": "upper_left", "translation": [0, 4, 4]}}, "points"


def _motion_tracks(cols: dict[str, np.ndarray], name: str) -> list[LayerData]:
    """Eye motion and lipid displacement of each interval as tracks.

    frames.csv holds displacements, not positions: they are drawn from an anchor, the pupil
    centre at the interval's first frame (eye) and 1.5 pupil radii below it, in the tracked
    region (lipid, moving with the eye plus the layer's own displacement).
    """
    frame, interval = cols["frame"].astype(float), cols["interval"]
    ex, ey = cols["eye_dx_px"], cols["eye_dy_px"]
    lx, ly = cols["lipid_dx_px"], cols["lipid_dy_px"]
    px, py, pr = cols["pupil_x_px"], cols["pupil_y_px"], cols["pupil_r_px"]
    eye_rows, lipid_rows = [], []
    for k in np.unique(interval[interval >= 0]):
        sel = np.flatnonzero((interval == k) & np.isfinite(ex) & np.isfinite(ey))
        anchor = sel[np.isfinite(px[sel]) & np.isfinite(py[sel])]
        if len(anchor) == 0:
            continue
        a = anchor[0]
        x0, y0 = px[a] - ex[a], py[a] - ey[a]  # the pupil centre with the eye at rest
        eye_rows.append(np.column_stack([np.full(len(sel), k), frame[sel],
                                         y0 + ey[sel], x0 + ex[sel]]))
        lip = sel[np.isfinite(ly[sel])]
        if len(lip) > 1:
            r = pr[a] if np.isfinite(pr[a]) else 10.0
            dx = np.nan_to_num(lx[lip])
            lipid_rows.append(np.column_stack([np.full(len(lip), k), frame[lip],
                                               y0 + 1.5 * r + ey[lip] + ly[lip],
                                               x0 + ex[lip] + dx]))
    out: list[LayerData] = []
    if eye_rows:
        out.append((np.concatenate(eye_rows), {"name": f"{name} eye motion",
                                               "tail_length": TRACK_TAIL_FRAMES,
                                               "colormap": "hsv"}, "tracks"))
    if lipid_rows:
        data = np.concatenate(lipid_rows)
        out.append((data, {"name": f"{name} lipid displacement", "tail_width": 3,
                           "tail_length": TRACK_TAIL_FRAMES * 4, "colormap": "turbo"},
                    "tracks"))
    return out


def _feature_layers(tracked: dict[str, np.ndarray], name: str) -> list[LayerData]:
    """Show the tracked lipid features (tracks.csv) as points per frame and trajectories."""
    t, pid = tracked["frame"], tracked["point_id"]
    x, y = tracked["x_px"], tracked["y_px"]
    ok = np.isfinite(t) & np.isfinite(pid) & np.isfinite(x) & np.isfinite(y)
    t, pid, x, y = t[ok], pid[ok], x[ok], y[ok]
    dy = tracked.get("dy_px", np.zeros(len(ok)))[ok]
    limit = max(5.0, float(np.nanmax(np.abs(dy), initial=0.0)))
    layers: list[LayerData] = [(np.column_stack([pid, t, y, x]), {
        "name": f"{name} tracks", "tail_length": TRACK_TAIL_FRAMES, "colormap": "turbo"},
        "tracks")]
    layers.append((np.column_stack([t, y, x]), {
        "name": f"{name} features", "size": 5, "face_color": displacement_colors(dy, limit),
        "border_color": "black", "border_width": 0.15, "features": {"dy_px": dy},
    }, "points"))
    return layers


def _frame_width(d: Path) -> int:
    shape = _results(d).get("frame_shape") or [0, 0]
    return int(shape[1]) if len(shape) > 1 and shape[1] else 640


def read_tfll(path: str | list[str]) -> list[LayerData]:
    """Read a recording with its analysis, or an analysis folder, as layers."""
    p = Path(path[0] if isinstance(path, list) else path)
    pair = find_pair(p)
    if pair is None:
        return []
    stream, d = pair
    results = {} if d is None else _results(d)
    layers: list[LayerData] = []
    name = stream_stem(stream) if stream is not None else Path(str(d)).name.removesuffix(".tfll")
    if stream is not None:
        image = _image_layer(stream, results)
        if image is not None:
            layers.append(image)
    if d is not None:
        with contextlib.suppress(StreamError):  # a broken frames.csv: show the image alone
            layers += analysis_layers(d, name)
    fps = results.get("fps")
    if not _positive(fps) and layers and layers[0][2] == "image":
        fps = layers[0][1]["metadata"].get("fps")
    return on_time_axis(layers, float(fps)) if _positive(fps) else layers


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def on_time_axis(layers: list[LayerData], fps: float) -> list[LayerData]:
    """Every layer's first axis in seconds: scale ``1/fps`` along time, labelled "time (s)".

    A clinician reads a recording in seconds since its start (when a blink came, how long the
    layer spread); napari's slider then moves through the frames with the viewer's time in
    seconds (``viewer.dims.point``), and the axis is named instead of napari's "-3".
    """
    out = []
    for data, kwargs, kind in layers:
        kwargs = {**kwargs, "scale": (1.0 / fps, 1.0, 1.0), "axis_labels": TIME_AXIS_LABELS}
        out.append((data, kwargs, kind))
    return out
