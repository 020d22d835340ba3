"""Recording faults in real processes: SIGKILL mid-recording, a disk that refuses writes.

Each case runs a real capture loop in a child process. A full disk is made honestly at the OS
level: the file size limit (RLIMIT_FSIZE, with SIGXFSZ ignored, so writes fail with EFBIG as on
a full quota), and, where this machine allows a private mount namespace, a 2 MB tmpfs that
fills up (ENOSPC). Tests run as root, so permission bits cannot make a path unwritable.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from private_disk import can_mount_private_tmpfs

from tfll_live.acquisition.recorder import analysis_dir_for
from tfll_live.io import open_stream, read_results
from tfll_live.synth import SynthConfig, SyntheticStream

CFG = dict(height=120, width=160, fps=200.0, n_frames=400, seed=1)

CHILD = r"""
import json, resource, signal, sys, time
from tfll_live.acquisition import CaptureLoop, make_core
from tfll_live.synth import SynthConfig

out, fmt, fsize = sys.argv[1], sys.argv[2], int(sys.argv[3])
if fsize:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
loop = CaptureLoop(make_core(synth=SynthConfig(**json.loads(sys.argv[4]))))
events = []
loop.events.error.connect(lambda e: events.append(("error", e)))
loop.events.recording_stopped.connect(lambda p, e: events.append(("stopped", str(p), e)))
loop.start()
path = loop.start_recording(out, fmt)
print(json.dumps({"path": str(path)}), flush=True)
at_fault = None
while True:
    time.sleep(0.02)
    s = loop.stats
    print(json.dumps({"recorded": s.recorded, "tracked": s.tracked, "running": loop.is_running,
                      "events": events}), flush=True)
    if events and at_fault is None:  # keep going after the fault: 60 more frames tracked
        at_fault = (s.tracked, time.monotonic() + 20.0)
    if at_fault is not None and (s.tracked > at_fault[0] + 60 or time.monotonic() > at_fault[1]):
        break
stats = loop.stop()
report = {"final": {"recorded": stats.recorded, "tracked": stats.tracked,
                    "lost": stats.lost, "state": stats.state.value}, "events": events}
if len(sys.argv) > 5:  # read back here (a private tmpfs vanishes with this process)
    from tfll_live.io import open_stream
    with open_stream(path, fps=200.0) as src:
        report["readback"] = {"n_frames": src.n_frames, "decoded": sum(1 for _ in src)}
    from pathlib import Path
    from tfll_live.acquisition.recorder import analysis_dir_for
    a = analysis_dir_for(path)
    results = a / "results.json"
    report["analysis"] = {
        "n_frames": json.loads(results.read_text())["n_frames"] if results.exists() else None,
        "csv_rows": len((a / "frames.csv").read_text().splitlines()) - 1,
    }
    if fmt == "ome-zarr":  # chunk files, a partial one included
        report["chunk_files"] = len(list(Path(path, "0", "0").glob("c.*")))
print(json.dumps(report), flush=True)
"""


def _child(tmp_path: Path) -> Path:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return script


def _lines(proc: subprocess.Popen, until, timeout_s: float = 60.0) -> list[dict]:
    """Read the child's JSON lines until ``until(line)`` or it exits."""
    got: list[dict] = []
    deadline = time.monotonic() + timeout_s
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        raw = proc.stdout.readline()
        if not raw:
            break
        if not raw.startswith("{"):  # LAPACK and friends may print to stdout
            continue
        got.append(json.loads(raw))
        if until(got[-1]):
            break
    return got


def _source_frames(path: Path, n: int) -> list[int]:
    with (analysis_dir_for(path) / "camera_frames.jsonl").open() as f:
        return [int(json.loads(line)["tfll.source_frame"]) for line in f.readlines()[:n]]


