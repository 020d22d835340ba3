"""``tfll live``: headless live acquisition, tracking and recording from the command line.

A one-line status on stderr is redrawn a few times a second (frames acquired, recorded, lost
in the camera's buffer and tracked, eye state, current tau; a line every few seconds when
stderr is not a terminal), frames lost are reported on a line of their own as soon as it
happens, and a summary is printed at the end. Ctrl-C (SIGINT), SIGTERM (a service manager,
``timeout``, ``kill``) and SIGHUP (the terminal closed) stop acquisition cleanly and finalise
the recording.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TextIO

from tfll_live.synth import SynthConfig
from tfll_live.tracking import Interval, TrackerConfig

from .core import make_core
from .limits import RecordingLimits
from .loop import CaptureLoop, CaptureStats, LoopState
from .recorder import analysis_dir_for, disk_size, with_format_suffix
from .status import counts_text, eye_word, lost_text, rate_text

EXIT_OK, EXIT_FAILED = 0, 1
DISK_WARN_MINUTES = 5.0  # warn (once) when the disk holds less recording than this


class StatusLine:
    """The live status: redrawn in place on a terminal, one line every ``log_every_s`` otherwise."""

    def __init__(self, stream: TextIO | None = None, log_every_s: float = 5.0) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self._every_s = 0.25 if self.tty else log_every_s
        self._last = 0.0
        self._width = 0

    def show(self, stats: CaptureStats, recording: Path | None, force: bool = False) -> None:
        """Redraw (if due) from the loop's counters."""
        now = time.monotonic()
        if not force and now - self._last < self._every_s:
            return
        self._last = now
        self._draw(status_text(stats, recording))

    def say(self, line: str) -> None:
        """Print ``line`` on its own (above the redrawn status line)."""
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        self.stream.write(line + "\n")
        self.stream.flush()
        self._last = 0.0  # the status line comes back at once

    def _draw(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        """End the redrawn line."""
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0


def status_text(stats: CaptureStats, recording: Path | None) -> str:
    """The status line: the frames' counts (as the dock says them), eye state, tau."""
    tau = f"{stats.current_tau_s:.2f} s" if stats.current_tau_s is not None else "-"
    rec = f" | REC -> {recording.name}" if recording is not None else ""
    return (
        f"{stats.elapsed_s:6.1f} s | {counts_text(stats, recording is not None)} | "
        f"{stats.fps:5.1f} tracked/s | {eye_word(stats.eye_state)} | tau {tau}{rec}"
    )


STOP_SIGNALS = ("SIGTERM", "SIGHUP")
"""Signals that end ``tfll live`` as Ctrl-C does (those a platform lacks are skipped)."""


@contextmanager
def stop_signals(caught: list[str]) -> Iterator[None]:
    """Make SIGTERM and SIGHUP raise KeyboardInterrupt while inside, as SIGINT does.

    Their default action kills the process at once: no results.json, a TIFF without its
    OME metadata. Raised in the main thread, they take Ctrl-C's path, which finalises the
    recording. Their names go to ``caught``; the previous handlers are restored on leaving.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers (and receives the signals)
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        caught.append(signal.Signals(signum).name)
        raise KeyboardInterrupt

    previous = {}
    for name in STOP_SIGNALS:
        sig = getattr(signal, name, None)
        if sig is not None:
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_live(args: argparse.Namespace) -> int:
    """Run ``tfll live`` with parsed arguments; returns the exit status.

    Bad input (configuration, replay file, output path) raises ValueError/OSError with a
    one-line message, which ``tfll`` prints as ``tfll: error: ...``. SIGTERM and SIGHUP
    finish as Ctrl-C does (``stop_signals``).
    """
    caught: list[str] = []
    with stop_signals(caught):
        return _run_live(args, caught)


def _run_live(args: argparse.Namespace, caught: list[str]) -> int:
    """``run_live``'s body; ``caught`` names the stop signal received, if any."""
    from tfll_live.thickness import checked_calibration

    # before the camera starts: a bad calibration file is refused with nothing to undo
    tracker_config = TrackerConfig(
        thickness_calibration=checked_calibration(getattr(args, "calibration", None))
    )
    max_size, max_minutes = getattr(args, "max_size", None), getattr(args, "max_minutes", None)
    limits = RecordingLimits(
        max_bytes=max_size, max_s=None if max_minutes is None else 60.0 * max_minutes
    )
    if limits.any and args.record is None:
        raise ValueError("--max-size and --max-minutes limit a recording: give --record OUT")
    fps = getattr(args, "fps", None)
    synth = SynthConfig(fps=fps) if fps and args.replay is None else None
    core = make_core(
        config=args.config,
        replay=args.replay,
        synth=synth,
        fps=fps,
        realtime=not getattr(args, "fast", False),
    )
    loop = CaptureLoop(core, tracker_config)
    taus: list[float] = []
    n_blinks = [0]
    record_errors: list[str] = []
    ended = threading.Event()

    def on_interval(interval: Interval) -> None:
        if interval.spread is not None and interval.spread.b > 0:
            taus.append(interval.spread.tau_s)

    loop.events.blink.connect(lambda _b: n_blinks.__setitem__(0, n_blinks[0] + 1))
    loop.events.interval_fit.connect(on_interval)
    loop.events.recording_stopped.connect(
        lambda _p, err: record_errors.append(err) if err else None
    )
    loop.events.stopped.connect(lambda _s: ended.set())
    limit_reached: list[str] = []

    def on_limit(_path: Path, reason: str) -> None:
        limit_reached.append(reason)  # said by the main thread; the session ends there
        ended.set()

    loop.events.recording_limit_reached.connect(on_limit)
    errors: list[str] = []
    loop.events.error.connect(errors.append)
    losses: list[tuple[int, int]] = []  # from the capture thread; printed by this one
    loop.events.frames_lost.connect(lambda n, total: losses.append((n, total)))

    status = StatusLine()
    n_said = 0  # errors printed so far
    interrupted = ended_by_itself = False
    recording: Path | None = None
    from tfll_live.cli import visit_from_args

    visit = visit_from_args(args)
    if visit.entered and args.record is None:
        print("tfll: warning: the visit is stored only in a recording (--record)", file=sys.stderr)
    if args.record is not None:  # armed before the start: the recording has every frame
        recording = loop.start_recording(
            args.record,
            args.format,
            visit=visit,
            pixel_size_um=getattr(args, "pixel_size_um", None),
            limits=limits,
        )
        asked = with_format_suffix(Path(args.record).expanduser(), args.format)
        if recording != asked:
            print(
                f"tfll: {asked.name} (or its analysis folder {analysis_dir_for(asked).name}) "
                f"exists; recording to {recording}",
                file=sys.stderr,
            )
    try:
        loop.start()
    except BaseException as e:
        loop.stop_recording()
        if isinstance(e, RuntimeError):  # the camera did not start: say so, in one line
            print(f"tfll: error: {e}", file=sys.stderr)
            return EXIT_FAILED
        raise
    rate_warned = False  # the camera's shortfall is said once
    try:
        deadline = None if args.duration is None else time.monotonic() + args.duration
        next_disk_check, disk_warned = time.monotonic() + 1.0, False
        while not ended.is_set() and (deadline is None or time.monotonic() < deadline):
            stats = loop.stats
            while losses:
                n, total = losses.pop(0)
                status.say(f"tfll: warning: {lost_text(n, total, stats.elapsed_s)}")
            while len(errors) > n_said:  # at once: a recording that stopped must not wait
                status.say(f"tfll: error: {errors[n_said]}")
                n_said += 1
            if not disk_warned and time.monotonic() > next_disk_check:
                next_disk_check = time.monotonic() + 1.0
                left = loop.recording_minutes_left()
                if left is not None and left < DISK_WARN_MINUTES:
                    disk_warned = True
                    status.say(
                        f"tfll: warning: the disk holds about {left:.1f} more minutes of "
                        "recording at this rate; the recording stops before it is full"
                    )
            shortfall = None if rate_warned else rate_text(stats)
            if shortfall is not None:
                rate_warned = True
                status.say(f"tfll: warning: {shortfall}")
            status.show(stats, recording if loop.is_recording else None)
            ended.wait(0.05)
        ended_by_itself = ended.is_set() and not limit_reached
    except KeyboardInterrupt:
        interrupted = True
    finally:
        try:
            stats = loop.stop()
        except KeyboardInterrupt:  # a second Ctrl-C while stopping: stop anyway, quietly
            stats = loop.stop(timeout_s=1.0)
        status.show(stats, None, force=True)
        status.finish()
    for reason in limit_reached[:1]:
        print(f"tfll: recording stopped: {reason}", file=sys.stderr)
    shortfall = None if rate_warned else rate_text(stats)
    if shortfall is not None:  # said once: during the run, or now
        print(f"tfll: warning: {shortfall}", file=sys.stderr)
    how = (
        f"stopped by {caught[0] if caught else 'Ctrl-C'}"
        if interrupted
        else "failed"
        if stats.state is LoopState.FAILED
        else "end of the stream"
        if ended_by_itself
        else "recording limit reached"
        if limit_reached
        else "duration reached"
    )
    print(_summary(stats, n_blinks[0], taus, recording, how))
    for err in errors[n_said:]:
        print(f"tfll: error: {err}", file=sys.stderr)
    return EXIT_FAILED if errors or record_errors else EXIT_OK


def _summary(
    stats: CaptureStats, n_blinks: int, taus: list[float], recording: Path | None, how: str
) -> str:
    tau = f", median tau {statistics.median(taus):.2f} s" if taus else ""
    rec = ""
    if recording is not None:
        size = disk_size(recording)
        per_minute = size / max(stats.elapsed_s, 1e-9) * 60 / 2**30
        rec = (
            f"; recorded {stats.recorded} frames -> {recording} ({size / 2**20:.0f} MB, "
            f"{per_minute:.2f} GB per minute)"
        )
    return (
        f"live ({how}): {stats.acquired} frames acquired, {stats.lost} lost, "
        f"{stats.tracked} tracked ({stats.tracked / max(stats.acquired, 1):.0%}) in "
        f"{stats.elapsed_s:.1f} s ({_rates(stats)}); "
        f"result latency (from the camera's readout) median {stats.latency_ms_median:.1f} ms, p95 "
        f"{stats.latency_ms_p95:.1f} ms; {n_blinks} blinks, {len(taus)} interval fits{tau}{rec}"
    )


def _rates(stats: CaptureStats) -> str:
    """The delivered frame rate, by the camera's own frame times, against the requested one."""
    delivered = stats.delivered_fps
    if delivered <= 0:  # under a second of frames: the rate over the run
        delivered = stats.acquired / max(stats.elapsed_s, 1e-9)
    requested = stats.requested_fps
    wanted = f" of {requested:.1f} requested" if requested > 0 else ""
    return f"{delivered:.1f} frames/s{wanted}"
