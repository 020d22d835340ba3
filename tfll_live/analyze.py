"""Offline analysis of a recorded stream through the same causal Tracker as live acquisition.

Three levels of one API, as trackpy stacks its linker: ``Tracker.push`` tracks one frame,
``track_stream`` is a generator over a stream built on it, and ``analyze`` turns a file into
results.json and frames.csv built on that. Live and offline therefore cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .io import (
    ANALYSIS_FILES,
    AnalysisWriter,
    FrameSource,
    StreamError,
    check_output,
    open_stream,
    stream_stem,
)
from .tracking import FrameResult, Tracker, TrackerConfig
from .visit import Visit

Progress = Callable[[int, int | None], None]
"""Called after each frame with (frames done, frames in the stream or None if unknown)."""

MAX_RESET_EVENTS = 100  # resets listed in results.json; the count is always exact


MAX_LOST_LISTED = 100  # lost frames listed in results.json; the count is always exact


def timed_frames(source: FrameSource) -> Iterator[tuple[np.ndarray | str, float]]:
    """Frames of ``source`` with their time in seconds since the first frame.

    A frame missing or damaged in the file comes as the reason (a str) instead of pixels.
    """
    for i, frame in source.indexed():
        yield frame, source.frame_time(i)


def track_stream(
    frames_with_times: Iterable[tuple[np.ndarray | str, float]],
    tracker: Tracker,
    name: str | Path = "stream",
) -> Iterator[FrameResult]:
    """Push each (frame, time) through ``tracker`` in order, yielding its results one by one.

    A frame the tracker refuses outright (its ValueError) becomes a StreamError naming the
    stream and the frame; frames it can take but not track are its business (it resets).
    A lost frame (a reason instead of pixels) is a gap the tracker starts over after.
    """
    for i, (frame, t_s) in enumerate(frames_with_times):
        if isinstance(frame, str):
            yield tracker.gap(t_s, f"frame lost: {frame}")
            continue
        try:
            result = tracker.push(frame, t_s)
        except StreamError:
            raise
        except ValueError as e:
            raise StreamError(f"{name}: frame {i}: {e}", frames_read=i) from e
        yield result


def recorded_visit(metadata: dict[str, Any], name: str | Path) -> Visit:
    """The visit a recording's metadata carries (OME-Zarr attributes or OME-TIFF annotation).

    Empty for files that carry none; one that is not a visit is refused in one line.
    """
    import json

    from .acquisition.ome_metadata import ANNOTATION_NS

    doc: object = (metadata.get("tfll") or {}).get("visit")
    if doc is None:
        text = (metadata.get("annotations") or {}).get(ANNOTATION_NS, {}).get("visit")
        if text:
            try:
                doc = json.loads(text)
            except ValueError:
                raise StreamError(f"{name}: the recorded visit is not JSON") from None
    try:
        return Visit.from_json(doc)
    except (TypeError, ValueError) as e:
        raise StreamError(f"{name}: recorded {e}") from None


def recorded_pixel_size(metadata: dict[str, Any], name: str | Path) -> float | None:
    """The pixel size (µm) a recording's metadata carries, or None (0 in Micro-Manager: unset)."""
    import json

    from .acquisition.ome_metadata import ANNOTATION_NS
    from .units import check_pixel_size

    value: object = (metadata.get("tfll") or {}).get("pixel_size_um")
    if value is None:
        text = (metadata.get("annotations") or {}).get(ANNOTATION_NS, {}).get("pixel_size_um")
        try:
            value = json.loads(text) if text else None
        except ValueError:
            value = text
    try:
        return check_pixel_size(value, f"{name}: recorded pixel size")
    except ValueError as e:
        raise StreamError(str(e)) from None


def recorded_started(metadata: dict[str, Any]) -> str | None:
    """When the recording began (ISO 8601), as its metadata says; None when it does not.

    The time of an analysis is not the time of a recording, so nothing else stands in for it;
    a value that is not an ISO 8601 time is left out rather than shown.
    """
    from datetime import datetime

    from .acquisition.ome_metadata import ANNOTATION_NS

    value: object = (metadata.get("tfll") or {}).get("started")
    if value is None:
        value = (metadata.get("annotations") or {}).get(ANNOTATION_NS, {}).get("started")
    if not isinstance(value, str):
        return None
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return None
    return value


