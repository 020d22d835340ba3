"""Lossless, crash-safe recording of a live session, with its analysis beside it.

A ``Recording`` owns one image file (OME-Zarr or OME-TIFF, compressed losslessly, see
``zarr_writer`` and ``tiff_writer``) and one analysis folder ``<name>.tfll/`` (results.json
and frames.csv as ``spec/analysis-output.md`` defines them, plus ``camera_frames.jsonl``: each
frame's time and camera metadata), which the recording's metadata links to. Frames are written
on the recording's own thread, so a slow disk delays acquisition only once its queue
(``max_queue_mb``) is full, and tracking never. The counts (frames acquired, recorded, lost,
tracked) go into both. Nothing existing is ever overwritten: the paths are created
exclusively.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import threading
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np

from tfll_live.io import RECORDING_SCHEMA, AnalysisWriter, stream_stem
from tfll_live.tracking import FrameResult, Summary

from .limits import RecordingLimits, size_text
from .ome_metadata import ImageMetadata, ome_xml
from .tiff_writer import TiffFrameWriter, WholeWritesFile
from .zarr_writer import ZarrFrameWriter, root_attrs, write_group_attrs

Format = Literal["ome-tiff", "ome-zarr"]
RESERVE_BYTES = 64 * 2**20
_META_SLACK = 1024  # what the final metadata may add beyond the estimate (counts, stop time)
"""Free space a recording leaves on its disk (at most a quarter of the disk) to finish with."""


class DiskNearlyFull(OSError):
    """The disk is about to fill: the recording stops while its files can still be finished."""


FORMATS: dict[str, str] = {"ome-zarr": ".ome.zarr", "ome-tiff": ".ome.tif"}


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


def disk_size(path: Path) -> int:
    """Bytes a recording takes on disk (a TIFF file, or every file of a Zarr folder)."""
    try:
        if path.is_dir():
            return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        return path.stat().st_size
    except OSError:
        return 0


def free_path(path: str | Path, fmt: Format) -> Path:
    """Return ``path`` with the format's suffix, or ``<name>-1``, ``-2``... if it exists.

    A name is taken when the recording or its analysis folder exists.
    """
    p = with_format_suffix(Path(path).expanduser(), fmt)
    stem, suffix = stream_stem(p), p.name[len(stream_stem(p)) :]
    k = 0
    candidate = p
    # lexists: a link, even a dangling one, takes the name (a recording never writes through it)
    while os.path.lexists(candidate) or os.path.lexists(analysis_dir_for(candidate)):
        k += 1
        candidate = p.with_name(f"{stem}-{k}{suffix}")
    return candidate


def remove_recording(path: Path) -> None:
    """Delete a recording and its analysis folder, for a user who chose to replace them.

    Only the GUI calls this, after asking: nothing in a session replaces a file by itself
    (``free_path``). A link is removed, never what it points to.
    """
    for p in (path, analysis_dir_for(path)):
        if p.is_symlink() or p.is_file():
            p.unlink()
        elif p.is_dir():
            shutil.rmtree(p)


class Recording:
    """One recording in progress: frames in, files out, on a writer thread.

    Create with ``Recording.create``. The capture thread ``write``s every frame (the recording
    is the critical consumer: it never drops one) and reports frames lost in the camera's
    buffer (``note_lost``); the tracking thread adds each frame's row to the analysis
    (``write_result`` or ``write_untracked``); ``close`` drains the queue and finalises the
    files with the counts. When the disk refuses a write, ``failed`` holds the message and
    later frames are ignored; everything written before stays readable. With ``limits``, the
    capture thread asks ``limit_reason`` before each frame and ends the recording there
    (``limit_reached`` says why): it is complete, only shorter.
    """

    def __init__(
        self,
        path: Path,
        fmt: Format,
        attrs: dict[str, Any],
        handle: IO[bytes] | None,
        max_queue_mb: float,
        limits: RecordingLimits | None = None,
    ) -> None:
        self.path, self.fmt, self.attrs = path, fmt, attrs
        self.limits = limits or RecordingLimits()
        self.limit_reached: str | None = None  # why a limit ended the recording (one line)
        self._first_time_s: float | None = None  # the first frame's time (capture thread)
        self._progress = (0, 0)  # (frames, bytes) written, replaced whole by the writer thread
        self._meta_base = self._meta_per_frame = 0  # metadata bytes: base + per frame * n
        self.analysis_dir = analysis_dir_for(path)
        self.failed: str | None = None
        self.n_written = 0  # frames in the file (writer thread)
        self.n_handed = 0  # frames handed over by the capture thread
        self.lost_in_buffer = 0  # frames lost in the camera's buffer while recording
        self.n_tracked = 0  # frames with a tracking result (tracking thread)
        self._handle = handle
        self._frames: ZarrFrameWriter | TiffFrameWriter | None = None
        self._analysis = AnalysisWriter(self.analysis_dir, path.name, attrs.get("fps") or 0.0, ())
        self._analysis_error: str | None = None
        self._meta_file: IO[str] | None = None
        self._max_bytes = max_queue_mb * 2**20
        self._queued_bytes = 0
        self._room = threading.Condition()
        self._queue: queue.SimpleQueue[tuple[np.ndarray, float, dict[str, str]] | None]
        self._queue = queue.SimpleQueue()
        self._closed = False
        self._started = time.monotonic()
        self._close_lock = threading.Lock()
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
        limits: RecordingLimits | None = None,
    ) -> Recording:
        """Reserve a new recording at ``path`` (or ``<name>-1``...; see ``free_path``).

        ``limits``: where it stops by itself (size, length); see ``RecordingLimits``.
        Raises ``OSError`` (one line, naming the path) when it cannot be created.
        """
        attrs = dict(attrs or {})
        if limits is not None and limits.any:
            attrs["limits"] = limits.to_json()
        for _ in range(100):  # another process may take the name between the check and mkdir
            p = free_path(path, fmt)
            try:
                return cls._reserve(p, fmt, attrs, max_queue_mb, limits)
            except FileExistsError:
                continue
            except OSError as e:
                raise OSError(e.errno, f"cannot record to {p}: {e.strerror or e}") from e
        raise OSError(f"cannot find a free name for a recording at {path}")

    @classmethod
    def _reserve(
        cls,
        p: Path,
        fmt: Format,
        attrs: dict[str, Any],
        max_queue_mb: float,
        limits: RecordingLimits | None,
    ) -> Recording:
        analysis = analysis_dir_for(p)
        handle: IO[bytes] | None = None
        if fmt == "ome-zarr":
            p.mkdir()
        else:
            handle = WholeWritesFile(p, "x")  # kept open by the TIFF writer
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
            # tracking results, reachable from the recording: paths relative to its folder
            "analysis": analysis.name,
            "results": f"{analysis.name}/results.json",
            "complete": False,
        }
        rec = cls(p, fmt, attrs, handle, max_queue_mb, limits)
        if fmt == "ome-zarr":
            write_group_attrs(p, root_attrs(attrs))
        return rec

    # -- producer side (the capture thread) -----------------------------------------------
    def write(self, frame: np.ndarray, time_s: float, metadata: dict[str, str]) -> None:
        """Queue one frame with its time and camera metadata.

        Blocks while the queue is full (the disk is slower than the camera): a recording
        never drops a frame. Raises ``OSError`` once the recording has failed.
        """
        if self.failed is not None:
            raise OSError(self.failed)
        if self._closed:
            raise RuntimeError(f"recording {self.path} is closed")
        with self._room:
            while self._queued_bytes > self._max_bytes and self.failed is None:
                self._room.wait(0.1)
            self._queued_bytes += frame.nbytes
        if self._first_time_s is None:
            self._first_time_s = time_s
        self.n_handed += 1
        self._queue.put((frame, time_s, metadata))

    def limit_reason(self, time_s: float, frame_bytes: int) -> str | None:
        """Why the frame taken at ``time_s`` must not go in (a limit is reached), or None.

        Asked by the capture thread before ``write``, so the recording ends on a frame
        boundary with nothing handed over past it. The size counts what is written, the
        frames still queued and the next one (at the mean compressed size so far, raw before
        the first is written) and the metadata the files will hold when closed. The first
        frame always goes in: its size is unknown until it is compressed.
        """
        lim = self.limits
        if self._first_time_s is None or not lim.any:
            return None
        length_s = time_s - self._first_time_s
        if lim.max_s is not None and length_s >= lim.max_s:
            return (
                f"time limit of {lim.max_s / 60:g} min reached: {self.n_handed} frames, "
                f"{length_s:.1f} s"
            )
        if lim.max_bytes is not None:
            now, next_frame = self.expected_bytes(frame_bytes)
            if now + next_frame > lim.max_bytes:
                return (
                    f"size limit of {size_text(lim.max_bytes)} reached: {self.n_handed} "
                    f"frames, {size_text(now)}"
                )
        return None

    def expected_bytes(self, frame_bytes: int = 0) -> tuple[int, int]:
        """The recording's size once the frames handed over are written, and the next frame's.

        Both estimates: queued frames and the next (``frame_bytes`` raw) at the mean
        compressed size so far, and the metadata written on closing.
        """
        n_done, bytes_done = self._progress
        per_frame = bytes_done / n_done if n_done else frame_bytes
        queued = max(self.n_handed - n_done, 0)
        meta = self._meta_base + self._meta_per_frame * self.n_handed
        return int(bytes_done + queued * per_frame + meta), int(
            per_frame + self._meta_per_frame
        )

    def note_lost(self, n: int) -> None:
        """Count ``n`` frames the camera delivered that were lost in its buffer."""
        self.lost_in_buffer += n

    @property
    def backlog_mb(self) -> float:
        """Frames waiting to be written (MB)."""
        return self._queued_bytes / 2**20

    # -- the tracking thread --------------------------------------------------------------
    def write_result(self, result: FrameResult) -> None:
        """Add a tracked frame's row to the analysis (rows come in frame order)."""
        self.n_tracked += 1
        self._row(self._analysis.write, result)

    def write_untracked(self, index: int, time_s: float) -> None:
        """Add the row of a recorded frame the tracker skipped."""
        self._row(self._analysis.write_untracked, index, time_s)

    def _row(self, write: Any, *args: Any) -> None:
        if self._analysis_error is not None or self._analysis.closed:
            return
        try:
            write(*args)
        except (OSError, ValueError) as e:  # disk full; the image file says the same
            self._analysis_error = f"{self.analysis_dir}: {_one_line(e)}"

    # -- any thread, once -----------------------------------------------------------------
    def counts(self) -> dict[str, Any]:
        """Frames acquired, recorded, lost and tracked (``results.json``'s ``frames``)."""
        acquired = self.n_handed + self.lost_in_buffer
        lost = acquired - self.n_written
        return {
            "acquired": acquired,
            "recorded": self.n_written,
            "lost": lost,
            "lost_in_camera_buffer": self.lost_in_buffer,
            "tracked": self.n_tracked,
            "complete": lost == 0,
        }

    def close(
        self, summary: Summary | None, error: str | None = None, timeout_s: float = 60.0
    ) -> str | None:
        """Drain the queue and finalise the image file and the analysis; safe to call twice.

        ``summary`` is the tracker's final summary of the recorded frames (None: results.json
        is not written). ``error`` records why the recording stopped early. Returns the
        error message if the recording failed (now or earlier), else None.
        """
        with self._close_lock:
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
            frame, time_s, metadata = item
            if self.failed is None:
                try:
                    self._write_one(frame, time_s, metadata)
                    self.n_written += 1
                except DiskNearlyFull as e:
                    self.failed = f"{self.path}: {e}"
                except Exception as e:  # disk full, file too large, path gone, camera changed
                    self.failed = f"{self.path}: {_one_line(e)}{_why_writes_fail(self.path)}"
            with self._room:
                self._queued_bytes -= frame.nbytes
                self._room.notify_all()

    def _write_one(self, frame: np.ndarray, time_s: float, metadata: dict[str, str]) -> None:
        self._check_room(frame.nbytes)
        if self._frames is None:
            self._open(frame)
        assert self._frames is not None and self._meta_file is not None
        # the frame's log line goes first: a kill between the two leaves a line too many (readers
        # take as many as there are frames), never a recorded frame without its time
        self._meta_file.write(
            json.dumps({"frame": self.n_written, "time_s": time_s, **metadata}) + "\n"
        )
        self._meta_file.flush()
        self._frames.write(frame, time_s, self._exposure_s(metadata))
        self._progress = (self._frames.n, self._frames.bytes_out)

    def _check_room(self, frame_bytes: int) -> None:
        """Stop before the disk is full, keeping room to finish the files and the analysis.

        A disk that fills mid-write leaves the analysis (results.json, the last rows of
        frames.csv) with no room at all; stopping a reserve short of full keeps everything.
        """
        try:
            usage = shutil.disk_usage(self.path.parent)
        except OSError:
            return
        reserve = min(RESERVE_BYTES, usage.total // 4)
        if usage.free - frame_bytes < reserve:
            raise DiskNearlyFull(
                f"disk full ({usage.free / 2**20:.1f} MB free): recording stopped "
                f"{reserve / 2**20:.1f} MB short of full, to finish it and its analysis"
            )

    def minutes_left(self) -> float | None:
        """Minutes of recording the free disk space holds at the rate so far (None: unknown)."""
        written = self._frames.bytes_out if self._frames is not None else 0
        elapsed_s = time.monotonic() - self._started
        if elapsed_s <= 0.5 or written <= 0:
            return None
        try:
            usage = shutil.disk_usage(self.path.parent)
        except OSError:
            return None
        room = usage.free - min(RESERVE_BYTES, usage.total // 4)
        return max(room, 0) / (written / elapsed_s) / 60.0

    def _exposure_s(self, metadata: dict[str, str]) -> float:
        """The frame's exposure: its own metadata, else the camera's setting at the start."""
        for value in (metadata.get("Exposure-ms"), self.attrs.get("exposure_ms")):
            try:
                return float(value) / 1000.0  # type: ignore[arg-type]
            except (TypeError, ValueError):
                continue
        return float("nan")

    def _open(self, frame: np.ndarray) -> None:
        meta = self._image_metadata(frame.shape, frame.dtype, self.attrs)
        if self.fmt == "ome-zarr":
            # axes known now: a reader (or a crash) sees a proper OME-Zarr from the first frame
            self._frames = ZarrFrameWriter(self.path, meta)
        else:
            assert self._handle is not None
            self._frames = TiffFrameWriter(self._handle, self.path, meta)
        self._analysis.frame_shape = frame.shape
        self._meta_file = open(self.analysis_dir / "camera_frames.jsonl", "x", encoding="utf-8")  # noqa: SIM115
        if self.limits.max_bytes is not None:
            self._estimate_metadata(meta)

    def _estimate_metadata(self, meta: ImageMetadata) -> None:
        """What the metadata will take on disk: a base and a part per frame (size limit).

        The OME-XML written on closing has a plane per frame (three for RGB in OME-Zarr); its
        length for one and two frames gives both. An OME-Zarr also holds its zarr.json files.
        """
        tiff = self.fmt == "ome-tiff"
        one, two = (
            len(ome_xml(replace(meta, times_s=t, exposures_s=t), tiff=tiff))
            for t in ([0.0], [0.0, 0.001])
        )
        base = one - (two - one) + _META_SLACK
        if not tiff:  # the store's metadata so far, but its OME-XML as it will be
            base += disk_size(self.path) - disk_size(self.path / "OME" / "METADATA.ome.xml")
        self._meta_base, self._meta_per_frame = base, two - one

    def _image_metadata(
        self, shape: tuple[int, ...], dtype: np.dtype, annotations: dict[str, Any]
    ) -> ImageMetadata:
        a = self.attrs
        camera = {
            "label": a.get("camera"),
            "library": a.get("camera_library"),
            "name": a.get("camera_name"),
        }
        return ImageMetadata(
            name=self.path.name,
            height=shape[0],
            width=shape[1],
            rgb=len(shape) == 3,
            dtype=np.dtype(dtype),
            pixel_size_um=self.attrs.get("pixel_size_um"),
            camera=camera,
            acquired_utc=self.attrs.get("started"),
            annotations=annotations,
        )

    # -- finishing ------------------------------------------------------------------------
    def _final_attrs(self, reason: str | None) -> dict[str, Any]:
        frames = self._frames
        times = list(frames.times) if frames is not None else []
        fps = self.attrs.get("fps")
        if len(times) > 1 and times[-1] > times[0]:
            fps = (len(times) - 1) / (times[-1] - times[0])
        counts = self.counts()
        return {
            **self.attrs,
            "fps": fps,
            "n_frames": self.n_written,
            "frames": counts,
            "stopped": datetime.now(timezone.utc).isoformat(),
            "complete": reason is None and counts["complete"],
            "error": reason,
            "limit_reached": self.limit_reached,
        }

    def _finish_image(self, reason: str | None) -> None:
        frames = self._frames
        attrs = self._final_attrs(reason)
        try:
            if frames is not None:
                frames.close(self._image_metadata(frames.shape, frames.dtype, attrs))
            if self.fmt == "ome-zarr":
                write_group_attrs(self.path, root_attrs(attrs))
        finally:
            for f in (self._handle, self._meta_file):
                if f is not None:
                    with contextlib.suppress(OSError):
                        f.close()

    def _finish_analysis(self, summary: Summary | None, reason: str | None) -> None:
        reason = reason or self._analysis_error
        counts = self.counts()
        extra: dict[str, Any] = {
            "source_format": self.fmt,
            "timestamps": "camera",
            "tracker": self.attrs.get("tracker_config"),
            "recording": {
                "camera": self.attrs.get("camera"),
                "complete": reason is None and counts["complete"],
                "limits": self.attrs.get("limits"),
                "limit_reached": self.limit_reached,
            },
            "frames": counts,
            "pixel_size_um": self.attrs.get("pixel_size_um"),
            "recorded_utc": self.attrs.get("started"),
        }
        if self.attrs.get("visit") is not None:
            extra["visit"] = self.attrs["visit"]
        if reason is not None:
            extra["incomplete"] = {"reason": reason, "frames_read": self.n_written}
        analysis = self._analysis
        analysis.fps = self._final_attrs(reason)["fps"] or 0.0
        if analysis.n_frames > self.n_written:  # rows of frames the disk refused at the end
            analysis.keep_first(self.n_written)
        try:
            analysis.close(summary, extra)
        except OSError:
            # a CSV refused its last rows (disk full) and is closed now; results.json is small
            # and still worth a try: the second close only writes it
            analysis.close(summary, extra)
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
