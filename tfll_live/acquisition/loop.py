"""The capture loop: every camera frame, in order, into the tracker and the recorder.

The camera runs continuous sequence acquisition into the core's circular buffer; a dedicated
capture thread pops every frame in order, tracks it, records it (while recording is on) and
publishes the newest frame and result for display, which may skip frames. Tracking and
recording never skip: a frame lost to circular-buffer overflow shows as a gap in the core's
image numbers and is counted as dropped.

A *session* is what one tracker run sees: it starts with ``start()`` and again with each
``start_recording()`` (so a recording's analysis stands alone and a replay of the recording
gives the same numbers) and with ``set_tracker_config()``.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from tfll_live.tracking import FrameResult, Interval, Summary, Tracker, TrackerConfig

from . import _thread_errors
from ._flow import KEY_FLOW, frame_done
from .core import make_core
from .events import CaptureEvents
from .pixels import camera_frame
from .recorder import Recording
from .synthetic_camera import KEY_END, KEY_TIME_S

if TYPE_CHECKING:
    from pymmcore_plus.experimental.unicore import UniMMCore


class LoopState(str, Enum):
    """Where the loop is in its life."""

    IDLE = "idle"
    RUNNING = "running"
    STOPPING = "stopping"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class CaptureStats:
    """Counters of a capture session (a snapshot; the loop keeps counting)."""

    acquired: int = 0  # frames the camera produced since start (tracked + dropped + queued)
    tracked: int = 0  # frames pushed through the tracker
    recorded: int = 0  # frames written to the current (or last) recording
    dropped: int = 0  # frames lost: gaps in the camera's image numbers, left at stop
    fps: float = 0.0  # recent rate of tracked frames
    latency_ms_median: float = float("nan")  # frame in the core's buffer -> FrameResult
    latency_ms_p95: float = float("nan")
    state: LoopState = LoopState.IDLE
    elapsed_s: float = 0.0  # since start
    current_tau_s: float | None = None  # tau of the live spread fit, if any
    eye_state: str = ""  # "open" / "blink" in the newest frame
    backlog: int = 0  # frames waiting in the camera's buffer (the tracker is that far behind)


class _LatencyHistogram:
    """Constant-memory latency percentiles over a whole session (0.1 ms bins up to 10 s)."""

    BIN_MS = 0.1

    def __init__(self) -> None:
        self._counts = np.zeros(100_000, np.int64)
        self._n = 0

    def add(self, ms: float) -> None:
        if not np.isfinite(ms):
            return
        self._counts[min(max(int(ms / self.BIN_MS), 0), len(self._counts) - 1)] += 1
        self._n += 1

    def percentile(self, q: float) -> float:
        if self._n == 0:
            return float("nan")
        k = int(np.searchsorted(np.cumsum(self._counts), q / 100.0 * self._n))
        return (k + 0.5) * self.BIN_MS


class _Run:
    """The stop signals of one run of the capture thread."""

    def __init__(self) -> None:
        self.halt = threading.Event()  # the camera has stopped: drain the buffer and end
        self.stop_requested = threading.Event()  # stop() is under way: not a camera fault
        self.drain_deadline = float("inf")


_MIN_STALL_S = 3.0  # a camera silent this long (or 20 frame periods) has stopped delivering


class CaptureLoop:
    """Continuous acquisition from a core's current camera into a Tracker (and a recorder).

    ``core=None`` builds the default core (the synthetic interferometer camera, ``make_core()``).
    ``stall_timeout_s``: how long the camera may deliver nothing before the loop gives up
    (default: 20 frame periods, at least 3 s).
    """

    def __init__(
        self,
        core: UniMMCore | None = None,
        tracker_config: TrackerConfig | None = None,
        *,
        stall_timeout_s: float | None = None,
    ) -> None:
        self.events = CaptureEvents()
        self._core = core if core is not None else make_core()
        self._cfg = tracker_config or TrackerConfig()
        self._tracker = Tracker(self._cfg)
        self._stall_timeout_s = stall_timeout_s
        self._control = threading.RLock()  # start/stop/switch, one at a time
        self._session = threading.Lock()  # the tracker and the recording, per frame
        self._thread: threading.Thread | None = None
        self._run_state = _Run()  # this run's stop signals (a stuck old thread keeps its own)
        self._finished = threading.Event()
        self._finished.set()
        self._state = LoopState.IDLE
        self._recording: Recording | None = None
        self._latest: tuple[np.ndarray, FrameResult] | None = None
        self._camera_error: BaseException | None = None
        self._last_recording: Recording | None = None
        self._finalize_lock = threading.Lock()
        self._fitted_buffer: tuple[str, int] | None = None
        # per run (reset by start)
        self._acquired = self._tracked = self._dropped = self._next_number = 0
        self._backlog = 0
        self._components: int | None = None
        self._recent: deque[float] = deque(maxlen=64)
        self._latency = _LatencyHistogram()
        self._started_at: float | None = None
        self._ended_at: float | None = None
        self._camera_label = ""
        self._period_s = 0.0
        # per session (reset by start, start_recording, set_tracker_config)
        self._t0: float | None = None
        self._intervals_emitted = 0

    # -- public state -----------------------------------------------------------------------
    @property
    def core(self) -> UniMMCore:
        """The core this loop acquires from."""
        return self._core

    @property
    def is_running(self) -> bool:
        """Whether acquisition and the capture thread are running."""
        return self._state is LoopState.RUNNING

    @property
    def is_recording(self) -> bool:
        """Whether frames currently go to a recording."""
        return self._recording is not None

    @property
    def recording_path(self) -> Path | None:
        """Path of the recording in progress, if any."""
        rec = self._recording
        return None if rec is None else rec.path

    @property
    def tracker_config(self) -> TrackerConfig:
        """The tracker configuration in use."""
        return self._cfg

    @property
    def backlog(self) -> int:
        """Frames waiting in the camera's buffer when the capture thread last looked."""
        return self._backlog

    @property
    def stats(self) -> CaptureStats:
        """Counters so far (a consistent-enough snapshot, safe from any thread)."""
        times = self._recent
        span = times[-1] - times[0] if len(times) > 1 else 0.0
        fps = (len(times) - 1) / span if span > 0 else 0.0
        latest = self._latest
        fit = latest[1].fit if latest is not None else None
        tau = fit.tau_s if fit is not None and fit.b > 0 else None
        started = self._started_at
        return CaptureStats(
            acquired=self._acquired,
            tracked=self._tracked,
            recorded=self._recorded_count(),
            dropped=self._dropped,
            fps=fps,
            latency_ms_median=self._latency.percentile(50),
            latency_ms_p95=self._latency.percentile(95),
            state=self._state,
            elapsed_s=0.0 if started is None else (self._ended_at or time.perf_counter()) - started,
            current_tau_s=tau,
            eye_state="" if latest is None else latest[1].state.value,
            backlog=self._backlog,
        )

    def _recorded_count(self) -> int:
        rec = self._recording or self._last_recording
        return 0 if rec is None else rec.n_written

    def latest(self) -> tuple[np.ndarray, FrameResult] | None:
        """Return the newest tracked frame and its result, for display (which may skip frames)."""
        return self._latest

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Start continuous sequence acquisition and the capture thread (a new session).

        Raises ``RuntimeError`` (one line) when the camera cannot start; a no-op if running.
        """
        with self._control:
            if self.is_running:
                return
            if not self._finished.wait(5.0):
                raise RuntimeError("the previous acquisition has not finished stopping")
            core = self._core
            label = core.getCameraDevice()
            if not label:
                raise RuntimeError("no camera selected in the core")
            if core.isSequenceRunning():
                core.stopSequenceAcquisition()
            if core.isPyDevice(label):
                self._fit_sequence_buffer()
            self._reset_counters()
            with self._session:
                self._new_session()
            self._camera_error = None
            self._camera_label = str(label)
            self._period_s = _frame_period_s(core)
            _thread_errors.watch(id(self), self._is_acquisition_thread, self._on_camera_error)
            run = self._run_state = _Run()
            self._finished.clear()
            try:
                core.startContinuousSequenceAcquisition(0)
            except Exception as e:
                self._finished.set()
                _thread_errors.unwatch(id(self))
                raise RuntimeError(f"camera {label!r} did not start: {_one_line(e)}") from e
            self._started_at = time.perf_counter()
            self._state = LoopState.RUNNING
            self._thread = threading.Thread(
                target=self._run, args=(run,), name="tfll-capture", daemon=True
            )
            self._thread.start()
        self.events.started.emit()

    def stop(self, timeout_s: float = 5.0) -> CaptureStats:
        """Stop acquisition, finalise any recording, and return the final counters.

        Frames already in the circular buffer are still tracked and recorded (for up to
        ``timeout_s``). Never hangs: what does not finish within ``timeout_s`` is abandoned
        (and counted as dropped).
        """
        with self._control:
            thread = self._thread
            if thread is None:
                return self.stats
            if self._state is LoopState.RUNNING:
                self._state = LoopState.STOPPING
            run = self._run_state
            run.drain_deadline = time.perf_counter() + timeout_s
            run.stop_requested.set()
            self._stop_camera()
            run.halt.set()
            thread.join(timeout_s + 0.5)
            self._thread = None
            # normally the capture thread has finalised; if it is stuck, finalise from here
            self._finalize(None, timeout_s=timeout_s)
            return self.stats

    def switch_camera(self, label: str) -> None:
        """Make ``label`` the core's camera; restarts acquisition if it was running."""
        with self._control:
            running = self.is_running
            if running or self._thread is not None:
                self.stop()
            self._core.setCameraDevice(label)
            if running:
                self.start()

    # -- recording --------------------------------------------------------------------------
    def start_recording(
        self, path: str | Path, fmt: Literal["ome-tiff", "ome-zarr"] = "ome-zarr"
    ) -> Path:
        """Record from the next frame on; returns the path actually used.

        Called before ``start()``, the recording begins with the session's first frame (what
        a replay or a scripted session wants). Never overwrites: the format's suffix is added
        if missing, and when that path (or its analysis folder) exists the recording goes to
        ``<name>-1``, ``-2``, ... (the returned path says which). Starting a recording starts
        a new tracking session (tracker reset), so the recording's analysis stands alone and a
        replay of it gives the same numbers. Raises ``RuntimeError`` when already recording,
        ``OSError``/``ValueError`` (one line) when the path cannot be written.
        """
        with self._session:
            if self._recording is not None:
                raise RuntimeError(f"already recording to {self._recording.path}")
            rec = Recording.create(path, fmt, attrs=self._session_attrs())
            self._recording = rec
            self._last_recording = None
            self._new_session()
        self.events.recording_started.emit(rec.path)
        return rec.path

    def stop_recording(self) -> Path | None:
        """Finalise the recording (image file, results.json, frames.csv); its path or None."""
        with self._session:
            rec = self._recording
            if rec is None:
                return None
            self._recording = None
            self._last_recording = rec
            summary = self._summary_for_recording()
        # draining the writer's queue may take a moment: not while holding up tracking
        error = rec.close(summary)
        self._emit_recording_stopped(rec.path, error)
        return rec.path

    def set_tracker_config(self, cfg: TrackerConfig) -> None:
        """Use ``cfg`` from the next frame on (a new tracking session).

        Refused (``RuntimeError``) while recording: a recording's analysis uses one
        configuration.
        """
        with self._session:
            if self._recording is not None:
                raise RuntimeError("stop recording before changing the tracker configuration")
            self._cfg = cfg
            self._new_session()

    # -- the capture thread -----------------------------------------------------------------
    def _run(self, run: _Run) -> None:
        error: str | None = None
        try:
            error = self._capture(run)
        except Exception as e:  # a bug or an unexpected core failure: report, never hang
            error = f"capture failed: {_one_line(e)}"
        if run is not self._run_state:
            return  # a thread that was stuck past its stop: a newer run owns the camera now
        self._backlog = 0  # whatever was left is tracked (drained) or discarded now
        self._stop_camera()
        self._finalize(error, timeout_s=5.0)

    def _capture(self, run: _Run) -> str | None:
        """Pop and process frames until halted or the camera ends; the error message, if any."""
        core = self._core
        last_frame_at = time.perf_counter()
        stall_s = self._stall_timeout_s or max(_MIN_STALL_S, 20 * self._period_s)
        first_grace_s = 2.0  # cameras may take a moment to deliver their first frame
        while True:
            if run.halt.is_set() or run is not self._run_state:
                return self._drain(run)
            waiting = core.getRemainingImageCount()
            self._backlog = waiting
            if waiting > 0:
                if self._process_next():
                    return None  # end of a replayed stream
                last_frame_at = time.perf_counter()
                first_grace_s = 0.0
                continue
            if not core.isSequenceRunning():
                if run.stop_requested.is_set():
                    return self._drain(run)
                if core.getRemainingImageCount() > 0:
                    continue
                return self._why_camera_stopped()
            if time.perf_counter() - last_frame_at > stall_s + first_grace_s:
                return (
                    f"camera {self._camera_label!r} delivered no frame for "
                    f"{stall_s + first_grace_s:.1f} s (after {self._acquired} frames)"
                )
            time.sleep(0.0005)

    def _drain(self, run: _Run) -> str | None:
        """After a stop: process what is still in the buffer, until the deadline."""
        core = self._core
        while (
            run is self._run_state
            and core.getRemainingImageCount() > 0
            and time.perf_counter() < run.drain_deadline
        ):
            if self._process_next():
                break
        return None  # a stop is never an error

    def _process_next(self) -> bool:
        """Track (and record) the next frame; True on the last frame of a replayed stream."""
        img, md_obj = self._core.popNextImageAndMD(fix=False)
        md: dict[str, str] = dict(md_obj)  # (Metadata.get raises on a missing key)
        received = md.get("TimeReceivedByCore")
        frame = camera_frame(img, self._n_components(img))
        number = _int(md.get("ImageNumber"), self._next_number)
        if number > self._next_number:
            self._dropped += number - self._next_number
        self._next_number = number + 1
        self._acquired = self._next_number
        t_cam = _float(md.get(KEY_TIME_S))
        if t_cam is None:
            t_cam = _float(md.get("ElapsedTime-ms"), 0.0) / 1000.0  # type: ignore[operator]
        rec_error: str | None = None
        rec_done: Recording | None = None
        rec_summary: Summary | None = None
        with self._session:
            if self._t0 is None:
                self._t0 = t_cam
            t = t_cam - self._t0
            result = self._tracker.push(frame, t)
            if received:
                self._latency.add(_age_ms(received))
            self._tracked += 1
            self._latest = (frame, result)
            rec = self._recording
            if rec is not None:
                if rec.failed is None:
                    # OSError: the writer thread has just failed, and rec.failed says why
                    with contextlib.suppress(OSError):
                        rec.write(frame, t, md, result)
                if rec.failed is not None:  # disk full, path gone: stop recording, keep tracking
                    rec_error = f"recording stopped: {rec.failed}"
                    self._recording = None
                    self._last_recording = rec
                    rec_done = rec
                    rec_summary = self._tracker.summary()
        now = time.perf_counter()
        self._recent.append(now)
        frame_done(md.get(KEY_FLOW))
        self.events.frame_tracked.emit(result)
        if result.blink_ended is not None:
            self.events.blink.emit(result.blink_ended)
        if result.interval_ended is not None:
            self._emit_interval(result.interval_ended)
        if rec_done is not None and rec_error is not None:
            rec_done.close(rec_summary, error=rec_error)
            self.events.error.emit(rec_error)
            self._emit_recording_stopped(rec_done.path, rec_error)
        return md.get(KEY_END) == "1"

    def _n_components(self, img: np.ndarray) -> int:
        if img.ndim == 3:
            return int(img.shape[2])
        if self._components is None:
            self._components = int(self._core.getNumberOfComponents())
        return self._components

    def _why_camera_stopped(self) -> str:
        label = self._camera_label
        exc = self._camera_error
        if exc is not None:
            cause = exc.__cause__ or exc
            return f"camera {label!r} failed after {self._acquired} frames: {_one_line(cause)}"
        try:
            overflow = self._core.isBufferOverflowed()
        except Exception:
            overflow = False
        if overflow:
            return f"camera {label!r} stopped: circular buffer overflow (the loop fell behind)"
        return f"camera {label!r} stopped delivering frames after {self._acquired} frames"

    # -- endings ----------------------------------------------------------------------------
    def _stop_camera(self) -> None:
        # a camera that fails to stop must not keep the loop alive
        with contextlib.suppress(Exception):
            if self._core.isSequenceRunning():
                self._core.stopSequenceAcquisition()

    def _finalize(self, error: str | None, *, timeout_s: float) -> None:
        """Once per run: close the session and any recording, then report the end."""
        with self._finalize_lock:
            if self._finished.is_set():
                return
            self._ended_at = time.perf_counter()
            left = 0
            with contextlib.suppress(Exception):
                left = self._core.getRemainingImageCount()
            self._dropped += left
            self._acquired += left
            rec_path, rec_error = None, None
            if self._session.acquire(timeout=timeout_s):
                try:
                    rec = self._recording
                    self._recording = None
                    if rec is not None:
                        self._last_recording = rec
                    summary = self._close_session()
                    if rec is not None:
                        rec_error = rec.close(summary, error=error)
                        rec_path = rec.path
                finally:
                    self._session.release()
            else:  # the capture thread is stuck inside a frame: close without the analysis
                rec = self._recording
                self._recording = None
                if rec is not None:
                    rec_error = rec.close(None, error=error or "capture thread did not stop")
                    rec_path = rec.path
            _thread_errors.unwatch(id(self))
            self._state = LoopState.FAILED if error else LoopState.IDLE
            self._finished.set()
        if error:
            self.events.error.emit(error)
        if rec_path is not None:
            self._emit_recording_stopped(rec_path, rec_error or error)
        self.events.stopped.emit(self.stats)

    def _close_session(self) -> Summary:
        """End of the stream: the tracker's final summary (closing the open interval)."""
        try:
            summary = self._tracker.finish()
        except Exception:
            return Summary((), ())
        for interval in summary.intervals[self._intervals_emitted :]:
            self._emit_interval(interval)
        return summary

    def _summary_for_recording(self) -> Summary:
        """Return the final summary of the recorded frames, without disturbing live tracking.

        The tracker is finished on a copy; if it cannot be copied, it is finished itself and
        live tracking goes on in a new session.
        """
        try:
            return copy.deepcopy(self._tracker).finish()
        except Exception:
            summary = self._close_session()
            self._new_session()
            return summary

    # -- helpers ----------------------------------------------------------------------------
    def _fit_sequence_buffer(self) -> None:
        """Size a Python camera's ring buffer to a whole number of frames.

        Works around pymmcore-plus 0.18's ``SequenceBuffer``: when a frame does not fit in the
        space left at the end of the ring, it evicts every queued frame instead of wrapping
        (``_ensure_space``), so a loop that keeps up perfectly still loses the frames queued at
        each wrap. With a ring of exactly ``n`` frames a frame never straddles the end, and
        frames are only lost to a real overflow. (UniMMCore takes a float size for this.)
        """
        core = self._core
        frame_bytes = int(core.getImageBufferSize())
        if frame_bytes <= 0:
            return
        key = (str(core.getCameraDevice()), frame_bytes)
        if self._fitted_buffer == key:
            return
        n = max(16, int(core.getCircularBufferMemoryFootprint()) * 2**20 // frame_bytes)
        core.setCircularBufferMemoryFootprint(n * frame_bytes / 2**20)  # type: ignore[arg-type]
        self._fitted_buffer = key

    def _new_session(self) -> None:
        """Next frame starts a fresh tracker run (caller holds the session lock).

        A new Tracker rather than ``reset()``: a session must not inherit anything.
        """
        self._tracker = Tracker(self._cfg)
        self._t0 = None
        self._intervals_emitted = 0
        self._latest = None

    def _reset_counters(self) -> None:
        self._acquired = self._tracked = self._dropped = self._next_number = 0
        self._backlog = 0
        self._last_recording = None
        self._components = None
        self._recent = deque(maxlen=64)
        self._latency = _LatencyHistogram()
        self._started_at = self._ended_at = None
        self._camera_label = ""
        self._period_s = 0.0

    def _emit_interval(self, interval: Interval) -> None:
        self._intervals_emitted = max(self._intervals_emitted, interval.index + 1)
        self.events.interval_fit.emit(interval)

    def _emit_recording_stopped(self, path: Path, error: str | None) -> None:
        self.events.recording_stopped.emit(path, error)

    def _is_acquisition_thread(self, thread: threading.Thread) -> bool:
        return (
            type(thread).__module__.startswith("pymmcore_plus")
            and getattr(thread, "label", None) == self._camera_label
        )

    def _on_camera_error(self, exc: BaseException) -> None:
        self._camera_error = exc

    def _session_attrs(self) -> dict[str, Any]:
        """Describe the session for a recording: camera, devices, tracker settings."""
        core = self._core
        label = str(core.getCameraDevice())
        period = _frame_period_s(core)
        props: dict[str, str] = {}
        try:
            for name in core.getDevicePropertyNames(label):
                props[name] = str(core.getProperty(label, name))
        except Exception:
            pass
        return {
            "camera": label,
            "camera_library": _safe(lambda: str(core.getDeviceLibrary(label))),
            "camera_name": _safe(lambda: str(core.getDeviceName(label))),
            "camera_properties": props,
            "frame_period_s": period,
            "fps": 1.0 / period if period > 0 else None,
            "tracker_config": self._cfg.to_json(),
        }


def _frame_period_s(core: UniMMCore) -> float:
    """Return the camera's nominal frame period (exposure), for stall detection and metadata."""
    try:
        return max(float(core.getExposure()), 0.0) / 1000.0
    except Exception:
        return 0.0


def _age_ms(received: str) -> float:
    """Milliseconds since the core received a frame (its ``TimeReceivedByCore``)."""
    try:
        return (datetime.now() - datetime.fromisoformat(received)).total_seconds() * 1000.0
    except ValueError:
        return float("nan")


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _float(value: Any, default: float | None = None) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _safe(get: Any) -> Any:
    try:
        return get()
    except Exception:
        return None


def _one_line(e: BaseException) -> str:
    text = " ".join(part.strip() for part in str(e).splitlines() if part.strip())
    return text or type(e).__name__
