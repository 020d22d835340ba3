"""OME-Zarr (NGFF 0.5, Zarr v3) frame writer: compressed, and a killed process cannot corrupt it.

Every frame is one Blosc-compressed chunk file (Zstd, bit shuffle: lossless) written straight
to disk, and the array's shape in its ``zarr.json`` is updated in place after each frame (one
fixed-size ``pwrite``, which a SIGKILL cannot tear), so the store is always a valid Zarr array
of exactly the frames written. Writing chunks directly keeps a frame at about a millisecond;
zarr-python, napari and OME tools read the store as usual.

Layout (bioformats2raw, so that the OME-XML with instrument, per-frame times and exposures
has its standard place beside the image)::

    rec.ome.zarr/zarr.json            group: ome {version, bioformats2raw.layout}, tfll {...}
    rec.ome.zarr/OME/METADATA.ome.xml the OME-XML (written when the recording closes)
    rec.ome.zarr/0/zarr.json          image group: multiscales (µm, s) and omero channels
    rec.ome.zarr/0/0/                 the frames, (T, Y, X) or (T, C, Y, X) with C = RGB

Nothing but the image's own array sits in the image group, so every Zarr reader that opens
an image opens this one. The frame times stay crash-safe in the analysis folder's
``camera_frames.jsonl`` until the OME-XML is written.
"""

from __future__ import annotations

import json
import os
from array import array
from pathlib import Path
from typing import Any

import numpy as np
from numcodecs import Blosc

from .ome_metadata import ImageMetadata, ngff_image_attrs, ome_xml

_PAD = 64  # room in a zarr.json for the frame count to grow, rewritten in place
IMAGE = "0"  # the image group (and its full-resolution array) in the bioformats2raw layout
# Blosc with Zstd at level 1 and bit shuffle: lossless, ~500 MB/s of frames on one core
_BLOSC = {"cname": "zstd", "clevel": 1, "shuffle": "bitshuffle", "blocksize": 0}


def _array_meta(
    shape: list[int], chunks: list[int], dtype: np.dtype, names: list[str]
) -> dict[str, Any]:
    return {
        "zarr_format": 3,
        "node_type": "array",
        "shape": shape,
        "data_type": np.dtype(dtype).name,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunks}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "."}},
        "fill_value": 0,
        "codecs": [
            {"name": "bytes", "configuration": {"endian": "little"}},
            {"name": "blosc", "configuration": {**_BLOSC, "typesize": np.dtype(dtype).itemsize}},
        ],
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


def write_group_attrs(group: Path, attrs: dict[str, Any]) -> None:
    """(Re)write a group's zarr.json (via a temporary file and a rename)."""
    group.mkdir(exist_ok=True)
    tmp = group / "zarr.json.tmp"
    tmp.write_text(
        json.dumps({"zarr_format": 3, "node_type": "group", "attributes": attrs}, allow_nan=False)
    )
    os.replace(tmp, group / "zarr.json")


def root_attrs(session: dict[str, Any]) -> dict[str, Any]:
    """Attributes of a recording's root group: the layout and the session's own record."""
    return {"ome": {"version": "0.5", "bioformats2raw.layout": 3}, "tfll": session}


class ZarrFrameWriter:
    """Appends frames to an OME-Zarr store created (as an empty folder) by ``Recording``."""

    def __init__(self, root: Path, meta: ImageMetadata) -> None:
        self.root, self.meta = root, meta
        self.shape = (meta.height, meta.width, 3) if meta.rgb else (meta.height, meta.width)
        self.dtype = np.dtype(meta.dtype)
        self._block = (3, meta.height, meta.width) if meta.rgb else (meta.height, meta.width)
        names = ["t", "c", "y", "x"] if meta.rgb else ["t", "y", "x"]
        self._codec = Blosc(
            cname=_BLOSC["cname"], clevel=_BLOSC["clevel"], shuffle=Blosc.BITSHUFFLE, blocksize=0
        )
        image = root / IMAGE
        write_group_attrs(image, {"ome": ngff_image_attrs(meta)})
        (image / IMAGE).mkdir()
        write_group_attrs(root / "OME", {"ome": {"version": "0.5", "series": [IMAGE]}})
        self._write_xml(meta)  # instrument, pixel size, channels: there even if killed
        self._frames_meta = _GrowingArrayMeta(
            image / IMAGE / "zarr.json",
            _array_meta([0, *self._block], [1, *self._block], self.dtype, names),
        )
        self._zeros = ".0" * len(self._block)  # chunk key c.<t>.0.0(.0): one flat directory
        self.times = array("d")
        self.exposures = array("d")
        self.n = 0
        self.bytes_in = self.bytes_out = 0

    def write(self, frame: np.ndarray, time_s: float, exposure_s: float) -> None:
        """Append one frame; the store shows it once this returns."""
        if frame.shape != self.shape or frame.dtype != self.dtype:
            raise ValueError(
                f"frame {frame.shape} {frame.dtype} does not match the recording "
                f"({self.shape} {self.dtype}): the camera changed mid-recording"
            )
        block = frame.transpose(2, 0, 1) if self.meta.rgb else frame
        data = np.ascontiguousarray(block, dtype=self.dtype.newbyteorder("<"))
        packed = memoryview(self._codec.encode(data))
        chunk = self.root / IMAGE / IMAGE / f"c.{self.n}{self._zeros}"
        fd = os.open(chunk, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            try:
                done = 0
                while done < len(packed):
                    done += os.write(fd, packed[done:])
            finally:
                os.close(fd)
        except BaseException:
            # a half-written chunk is not a frame (the shape never counted it) and it holds
            # the space the analysis needs to be written: remove it
            chunk.unlink(missing_ok=True)
            raise
        self.times.append(time_s)
        self.exposures.append(exposure_s)
        self.n += 1
        self.bytes_in += data.nbytes
        self.bytes_out += len(packed)
        self._frames_meta.set_length(self.n)

    def close(self, meta: ImageMetadata) -> None:
        """Release the files and write the final metadata (frame times, the OME-XML)."""
        self._frames_meta.close()
        meta.times_s, meta.exposures_s = self.times, self.exposures
        write_group_attrs(self.root / IMAGE, {"ome": ngff_image_attrs(meta)})
        self._write_xml(meta)

    def _write_xml(self, meta: ImageMetadata) -> None:
        tmp = self.root / "OME" / "METADATA.ome.xml.tmp"
        tmp.write_text(ome_xml(meta, tiff=False), encoding="utf-8")
        os.replace(tmp, self.root / "OME" / "METADATA.ome.xml")