# -- SIGKILL ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["ome-zarr", "ome-tiff"])
def test_sigkill_while_recording_keeps_every_frame_written(tmp_path, fmt):
    proc = subprocess.Popen([sys.executable, str(_child(tmp_path)), str(tmp_path / "rec"), fmt,
                             "0", json.dumps(CFG)], stdout=subprocess.PIPE, text=True)
    try:
        lines = _lines(proc, lambda d: d.get("recorded", 0) >= 150)
        assert lines and lines[-1]["running"] and not lines[-1]["events"]
        reported = lines[-1]["recorded"]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()  # type: ignore[union-attr]
    path = Path(lines[0]["path"])
    stream = SyntheticStream(SynthConfig(**CFG))
    if fmt == "ome-zarr":
        # the store is a valid OME-Zarr of exactly the frames written, with their times
        with open_stream(path) as src:
            n = src.n_frames
            assert n is not None and n >= reported
            frames = list(src)
            assert src.fps == pytest.approx(200.0)
    else:
        # a killed OME-TIFF is a valid multi-page TIFF holding every frame written; its
        # OME-XML (times, rate) is only written on close, so the rate must be given. A kill
        # while a page is written (tifffile links it in first) leaves a link past the end:
        # every whole page still reads, and the reader says the file was cut short
        with tifffile.TiffFile(path) as tif:
            assert not tif.is_ome and len(tif.pages) >= reported
        with open_stream(path, fps=200.0) as src:
            n = src.n_frames
            assert n is not None and n >= reported
            assert src.problem is None or "cut short" in src.problem
            frames = [src.read(i) for i in range(n)]
    assert len(frames) == n
    sources = _source_frames(path, n)
    for i in (0, n // 2, n - 1):
        np.testing.assert_array_equal(frames[i], stream.render(sources[i]))


# -- the disk refuses writes --------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "limit"), [("ome-tiff", 3_000_000), ("ome-zarr", 60_000)])
def test_file_size_limit_stops_recording_with_a_message_and_tracking_goes_on(tmp_path, fmt, limit):
    proc = subprocess.run([sys.executable, str(_child(tmp_path)), str(tmp_path / "rec"), fmt,
                           str(limit), json.dumps(CFG)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    path = Path(lines[0]["path"])
    final = lines[-1]
    kinds = [e[0] for e in final["events"]]
    assert kinds == ["error", "stopped"]
    error = final["events"][0][1]
    assert error.startswith("recording stopped:") and f"file size limit of {limit}" in error
    assert "\n" not in error and final["events"][1][2] == error
    # acquisition and tracking went on after the recording stopped
    at_fault = next(d for d in lines[1:-1] if d["events"])
    assert final["final"]["tracked"] > at_fault["tracked"] + 50
    assert final["final"]["state"] == "idle" and final["final"]["lost"] == 0
    recorded = final["final"]["recorded"]
    assert recorded >= 20
    # nothing written before the fault is corrupted: every recorded frame reads back
    stream = SyntheticStream(SynthConfig(**CFG))
    with open_stream(path, fps=200.0) as src:
        frames = list(src)
    assert len(frames) >= recorded
    sources = _source_frames(path, recorded)
    for i in (0, recorded - 1):
        np.testing.assert_array_equal(frames[i], stream.render(sources[i]))
    if fmt == "ome-zarr":  # small files still fit: the analysis says why it is incomplete
        doc = read_results(analysis_dir_for(path))
        assert "file size limit" in doc["incomplete"]["reason"]


@pytest.mark.skipif(not can_mount_private_tmpfs(),
                    reason="cannot mount a tmpfs in a private mount namespace here (needs "
                           "`unshare -m` and CAP_SYS_ADMIN) to fill a real disk")
@pytest.mark.parametrize("fmt", ["ome-zarr", "ome-tiff"])
def test_full_disk_stops_recording_with_a_message_and_tracking_goes_on(tmp_path, fmt):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    child = _child(tmp_path)
    cmd = (f'mount -t tmpfs -o size=2m tmpfs "{mnt}" && exec "{sys.executable}" "{child}" '
           f'"{mnt}/rec" {fmt} 0 \'{json.dumps(CFG)}\' readback')
    proc = subprocess.run(["unshare", "-m", "sh", "-c", cmd], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    final = lines[-1]
    error = final["events"][0][1]
    assert error.startswith("recording stopped:") and "disk full" in error
    at_fault = next(d for d in lines[1:-1] if d["events"])
    assert final["final"]["tracked"] > at_fault["tracked"] + 50
    recorded = final["final"]["recorded"]
    assert recorded >= 10
    assert final["readback"]["decoded"] == final["readback"]["n_frames"] >= recorded
    # the analysis of every recorded frame is written, and no half-written chunk is left
    assert final["analysis"] == {"n_frames": recorded, "csv_rows": recorded}
    if fmt == "ome-zarr":
        assert final["chunk_files"] == recorded
