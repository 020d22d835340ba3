"""tfll batch on Dask: speed-up from 1 to 2 workers, scheduler overhead, worker memory.

    python benchmarks/bench_batch.py                 # data made each time, then ~5 min on 2 cores
    python benchmarks/bench_batch.py --data DIR      # keep the synthetic recordings (9 GB) in DIR

Making the data (rendering 1800 frames of 1024x1280 and 16x900 of 240x320) takes 6-18 min on
2 cores, depending on what else runs; with ``--data`` it is made once.

Prints:
- 16 synthetic recordings of 20 s (240x320 RGB, 45 frames/s, OME-TIFF): wall time of
  `tfll batch` with 1 and with 2 workers (the cluster's start-up given apart), and the speed-up
  (target >= 1.7x on 2 cores);
- the scheduler's overhead per recording: with 1 worker, the wall time of the analysis phase
  less the time the worker spent analysing, per recording (target < 0.5 s); and the round trip
  of a trivial task;
- the peak memory (RSS) of the worker process that analysed a 1024x1280 RGB recording of 60 s
  (30 frames/s, OME-Zarr on disk, 7 GB of pixels; target < 1 GB).

The synthetic frames are rendered on the same Dask cluster (rendering is not what is timed).
The load average is printed: other processes on the machine take cores from the workers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from tfll_live.batch import AnalysisOptions, Outcome, local_cluster, run_batch
from tfll_live.synth import SyntheticStream, preset, write_stream

N_SMALL, SMALL_S, SMALL_HW, SMALL_FPS = 16, 20.0, (240, 320), 45.0
BIG_S, BIG_HW, BIG_FPS = 60.0, (1024, 1280), 30.0


def _small_config(seed: int):
    h, w = SMALL_HW
    return preset(
        "classic", height=h, width=w, fps=SMALL_FPS, n_frames=int(SMALL_S * SMALL_FPS), seed=seed
    )


def _big_config():
    h, w = BIG_HW
    return preset("classic", height=h, width=w, fps=BIG_FPS, n_frames=int(BIG_S * BIG_FPS), seed=7)


def _write_small(seed: int, path: str) -> str:
    write_stream(SyntheticStream(_small_config(seed)), path)
    return path


def _render_big(store: str, start: int, stop: int) -> int:
    """Render frames [start, stop) of the big stream into its Zarr array (a chunk per frame)."""
    import zarr

    stream = SyntheticStream(_big_config())
    arr = zarr.open_array(store=store, path="0", mode="r+")
    for i in range(start, stop):
        arr[i] = stream.render(i)
    return stop - start


def make_data(folder: Path, client) -> tuple[list[Path], Path]:
    """The 16 small OME-TIFFs and the big OME-Zarr (kept when already there)."""
    import zarr

    small_dir = folder / "small"
    small_dir.mkdir(parents=True, exist_ok=True)
    small = [small_dir / f"rec{k:02d}.ome.tif" for k in range(N_SMALL)]
    todo = [p for p in small if not p.exists()]
    big = folder / "big.ome.zarr"
    done_mark = folder / "big.done"
    futures = [
        client.submit(_write_small, k, str(p), pure=False) for k, p in enumerate(small) if p in todo
    ]
    if not done_mark.exists():
        cfg = _big_config()
        shutil.rmtree(big, ignore_errors=True)
        root = zarr.open_group(store=str(big), mode="w")
        root.create_array(
            "0",
            shape=(cfg.n_frames, cfg.height, cfg.width, 3),
            chunks=(1, cfg.height, cfg.width, 3),
            dtype="uint8",
        )
        root.attrs["ome"] = {
            "version": "0.5",
            "multiscales": [
                {
                    "axes": [
                        {"name": "t", "type": "time", "unit": "second"},
                        {"name": "y", "type": "space"},
                        {"name": "x", "type": "space"},
                        {"name": "c", "type": "channel"},
                    ],
                    "datasets": [
                        {
                            "path": "0",
                            "coordinateTransformations": [
                                {"type": "scale", "scale": [1.0 / cfg.fps, 1.0, 1.0, 1.0]}
                            ],
                        }
                    ],
                }
            ],
        }
        step = 50
        futures += [
            client.submit(_render_big, str(big), s, min(s + step, cfg.n_frames), pure=False)
            for s in range(0, cfg.n_frames, step)
        ]
    t0 = time.monotonic()
    client.gather(futures)
    if not done_mark.exists():
        done_mark.write_text("complete\n")
    if futures:
        print(f"made the synthetic recordings in {time.monotonic() - t0:.0f} s")
    return small, big


def timed_batch(inputs, study: Path, workers: int) -> dict:
    """Run tfll batch; wall times of the whole run and of its analysis phase, and outcomes."""
    shutil.rmtree(study, ignore_errors=True)
    marks: dict[str, float] = {}
    outcomes: list[Outcome] = []

    def started(*_args) -> None:
        marks["up"] = time.monotonic()

    def ended(o: Outcome) -> None:
        marks["last"] = time.monotonic()
        outcomes.append(o)

    t0 = time.monotonic()
    run = run_batch(
        inputs, study, AnalysisOptions(), workers=workers, on_start=started, on_outcome=ended
    )
    total = time.monotonic() - t0
    failed = [o for o in run.outcomes if o.status != "complete"]
    assert not failed, failed
    return {
        "total_s": total,
        "startup_s": marks["up"] - t0,
        "analysis_wall_s": marks["last"] - marks["up"],
        "busy_s": sum(o.analysis_s or 0.0 for o in outcomes),
        "cpu_s": sum(o.analysis_cpu_s or 0.0 for o in outcomes),
        "peak_rss_mb": max(o.worker_peak_rss_mb or 0.0 for o in outcomes),
        "n": len(outcomes),
    }


def trivial_round_trip_s(n: int = 200) -> float:
    """Mean wall time per trivial task through a 1-worker local cluster (submit to result)."""
    import distributed

    with local_cluster(1) as cluster, distributed.Client(cluster) as client:
        client.submit(int, 0, pure=False).result()
        t0 = time.monotonic()
        for k in range(n):  # one after another: the latency a recording pays, not throughput
            client.submit(int, k, pure=False).result()
        return (time.monotonic() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="keep the synthetic recordings here")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_batch_"))
    data = args.data or tmp / "data"
    try:
        import distributed

        with local_cluster(None) as cluster, distributed.Client(cluster) as client:
            small, big = make_data(data, client)
        print(f"cores {os.cpu_count()}, load average before {os.getloadavg()[0]:.1f}")
        runs = {w: timed_batch(small, tmp / f"study{w}", w) for w in (1, 2)}
        for w, r in runs.items():
            print(
                f"{N_SMALL} recordings of {SMALL_S:g} s ({SMALL_HW[0]}x{SMALL_HW[1]} RGB, "
                f"{SMALL_FPS:g} frames/s), {w} worker(s): {r['total_s']:.1f} s in all "
                f"(cluster start {r['startup_s']:.1f} s, analysis {r['analysis_wall_s']:.1f} s; "
                f"workers busy {r['busy_s']:.1f} s, of which on a CPU {r['cpu_s']:.1f} s "
                f"({100 * r['cpu_s'] / r['busy_s']:.0f}%); worker peak RSS "
                f"{r['peak_rss_mb']:.0f} MB)"
            )
        one, two = runs[1], runs[2]
        speedup = one["analysis_wall_s"] / two["analysis_wall_s"]
        speedup_all = one["total_s"] / two["total_s"]
        print(
            f"speed-up 2 vs 1 worker: {speedup:.2f}x over the analysis (target >= 1.7x), "
            f"{speedup_all:.2f}x including the cluster's start"
        )
        # what the machine's other processes left the workers: CPU seconds per wall second
        cores = {w: r["cpu_s"] / r["analysis_wall_s"] for w, r in runs.items()}
        print(
            f"cores the workers had: {cores[1]:.2f} with 1 worker, {cores[2]:.2f} with 2 "
            f"(speed-up at equal CPU per worker: {speedup * cores[1] * 2 / cores[2]:.2f}x)"
        )
        overhead = (one["analysis_wall_s"] - one["busy_s"]) / one["n"]
        print(
            f"scheduler overhead per recording (1 worker, wall - busy): {overhead * 1e3:.0f} ms "
            f"(target < 500 ms); trivial task round trip {trivial_round_trip_s() * 1e3:.1f} ms"
        )
        print(f"load average after {os.getloadavg()[0]:.1f}")
        r = timed_batch([big], tmp / "study_big", 1)
        n_frames = int(BIG_S * BIG_FPS)
        print(
            f"{BIG_HW[0]}x{BIG_HW[1]} RGB, {BIG_S:g} s at {BIG_FPS:g} frames/s ({n_frames} frames, "
            f"{n_frames * int(np.prod(BIG_HW)) * 3 / 1e9:.1f} GB of pixels): analysed in "
            f"{r['busy_s']:.1f} s; worker peak RSS {r['peak_rss_mb']:.0f} MB (target < 1024 MB)"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
