"""What a recording says about itself, as OME-XML and OME-NGFF metadata that standard tools read.

One ``ImageMetadata`` describes a recording (camera, pixel size, channels, each frame's time
and exposure, the session's own record); ``ome_xml`` renders it for OME-TIFF (and for an
OME-Zarr's ``OME/METADATA.ome.xml``), ``ngff_image_attrs`` for an OME-Zarr image group:
pixel size in µm on the spatial axes, the frame period on the time axis, channel names and
colours (``omero``) so that viewers show RGB as red, green and blue.
"""

from __future__ import annotations

import json
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

OME_NS = "http://www.openmicroscopy.org/Schemas/OME/2016-06"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"
ANNOTATION_NS = "tfll"  # MapAnnotation namespace of the session's own record

# OME colours are signed 32-bit RGBA integers
_RGB_COLOURS = (
    ("Red", "FF0000", 0xFF0000FF),
    ("Green", "00FF00", 0x00FF00FF),
    ("Blue", "0000FF", 0x0000FFFF),
)
_WHITE = 0xFFFFFFFF


@dataclass
class ImageMetadata:
    """Everything the OME metadata of one recording says."""

    name: str
    height: int
    width: int
    rgb: bool
    dtype: np.dtype
    times_s: Sequence[float] = ()  # each frame's time since the first frame (camera clock)
    exposures_s: Sequence[float] = ()  # each frame's exposure (NaN where unknown)
    pixel_size_um: float | None = None
    camera: dict[str, Any] = field(default_factory=dict)  # label, library, model, serial
    acquired_utc: str | None = None  # ISO 8601 start of the recording
    annotations: dict[str, Any] = field(default_factory=dict)  # the session's record

    @property
    def n_frames(self) -> int:
        """Frames in the recording."""
        return len(self.times_s)

    @property
    def frame_period_s(self) -> float | None:
        """Median time between frames, or None with fewer than two."""
        if len(self.times_s) < 2:
            return None
        dt = float(np.median(np.diff(np.asarray(self.times_s, float))))
        return dt if dt > 0 else None

    @property
    def channel_names(self) -> list[str]:
        """Names of the channels: R, G, B for a colour camera, else the camera's label."""
        return [n for n, _, _ in _RGB_COLOURS] if self.rgb else [self.camera_label]

    @property
    def camera_label(self) -> str:
        """The camera's label in the core (``Camera`` if unknown)."""
        return str(self.camera.get("label") or "Camera")


def ome_xml(meta: ImageMetadata, *, tiff: bool) -> str:
    """OME-XML of a recording: instrument, image, channels, one plane per frame, annotations.

    ``tiff``: the pixels are this file's pages, one per frame (RGB interleaved as one
    3-sample channel, as tifffile and Bio-Formats read it); otherwise the XML describes an
    OME-Zarr's image (planar channels, ``MetadataOnly``).
    """
    ET.register_namespace("", OME_NS)
    ome = ET.Element(
        _q("OME"),
        {
            "UUID": f"urn:uuid:{uuid.uuid4()}",
            "Creator": "tfll-live",
            f"{{{_XSI}}}schemaLocation": f"{OME_NS} {OME_NS}/ome.xsd",
        },
    )
    detector = _detector_attrs(meta.camera)
    ET.SubElement(ET.SubElement(ome, _q("Instrument"), ID="Instrument:0"), _q("Detector"), detector)
    image = ET.SubElement(ome, _q("Image"), ID="Image:0", Name=meta.name)
    if meta.acquired_utc:
        ET.SubElement(image, _q("AcquisitionDate")).text = _xml_datetime(meta.acquired_utc)
    ET.SubElement(image, _q("InstrumentRef"), ID="Instrument:0")
    n = meta.n_frames
    pixels = ET.SubElement(image, _q("Pixels"), _pixels_attrs(meta, n, interleaved=tiff))
    settings = {"ID": detector["ID"]}
    if tiff and meta.rgb:
        channel = ET.SubElement(
            pixels, _q("Channel"), ID="Channel:0:0", Name="RGB", SamplesPerPixel="3"
        )
        ET.SubElement(channel, _q("DetectorSettings"), settings)
        n_planes_per_t = 1
    else:
        colours = [c for _, _, c in _RGB_COLOURS] if meta.rgb else [_WHITE]
        for k, (name, colour) in enumerate(zip(meta.channel_names, colours, strict=True)):
            channel = ET.SubElement(
                pixels,
                _q("Channel"),
                ID=f"Channel:0:{k}",
                Name=name,
                SamplesPerPixel="1",
                Color=str(_signed32(colour)),
            )
            ET.SubElement(channel, _q("DetectorSettings"), settings)
        n_planes_per_t = len(colours)
    if tiff:
        ET.SubElement(pixels, _q("TiffData"), IFD="0", PlaneCount=str(n))
    else:
        ET.SubElement(pixels, _q("MetadataOnly"))
    exposures = list(meta.exposures_s) + [float("nan")] * (n - len(meta.exposures_s))
    for t, (time_s, exposure_s) in enumerate(zip(meta.times_s, exposures, strict=False)):
        for c in range(n_planes_per_t):
            plane = {
                "TheZ": "0",
                "TheT": str(t),
                "TheC": str(c),
                "DeltaT": repr(float(time_s)),
                "DeltaTUnit": "s",
            }
            if np.isfinite(exposure_s):
                plane.update(ExposureTime=repr(float(exposure_s)), ExposureTimeUnit="s")
            ET.SubElement(pixels, _q("Plane"), plane)
    ET.SubElement(image, _q("AnnotationRef"), ID="Annotation:0")
    structured = ET.SubElement(ome, _q("StructuredAnnotations"))
    mapping = ET.SubElement(
        structured, _q("MapAnnotation"), ID="Annotation:0", Namespace=ANNOTATION_NS
    )
    value = ET.SubElement(mapping, _q("Value"))
    for key, v in meta.annotations.items():
        ET.SubElement(value, _q("M"), K=str(key)).text = v if isinstance(v, str) else json.dumps(v)
    body = ET.tostring(ome, encoding="unicode", xml_declaration=False)
    # 7-bit ASCII (TIFF's ImageDescription is ASCII): "µm" as a character reference
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body.encode(
        "ascii", "xmlcharrefreplace"
    ).decode("ascii")


