"""OME-Zarr (NGFF 0.5, Zarr v3) frame writer that a killed process cannot corrupt.

Every frame is one uncompressed chunk file (``0/c.<t>.0.0.0``) written straight to disk, and
the array's shape in its ``zarr.json`` is updated in place after each frame (one fixed-size
``pwrite``, which a SIGKILL cannot tear), so the store is always a valid Zarr array of exactly
the frames written. Frame times go to a 1-D ``time_s`` array the same way. Writing chunks
directly keeps a frame at about a millisecond; zarr-python reads the store as usual.

Layout: ``0/`` the frames, (T, Y, X) or (T, C, Y, X) with C = RGB (OME-NGFF puts channels
before space); ``time_s/`` seconds since the first frame; group attributes ``ome``
(multiscales), ``tfll`` (session) and, on close, ``ome_writers.frame_metadata`` (``delta_t``
per frame, where ``tfll_live.io`` and ome-writers readers look for frame times).
"""

from __future__ import annotations

import json
import os
from array import array
from pathlib import Path
from typing import Any

import numpy as np

_TIME_CHUNK = 4096
_PAD = 64  # room in a zarr.json for the frame count to grow, rewritten in place


def _array_meta(
    shape: list[int], chunks: list[int], dtype: np.dtype, fill: Any, names: list[str]
) -> dict[str, Any]:
    return {
        "zarr_format": 3,
        "node_type": "array",
        "shape": shape,
        "data_type": np.dtype(dtype).name,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunks}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "."}},
        "fill_value": fill,
        "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
        "attributes": {},
        "dimension_names": names,
        "storage_transformers": [],
    }


class _GrowingArrayMeta:
    """A zarr.json whose first dimension grows, rewritten in place at a fixed size."""

    def __init__(self, path: Path, meta: dict[str, Any]) -> None:
        self._meta = meta
        text = json.dumps(meta)
        self._size = len(text) + _PAD
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.pwrite(self._fd, text.ljust(self._size).encode(), 0)

    def set_length(self, n: int) -> None:
        self._meta["shape"][0] = n
        os.pwrite(self._fd, json.dumps(self._meta).ljust(self._size).encode(), 0)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def write_group_attrs(root: Path, attrs: dict[str, Any]) -> None:
    """(Re)write the group's zarr.json (via a temporary file and a rename)."""
    tmp = root / "zarr.json.tmp"
    tmp.write_text(
        json.dumps({"zarr_format": 3, "node_type": "group", "attributes": attrs}, allow_nan=False)
    )
    os.replace(tmp, root / "zarr.json")


class ZarrFrameWriter:
    """Appends frames to an OME-Zarr store created (as an empty group) by ``Recording``."""

    def __init__(self, root: Path, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.root = root
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.rgb = len(shape) == 3
        h, w = shape[:2]
        self._block = (3, h, w) if self.rgb else (h, w)
        names = ["t", "c", "y", "x"] if self.rgb else ["t", "y", "x"]
        (root / "0").mkdir()
        (root / "time_s").mkdir()
        self._frames_meta = _GrowingArrayMeta(
            root / "0" / "zarr.json",
            _array_meta([0, *self._block], [1, *self._block], self.dtype, 0, names),
        )
        self._times_meta = _GrowingArrayMeta(
            root / "time_s" / "zarr.json",
            _array_meta([0], [_TIME_CHUNK], np.dtype(np.float64), "NaN", ["t"]),
        )
        self._zeros = ".0" * len(self._block)  # chunk key c.<t>.0.0(.0): one flat directory
        self._time_chunk = np.full(_TIME_CHUNK, np.nan, "<f8")
        self._time_fd = -1
        self.times = array("d")
        self.n = 0

    @property
    def axes(self) -> list[dict[str, str]]:
        """OME-NGFF axes of the frame array."""
        t = [{"name": "t", "type": "time", "unit": "second"}]
        c = [{"name": "c", "type": "channel"}] if self.rgb else []
        return t + c + [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]

    def write(self, frame: np.ndarray, time_s: float) -> None:
        """Append one frame and its time; the store shows it once this returns."""
        if frame.shape != self.shape or frame.dtype != self.dtype:
            raise ValueError(
                f"frame {frame.shape} {frame.dtype} does not match the recording "
                f"({self.shape} {self.dtype}): the camera changed mid-recording"
            )
        block = frame.transpose(2, 0, 1) if self.rgb else frame
        data = np.ascontiguousarray(block, dtype=self.dtype.newbyteorder("<"))
        fd = os.open(
            self.root / "0" / f"c.{self.n}{self._zeros}",
            os.O_WRONLY | os.O_CREAT | os.O_EXCL,
            0o644,
        )
        try:
            view = data.data.cast("B")
            done = 0
            while done < len(view):
                done += os.write(fd, view[done:])
        finally:
            os.close(fd)
        self._write_time(time_s)
        self.n += 1
        self._times_meta.set_length(self.n)
        self._frames_meta.set_length(self.n)

    def _write_time(self, time_s: float) -> None:
        k, j = divmod(self.n, _TIME_CHUNK)
        if j == 0:
            if self._time_fd >= 0:
                os.close(self._time_fd)
            self._time_chunk[:] = np.nan
            self._time_fd = os.open(
                self.root / "time_s" / f"c.{k}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644
            )
        self._time_chunk[j] = time_s
        os.pwrite(self._time_fd, self._time_chunk.tobytes(), 0)
        self.times.append(time_s)

    def close(self) -> None:
        """Release the files (the store is complete after every frame already)."""
        self._frames_meta.close()
        self._times_meta.close()
        if self._time_fd >= 0:
            os.close(self._time_fd)
            self._time_fd = -1

    def ome_attrs(self, name: str) -> dict[str, Any]:
        """Return the group's ``ome`` attribute (multiscales with the frame period on t)."""
        dt = float(np.median(np.diff(self.times))) if len(self.times) > 1 else 1.0
        scale = [dt if dt > 0 else 1.0] + [1.0] * len(self._block)
        return {
            "version": "0.5",
            "multiscales": [
                {
                    "name": name,
                    "axes": self.axes,
                    "datasets": [
                        {
                            "path": "0",
                            "coordinateTransformations": [{"type": "scale", "scale": scale}],
                        }
                    ],
                }
            ],
        }
