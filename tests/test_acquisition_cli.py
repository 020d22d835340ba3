"""``tfll live`` end to end in real processes: record, replay, Ctrl-C, bad input."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import pytest
from private_disk import can_mount_private_tmpfs
from tfll_cli import ENV, tfll

from tfll_live.io import open_stream, read_results
from tfll_live.synth import SynthConfig, SyntheticStream, write_stream


def _mm_installed() -> bool:
    import logging

    from pymmcore_plus import find_micromanager

    log = logging.getLogger("pymmcore-plus")
    log.disabled = True
    try:
        return find_micromanager() is not None
    finally:
        log.disabled = False


MM_INSTALLED = _mm_installed()

def _one_line_error(proc: subprocess.CompletedProcess, needle: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("tfll: error:") and needle in lines[0]
    assert "Traceback" not in proc.stderr


def test_live_records_for_a_duration_and_summarises(tmp_path, small_cfg):
    proc = tfll("live", "--config", str(small_cfg), "--record", "take", "--duration", "1.5",
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = proc.stdout.strip().splitlines()[-1]
    assert summary.startswith("live (duration reached):") and " 0 lost" in summary
    assert "take.ome.zarr" in summary
    assert "acquired" in proc.stderr and "tracked" in proc.stderr  # the status line
    doc = read_results(tmp_path / "take.tfll")
    # the rate the camera delivered, by its frames' own times: at most the 200 frames/s asked
    # for (a camera that cannot keep up on a busy machine runs evenly slower, and says so)
    delivered = float(re.search(r"([\d.]+) frames/s of 200\.0 requested", summary).group(1))
    assert 20.0 <= delivered <= 200.5  # 87 with a test process beside it on two cores
    with open_stream(tmp_path / "take.ome.zarr") as src:
        assert src.n_frames == doc["n_frames"] >= 30
        assert src.fps == pytest.approx(delivered, rel=0.02)
    assert f"recorded {doc['n_frames']} frames" in summary


def _ctrl_c_as_in_a_terminal() -> None:
    """Children of a shell's background job start with SIGINT ignored; a terminal's do not."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize(("sig", "how"), [(signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM"),
                                         (signal.SIGHUP, "SIGHUP")])
def test_ctrl_c_sigterm_and_sighup_stop_cleanly_and_finalise_the_recording(tmp_path, small_cfg,
                                                                          sig, how):
    proc = subprocess.Popen([sys.executable, "-m", "tfll_live.cli", "live", "--config",
                             str(small_cfg), "--record", "take", "--format", "ome-tiff"],
                            cwd=tmp_path, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=_ctrl_c_as_in_a_terminal)
    try:
        meta = tmp_path / "take.tfll" / "camera_frames.jsonl"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if meta.exists() and meta.read_text().count("\n") >= 80:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(sig)
        # the recording's analysis is finished first: slow on a loaded machine
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    summary = out.strip().splitlines()[-1]
    assert summary.startswith(f"live (stopped by {how}):")
    doc = read_results(tmp_path / "take.tfll")
    assert doc["n_frames"] >= 80 and "incomplete" not in doc
    with open_stream(tmp_path / "take.ome.tif") as src:  # OME-XML written: rate and times
        assert src.n_frames == doc["n_frames"] and src.times_s is not None
    with (tmp_path / "take.tfll" / "camera_frames.jsonl").open() as f:
        assert sum(1 for _ in f) == doc["n_frames"]


