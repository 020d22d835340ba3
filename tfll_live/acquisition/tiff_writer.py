"""OME-TIFF frame writer: one TIFF page per frame, the OME-XML written on close.

Each frame is appended as its own page with its own directory (IFD), so after a SIGKILL the
file is still a valid multi-page TIFF holding every frame written: tifffile, Fiji and
``tfll_live.io`` (given ``--fps``) read them all, and the frame times are in the analysis
folder's ``camera_frames.jsonl``. What a kill loses is the OME-XML (frame times, rate, axes),
which is written into the first page's description when the recording is closed.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
from pathlib import Path
from typing import IO, Any
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import tifffile

_PLACEHOLDER = "tfll recording in progress (OME-XML is written when the recording closes)"


class TiffFrameWriter:
    """Appends frames as pages of a BigTIFF opened (exclusively) by ``Recording``."""

    def __init__(self, fh: IO[bytes], path: Path, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.path = path
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.rgb = len(shape) == 3
        self._fh = fh
        self._tw = tifffile.TiffWriter(fh, bigtiff=True, ome=False)
        self._broken = False
        self.times: list[float] = []
        self.n = 0

    def write(self, frame: np.ndarray, time_s: float) -> None:
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
                photometric="rgb" if self.rgb else "minisblack",
                contiguous=False,
                metadata=None,
                description=_PLACEHOLDER if self.n == 0 else None,
            )
        except BaseException:
            self._broken = True
            self._cut_back(end, link)
            raise
        self.times.append(time_s)
        self.n += 1

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

    def close(self, name: str, annotations: dict[str, Any]) -> None:
        """Finish the file and put the OME-XML (times, rate, session) in its first page."""
        if self._broken:  # tifffile's state includes the page that failed: do not let it write
            self._fh.close()
        else:
            self._tw.close()
        if self.n == 0:
            return
        tifffile.tiffcomment(self.path, comment=self.ome_xml(name, annotations), pageindex=0)

    def ome_xml(self, name: str, annotations: dict[str, Any]) -> str:
        """OME-XML of the recording: every page a plane in T, with its DeltaT."""
        n, (h, w) = self.n, self.shape[:2]
        shape = (n, h, w, 3) if self.rgb else (n, h, w)
        stored = (n, 1, 1, h, w, 3 if self.rgb else 1)
        dt = float(np.median(np.diff(self.times))) if n > 1 else None
        meta: dict[str, Any] = {
            "Name": name,
            "Plane": {"DeltaT": list(self.times), "DeltaTUnit": ["s"] * n},
        }
        if dt and dt > 0:
            meta.update(TimeIncrement=dt, TimeIncrementUnit="s")
        ome = tifffile.OmeXml()
        ome.addimage(self.dtype, shape, stored, axes="TYXS" if self.rgb else "TYX", **meta)
        values = "".join(
            f"<M K={quoteattr(k)}>{escape(v if isinstance(v, str) else json.dumps(v))}</M>"
            for k, v in annotations.items()
        )
        structured = (
            '<StructuredAnnotations><MapAnnotation ID="Annotation:0" Namespace="tfll">'
            f"<Value>{values}</Value></MapAnnotation></StructuredAnnotations>"
        )
        xml = ome.tostring()
        return xml.replace("</OME>", structured + "</OME>")
