"""Lossless, crash-safe recording of a live session, with its analysis beside it.

A ``Recording`` owns one image file (OME-Zarr or OME-TIFF, see ``zarr_writer`` and
``tiff_writer``) and one analysis folder ``<name>.tfll/`` (results.json and frames.csv as
``spec/analysis-output.md`` defines them, plus ``camera_frames.jsonl``: each frame's time and
camera metadata). Frames are written on the recording's own thread, so a slow disk delays
neither tracking nor acquisition until its queue (``max_queue_mb``) is full. Nothing existing
is ever overwritten: the paths are created exclusively.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np

from tfll_live.io import AnalysisWriter, stream_stem
from tfll_live.tracking import FrameResult, Summary

from .tiff_writer import TiffFrameWriter
from .zarr_writer import ZarrFrameWriter, write_group_attrs

Format = Literal["ome-tiff", "ome-zarr"]
FORMATS: dict[str, str] = {"ome-zarr": ".ome.zarr", "ome-tiff": ".ome.tif"}
RECORDING_SCHEMA = "tfll-recording/1"


def with_format_suffix(path: Path, fmt: str) -> Path:
    """Return ``path`` ending in the format's suffix (``rec`` -> ``rec.ome.zarr``)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown recording format {fmt!r}: use one of {', '.join(FORMATS)}")
    name = path.name
    if fmt == "ome-tiff" and name.lower().endswith((".ome.tif", ".ome.tiff")):
        return path
    if name.lower().endswith(FORMATS[fmt]):
        return path
    return path.with_name(stream_stem(path) + FORMATS[fmt])


def analysis_dir_for(path: Path) -> Path:
    """Return the analysis folder beside a recording (where ``tfll analyze`` writes too)."""
    return path.parent / f"{stream_stem(path)}.tfll"


def free_path(path: str | Path, fmt: Format) -> Path:
    """Return ``path`` with the format's suffix, or ``<name>-1``, ``-2``... if it exists.

    A name is taken when the recording or its analysis folder exists.
    """
    p = with_format_suffix(Path(path).expanduser(), fmt)
    stem, suffix = stream_stem(p), p.name[len(stream_stem(p)) :]
    k = 0
    candidate = p
    while candidate.exists() or analysis_dir_for(candidate).exists():
        k += 1
        candidate = p.with_name(f"{stem}-{k}{suffix}")
    return candidate


