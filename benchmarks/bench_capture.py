"""Capture benchmark: synthetic camera -> capture loop -> tracker + OME-Zarr recording.

The issue's bar: 100 frames/s, 480x640 RGB, tracking and OME-Zarr recording on, for 5 minutes
on a 2-core machine: dropped = 0, recorded = acquired, frame-to-result latency p95 <= 20 ms,
memory flat. Prints the counters, the latency (frame in the core's buffer -> FrameResult) and
the process's resident memory sampled over the run.

    python benchmarks/bench_capture.py                # 300 s
    python benchmarks/bench_capture.py --seconds 30   # shorter

The synthetic camera pre-renders its looping session once (``--stream-frames`` frames, before
the clock starts), since rendering a 480x640 frame costs more CPU than the tracker may spend.
The recording goes to a temporary folder (``--out-dir``), deleted at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from tfll_live.acquisition import CaptureLoop, make_core
from tfll_live.synth import SynthConfig


def rss_mb() -> float:
    """Resident memory of this process now (MB)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--fps", type=float, default=100.0)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument(
        "--stream-frames",
        type=int,
        default=900,
        help="length of the looping synthetic session, pre-rendered (default 900)",
    )
    ap.add_argument("--format", choices=("ome-zarr", "ome-tiff"), default="ome-zarr")
    ap.add_argument("--no-record", action="store_true")
    ap.add_argument("--out-dir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the recording")
    args = ap.parse_args()

    cfg = SynthConfig(
        height=args.height, width=args.width, fps=args.fps, n_frames=args.stream_frames, seed=0
    )
    t0 = time.perf_counter()
    core = make_core(synth=cfg, prerender=True)
    print(
        f"camera: {args.width}x{args.height} RGB at {args.fps:g} frames/s, "
        f"{args.stream_frames} frames pre-rendered in {time.perf_counter() - t0:.1f} s; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
        flush=True,
    )

    loop = CaptureLoop(core)
    latencies: list[float] = []
    errors: list[str] = []
    loop.events.error.connect(errors.append)

    out_dir = Path(tempfile.mkdtemp(prefix="tfll-bench-", dir=args.out_dir))
    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample_memory() -> None:
        start = time.perf_counter()
        while not done.wait(1.0):
            samples.append((time.perf_counter() - start, rss_mb()))

    rss_start = rss_mb()
    cpu0 = time.process_time()
    path = None if args.no_record else loop.start_recording(out_dir / "bench", args.format)
    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    loop.start()
    wall0 = time.perf_counter()
    next_report = 10.0
    try:
        while time.perf_counter() - wall0 < args.seconds and loop.is_running:
            time.sleep(0.2)
            elapsed = time.perf_counter() - wall0
            if elapsed >= next_report:
                s = loop.stats
                print(
                    f"  {elapsed:6.0f} s: acquired {s.acquired}, tracked {s.tracked}, "
                    f"recorded {s.recorded}, dropped {s.dropped}, {s.fps:.1f} frames/s, "
                    f"latency p95 {s.latency_ms_p95:.1f} ms, RSS {rss_mb():.0f} MB",
                    flush=True,
                )
                next_report += 10.0 if args.seconds <= 120 else 30.0
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    stats = loop.stop(timeout_s=30)
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    done.set()
    sampler.join()
    del latencies

    print()
    print(f"duration        {wall:.1f} s (load average now {os.getloadavg()[0]:.1f})")
    print(f"acquired        {stats.acquired}  ({stats.acquired / wall:.1f} frames/s)")
    print(f"tracked         {stats.tracked}")
    print(f"recorded        {stats.recorded}  ({args.format if path else 'off'})")
    print(f"dropped         {stats.dropped}")
    print(
        f"latency median  {stats.latency_ms_median:.1f} ms (frame in the core's buffer -> "
        "FrameResult)"
    )
    print(f"latency p95     {stats.latency_ms_p95:.1f} ms")
    print(f"CPU             {cpu / wall:.2f} cores busy on average")
    if samples:
        n = len(samples)
        marks = [samples[min(n - 1, int(n * q))] for q in (0.0, 0.25, 0.5, 0.75)] + [samples[-1]]
        over_time = ", ".join(f"{t:.0f} s: {m:.0f}" for t, m in marks)
        late = [m for t, m in samples if t >= 0.2 * wall]
        print(
            f"RSS (MB)        before start {rss_start:.0f}; {over_time}; peak "
            f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"
        )
        if late:
            print(
                f"RSS after 20%   min {min(late):.0f} / median {statistics.median(late):.0f} "
                f"/ max {max(late):.0f} MB (flat if these agree)"
            )
    for e in errors:
        print(f"error: {e}")
    if path is not None:
        print(f"recording       {path}" + ("" if args.keep else " (deleted)"))
    if not args.keep:
        shutil.rmtree(out_dir, ignore_errors=True)
    ok = stats.dropped == 0 and (path is None or stats.recorded == stats.acquired)
    print(
        "PASS" if ok and stats.latency_ms_p95 <= 20 else "FAIL",
        "(dropped = 0, recorded = acquired, p95 <= 20 ms)",
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
