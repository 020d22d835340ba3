"""Honest live figures (issue 12, item 10): real frame times, the delivered rate, true latency.

On real UniMMCore cores with the project's Python cameras. A full-size synthetic frame takes
~10 ms to render, so a camera asked for 1000 frames/s cannot keep up: that is the case here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from waiting import wait_until

from tfll_live.acquisition import CaptureLoop, SyntheticCamera, make_core
from tfll_live.acquisition.core import add_camera, new_core
from tfll_live.acquisition.recorder import analysis_dir_for
from tfll_live.acquisition.status import rate_text
from tfll_live.io import read_frames_csv, read_results
from tfll_live.synth import SynthConfig

TOO_FAST = SynthConfig(fps=1000.0, n_frames=200, seed=4)  # 480x640 RGB, 1 ms asked
KEEPS_UP = SynthConfig(height=120, width=160, fps=100.0, n_frames=200, seed=4)
ENV = {k: v for k, v in os.environ.items() if k != "PYMM_SIGNALS_BACKEND"}


def _received(md: dict[str, str]) -> float:
    return datetime.fromisoformat(md["TimeReceivedByCore"]).timestamp()


def _pop(core, n: int, timeout_s: float = 20.0) -> list[dict[str, str]]:
    mds: list[dict[str, str]] = []
    deadline = time.monotonic() + timeout_s
    while len(mds) < n and time.monotonic() < deadline:
        if core.getRemainingImageCount():
            mds.append(dict(core.popNextImageAndMD(fix=False)[1]))
        else:
            time.sleep(0.001)
    return mds


def _record(loop: CaptureLoop, path: Path, seconds: float) -> Path:
    rec = loop.start_recording(path, "ome-zarr")
    loop.start()
    time.sleep(seconds)
    loop.stop(timeout_s=10.0)
    return rec


def test_a_camera_that_cannot_keep_up_stamps_the_times_its_frames_were_taken():
    core = make_core(synth=TOO_FAST)
    core.startSequenceAcquisition(40, 0, True)
    mds = _pop(core, 40)
    core.stopSequenceAcquisition()
    assert len(mds) == 40
    times = np.array([float(m["tfll.time_s"]) for m in mds])
    received = np.array([_received(m) for m in mds])
    readout = np.array([float(m["tfll.readout_time"]) for m in mds])
    # the camera's times span (nearly) the time the frames took to come, not 39 x 1 ms
    assert times[-1] - times[0] > 0.2
    assert times[-1] - times[0] >= 0.5 * (received[-1] - received[0])  # late ones: busy CPU
    assert np.all(np.diff(times) > 0)
    # a frame is never received before it was read out, and some came late (it fell behind)
    assert np.all(readout <= received + 0.005)
    assert np.max(received - readout) > 0.005


def test_the_delivered_rate_is_said_against_the_requested_one_and_recorded_times_are_real(
    tmp_path,
):
    loop = CaptureLoop(make_core(synth=TOO_FAST))
    rec = _record(loop, tmp_path / "fast", 2.5)
    stats = loop.stats
    assert stats.requested_fps == pytest.approx(1000.0)
    assert 5 < stats.delivered_fps < 500
    assert stats.camera_behind
    text = rate_text(stats)
    assert text is not None and "not the 1000.0 requested" in text
    # the recording is stamped with the frames' real times and its rate is the delivered one
    results = read_results(analysis_dir_for(rec) / "results.json")
    assert results["fps"] == pytest.approx(stats.delivered_fps, rel=0.3)
    times = read_frames_csv(analysis_dir_for(rec))["time_s"]
    assert np.median(np.diff(times)) > 0.003  # not 1 ms apart
    span_by_count = (len(times) - 1) / 1000.0
    assert times[-1] - times[0] > 3 * span_by_count


def test_a_camera_that_keeps_up_is_not_said_to_fall_short():
    # prerendered: producing a frame is a copy, so the camera keeps up on any machine (rendering
    # each frame live, a loaded CI machine's camera ran evenly at 53 of 100 frames/s, and was
    # rightly said to fall short)
    loop = CaptureLoop(make_core(synth=KEEPS_UP, prerender=True))
    loop.start()
    assert wait_until(lambda: loop.stats.delivered_fps > 0, timeout_s=10.0)
    stats = loop.stop()
    assert stats.requested_fps == pytest.approx(100.0)
    assert stats.delivered_fps == pytest.approx(100.0, rel=0.1)
    assert not stats.camera_behind and rate_text(stats) is None


class SlowLinkCamera(SyntheticCamera):
    """The synthetic camera behind a slow link: each frame reaches the core 0.4 s after readout.

    (As a camera draining its on-board memory does, or a driver the host serves late.)
    """

    LINK_S = 0.4

    def start_sequence(self, n, get_buffer):
        for md in super().start_sequence(n, get_buffer):
            yield {**md, "tfll.readout_time": repr(float(md["tfll.readout_time"]) - self.LINK_S)}


def test_result_latency_counts_from_the_camera_readout_so_late_frames_count_as_late(tmp_path):
    core = new_core()
    add_camera(core, "Camera", SlowLinkCamera(KEEPS_UP))
    loop = CaptureLoop(core)
    rec = _record(loop, tmp_path / "late", 2.0)
    stats = loop.stats
    lines = (analysis_dir_for(rec) / "camera_frames.jsonl").read_text()
    mds = [json.loads(line) for line in lines.splitlines()]
    late_s = np.array([_received(m) - float(m["tfll.readout_time"]) for m in mds])
    # the link's 0.4 s, plus what a loaded machine adds before the core hands a frame over
    assert SlowLinkCamera.LINK_S - 0.05 <= np.median(late_s) <= SlowLinkCamera.LINK_S + 0.2
    assert stats.tracked >= 10  # enough results for a median (a loaded machine tracked 19)
    # measured from the core's receipt, the latency was tens of ms: the link's 0.4 s was hidden
    assert stats.latency_ms_median >= 1000 * SlowLinkCamera.LINK_S
    assert stats.latency_ms_p95 >= stats.latency_ms_median


def test_tfll_live_says_in_one_line_that_the_camera_cannot_keep_up(tmp_path: Path):
    out = subprocess.run(
        [sys.executable, "-m", "tfll_live.cli", "live", "--fps", "1000", "--duration", "3"],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    warnings = [line for line in out.stderr.splitlines() if "cannot keep up" in line]
    assert len(warnings) == 1
    assert warnings[0].startswith("tfll: warning: the camera delivers ")
    assert "not the 1000.0 requested" in warnings[0]
    assert "of 1000.0 requested" in out.stdout
    assert "latency (from the camera's readout)" in out.stdout