def ngff_image_attrs(meta: ImageMetadata) -> dict[str, Any]:
    """The ``ome`` attribute of an OME-Zarr (NGFF 0.5) image group of (T[, C], Y, X) frames."""
    space = {"type": "space", "unit": "micrometer"} if meta.pixel_size_um else {"type": "space"}
    axes = [{"name": "t", "type": "time", "unit": "second"}]
    if meta.rgb:
        axes.append({"name": "c", "type": "channel"})
    axes += [{"name": "y", **space}, {"name": "x", **space}]
    px = meta.pixel_size_um or 1.0
    scale = [meta.frame_period_s or 1.0] + ([1.0] if meta.rgb else []) + [px, px]
    top = float(np.iinfo(meta.dtype).max) if np.dtype(meta.dtype).kind in "ui" else 1.0
    window = {"start": 0.0, "end": top, "min": 0.0, "max": top}
    if meta.rgb:
        channels = [
            {"label": n, "color": hex_, "window": window, "active": True}
            for n, hex_, _ in _RGB_COLOURS
        ]
    else:
        channels = [
            {"label": meta.camera_label, "color": "FFFFFF", "window": window, "active": True}
        ]
    return {
        "version": "0.5",
        "multiscales": [
            {
                "name": meta.name,
                "axes": axes,
                "datasets": [
                    {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}
                ],
            }
        ],
        "omero": {"channels": channels, "rdefs": {"model": "color" if meta.rgb else "greyscale"}},
    }


def _q(tag: str) -> str:
    return f"{{{OME_NS}}}{tag}"


def _pixels_attrs(meta: ImageMetadata, n: int, *, interleaved: bool) -> dict[str, str]:
    dtype = np.dtype(meta.dtype)
    attrs = {
        "ID": "Pixels:0",
        "DimensionOrder": "XYCZT",
        "Type": {"f": "float", "u": "uint", "i": "int"}[dtype.kind]
        + ("" if dtype.kind == "f" else str(8 * dtype.itemsize)),
        "SizeX": str(meta.width),
        "SizeY": str(meta.height),
        "SizeC": "3" if meta.rgb else "1",
        "SizeZ": "1",
        "SizeT": str(max(n, 1)),
    }
    if dtype.kind == "f":
        attrs["Type"] = "double" if dtype.itemsize == 8 else "float"
    if meta.rgb:
        attrs["Interleaved"] = "true" if interleaved else "false"
    if meta.pixel_size_um:
        size = repr(float(meta.pixel_size_um))
        attrs.update(
            PhysicalSizeX=size, PhysicalSizeXUnit="µm", PhysicalSizeY=size, PhysicalSizeYUnit="µm"
        )
    if (dt := meta.frame_period_s) is not None:
        attrs.update(TimeIncrement=repr(dt), TimeIncrementUnit="s")
    return attrs


def _detector_attrs(camera: dict[str, Any]) -> dict[str, str]:
    attrs = {"ID": "Detector:0"}
    name, library = camera.get("name"), camera.get("library")
    if name:  # the device and its adapter, e.g. "DCam (DemoCamera)"
        attrs["Model"] = f"{name} ({library})" if library else str(name)
    if camera.get("manufacturer"):
        attrs["Manufacturer"] = str(camera["manufacturer"])
    if camera.get("serial"):
        attrs["SerialNumber"] = str(camera["serial"])
    return attrs


def _signed32(rgba: int) -> int:
    return rgba - (1 << 32) if rgba >= 1 << 31 else rgba


def _xml_datetime(iso: str) -> str:
    """xsd:dateTime of an ISO 8601 time (OME takes no offset other than a plain time)."""
    return iso.replace("+00:00", "")[:26]
