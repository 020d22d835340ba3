"""Compression benchmark: the recorder's writers, ratio and write throughput per format.

Writes the same frames through the recorder's own frame writers (OME-Zarr: Blosc/Zstd with
bit shuffle; OME-TIFF: Deflate with the horizontal predictor) on one thread, as the
recorder's writer thread does, and against an uncompressed baseline written in the same
process (one raw file per frame, what the recorder wrote before). Prints the ratio, the
frames per second one core writes, and the size of a minute of recording at the camera's
rate. The bar: 100 frames/s of 480x640 RGB on one core.

    python benchmarks/bench_compression.py                  # synthetic 480x640 RGB, 8-bit
    python benchmarks/bench_compression.py --mono --bits 16  # a monochrome 16-bit camera
    python benchmarks/bench_compression.py --democamera      # Micro-Manager's DemoCamera frames

Synthetic frames carry camera noise (``--noise-dn``), which bounds what lossless compression
can do; a real eye behind a real camera compresses about as well as its noise allows.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tfll_live.acquisition.ome_metadata import ImageMetadata
from tfll_live.acquisition.tiff_writer import TiffFrameWriter, WholeWritesFile
from tfll_live.acquisition.zarr_writer import ZarrFrameWriter
from tfll_live.synth import SynthConfig, SyntheticStream


def synthetic_frames(args: argparse.Namespace) -> list[np.ndarray]:
    cfg = SynthConfig(
        height=args.height,
        width=args.width,
        rgb=not args.mono,
        bit_depth=args.bits,
        noise_dn=args.noise_dn,
        n_frames=args.frames,
        fps=args.fps,
        seed=1,
    )
    stream = SyntheticStream(cfg)
    return [stream.render(i) for i in range(args.frames)]


def democamera_frames(n: int, exposure_ms: float) -> list[np.ndarray]:
    from pymmcore_plus import CMMCorePlus

    mm = Path(
        os.environ.get("MICROMANAGER_PATH")
        or Path(__file__).resolve().parents[2] / "shared" / "micromanager"
    )
    core = CMMCorePlus(mm_path=str(mm))
    core.loadSystemConfiguration(str(mm / "MMConfig_demo.cfg"))
    core.setExposure(exposure_ms)
    core.startSequenceAcquisition(n, 0, True)
    frames = []
    while len(frames) < n:
        if core.getRemainingImageCount():
            frames.append(core.popNextImage())
        else:
            time.sleep(0.001)
    core.stopSequenceAcquisition()
    return frames


def write_raw(folder: Path, frames: list[np.ndarray], repeat: int) -> float:
    """The baseline: one uncompressed file per frame; seconds per frame."""
    t0 = time.perf_counter()
    k = 0
    for _ in range(repeat):
        for f in frames:
            fd = os.open(folder / f"c.{k}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, np.ascontiguousarray(f).data)
            os.close(fd)
            k += 1
    return (time.perf_counter() - t0) / k


def write_with(fmt: str, folder: Path, frames: list[np.ndarray], repeat: int) -> tuple[float, int]:
    """Seconds per frame and bytes on disk, through the recorder's writer for ``fmt``."""
    f0 = frames[0]
    meta = ImageMetadata(
        "bench",
        f0.shape[0],
        f0.shape[1],
        f0.ndim == 3,
        f0.dtype,
        pixel_size_um=1.0,
        camera={"label": "Camera"},
    )
    if fmt == "ome-zarr":
        root = folder / "bench.ome.zarr"
        root.mkdir()
        writer: ZarrFrameWriter | TiffFrameWriter = ZarrFrameWriter(root, meta)
    else:
        path = folder / "bench.ome.tif"
        writer = TiffFrameWriter(WholeWritesFile(path, "x"), path, meta)
    t0 = time.perf_counter()
    k = 0
    for _ in range(repeat):
        for f in frames:
            writer.write(f, k * 0.01, 0.01)
            k += 1
    per_frame = (time.perf_counter() - t0) / k
    writer.close(meta)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return per_frame, size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--mono", action="store_true")
    ap.add_argument("--bits", type=int, choices=(8, 16), default=8)
    ap.add_argument("--noise-dn", type=float, default=2.0, help="camera noise (8-bit counts)")
    ap.add_argument("--fps", type=float, default=100.0, help="the camera rate for size per minute")
    ap.add_argument("--frames", type=int, default=60, help="distinct frames (default 60)")
    ap.add_argument("--repeat", type=int, default=5, help="passes over them (default 5)")
    ap.add_argument(
        "--democamera",
        action="store_true",
        help="frames of Micro-Manager's DemoCamera (512x512 16-bit) instead",
    )
    ap.add_argument("--out-dir", type=Path, default=None)
    args = ap.parse_args()

    if args.democamera:
        frames = democamera_frames(args.frames, 1000.0 / args.fps)
        what = "DemoCamera"
    else:
        frames = synthetic_frames(args)
        what = "synthetic " + ("mono" if args.mono else "RGB")
    f0 = frames[0]
    n = len(frames) * args.repeat
    print(
        f"{what} {f0.shape} {f0.dtype}, {n} frames written per format (one thread); "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    raw_mb = f0.nbytes / 2**20
    print(
        f"{'format':10} {'ratio':>6} {'frames/s':>9} {'MB/s in':>8} {'vs raw':>7} "
        f"{'GB/min at ' + format(args.fps, 'g') + ' fps':>18}"
    )
    with tempfile.TemporaryDirectory(prefix="tfll-bench-", dir=args.out_dir) as tmp:
        base = Path(tmp) / "raw"
        base.mkdir()
        raw_s = write_raw(base, frames, args.repeat)
        shutil.rmtree(base)
        print(
            f"{'raw':10} {1.0:6.2f} {1 / raw_s:9.0f} {raw_mb / raw_s:8.0f} {1.0:7.2f} "
            f"{raw_mb * args.fps * 60 / 1024:18.2f}"
        )
        ok = True
        for fmt in ("ome-zarr", "ome-tiff"):
            folder = Path(tmp) / fmt
            folder.mkdir()
            per_frame, size = write_with(fmt, folder, frames, args.repeat)
            ratio = n * f0.nbytes / size
            print(
                f"{fmt:10} {ratio:6.2f} {1 / per_frame:9.0f} {raw_mb / per_frame:8.0f} "
                f"{raw_s / per_frame:7.2f} {size / n * args.fps * 60 / 2**30:18.2f}"
            )
            ok &= 1 / per_frame >= args.fps
            shutil.rmtree(folder)
    print("PASS" if ok else "FAIL", f"(each format writes >= {args.fps:g} frames/s on one core)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
