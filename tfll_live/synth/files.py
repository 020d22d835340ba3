"""Writing synthetic streams as files: lossless OME-TIFF, or the lossy videos clinics export."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from tfll_live.io import replacing, write_text_replacing

from .stream import SyntheticStream

H264_CRF = 23  # libx264's default: "ordinary quality"
MJPEG_QUALITY = 75  # a typical camera or exporter setting


def write_stream(stream: SyntheticStream, path: str | Path) -> Path:
    """Write a synthetic stream with its ground truth beside it; return the truth's path.

    OME-TIFF, or a video when named ``*.mp4``/``*.avi``; the truth is ``*.truth.json``.
    Each file is written under a temporary name and moved into place when complete, so an
    interrupted run leaves no half file and whatever had the name before whole.
    """
    path = Path(path)
    with replacing(path) as tmp:
        if path.suffix.lower() in (".mp4", ".avi"):
            write_video(stream, tmp)
        else:
            _write_ome_tiff(stream, tmp)
    truth_path = truth_path_for(path)
    write_text_replacing(
        truth_path, json.dumps({"config": asdict(stream.config), **stream.truth.to_json()})
    )
    return truth_path


def _write_ome_tiff(stream: SyntheticStream, path: Path) -> None:
    import tifffile

    cfg = stream.config
    axes = "TYXS" if cfg.rgb else "TYX"
    meta = {
        "axes": axes,
        "TimeIncrement": 1.0 / cfg.fps,
        "TimeIncrementUnit": "s",
        "Plane": {
            "DeltaT": [float(t) for t in stream.truth.time_s],
            "DeltaTUnit": ["s"] * cfg.n_frames,
        },
    }
    with tifffile.TiffWriter(
        path, ome=True, bigtiff=bool(cfg.n_frames * np.prod(stream.shape) > 2**31)
    ) as tw:
        tw.write(
            (stream.render(i) for i in range(cfg.n_frames)),
            shape=(cfg.n_frames, *stream.shape),
            dtype=stream.dtype,
            photometric="rgb" if cfg.rgb else "minisblack",
            metadata=meta,
        )


def write_video(stream: SyntheticStream, path: str | Path, codec: str | None = None) -> Path:
    """Encode the stream as H.264 in ``*.mp4`` (needs PyAV) or MJPEG in ``*.avi`` (OpenCV).

    ``codec`` defaults to the stream's own ``video`` setting, else to the file's kind.
    """
    path = Path(path)
    cfg = stream.config
    if cfg.bit_depth != 8:
        raise ValueError(f"{path}: videos are 8-bit, the stream is {cfg.bit_depth}-bit")
    codec = codec or cfg.video or ("h264" if path.suffix.lower() == ".mp4" else "mjpeg")
    if codec == "h264":
        _write_h264(stream, path)
    elif codec == "mjpeg":
        _write_mjpeg(stream, path)
    else:
        raise ValueError(f"unknown video codec {codec!r} (h264 or mjpeg)")
    return path


def _rgb_frames(stream: SyntheticStream):
    for i in range(len(stream)):
        f = stream.render(i)
        yield f if f.ndim == 3 else np.repeat(f[..., None], 3, axis=2)


def _write_h264(stream: SyntheticStream, path: Path) -> None:
    try:
        import av
    except ImportError:
        raise ValueError("writing H.264 needs PyAV: pip install av") from None
    from fractions import Fraction

    cfg = stream.config
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=Fraction(cfg.fps).limit_denominator(1001))
        video.width, video.height = cfg.width + cfg.width % 2, cfg.height + cfg.height % 2
        video.pix_fmt = "yuv420p"
        # x264's macroblock-tree rate control writes a slightly different file on every run;
        # without it the same frames always give the same file (and the same figures)
        video.options = {"crf": str(H264_CRF), "x264-params": "no-mbtree=1"}
        for f in _rgb_frames(stream):
            if f.shape[:2] != (video.height, video.width):  # 4:2:0 needs even sizes
                f = np.pad(
                    f, ((0, video.height - f.shape[0]), (0, video.width - f.shape[1]), (0, 0))
                )
            for packet in video.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)


def _write_mjpeg(stream: SyntheticStream, path: Path) -> None:
    import cv2

    cfg = stream.config
    writer = cv2.VideoWriter(
        str(path), cv2.VideoWriter_fourcc(*"MJPG"), cfg.fps, (cfg.width, cfg.height)
    )
    if not writer.isOpened():
        raise ValueError(f"{path}: OpenCV cannot write MJPEG here")
    writer.set(cv2.VIDEOWRITER_PROP_QUALITY, MJPEG_QUALITY)
    try:
        for f in _rgb_frames(stream):
            writer.write(np.ascontiguousarray(f[..., ::-1]))
    finally:
        writer.release()


def truth_path_for(path: str | Path) -> Path:
    """Where the ground truth of a written synthetic stream lives."""
    path = Path(path)
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif", ".tiff", ".tif", ".mp4", ".avi"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return path.with_name(name + ".truth.json")