class Recording:
    """One recording in progress: frames in, files out, on a writer thread.

    Create with ``Recording.create``; ``write`` queues a frame, ``close`` drains the queue and
    finalises the files. When the disk refuses a write, ``failed`` holds the message and later
    frames are ignored; everything written before stays readable.
    """

    def __init__(
        self,
        path: Path,
        fmt: Format,
        attrs: dict[str, Any],
        handle: IO[bytes] | None,
        max_queue_mb: float,
    ) -> None:
        self.path, self.fmt, self.attrs = path, fmt, attrs
        self.analysis_dir = analysis_dir_for(path)
        self.failed: str | None = None
        self.n_written = 0
        self._handle = handle
        self._frames: ZarrFrameWriter | TiffFrameWriter | None = None
        self._analysis: AnalysisWriter | None = None
        self._meta_file: IO[str] | None = None
        self._max_bytes = max_queue_mb * 2**20
        self._queued_bytes = 0
        self._room = threading.Condition()
        self._queue: queue.SimpleQueue[tuple[np.ndarray, float, dict[str, str], FrameResult] | None]
        self._queue = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._drain, name="tfll-recorder", daemon=True)
        self._thread.start()

    @classmethod
    def create(
        cls,
        path: str | Path,
        fmt: Format = "ome-zarr",
        attrs: dict[str, Any] | None = None,
        *,
        max_queue_mb: float = 512.0,
    ) -> Recording:
        """Reserve a new recording at ``path`` (or ``<name>-1``...; see ``free_path``).

        Raises ``OSError`` (one line, naming the path) when it cannot be created.
        """
        attrs = dict(attrs or {})
        for _ in range(100):  # another process may take the name between the check and mkdir
            p = free_path(path, fmt)
            try:
                return cls._reserve(p, fmt, attrs, max_queue_mb)
            except FileExistsError:
                continue
            except OSError as e:
                raise OSError(e.errno, f"cannot record to {p}: {e.strerror or e}") from e
        raise OSError(f"cannot find a free name for a recording at {path}")

    @classmethod
    def _reserve(
        cls, p: Path, fmt: Format, attrs: dict[str, Any], max_queue_mb: float
    ) -> Recording:
        analysis = analysis_dir_for(p)
        handle: IO[bytes] | None = None
        if fmt == "ome-zarr":
            p.mkdir()
        else:
            # unbuffered: a write the disk refuses must not linger in a buffer (see tiff_writer)
            handle = open(p, "xb", buffering=0)  # noqa: SIM115 - kept open by the TIFF writer
        try:
            analysis.mkdir()
        except BaseException:
            if handle is not None:
                handle.close()
                p.unlink()
            else:
                p.rmdir()
            raise
        attrs = {
            "schema": RECORDING_SCHEMA,
            "format": fmt,
            "started": datetime.now(timezone.utc).isoformat(),
            **attrs,
            "complete": False,
        }
        rec = cls(p, fmt, attrs, handle, max_queue_mb)
        if fmt == "ome-zarr":
            write_group_attrs(p, {"tfll": attrs})
        return rec

    # -- producer side (the capture thread) -----------------------------------------------
    def write(
        self, frame: np.ndarray, time_s: float, metadata: dict[str, str], result: FrameResult
    ) -> None:
        """Queue one frame with its time, camera metadata and tracking result.

        Blocks while the queue is full (the disk is slower than the camera); raises
        ``OSError`` once the recording has failed.
        """
        if self.failed is not None:
            raise OSError(self.failed)
        if self._closed:
            raise RuntimeError(f"recording {self.path} is closed")
        with self._room:
            while self._queued_bytes > self._max_bytes and self.failed is None:
                self._room.wait(0.1)
            self._queued_bytes += frame.nbytes
        self._queue.put((frame, time_s, metadata, result))

    def close(
        self, summary: Summary | None, error: str | None = None, timeout_s: float = 60.0
    ) -> str | None:
        """Drain the queue and finalise the image file and the analysis; safe to call twice.

        ``summary`` is the tracker's final summary of the recorded frames (None: results.json
        is not written). ``error`` records why the recording stopped early. Returns the
        error message if the recording failed (now or earlier), else None.
        """
        if self._closed:
            return self.failed
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self.failed = self.failed or (
                f"writing to {self.path} did not finish in {timeout_s:.0f} s"
            )
            return self.failed
        reason = error or self.failed
        try:
            self._finish_image(reason)
        except Exception as e:
            self.failed = self.failed or f"{self.path}: finalising failed: {_one_line(e)}"
        try:
            self._finish_analysis(summary, reason)
        except Exception as e:
            self.failed = self.failed or (
                f"{self.analysis_dir}: writing the analysis failed: {_one_line(e)}"
            )
        return self.failed

    # -- the writer thread ----------------------------------------------------------------
    def _drain(self) -> None:
        while (item := self._queue.get()) is not None:
            frame, time_s, metadata, result = item
            if self.failed is None:
                try:
                    self._write_one(frame, time_s, metadata, result)
                    self.n_written += 1
                except Exception as e:  # disk full, file too large, path gone, camera changed
                    self.failed = f"{self.path}: {_one_line(e)}{_why_writes_fail(self.path)}"
            with self._room:
                self._queued_bytes -= frame.nbytes
                self._room.notify_all()

    def _write_one(
        self, frame: np.ndarray, time_s: float, metadata: dict[str, str], result: FrameResult
    ) -> None:
        if self._frames is None:
            self._open(frame, metadata)
        assert self._frames is not None and self._analysis is not None and self._meta_file
        # the frame's log line goes first: a kill between the two leaves a line too many (readers
        # take as many as there are frames), never a recorded frame without its time
        self._meta_file.write(
            json.dumps({"frame": self.n_written, "time_s": time_s, **metadata}) + "\n"
        )
        self._meta_file.flush()
        self._frames.write(frame, time_s)
        self._analysis.write(result)

    def _open(self, frame: np.ndarray, metadata: dict[str, str]) -> None:
        shape, dtype = frame.shape, frame.dtype
        if self.fmt == "ome-zarr":
            self._frames = ZarrFrameWriter(self.path, shape, dtype)
            # axes known now: a reader (or a crash) sees a proper OME-Zarr from the first frame
            write_group_attrs(
                self.path, {"ome": self._frames.ome_attrs(self.path.name), "tfll": self.attrs}
            )
        else:
            assert self._handle is not None
            self._frames = TiffFrameWriter(self._handle, self.path, shape, dtype)
        self._analysis = AnalysisWriter(
            self.analysis_dir, self.path.name, self.attrs.get("fps") or 0.0, shape
        )
        self._meta_file = open(self.analysis_dir / "camera_frames.jsonl", "x", encoding="utf-8")  # noqa: SIM115

    # -- finishing ------------------------------------------------------------------------
    def _final_attrs(self, reason: str | None) -> dict[str, Any]:
        frames = self._frames
        times = list(frames.times) if frames is not None else []
        fps = self.attrs.get("fps")
        if len(times) > 1 and times[-1] > times[0]:
            fps = (len(times) - 1) / (times[-1] - times[0])
        return {
            **self.attrs,
            "fps": fps,
            "n_frames": self.n_written,
            "stopped": datetime.now(timezone.utc).isoformat(),
            "complete": reason is None,
            "error": reason,
        }

    def _finish_image(self, reason: str | None) -> None:
        frames = self._frames
        attrs = self._final_attrs(reason)
        try:
            if isinstance(frames, ZarrFrameWriter):
                frames.close()
                times = [{"delta_t": t} for t in frames.times]
                write_group_attrs(
                    self.path,
                    {
                        "ome": frames.ome_attrs(self.path.name),
                        "tfll": attrs,
                        "ome_writers": {"frame_metadata": times},
                    },
                )
            elif isinstance(frames, TiffFrameWriter):
                frames.close(self.path.name, attrs)
            elif self.fmt == "ome-zarr":
                write_group_attrs(self.path, {"tfll": attrs})  # no frame came
        finally:
            for f in (self._handle, self._meta_file):
                if f is not None:
                    with contextlib.suppress(OSError):
                        f.close()

    def _finish_analysis(self, summary: Summary | None, reason: str | None) -> None:
        if self._analysis is None:
            return
        extra: dict[str, Any] = {
            "source_format": self.fmt,
            "timestamps": "camera",
            "tracker": self.attrs.get("tracker_config"),
            "recording": {"camera": self.attrs.get("camera"), "complete": reason is None},
        }
        if reason is not None:
            extra["incomplete"] = {"reason": reason, "frames_read": self.n_written}
        self._analysis.fps = self._final_attrs(reason)["fps"] or 0.0
        try:
            self._analysis.close(summary, extra)
        except OSError:
            # a CSV refused its last rows (disk full) and is closed now; results.json is small
            # and still worth a try: the second close only writes it
            self._analysis.close(summary, extra)
            raise


def _why_writes_fail(path: Path) -> str:
    """What the OS says about a failed write (full disk, file size limit), as a suffix."""
    import resource
    import shutil

    notes = []
    with contextlib.suppress(OSError):
        free = shutil.disk_usage(path.parent).free
        if free < 16 * 2**20:
            notes.append(f"disk full: {free / 2**20:.1f} MB free")
    with contextlib.suppress(OSError, ValueError, AttributeError):
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY:
            notes.append(f"file size limit of {limit} bytes (ulimit -f)")
    return f" ({'; '.join(notes)})" if notes else ""


def _one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror + (f": {e.filename}" if e.filename else "")
    text = " ".join(str(e).split())
    return text or type(e).__name__
