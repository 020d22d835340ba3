"""Reading recorded streams frame by frame; writing the analysis (results.json, frames.csv).

``open_stream`` opens a TIFF/OME-TIFF stack, a video OpenCV reads, or an OME-Zarr recording and
returns a ``FrameSource`` that yields one frame at a time, so a long recording never has to fit in
memory. Every problem with the file itself is a ``StreamError`` with a one-line message naming the
file; a truncated file still yields its intact frames before the error, so nothing that was
recorded is lost. ``AnalysisWriter`` streams frames.csv and writes results.json as
``spec/analysis-output.md`` defines them.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import xml.etree.ElementTree as ET
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import numpy as np

from .blinkstats import blink_stats
from .tracking.results import FRAME_COLUMNS, FrameResult, Summary

# FFmpeg (inside OpenCV) prints decoder complaints straight to stderr; a damaged video is reported
# as one StreamError instead. Read once, when OpenCV first opens a video, so it is set at import.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

RESULTS_SCHEMA = "tfll-results/1"
UNTRACKED = "untracked"  # frames.csv state of a recorded frame the tracker did not get to
SUPPORTED_DTYPES = (np.uint8, np.uint16, np.float32, np.float64)
_COMPOUND_SUFFIXES = (".ome.tiff", ".ome.tif", ".ome.zarr")
_ZARR_READ_BYTES = 16 * 2**20
_TIME_UNITS_S = {
    "s": 1.0,
    "ms": 1e-3,
    "µs": 1e-6,
    "us": 1e-6,
    "ns": 1e-9,
    "min": 60.0,
    "h": 3600.0,
    "second": 1.0,
    "millisecond": 1e-3,
    "microsecond": 1e-6,
    "minute": 60.0,
}


class StreamError(ValueError):
    """A recorded stream or analysis file that cannot be read as asked; the message is one line.

    ``frames_read`` is set when the error ended an iteration after some intact frames.
    """

    def __init__(self, message: str, frames_read: int | None = None) -> None:
        super().__init__(message)
        self.frames_read = frames_read


def stream_stem(path: str | Path) -> str:
    """Name of a stream without its format suffix (``x.ome.tif`` -> ``x``)."""
    name = Path(path).name
    for suffix in _COMPOUND_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


# -- reading ------------------------------------------------------------------------------------


class FrameSource(ABC):
    """A recorded stream read one frame at a time; frames are mono (Y, X) or RGB (Y, X, 3).

    ``times_s`` holds the file's own frame times (seconds) when it has usable ones, else None
    (frame ``i`` is then at ``i / fps``). ``n_frames`` counts the frames that can be read (None
    when the file does not say); ``problem`` describes damage found on opening (a truncated
    file), which iteration reports as a StreamError after the intact frames.
    """

    path: Path
    fps: float
    n_frames: int | None
    shape: tuple[int, ...]
    dtype: np.dtype
    times_s: np.ndarray | None
    metadata: dict[str, Any]
    problem: str | None = None

    @abstractmethod
    def __iter__(self) -> Iterator[np.ndarray]:
        """Frames in order; raises StreamError after the last intact frame of a damaged file."""

    def indexed(self) -> Iterator[tuple[int, np.ndarray | str]]:
        """``(i, frame)`` in order, or ``(i, reason)`` for a frame missing or damaged in the file.

        Formats that keep frames apart (Zarr: a chunk per frame) lose only the frames whose
        data is gone, so the rest can still be analysed around the gaps; plain iteration
        refuses such a frame instead. Other formats yield frames only.
        """
        yield from enumerate(self)

    def read(self, i: int) -> np.ndarray:
        """Frame ``i`` (random access, where the format allows it)."""
        self._check_index(i)
        try:
            return self._read_frame(i)
        except (StreamError, IndexError):
            raise
        except Exception as e:
            raise StreamError(
                f"{self.path}: frame {i} is unreadable ({one_line(e)})", frames_read=i
            ) from e

    def _read_frame(self, i: int) -> np.ndarray:
        """Frame ``i``, for ``read`` (which checks the index and words the errors)."""
        raise StreamError(f"{self.path}: this format can only be read in order, not at frame {i}")

    def close(self) -> None:  # noqa: B027 - optional hook, most sources hold nothing open
        """Release the file."""

    def frame_time(self, i: int) -> float:
        """Seconds from the first frame to frame ``i``: the file's time, else ``i / fps``."""
        if self.times_s is not None and i < len(self.times_s):
            return float(self.times_s[i] - self.times_s[0])
        return i / self.fps

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_index(self, i: int) -> None:
        if self.n_frames is not None and not 0 <= i < self.n_frames:
            raise IndexError(f"{self.path}: frame {i} out of range 0..{self.n_frames - 1}")

    def _finish_setup(
        self,
        fps_arg: float | None,
        declared_fps: list[float | None],
        fallback_fps: float | None = None,
    ) -> None:
        """Check pixels, pick the frame rate: argument, declared rate, frame times, fallback."""
        check_frame_layout(self.path, self.shape, self.dtype)
        if self.times_s is not None and not _usable_times(self.times_s):
            self.metadata["ignored_times"] = "frame times not finite and increasing"
            self.times_s = None
        if fps_arg is not None:
            if not (math.isfinite(fps_arg) and fps_arg > 0):
                raise StreamError(f"{self.path}: --fps must be a positive number, got {fps_arg}")
            self.fps = float(fps_arg)
            self.times_s = None  # the user's rate replaces the file's timing altogether
            return
        rates = [f for f in declared_fps if f is not None and math.isfinite(f) and f > 0]
        if not rates and self.times_s is not None and len(self.times_s) > 1:
            span = float(self.times_s[-1] - self.times_s[0])
            rates.append((len(self.times_s) - 1) / span)
        if not rates and fallback_fps is not None and fallback_fps > 0:
            rates.append(fallback_fps)
        if not rates:
            damage = f" ({self.problem})" if self.problem else ""
            raise StreamError(f"{self.path}: no frame rate in the file{damage}; pass --fps")
        self.fps = float(rates[0])