def test_live_replay_fast_plays_the_file_once_and_ends(tmp_path):
    path = tmp_path / "s.ome.tif"
    write_stream(SyntheticStream(SynthConfig(height=120, width=160, fps=50.0, n_frames=60)), path)
    proc = tfll("live", "--replay", str(path), "--fast", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = proc.stdout.strip().splitlines()[-1]
    assert summary.startswith("live (end of the stream): 60 frames acquired, 0 lost, 60 tracked")


def test_recording_name_taken_is_reported_and_a_free_one_used(tmp_path, small_cfg):
    (tmp_path / "take.ome.zarr").mkdir()
    proc = tfll("live", "--config", str(small_cfg), "--record", "take", "--duration", "0.3",
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "recording to take-1.ome.zarr" in proc.stderr
    assert list((tmp_path / "take.ome.zarr").iterdir()) == []  # untouched


@pytest.mark.parametrize("case", ["missing", "text", "truncated"])
def test_bad_replay_file_is_one_line(tmp_path, case):
    path = tmp_path / "x.ome.tif"
    if case == "text":
        path = tmp_path / "x.txt"
        path.write_text("hello")
    elif case == "truncated":
        write_stream(SyntheticStream(SynthConfig(height=120, width=160, n_frames=5)), path)
        path.write_bytes(path.read_bytes()[:200])
    proc = tfll("live", "--replay", str(path), cwd=tmp_path)
    _one_line_error(proc, str(path))


@pytest.mark.parametrize("adapter", ["NoSuchAdapter,NoSuchCamera", "DemoCamera,DCam"])
def test_bad_config_and_unwritable_record_path_are_one_line(tmp_path, small_cfg, adapter):
    if adapter.startswith("Demo") and MM_INSTALLED:
        pytest.skip("Micro-Manager is installed: its demo camera loads")
    bad = tmp_path / "bad.cfg"
    bad.write_text(f"Device,Camera,{adapter}\nProperty,Core,Initialize,1\n")
    # (exits 2, not aborted by the failed C++ core at interpreter shutdown)
    _one_line_error(tfll("live", "--config", str(bad), cwd=tmp_path), "bad.cfg")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _one_line_error(tfll("live", "--config", str(small_cfg), "--record", str(blocker / "rec"),
                         "--duration", "1", cwd=tmp_path), "cannot record")


def test_config_and_replay_together_is_a_usage_error(tmp_path, small_cfg):
    proc = tfll("live", "--config", str(small_cfg), "--replay", "x.tif", cwd=tmp_path)
    assert proc.returncode == 2 and "not allowed with" in proc.stderr


def test_camera_failure_mid_run_exits_nonzero_with_the_reason(tmp_path):
    path = tmp_path / "s.ome.tif"
    write_stream(SyntheticStream(SynthConfig(height=120, width=160, fps=100.0, n_frames=40)), path)
    data = path.read_bytes()
    cut = tmp_path / "cut.ome.tif"
    cut.write_bytes(data[: len(data) * 3 // 4])  # cut OME-TIFF: frames intact, rate lost
    proc = tfll("live", "--replay", str(cut), "--fps", "100", "--fast", "--record", "rec",
                cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "live (failed)" in proc.stdout
    errors = [x for x in proc.stderr.splitlines() if x.startswith("tfll: error:")]
    assert len(errors) == 1 and "truncated" in errors[0] and "Traceback" not in proc.stderr
    doc = read_results(tmp_path / "rec.tfll")
    assert "truncated" in doc["incomplete"]["reason"] and 20 < doc["n_frames"] < 40
    last = (tmp_path / "rec.tfll" / "camera_frames.jsonl").read_text().splitlines()[-1]
    assert json.loads(last)["frame"] == doc["n_frames"] - 1


@pytest.mark.skipif(not can_mount_private_tmpfs(),
                    reason="cannot mount a tmpfs in a private mount namespace here")
def test_a_filling_disk_is_warned_of_and_stops_the_recording_at_once(tmp_path, small_cfg):
    """64 MB of disk: a warning while there is room, the stop said as it happens."""
    disk = tmp_path / "disk"
    disk.mkdir()
    cmd = (f'mount -t tmpfs -o size=64m tmpfs "{disk}" && cd "{disk}" && exec "{sys.executable}" '
           f'-m tfll_live.cli live --config "{small_cfg}" --record take --duration 60')
    proc = subprocess.Popen(["unshare", "-m", "sh", "-c", cmd], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=_ctrl_c_as_in_a_terminal)
    said: list[str] = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # the status line goes here too (not a terminal: a line each)
            said.append(line.strip())
            if line.startswith("tfll: error:"):
                break
        assert proc.poll() is None, said  # said while the session goes on
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    warnings = [x for x in said if x.startswith("tfll: warning: the disk holds about")]
    assert len(warnings) == 1, said
    error = said[-1]
    assert "recording stopped:" in error and "disk full" in error and "MB short of full" in error
    assert "stopped by Ctrl-C" in out