def default_out_dir(path: str | Path) -> Path:
    """Where ``analyze`` writes by default: ``<stem>.tfll/`` beside the input."""
    p = Path(path)
    return p.parent / f"{stream_stem(p)}.tfll"


def check_earlier_analysis(out_dir: Path, force: bool) -> None:
    """Refuse an output folder that is a file or a link, or holds results, unless ``force``."""
    check_output(out_dir, force=True)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir}: exists and is not a folder: pass --out another folder")
    for name in ANALYSIS_FILES:
        check_output(out_dir / name, force=True)
    if not force and any((out_dir / name).exists() for name in ANALYSIS_FILES):
        raise ValueError(
            f"{out_dir} holds an earlier analysis: pass --force to replace it (only once the "
            "new one is complete), or --out another folder"
        )


def analyze(
    path: str | Path,
    out: str | Path | None = None,
    fps: float | None = None,
    config: TrackerConfig | None = None,
    progress: Progress | None = None,
    force: bool = False,
    visit: Visit | None = None,
    pixel_size_um: float | None = None,
) -> Path:
    """Track a recorded stream and write its results.json and frames.csv; returns the directory.

    A stream cut short (truncated file, video ending early) is analysed up to its last intact
    frame, written out with an ``incomplete`` note, and then reported as a StreamError.
    An earlier analysis in the output folder (a live session's, say) is replaced only with
    ``force``, and then only once the new one is complete. The visit is the recording's own
    (when the stream is a recording that carries one) with the fields of ``visit`` replacing
    its fields; results.json gets a ``visit`` only when some field was entered. The pixel
    size (``pixel_size_um``, else the recording's) adds µm values beside the px ones.
    """
    config = config or TrackerConfig()
    out_dir = Path(out) if out is not None else default_out_dir(path)
    check_earlier_analysis(out_dir, force)
    with open_stream(path, fps) as source:
        tracker = Tracker(config)
        resets: list[dict[str, Any]] = []
        n_resets = 0
        cut_short: StreamError | None = None
        lost: dict[int, str] = {}  # frames missing or damaged in the file, with the reason

        def frames() -> Iterator[tuple[np.ndarray | str, float]]:
            for i, (frame, t_s) in enumerate(timed_frames(source)):
                if isinstance(frame, str):
                    lost[i] = frame
                yield frame, t_s

        with AnalysisWriter(
            out_dir, source.path.name, source.fps, source.shape, staged=True
        ) as writer:
            try:
                for result in track_stream(frames(), tracker, source.path):
                    if result.frame in lost:  # a row that says so, not a black frame's
                        writer.write_untracked(result.frame, result.time_s)
                    else:
                        writer.write(result)
                    if result.reset_reason is not None and result.frame not in lost:
                        n_resets += 1
                        if len(resets) < MAX_RESET_EVENTS:
                            resets.append({"frame": result.frame, "reason": result.reset_reason})
                    if progress is not None:
                        progress(writer.n_frames, source.n_frames)
            except StreamError as e:
                cut_short = e
            extra: dict[str, Any] = {
                "source_format": source.metadata.get("format"),
                "timestamps": "file" if source.times_s is not None else "frame rate",
                "tracker": config.to_json(),
                "resets": {"count": n_resets, "events": resets},
            }
            size = pixel_size_um or recorded_pixel_size(source.metadata, source.path)
            if size is not None:
                extra["pixel_size_um"] = size
            started = recorded_started(source.metadata)
            if started is not None:
                extra["recorded_utc"] = started
            stored = recorded_visit(source.metadata, source.path).merged(visit or Visit())
            if stored.entered:
                extra["visit"] = stored.to_json()
            if lost:
                extra["lost_frames"] = {
                    "count": len(lost),
                    "frames": sorted(lost)[:MAX_LOST_LISTED],
                    "reasons": sorted(set(lost.values()))[:10],
                }
            if cut_short is not None:
                extra["incomplete"] = {"reason": str(cut_short), "frames_read": writer.n_frames}
            writer.close(tracker.finish(), extra)
    if cut_short is not None:
        raise StreamError(
            f"{cut_short}; results for the {writer.n_frames} frames read are in {out_dir}",
            frames_read=writer.n_frames,
        ) from cut_short
    return out_dir