def check_frame_layout(path: str | Path, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """Refuse frames the tracker cannot take: shape other than (Y, X)/(Y, X, 3), odd pixel types."""
    if not (len(shape) == 2 or (len(shape) == 3 and shape[2] == 3)) or min(shape[:2]) < 1:
        raise StreamError(
            f"{path}: unsupported frame shape {tuple(shape)}: need (Y, X) or (Y, X, 3)"
        )
    if np.dtype(dtype).type not in SUPPORTED_DTYPES:
        raise StreamError(
            f"{path}: unsupported pixel type {np.dtype(dtype)}: need 8/16-bit "
            "unsigned integers (or float)"
        )


def _usable_times(t: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(t)) and (len(t) < 2 or np.all(np.diff(t) > 0)))


def open_stream(path: str | Path, fps: float | None = None) -> FrameSource:
    """Open a recorded stream for frame-by-frame reading; ``fps`` overrides the file's rate.

    The format is recognised from the content (TIFF magic, Zarr directory), else handed to
    OpenCV as a video. Raises StreamError (one line, naming the file) when it cannot be read.
    """
    p = Path(path)
    if not p.exists():
        raise StreamError(f"{path}: no such file")
    if p.is_dir():
        return _ZarrSource(p, fps)
    try:
        with open(p, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise StreamError(f"{path}: cannot read the file ({e.strerror or e})") from e
    if not magic:
        raise StreamError(f"{path}: file is empty")
    if magic[:2] in (b"II", b"MM") and magic[2:4] in (b"*\x00", b"\x00*", b"+\x00", b"\x00+"):
        return _TiffSource(p, fps)
    if p.suffix.lower() in (".tif", ".tiff"):
        raise StreamError(f"{path}: not a TIFF file (bad header)")
    return _VideoSource(p, fps)


RECORDING_SCHEMA = "tfll-recording/1"
RECORDING_IN_PROGRESS = "tfll recording in progress"  # a TIFF's description until it closes


def is_recording(path: str | Path) -> bool:
    """Whether ``path`` is a recording this project's recorder wrote (by its content).

    An OME-Zarr's root attributes carry the recorder's ``tfll`` record; an OME-TIFF's first
    page description carries it in the OME-XML (or, before the recording was closed, the
    recorder's placeholder). Never raises: anything unreadable is not a recording.
    """
    p = Path(path)
    try:
        if p.is_dir():
            doc = json.loads((p / "zarr.json").read_text(encoding="utf-8"))
            record = doc.get("attributes", {}).get("tfll", {})
            return isinstance(record, dict) and record.get("schema") == RECORDING_SCHEMA
        with open(p, "rb") as f:
            magic = f.read(4)
        if magic[:2] not in (b"II", b"MM"):
            return False
        import tifffile

        with tifffile.TiffFile(p) as tif:
            description = tif.pages.first.description
        return any(mark in description for mark in (RECORDING_SCHEMA, RECORDING_IN_PROGRESS))
    except Exception:
        return False


def read_image(path: str | Path) -> np.ndarray:
    """One still image, mono (Y, X) or RGB (Y, X, 3): a TIFF's first frame, else OpenCV's read.

    For references and charts photographed once (``tfll calibrate``). TIFF goes through the
    stream reader, so every layout ``tfll analyze`` accepts (OME, ImageJ, planar, stacks) is
    accepted here too; PNG, JPEG and the like go through OpenCV (BGR converted to RGB).
    """
    p = Path(path)
    if not p.exists():
        raise StreamError(f"{path}: no such file")
    if p.is_dir():
        raise StreamError(f"{path}: is a directory, not an image")
    try:
        with open(p, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise StreamError(f"{path}: cannot read the file ({e.strerror or e})") from e
    tiff = magic[:2] in (b"II", b"MM") and magic[2:4] in (b"*\x00", b"\x00*", b"+\x00", b"\x00+")
    if tiff or p.suffix.lower() in (".tif", ".tiff"):
        with open_stream(p, fps=1.0) as source:  # a still has no rate; any will do
            return source.read(0)
    import cv2

    image = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise StreamError(
            f"{path}: not a readable image (TIFF, PNG or another format OpenCV reads)"
        )
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    elif image.ndim == 3:
        code = cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
        image = cv2.cvtColor(image, code)
    check_frame_layout(p, image.shape, image.dtype)
    return np.ascontiguousarray(image)


def _frame_layout(
    path: Path, shape: tuple[int, ...], axes: str
) -> tuple[int, tuple[int, ...], bool]:
    """How an array holds frames: (frame count, shape of one frame's block, planar RGB?).

    ``axes`` has one letter per dimension (T, Z, C, S, Y, X...; '?' when unknown). Frames are the
    trailing (Y, X), (Y, X, 3) or planar (3, Y, X) block; all leading dimensions but one must be 1.
    """
    kept = [(n, a) for n, a in zip(shape, axes, strict=True) if n != 1 or a in "YX"]
    dims = tuple(n for n, _ in kept)
    letters = "".join(a for _, a in kept)
    named = f" (axes {axes})" if "?" not in axes else ""
    bad = StreamError(
        f"{path}: unsupported array shape {tuple(shape)}{named}: need (T, Y, X) or (T, Y, X, 3)"
    )
    if len(dims) < 2:
        raise bad
    if len(dims) >= 3 and dims[-1] == 3 and letters[-1] in "SC?":
        k, planar = 3, False
    elif len(dims) >= 3 and dims[-3] == 3 and letters[-3] in "SC":
        k, planar = 3, True
    elif letters[-1] in "SC" or (len(dims) >= 3 and letters[-3] in "SC"):
        raise bad  # colour channels other than 3
    else:
        k, planar = 2, False
    lead = dims[:-k]
    if len(lead) > 1:
        raise bad
    return (lead[0] if lead else 1), dims[-k:], planar


def _block_to_frame(block: np.ndarray, planar: bool) -> np.ndarray:
    frame = np.moveaxis(block, 0, -1) if planar else block
    return np.ascontiguousarray(frame)


@contextmanager
def _tifffile_log() -> Iterator[list[str]]:
    """Collect what tifffile logs (damage reports) instead of letting it reach stderr."""
    logger = logging.getLogger("tifffile")
    messages: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler, propagate = _Collect(logging.WARNING), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


class _TiffSource(FrameSource):
    """TIFF / OME-TIFF / ImageJ stacks, read frame by frame (byte ranges or pages)."""

    def __init__(self, path: Path, fps: float | None) -> None:
        self.path, self.metadata, self.times_s = path, {}, None
        self._tif: Any = None
        self._fh: Any = None
        try:
            self._open_tiff()
            self._finish_setup(fps, self._read_tiff_metadata(self._tif))
        except BaseException:
            self.close()
            raise

    def _open_tiff(self) -> None:
        """Find the frames: the first series, else (a damaged index) the pages still readable."""
        import tifffile

        path = self.path
        with _tifffile_log() as log:
            try:
                self._tif = tif = tifffile.TiffFile(path)
            except Exception as e:  # tifffile raises many types for a broken file
                raise StreamError(
                    f"{path}: not a readable TIFF, truncated or damaged ({one_line(e)})"
                ) from e
            pages: Any
            try:
                series = tif.series[0]
                shape, axes, dtype = series.shape, series.axes, series.dtype
                pages, self._offset = series.pages, series.dataoffset
            except Exception:
                pages = _readable_pages(tif)
                if not pages:
                    raise StreamError(
                        f"{path}: not a readable TIFF, truncated or damaged (no intact image)"
                    ) from None
                first = pages[0]
                shape, axes, dtype = (len(pages), *first.shape), "I" + first.axes, first.dtype
                self._offset = None
                log.append("corrupt index")
        # other writers' axis letters are guesses (tifffile's own shaped files say Q for unknown
        # and may call a colour axis X); only a samples axis S is certain there
        if not (tif.is_ome or tif.is_imagej):
            axes = "".join(a if a in "SI" else "?" for a in axes)
        self._n_expected, self._block, self._planar = _frame_layout(path, shape, axes)
        self.shape = _block_to_frame(np.empty(self._block, np.uint8), self._planar).shape
        self.dtype = np.dtype(dtype).newbyteorder("=")
        self._byteorder = tif.byteorder
        self.metadata.update(
            format="ome-tiff" if tif.is_ome else "imagej-tiff" if tif.is_imagej else "tiff",
            axes=axes,
        )
        self._file_size = path.stat().st_size
        self._pages = pages
        self._ppf = 1  # pages per frame
        if self._offset is not None:
            self._fh = open(path, "rb")  # noqa: SIM115 - held until close()
            intact = self._intact_contiguous_frames(tif)
        else:
            page_size = int(np.prod(pages[0].shape)) if len(pages) and pages[0] is not None else 1
            self._ppf = max(1, int(np.prod(self._block)) // page_size)
            intact = self._intact_page_frames()
        self.n_frames = intact
        if self.problem is None and intact < self._n_expected:
            self.problem = f"file is truncated: {intact} of {self._n_expected} frames intact"
        elif self.problem is None and any(w in m for m in log for w in ("invalid", "corrupt")):
            self.problem = "file is truncated or damaged: its TIFF structure is cut short"
        if self.problem:
            self.metadata["problem"] = self.problem
        if intact == 0:
            raise StreamError(f"{path}: {self.problem or 'no frames'}; no frame can be read")

    def _intact_contiguous_frames(self, tif: Any) -> int:
        """Frames whose bytes are all in the file, plus any a killed writer left unindexed."""
        block_bytes = int(np.prod(self._block)) * self.dtype.itemsize
        data_bytes = self._file_size - int(self._offset or 0)
        intact = min(self._n_expected, max(0, data_bytes // block_bytes))
        if len(tif.pages) == 1 and intact == 1:
            unlisted = _unindexed_frames(tif.pages[0], block_bytes, self._file_size)
            if unlisted:
                intact = self._n_expected = 1 + unlisted
                self.problem = (
                    f"file is truncated or was not closed: its TIFF index lists 1 "
                    f"frame but it holds {intact}"
                )
        return intact

    def _read_tiff_metadata(self, tif: Any) -> list[float | None]:
        """Frame times and declared rates, most trusted first: recorder, OME, ImageJ."""
        declared: list[float | None] = []
        if tif.is_ome and tif.ome_metadata:
            ome = _parse_ome_xml(tif.ome_metadata)
            self.metadata.update({k: v for k, v in ome.items() if k != "times_s"})
            declared.append(_as_float(ome.get("annotations", {}).get("tfll", {}).get("fps")))
            ti = ome.get("time_increment_s")
            declared.append(1.0 / ti if ti else None)
            times = ome.get("times_s")
            if times is not None and len(times) >= self._n_expected:
                self.times_s = times[: self._n_expected]
        if self.times_s is None:
            self.times_s = _recorder_times(self.path, self._n_expected)
            if self.times_s is not None:
                self.metadata["times_from"] = "camera_frames.jsonl"
        if tif.is_imagej and tif.imagej_metadata:
            ij = {k: v for k, v in tif.imagej_metadata.items() if isinstance(v, (int, float, str))}
            self.metadata["imagej"] = ij
            declared.append(_as_float(ij.get("fps")))
            finterval = _as_float(ij.get("finterval"))
            declared.append(1.0 / finterval if finterval else None)
        return declared

    def _intact_page_frames(self) -> int:
        """Frames whose pages all exist and whose pixel data lie inside the file."""
        n_pages = len(self._pages)
        for i in range(self._n_expected):
            for j in range(i * self._ppf, (i + 1) * self._ppf):
                page = self._pages[j] if j < n_pages else None
                if page is None or _page_end(page) > self._file_size:
                    return i
        return self._n_expected

    def _read_block(self, i: int) -> np.ndarray:
        if self._offset is not None:
            block = np.empty(self._block, self.dtype.newbyteorder(self._byteorder))
            self._fh.seek(self._offset + i * block.nbytes)
            if self._fh.readinto(block.view(np.uint8).reshape(-1)) != block.nbytes:
                raise OSError("short read")
            return block.astype(self.dtype, copy=False)
        with _tifffile_log():
            planes = [self._pages[j].asarray() for j in range(i * self._ppf, (i + 1) * self._ppf)]
        return (planes[0] if self._ppf == 1 else np.stack(planes)).reshape(self._block)

    def _read_frame(self, i: int) -> np.ndarray:
        return _block_to_frame(self._read_block(i), self._planar)

    def __iter__(self) -> Iterator[np.ndarray]:
        assert self.n_frames is not None
        for i in range(self.n_frames):
            yield self.read(i)
        if self.problem:
            raise StreamError(
                f"{self.path}: {self.problem}; read {self.n_frames} frames",
                frames_read=self.n_frames,
            )

    def close(self) -> None:
        """Close the TIFF file."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._tif is not None:
            self._tif.close()
            self._tif = None


def _recorder_times(path: Path, n: int) -> np.ndarray | None:
    """Frame times the recorder logged beside a recording (``<stem>.tfll/camera_frames.jsonl``).

    A recording killed before it closed has no OME-XML, but this log has every frame's time.
    """
    log = path.parent / f"{stream_stem(path)}.tfll" / "camera_frames.jsonl"
    if n < 1 or not log.is_file():
        return None
    times: list[float] = []
    try:
        with open(log, encoding="utf-8") as fh:
            for line in fh:
                if len(times) == n:
                    break
                t = _as_float(json.loads(line).get("time_s"))
                if t is None:
                    return None
                times.append(t)
    except (OSError, ValueError, AttributeError):
        return None
    return np.asarray(times) if len(times) == n else None


def _readable_pages(tif: Any) -> list[Any]:
    """Pages of a TIFF with a damaged index, up to the first unreadable or differently shaped."""
    pages: list[Any] = []
    try:
        tif.pages.useframes = True  # light TiffFrames sharing the first page's tags
        for page in tif.pages:
            if page is None or (pages and page.shape != pages[0].shape):
                break
            pages.append(page)
    except Exception:  # the first damaged IFD ends the readable part
        pass
    return pages


def _unindexed_frames(page: Any, block_bytes: int, file_size: int) -> int:
    """Whole frames stored after a lone page's data that nothing in the file indexes.

    tifffile writes the IFDs of a contiguous stack's later pages when it closes the file, so a
    writer killed mid-recording leaves one indexed page followed by the other frames' pixels.
    """
    data_end = _page_end(page)
    indexed = [page.offset + 2] + [t.valueoffset + t.valuebytecount for t in page.tags.values()]
    # values lost to a truncation (the OME-XML tifffile writes last) do not count
    if max(end for end in indexed if end <= file_size) > data_end:
        return 0
    return (file_size - data_end) // block_bytes


def _page_end(page: Any) -> int:
    ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts, strict=False) if o > 0]
    return max(ends, default=0)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _parse_ome_xml(xml: str) -> dict[str, Any]:
    """Frame rate, per-frame times and named annotations from OME-XML (first image)."""
    out: dict[str, Any] = {}
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return out
    pixels = next((el for el in root.iter() if _local(el.tag) == "Pixels"), None)
    if pixels is not None:
        unit = _TIME_UNITS_S.get(pixels.get("TimeIncrementUnit", "s"), 1.0)
        ti = _as_float(pixels.get("TimeIncrement"))
        if ti and ti > 0:
            out["time_increment_s"] = ti * unit
        size_t = int(pixels.get("SizeT", "1"))
        times = np.full(size_t, np.nan)
        for plane in pixels:
            if _local(plane.tag) != "Plane" or plane.get("DeltaT") is None:
                continue
            t = int(plane.get("TheT", "0"))
            if 0 <= t < size_t and np.isnan(times[t]):
                scale = _TIME_UNITS_S.get(plane.get("DeltaTUnit", "s"), 1.0)
                times[t] = float(plane.get("DeltaT", "nan")) * scale
        if not np.all(np.isnan(times)):
            out["times_s"] = times
    annotations: dict[str, dict[str, str]] = {}
    for ann in root.iter():
        if _local(ann.tag) == "MapAnnotation" and ann.get("Namespace"):
            values = {m.get("K", ""): m.text or "" for m in ann.iter() if _local(m.tag) == "M"}
            annotations[ann.get("Namespace", "")] = values
    if annotations:
        out["annotations"] = annotations
    return out


def _as_float(v: object) -> float | None:
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def one_line(e: BaseException, limit: int = 300) -> str:
    """Render an exception as one line (OSError as '<file>: <reason>'), at most ``limit`` long."""
    if isinstance(e, OSError) and e.strerror:
        text = f"{e.filename}: {e.strerror}" if e.filename else e.strerror
    else:
        text = str(e).strip() or type(e).__name__
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _VideoSource(FrameSource):
    """Videos OpenCV reads (mp4, avi...), decoded in order and converted from BGR to RGB."""

    def __init__(self, path: Path, fps: float | None) -> None:
        import cv2

        self.path, self.times_s = path, None
        cap = cv2.VideoCapture(str(path))
        try:
            if not cap.isOpened():
                raise StreamError(
                    f"{path}: not a readable image stream (neither TIFF nor a video "
                    "OpenCV can open)"
                )
            ok, first = cap.read()
            if not ok or first is None:
                raise StreamError(f"{path}: video has no readable frame")
            count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
            header_fps = cap.get(cv2.CAP_PROP_FPS)
            fourcc = int(cap.get(cv2.CAP_PROP_FOURCC))
            codec = "".join(chr((fourcc >> (8 * k)) & 0xFF) for k in range(4)).strip("\x00 ")
            self.metadata = {"format": "video", "backend": cap.getBackendName(), "codec": codec}
        finally:
            cap.release()
        self.n_frames = int(count) if math.isfinite(count) and count > 0 else None
        frame = self._to_rgb(first)
        self.shape, self.dtype = frame.shape, frame.dtype
        self._finish_setup(fps, [header_fps])

    @staticmethod
    def _to_rgb(frame: np.ndarray) -> np.ndarray:
        import cv2

        if frame.ndim == 2:
            return frame
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB if frame.shape[2] == 4 else cv2.COLOR_BGR2RGB)

    def __iter__(self) -> Iterator[np.ndarray]:
        import cv2

        cap = cv2.VideoCapture(str(self.path))
        n = 0
        try:
            while True:
                ok, frame = cap.read()
                if not ok or frame is None:
                    break
                frame = self._to_rgb(frame)
                if frame.shape != self.shape:
                    raise StreamError(
                        f"{self.path}: frame {n} is {frame.shape}, the video started "
                        f"with {self.shape}",
                        frames_read=n,
                    )
                n += 1
                yield frame
        finally:
            cap.release()
        if self.n_frames is not None and n < self.n_frames:
            raise StreamError(
                f"{self.path}: video ends early: {n} of the {self.n_frames} frames "
                "its header announces",
                frames_read=n,
            )


class _ZarrSource(FrameSource):
    """OME-Zarr (v0.4/v0.5) or plain Zarr arrays, read a chunk of frames at a time."""

    def __init__(self, path: Path, fps: float | None) -> None:
        import zarr

        self.path, self.times_s = path, None
        try:
            node = zarr.open(store=str(path), mode="r")
        except Exception as e:
            raise StreamError(
                f"{path}: not an image stream (a directory that is not a "
                f"readable Zarr store: {one_line(e)})"
            ) from e
        attrs: dict[str, Any] = dict(node.attrs)
        session: Any = attrs.get("tfll") or {}  # a tfll recording's own record, at its root
        image = _bioformats2raw_image(node, attrs)
        if image is not None:  # the image is a subgroup; the OME-XML beside it
            node, attrs = image, dict(image.attrs)
        ome = attrs.get("ome", attrs)  # 0.5 nests under "ome", 0.4 has multiscales at the top
        multiscales = ome.get("multiscales") if isinstance(ome, dict) else None
        axes_meta: list[Any] = []
        arr: Any = node
        if isinstance(node, zarr.Group):
            key = "0"
            if multiscales:
                key = multiscales[0]["datasets"][0]["path"]
                axes_meta = multiscales[0].get("axes", [])
            try:
                arr = node[key]
            except KeyError:
                arr = None
            if not isinstance(arr, zarr.Array):
                raise StreamError(f"{path}: Zarr group has no image array '{key}'")
        names = [a.get("name", "?") if isinstance(a, dict) else str(a) for a in axes_meta]
        if not names:
            names = list(getattr(arr.metadata, "dimension_names", None) or [])
        axes = "".join(n[:1].upper() for n in names) if len(names) == arr.ndim else "?" * arr.ndim
        n, self._block, self._planar = _frame_layout(path, arr.shape, axes)
        lead = [d for d in range(arr.ndim - len(self._block)) if arr.shape[d] != 1]
        self._t_dim = lead[0] if lead else None
        self._arr, self.n_frames = arr, n
        # the recorder writes a chunk file for every frame, so in its recordings an absent
        # chunk is a lost frame; elsewhere Zarr leaves out chunks of only the fill value
        ours = isinstance(session, dict) and session.get("schema") == RECORDING_SCHEMA
        self._absent = self._absent_frame_chunks(path) if ours else set()
        self._check_absent_chunks()
        self.dtype = np.dtype(arr.dtype)
        self.shape = _block_to_frame(np.empty(self._block, np.uint8), self._planar).shape
        self.metadata = {
            "format": "ome-zarr" if multiscales else "zarr",
            "axes": axes,
            **{k: v for k, v in attrs.items() if k not in ("ome", "ome_writers", "multiscales")},
        }
        if not isinstance(session, dict):
            session = {}
        if session:
            self.metadata["tfll"] = session
        self.times_s = _zarr_times(path, node, attrs, n)
        # the time axis' scale comes last: writers put 1.0 there when not told the period
        self._finish_setup(
            fps, [_as_float(session.get("fps"))], self._t_scale_fps(multiscales, names)
        )

    @staticmethod
    def _t_scale_fps(multiscales: Any, names: list[str]) -> float | None:
        """Rate from the time axis' scale, only when the axis has a time unit."""
        if not multiscales or "t" not in names:
            return None
        ti = names.index("t")
        unit = (
            multiscales[0]["axes"][ti].get("unit")
            if isinstance(multiscales[0]["axes"][ti], dict)
            else None
        )
        for tr in multiscales[0]["datasets"][0].get("coordinateTransformations", []):
            if tr.get("type") == "scale" and unit in _TIME_UNITS_S:
                dt = float(tr["scale"][ti]) * _TIME_UNITS_S[unit]
                return 1.0 / dt if dt > 0 else None
        return None

    def _chunk_of(self, i: int) -> int:
        return i // self._arr.chunks[self._t_dim] if self._t_dim is not None else 0

    def _absent_frame_chunks(self, root: Path) -> set[int]:
        """Chunks along time that have no data on disk (Zarr would read them as zeros).

        In a tfll recording a missing chunk file is a lost frame, not a black one; a time
        chunk counts as absent when any of its chunks (or shards) is.
        """
        folder = root / self._arr.path if self._arr.path else root
        if not folder.is_dir():
            return set()  # not a folder of files (a zip store, say): nothing to check
        present = {
            str(Path(dirpath, f).relative_to(folder).as_posix())
            for dirpath, _, files in os.walk(folder)
            for f in files
        }
        grid = self._arr.cdata_shape
        t = self._t_dim
        absent: set[int] = set()
        for coords in np.ndindex(*grid):
            tc = coords[t] if t is not None else 0
            if tc in absent:
                continue
            if self._arr.metadata.encode_chunk_key(coords) not in present:
                absent.add(tc)
        return absent

    def _check_absent_chunks(self) -> None:
        """Refuse a store with no frame data; trailing absent chunks end it (a wrong shape)."""
        assert self.n_frames is not None
        n_chunks = self._chunk_of(self.n_frames - 1) + 1 if self.n_frames else 0
        if n_chunks and len(self._absent) == n_chunks:
            raise StreamError(
                f"{self.path}: no frame data: every one of its {self.n_frames} frames' chunk "
                "files is missing"
            )
        last = n_chunks - 1
        while last in self._absent:
            self._absent.discard(last)
            last -= 1
        if last < n_chunks - 1:
            per = self._arr.chunks[self._t_dim] if self._t_dim is not None else 1
            kept = (last + 1) * per
            self.problem = (
                f"its metadata says {self.n_frames} frames but the chunk files end after "
                f"frame {kept - 1}"
            )
            self.n_frames = kept

    def _missing_reason(self, i: int) -> str | None:
        if self._chunk_of(i) in self._absent:
            return "its chunk file is missing"
        return None

    def _read_frames(self, start: int, stop: int) -> np.ndarray:
        idx = tuple(
            slice(start, stop) if d == self._t_dim else slice(None) for d in range(self._arr.ndim)
        )
        return np.asarray(self._arr[idx]).reshape(stop - start, *self._block)

    def _read_frame(self, i: int) -> np.ndarray:
        missing = self._missing_reason(i)
        if missing is not None:
            raise StreamError(f"{self.path}: frame {i} is missing ({missing})", frames_read=i)
        return _block_to_frame(self._read_frames(i, i + 1)[0], self._planar)

    def __iter__(self) -> Iterator[np.ndarray]:
        for i, frame in self.indexed():
            if isinstance(frame, str):
                raise StreamError(f"{self.path}: frame {i} is lost ({frame})", frames_read=i)
            yield frame

    def indexed(self) -> Iterator[tuple[int, np.ndarray | str]]:
        """Frames in order; a frame whose chunk is missing or damaged comes as its reason."""
        assert self.n_frames is not None
        # whole chunks, several at once (zarr fetches them concurrently), ~16 MB at a time
        chunk = self._arr.chunks[self._t_dim] if self._t_dim is not None else 1
        chunk_bytes = chunk * int(np.prod(self._block)) * self.dtype.itemsize
        step = chunk * max(1, _ZARR_READ_BYTES // max(chunk_bytes, 1))
        for start in range(0, self.n_frames, step):
            stop = min(start + step, self.n_frames)
            first, last = self._chunk_of(start), self._chunk_of(stop - 1)
            whole = not any(first <= c <= last for c in self._absent)
            frames = None
            if whole:
                with suppress(Exception), _quiet_asyncio():
                    frames = self._read_frames(start, stop)
            if frames is not None:
                for k, block in enumerate(frames):
                    yield start + k, _block_to_frame(block, self._planar)
                continue
            # a chunk is missing or damaged: read chunk by chunk so only its frames are lost
            for c0 in range(start, stop, chunk):
                c1 = min(c0 + chunk, stop)
                missing = self._missing_reason(c0)
                if missing is None:
                    try:
                        with _quiet_asyncio():
                            part = self._read_frames(c0, c1)
                    except Exception as e:
                        missing = f"damaged (its chunk cannot be decoded: {one_line(e, 120)})"
                if missing is not None:
                    for i in range(c0, c1):
                        yield i, missing
                    continue
                for k, block in enumerate(part):
                    yield c0 + k, _block_to_frame(block, self._planar)
        if self.problem is not None:
            raise StreamError(f"{self.path}: {self.problem}", frames_read=self.n_frames)


@contextmanager
def _quiet_asyncio() -> Iterator[None]:
    """Hide asyncio's "Task was destroyed" noise when one of zarr's concurrent reads fails.

    The failure itself is reported (the frames it cost are named); the sibling reads it
    cancels are not news.
    """
    log = logging.getLogger("asyncio")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


def _bioformats2raw_image(root: Any, attrs: dict[str, Any]) -> Any:
    """The image group of a bioformats2raw-layout store (its first series), else None."""
    import zarr

    ome = attrs.get("ome", attrs)
    if not (isinstance(root, zarr.Group) and isinstance(ome, dict)):
        return None
    if "bioformats2raw.layout" not in ome:
        return None
    key = "0"  # the first series, unless the OME group lists others
    with suppress(KeyError, TypeError, AttributeError, IndexError):
        listed: Any = dict(root["OME"].attrs)
        key = str(listed.get("ome", listed)["series"][0])
    try:
        image = root[key]
    except KeyError:
        return None
    return image if isinstance(image, zarr.Group) else None


def _zarr_times(path: Path, group: Any, attrs: dict[str, Any], n: int) -> np.ndarray | None:
    """Frame times of a Zarr recording, one for each of its ``n`` frames, or None.

    From the OME-XML of a bioformats2raw layout (``OME/METADATA.ome.xml``, per-plane
    ``DeltaT``), else the recorder's log beside the recording (a killed recording has it),
    else a ``time_s`` array (older recordings) or ome-writers' per-frame ``delta_t``.
    """
    import zarr

    xml = path / "OME" / "METADATA.ome.xml"
    if xml.is_file():
        with suppress(OSError, UnicodeDecodeError):
            times = _parse_ome_xml(xml.read_text(encoding="utf-8")).get("times_s")
            if times is not None and len(times) >= n and np.all(np.isfinite(times[:n])):
                return np.asarray(times[:n], float)
    logged = _recorder_times(path, n)
    if logged is not None:
        return logged
    arr = None
    if isinstance(group, zarr.Group):
        with suppress(KeyError):
            arr = group["time_s"]
    if isinstance(arr, zarr.Array) and arr.ndim == 1 and arr.shape[0] >= n:
        return np.asarray(arr[:n], float)
    meta = attrs.get("ome_writers", {}).get("frame_metadata") or []
    times = [_as_float(m.get("delta_t")) for m in meta if isinstance(m, dict)]
    if len(times) >= n and all(t is not None for t in times[:n]):
        return np.asarray(times[:n], float)
    return None


# -- writing safely -----------------------------------------------------------------------------


def check_output(path: str | Path, force: bool = False, what: str = "") -> Path:
    """Refuse an output that is a symbolic link, or that exists unless ``force``.

    Writing through a link would change a file elsewhere; replacing an existing output without
    being asked loses results (a re-analysis over a live session's). ``what`` says what to pass
    instead (``--out another folder``). Returns the path.
    """
    p = Path(path)
    if p.is_symlink():
        raise ValueError(f"{p}: is a symbolic link; tfll never writes through one (remove it)")
    if p.exists() and not force:
        raise ValueError(f"{p} exists: pass --force to replace it{f', or {what}' if what else ''}")
    return p


def _temp_beside(path: Path) -> Path:
    """A fresh temporary name in ``path``'s folder, keeping its suffixes (writers read them)."""
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    if tmp.is_dir() and not tmp.is_symlink():
        import shutil

        shutil.rmtree(tmp)
    else:
        tmp.unlink(missing_ok=True)  # a stale temporary, or a link planted there
    return tmp


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block completes.

    An interrupted or failed write (Ctrl-C, a full disk) so leaves the previous file whole
    and no partial one; ``os.replace`` swaps a link itself, never its target.
    """
    path = Path(path)
    tmp = _temp_beside(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def write_text_replacing(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary name: whole or not at all."""
    path = Path(path)
    with replacing(path) as tmp, open(tmp, "x", encoding="utf-8") as fh:
        fh.write(text)
    return path


# -- analysis output ----------------------------------------------------------------------------


MAX_TRACKS_PER_FRAME = 64  # bounds tracks.csv (~1.5 kB a frame) while showing every track's life


ANALYSIS_FILES = ("results.json", "frames.csv", "tracks.csv", "report.html")
"""What an analysis folder holds; an existing one is replaced only when asked (``force``)."""


class AnalysisWriter:
    """Writes one analysis: frames.csv row by row as frames are tracked, results.json at the end.

    Holds no per-frame state (a counter and an open file), so memory stays flat however long
    the stream. Rows are flushed every ``flush_every`` frames so a crash keeps what was tracked;
    results.json appears (atomically) only when ``close`` is called with the summary.

    ``staged`` (re-analysis into a folder that may hold earlier results): the CSVs are written
    under temporary names and moved into place only by a complete ``close``, so an interrupted
    run leaves the earlier results whole; the earlier report.html, out of date, is removed.
    Unstaged (a new recording's folder) the rows are in place as they come, for a crash to keep.
    """

    def __init__(
        self,
        out_dir: str | Path,
        source_name: str,
        fps: float,
        frame_shape: tuple[int, ...],
        flush_every: int = 50,
        staged: bool = False,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.source_name, self.fps, self.frame_shape = source_name, float(fps), tuple(frame_shape)
        self.n_frames = 0
        self._flush_every = flush_every
        self.staged = staged
        if self.out_dir.is_symlink():
            raise ValueError(
                f"{self.out_dir}: is a symbolic link; tfll never writes through one (remove it)"
            )
        for name in ANALYSIS_FILES:
            check_output(self.out_dir / name, force=True)  # refuses links only
        self.out_dir.mkdir(parents=True, exist_ok=True)
        # (where the rows go, where they belong): the same path unless staged
        self._paths = tuple(
            (_temp_beside(self.out_dir / name) if staged else self.out_dir / name, name)
            for name in ("frames.csv", "tracks.csv")
        )
        if not staged:
            # a results.json of an earlier run must not sit beside this run's frames.csv
            (self.out_dir / "results.json").unlink(missing_ok=True)
        self._csv_file = open(self._paths[0][0], "w", newline="", encoding="utf-8")  # noqa: SIM115
        self._csv = csv.writer(self._csv_file, lineterminator="\n")
        self._csv.writerow(FRAME_COLUMNS)
        # the tracked features, for inspecting a recording frame by frame (napari reader)
        self._tracks_file = open(self._paths[1][0], "w", encoding="utf-8")  # noqa: SIM115
        self._tracks_file.write("frame,point_id,x_px,y_px,dy_px\n")

    @property
    def closed(self) -> bool:
        """Whether ``close`` has been called."""
        return self._csv_file.closed

    def write_untracked(self, frame: int, time_s: float) -> None:
        """Append the row of a frame that was recorded but not tracked (state ``untracked``)."""
        row = [""] * len(FRAME_COLUMNS)
        row[:4] = [str(frame), f"{time_s:.6f}", UNTRACKED, "-1"]
        row[FRAME_COLUMNS.index("n_tracked")] = "0"
        self._csv.writerow(row)
        self._count_row()

    def write(self, result: FrameResult) -> None:
        """Append one frame's row, and its tracked features (at most ``MAX_TRACKS_PER_FRAME``)."""
        self._csv.writerow(result.csv_row())
        n = min(len(result.point_ids), MAX_TRACKS_PER_FRAME)
        if n:
            keep = np.argsort(result.point_ids, kind="stable")[:n]  # the longest-lived tracks
            rows = np.column_stack(
                [
                    np.full(n, result.frame),
                    result.point_ids[keep],
                    result.points[keep],
                    result.point_dy_px[keep],
                ]
            )
            np.savetxt(
                self._tracks_file, rows, fmt=("%d", "%d", "%.2f", "%.2f", "%.2f"), delimiter=","
            )
        self._count_row()

    def _count_row(self) -> None:
        self.n_frames += 1
        if self.n_frames % self._flush_every == 0:
            self._csv_file.flush()
            self._tracks_file.flush()

    def keep_first(self, n: int) -> None:
        """Drop the rows of frames ``n`` and later (frames a recording could not keep)."""
        for f in (self._csv_file, self._tracks_file):
            f.flush()
        for path, _ in self._paths:
            with open(path, encoding="utf-8") as fh:
                lines = fh.readlines()
            kept = lines[:1] + [x for x in lines[1:] if int(x.split(",", 1)[0]) < n]
            with open(path, "r+", encoding="utf-8") as fh:
                fh.writelines(kept)
                fh.truncate()
        for f in (self._csv_file, self._tracks_file):
            f.seek(0, os.SEEK_END)
        self.n_frames = min(self.n_frames, n)

    def results(self, summary: Summary, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Build the results.json document (``extra`` adds fields, never replaces any)."""
        doc: dict[str, Any] = {
            "schema": RESULTS_SCHEMA,
            "source": self.source_name,
            "fps": self.fps,
            "n_frames": self.n_frames,
            "frame_shape": list(self.frame_shape[:2]),
            "channels": self.frame_shape[2] if len(self.frame_shape) == 3 else 1,
            "blinks": [b.to_json() for b in summary.blinks],
            "intervals": [iv.to_json() for iv in summary.intervals],
            "blink_stats": (
                blink_stats(summary.blinks, self.fps, self.n_frames).to_json()
                if self.n_frames
                else None
            ),
            "thickness": summary.thickness,
        }
        clash = set(doc) & set(extra or {})
        if clash:
            raise ValueError(f"extra fields would replace results.json fields: {sorted(clash)}")
        doc.update(extra or {})
        from .units import add_physical_units

        return add_physical_units(doc)

    def close(self, summary: Summary | None = None, extra: dict[str, Any] | None = None) -> None:
        """Finish frames.csv and, given the summary, write results.json (tmp file + rename)."""
        try:  # a full disk may fail either close; results.json is still worth trying
            self._csv_file.close()
        finally:
            try:
                self._tracks_file.close()
            except OSError:
                logging.getLogger(__name__).warning("%s: tracks.csv is incomplete", self.out_dir)
        if summary is None:
            if self.staged:  # interrupted: the earlier results stay as they were
                for path, _ in self._paths:
                    path.unlink(missing_ok=True)
            return
        doc = _json_safe(self.results(summary, extra))
        text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
        with replacing(self.out_dir / "results.json") as tmp:
            with open(tmp, "x", encoding="utf-8") as fh:
                fh.write(text)
            if self.staged:  # everything written: swap the new files in together
                for path, name in self._paths:
                    os.replace(path, self.out_dir / name)
                (self.out_dir / "report.html").unlink(missing_ok=True)  # of the earlier results

    def __enter__(self) -> AnalysisWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _json_safe(v: Any) -> Any:
    """Plain JSON values: non-finite floats become null, numpy scalars Python numbers."""
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _results_dir(path: str | Path) -> Path:
    p = Path(path)
    return p.parent if p.name in ("results.json", "frames.csv") else p


def read_results(path: str | Path) -> dict[str, Any]:
    """results.json of an analysis directory (or the file itself), checked for its schema."""
    f = _results_dir(path) / "results.json"
    try:
        doc = json.loads(f.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise StreamError(
            f"{f}: no such file (not an analysis directory, or the analysis did not finish)"
        ) from e
    except (OSError, ValueError) as e:
        raise StreamError(f"{f}: not a readable results file ({one_line(e)})") from e
    schema = doc.get("schema") if isinstance(doc, dict) else None
    if schema != RESULTS_SCHEMA:
        raise StreamError(f"{f}: schema {schema!r} is not {RESULTS_SCHEMA!r}")
    return doc


_INT_COLUMNS = ("frame", "interval", "n_tracked")


def read_frames_csv(path: str | Path) -> dict[str, np.ndarray]:
    """Read frames.csv as columns: int frame/interval/n_tracked, str state, float (NaN if empty)."""
    f = _results_dir(path) / "frames.csv"
    try:
        with open(f, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except FileNotFoundError as e:
        raise StreamError(f"{f}: no such file") from e
    except (OSError, UnicodeDecodeError) as e:
        raise StreamError(f"{f}: not readable ({one_line(e)})") from e
    if not rows or any(c not in rows[0] for c in FRAME_COLUMNS):
        missing = [c for c in FRAME_COLUMNS if not rows or c not in rows[0]]
        raise StreamError(
            f"{f}: not a frames.csv of {RESULTS_SCHEMA} (missing columns: {', '.join(missing)})"
        )
    header, body = rows[0], rows[1:]
    cols: dict[str, np.ndarray] = {}
    try:
        for j, name in enumerate(header):
            values = [r[j] if j < len(r) else "" for r in body]
            if name == "state":
                cols[name] = np.asarray(values, dtype=str)
            elif name in _INT_COLUMNS:
                cols[name] = np.asarray([int(v) for v in values], dtype=np.int64)
            else:
                cols[name] = np.asarray([float(v) if v else np.nan for v in values], dtype=float)
    except ValueError as e:
        raise StreamError(f"{f}: bad value in column {name!r} ({one_line(e)})") from e
    return cols
