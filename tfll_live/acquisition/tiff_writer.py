"""OME-TIFF frame writer: one compressed page per frame, the OME-XML written on close.

Each frame is appended as its own page with its own directory (IFD), compressed losslessly
with Deflate (level 1, libdeflate through imagecodecs) after TIFF's horizontal predictor,
which every TIFF reader (libtiff, Fiji, Bio-Formats, tifffile) decodes. After a SIGKILL the
file is still a valid multi-page TIFF holding every frame written: tifffile, Fiji and
``tfll_live.io`` (given ``--fps``) read them all, and the frame times are in the analysis
folder's ``camera_frames.jsonl``. What a kill loses is the OME-XML (frame times, exposures,
instrument), which is written into the first page's description when the recording closes.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import struct
from array import array
from pathlib import Path
from typing import IO, Any

import numpy as np
import tifffile

from tfll_live.io import RECORDING_IN_PROGRESS

from .ome_metadata import ImageMetadata, ome_xml

_PLACEHOLDER = f"{RECORDING_IN_PROGRESS} (OME-XML is written when the recording closes)"
COMPRESSION = ("zlib", 1)  # Deflate (TIFF compression 8), level 1, with the predictor


class WholeWritesFile(io.FileIO):
    """An unbuffered file whose writes are whole or raise.

    A full disk (or a file size limit) may take part of a write and refuse the rest; a raw
    file reports that as a short count, which tifffile does not check. Here the rest is
    retried, so the refusal surfaces as the ``OSError`` it is, and the page that failed can
    be cut back. Unbuffered, so a write the disk refuses does not linger in a buffer.
    """

    def write(self, data: Any) -> int:
        """Write all of ``data`` (retrying a short write) or raise; its length."""
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            n = super().write(view[done:])
            if not n:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.name)
            done += n
        return done


class TiffFrameWriter:
    """Appends frames as pages of a BigTIFF opened (exclusively) by ``Recording``."""

    def __init__(self, fh: IO[bytes], path: Path, meta: ImageMetadata) -> None:
        self.path, self.meta = path, meta
        self.shape = (meta.height, meta.width, 3) if meta.rgb else (meta.height, meta.width)
        self.dtype = np.dtype(meta.dtype)
        self._fh = fh
        self._tw = tifffile.TiffWriter(fh, bigtiff=True, ome=False)
        self._broken = False
        # pixels per cm in the TIFF tags too, for readers that ignore the OME-XML
        px = meta.pixel_size_um
        self._resolution = None if not px else (1e4 / px, 1e4 / px)
        self.times = array("d")
        self.exposures = array("d")
        self.n = 0
        self.bytes_in = 0

    @property
    def bytes_out(self) -> int:
        """Bytes in the file so far."""
        return self._fh.tell()

    def write(self, frame: np.ndarray, time_s: float, exposure_s: float) -> None:
        """Append one frame as a page (its directory included, so it survives a kill)."""
        if frame.shape != self.shape or frame.dtype != self.dtype:
            raise ValueError(
                f"frame {frame.shape} {frame.dtype} does not match the recording "
                f"({self.shape} {self.dtype}): the camera changed mid-recording"
            )
        if self._broken:
            raise OSError(f"{self.path}: an earlier write failed")
        end, link = self._fh.tell(), getattr(self._tw, "_ifdoffset", None)
        try:
            self._tw.write(
                frame,
                photometric="rgb" if self.meta.rgb else "minisblack",
                compression=COMPRESSION[0],
                compressionargs={"level": COMPRESSION[1]},
                predictor=True,
                contiguous=False,
                metadata=None,
                resolution=self._resolution,
                resolutionunit="CENTIMETER" if self._resolution else None,
                description=_PLACEHOLDER if self.n == 0 else None,
            )
        except BaseException:
            self._broken = True
            self._cut_back(end, link)
            raise
        self.times.append(time_s)
        self.exposures.append(exposure_s)
        self.n += 1
        self.bytes_in += frame.nbytes

    def _cut_back(self, end: int, link: int | None) -> None:
        """Undo a page that failed half-way (disk full): the file ends with the last whole page.

        tifffile links the new page into the previous page's directory before writing it; the
        link is reset to "no next page" and the file cut where that page began. Both fit on a
        full disk (an in-place write, a truncation). ``link`` is tifffile's private offset of
        that field; without it the damaged tail stays (readers still get the whole pages).
        """
        if link is None:
            return
        fmt = getattr(getattr(self._tw, "tiff", None), "offsetformat", "<Q")
        fd = self._fh.fileno()
        with contextlib.suppress(OSError):
            os.pwrite(fd, struct.pack(fmt, 0), link)
            os.ftruncate(fd, end)

    def close(self, meta: ImageMetadata) -> None:
        """Finish the file and put the OME-XML (times, exposures, instrument) in its first page.

        A file whose disk refused a page gets no OME-XML (there is no room for it); its frames
        read as a plain TIFF, with their times in the analysis folder.
        """
        if self._broken:  # tifffile's state includes the page that failed: do not let it write
            self._fh.close()
            return
        self._tw.close()
        if self.n == 0:
            return
        meta.times_s, meta.exposures_s = self.times, self.exposures
        _set_description(self.path, ome_xml(meta, tiff=True).encode("ascii"))


def _set_description(path: Path, text: bytes) -> None:
    """Make ``text`` the first page's ImageDescription; on a full disk, leave the file as it was.

    The text is appended first and the tag pointed at it after (one in-place write), so a
    refused append changes nothing that readers see (tifffile's ``tiffcomment`` points the
    tag first, and a failed append would leave it pointing past the end of the file).
    """
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages.first.tags.get(270)
        if tag is None:
            return
        fmt = tif.tiff.byteorder + tif.tiff.tagformat2[1] + tif.tiff.offsetformat[-1]
        entry = tag.offset + 4  # count and value offset follow the code and the type
    value = text + b"\0"
    with WholeWritesFile(path, "r+") as fh:
        end = fh.seek(0, os.SEEK_END)
        start = end + (end % 2)  # values begin on a word boundary
        try:
            fh.write(b"\0" * (start - end) + value)
            os.fsync(fh.fileno())
        except OSError:
            os.ftruncate(fh.fileno(), end)
            raise
        os.pwrite(fh.fileno(), struct.pack(fmt, len(value), start), entry)
