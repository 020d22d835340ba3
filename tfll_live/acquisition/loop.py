"""The capture loop: every camera frame, in order, into the recording first, then the tracker.

The camera runs continuous sequence acquisition into the core's circular buffer; a capture
thread pops every frame in order and hands it to the recording (the critical consumer: it
never drops a frame, and its writer thread compresses and writes) and then to the tracker's
hand-over, which never blocks: the tracker runs on its own thread and, when it falls behind,
skips to the newest frames (``handoff``, ``tracking_worker``). The display takes the newest
result and may skip more. A frame lost to a circular-buffer overflow shows as a gap in the
camera's image numbers: it is counted, reported at once (``frames_lost``) and written into
the recording's counts, whose ``complete`` is then false.

The loop works on any pymmcore-plus core (``CMMCorePlus`` with C++ adapters, or a
``UniMMCore`` with the project's Python cameras), including the one the Micro-Manager
ecosystem shares (``CMMCorePlus.instance()``).

A *session* is what one tracker run sees: it starts with ``start()`` and again with each
``start_recording()`` (so a recording's analysis stands alone and a replay of the recording
gives the same numbers) and with ``set_tracker_config()``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from tfll_live.tracking import FrameResult, TrackerConfig
from tfll_live.visit import Visit

from . import _thread_errors
from ._flow import KEY_FLOW
from .buffer import BUFFER_S, size_circular_buffer
from .core import is_python_device, make_core
from .events import CaptureEvents
from .handoff import Offered, TrackQueue
from .limits import RecordingLimits
from .pixels import camera_frame
from .recorder import Recording
from .synthetic_camera import KEY_END, KEY_READOUT, KEY_TIME_S
from .tracking_worker import (
    QUIT,
    EndRecording,
    EndSession,
    Session,
    TrackingWorker,
    finish_recording,
)

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus


class LoopState(str, Enum):
    """Where the loop is in its life."""

    IDLE = "idle"
    RUNNING = "running"
    STOPPING = "stopping"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class CaptureStats:
    """Counters of a capture run (a snapshot; the loop keeps counting)."""

    acquired: int = 0  # frames the camera delivered since start (by its image numbers)
    recorded: int = 0  # frames written to the current (or last) recording
    lost: int = 0  # frames lost in the camera's buffer: gaps in its image numbers, left at stop
    tracked: int = 0  # frames the tracker processed
    untracked: int = 0  # frames the tracker skipped to keep up (or could not take)
    fps: float = 0.0  # recent rate of tracked frames
    latency_ms_median: float = float("nan")  # camera readout of the frame -> its FrameResult
    latency_ms_p95: float = float("nan")
    state: LoopState = LoopState.IDLE
    elapsed_s: float = 0.0  # since start
    current_tau_s: float | None = None  # tau of the live spread fit, if any
    eye_state: str = ""  # "open" / "blink" / "no_eye" in the newest tracked frame
    backlog: int = 0  # frames waiting for the tracker (camera buffer and hand-over)
    requested_fps: float = 0.0  # the rate asked of the camera (1000 / exposure; 0: unknown)
    delivered_fps: float = 0.0  # the rate it delivers, by its own frame times (0: too soon)

    @property
    def camera_behind(self) -> bool:
        """Whether the camera delivers clearly fewer frames than requested (after a second)."""
        return bool(
            self.delivered_fps > 0
            and self.requested_fps > 0
            and self.delivered_fps < RATE_SHORTFALL * self.requested_fps
        )

    @property
    def tracked_share(self) -> float:
        """Share of the delivered frames the tracker processed (NaN before the first)."""
        return self.tracked / self.acquired if self.acquired else float("nan")


class _Run:
    """The stop signals of one run of the capture thread."""

    def __init__(self) -> None:
        self.halt = threading.Event()  # the camera has stopped: drain the buffer and end
        self.stop_requested = threading.Event()  # stop() is under way: not a camera fault
        self.drain_deadline = float("inf")


_MIN_STALL_S = 3.0  # a camera silent this long (or 20 frame periods) has stopped delivering
# the tracker skips to newer frames once it is this far behind; a session's first frame alone
# costs ~0.2 s (the pupil search and the first thickness fit), which this absorbs
MAX_TRACK_LAG_S = 0.25
# a camera delivering under this share of the requested rate is said to fall short
RATE_SHORTFALL = 0.9
_RATE_AFTER_S = 1.0  # camera time before the delivered rate is judged (startup jitter)


class CaptureLoop:
    """Continuous acquisition from a core's current camera into a recorder and a Tracker.

    ``core=None`` builds the default core (the synthetic interferometer camera, ``make_core()``).
    ``stall_timeout_s``: how long the camera may deliver nothing before the loop gives up
    (default: 20 frame periods, at least 3 s). ``max_track_lag_s``: how far the tracker may
    fall behind the camera before it skips to newer frames. ``buffer_s``: seconds of frames
    the core's circular buffer is made to hold at least.
    """

    def __init__(
        self,
        core: CMMCorePlus | None = None,
        tracker_config: TrackerConfig | None = None,
        *,
        stall_timeout_s: float | None = None,
        max_track_lag_s: float = MAX_TRACK_LAG_S,
        buffer_s: float = BUFFER_S,
    ) -> None:
        self.events = CaptureEvents()
        self._core = core if core is not None else make_core()
        self._cfg = tracker_config or TrackerConfig()
        self._stall_timeout_s = stall_timeout_s
        self._max_track_lag_s = max_track_lag_s
        self._buffer_s = buffer_s
        self._control = threading.RLock()  # start/stop/switch, one at a time
        self._lock = threading.Lock()  # the session and its recording, per frame
        self._session = Session(self._cfg)
        self._queue = TrackQueue(max_track_lag_s)
        self._worker: TrackingWorker | None = None
        self._thread: threading.Thread | None = None
        self._run_state = _Run()  # this run's stop signals (a stuck old thread keeps its own)
        self._finished = threading.Event()
        self._finished.set()
        self._state = LoopState.IDLE
        self._camera_error: BaseException | None = None
        self._last_recording: Recording | None = None
        self._finalize_lock = threading.Lock()
        # per run (reset by start)
        self._acquired = self._lost = self._next_number = 0
        self._components: int | None = None
        self._started_at: float | None = None
        self._ended_at: float | None = None
        self._camera_label = ""
        self._period_s = 0.0
        self._first_cam: tuple[int, float] | None = None  # (image number, camera time s)
        self._last_cam: tuple[int, float] | None = None

    # -- public state -----------------------------------------------------------------------
    @property
    def core(self) -> CMMCorePlus:
        """The core this loop acquires from."""
        return self._core

    @property
    def is_running(self) -> bool:
        """Whether acquisition and the capture thread are running."""
        return self._state is LoopState.RUNNING

    @property
    def is_recording(self) -> bool:
        """Whether frames currently go to a recording."""
        return self._session.recording is not None

    def recording_minutes_left(self) -> float | None:
        """Minutes the disk still holds of the recording in progress at its rate so far.

        None when not recording or not yet known; the recording itself stops short of full.
        """
        rec = self._session.recording
        return None if rec is None else rec.minutes_left()

    @property
    def recording_path(self) -> Path | None:
        """Path of the recording in progress, if any."""
        rec = self._session.recording
        return None if rec is None else rec.path

    @property
    def tracker_config(self) -> TrackerConfig:
        """The tracker configuration in use."""
        return self._cfg

    @property
    def backlog(self) -> int:
        """Frames waiting for the tracker: in the camera's buffer and in the hand-over."""
        waiting = 0
        if self.is_running:
            with contextlib.suppress(Exception):
                waiting = int(self._core.getRemainingImageCount())
        return waiting + len(self._queue)

    @property
    def stats(self) -> CaptureStats:
        """Counters so far (a consistent-enough snapshot, safe from any thread)."""
        worker = self._worker
        latest = None if worker is None else worker.latest
        fit = latest[1].fit if latest is not None else None
        tau = fit.tau_s if fit is not None and fit.b > 0 else None
        started = self._started_at
        rec = self._session.recording or self._last_recording
        return CaptureStats(
            acquired=self._acquired,
            recorded=0 if rec is None else rec.n_written,
            lost=self._lost,
            tracked=0 if worker is None else worker.tracked,
            untracked=0 if worker is None else worker.skipped,
            fps=0.0 if worker is None else _rate(worker.recent),
            latency_ms_median=float("nan") if worker is None else worker.latency.percentile(50),
            latency_ms_p95=float("nan") if worker is None else worker.latency.percentile(95),
            state=self._state,
            elapsed_s=0.0 if started is None else (self._ended_at or time.perf_counter()) - started,
            current_tau_s=tau,
            eye_state="" if latest is None else latest[1].state.value,
            backlog=self.backlog,
            requested_fps=1.0 / self._period_s if self._period_s > 0 else 0.0,
            delivered_fps=self._delivered_fps(),
        )

    def _delivered_fps(self) -> float:
        """Frames per second by the camera's own frame times (0 in the first second)."""
        first, last = self._first_cam, self._last_cam
        if first is None or last is None:
            return 0.0
        span = last[1] - first[1]
        return (last[0] - first[0]) / span if span >= _RATE_AFTER_S else 0.0

    def latest(self) -> tuple[np.ndarray, FrameResult] | None:
        """Return the newest tracked frame and its result, for display (which may skip frames)."""
        worker = self._worker
        return None if worker is None else worker.latest

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Start continuous sequence acquisition, the capture and tracking threads (a new session).

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
            try:
                size_circular_buffer(core, self._buffer_s)
            except Exception as e:
                raise RuntimeError(f"camera {label!r}: buffer: {_one_line(e)}") from e
            self._reset_counters()
            with self._lock:  # an armed recording stays with the new session
                self._session = Session(self._cfg, recording=self._session.recording)
            self._queue = TrackQueue(self._max_track_lag_s)
            self._worker = TrackingWorker(self._queue, self.events)
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
            self._worker.start()
            self._started_at = time.perf_counter()
            self._state = LoopState.RUNNING
            self._thread = threading.Thread(
                target=self._run, args=(run,), name="tfll-capture", daemon=True
            )
            self._thread.start()
        self.events.started.emit()

    def stop(self, timeout_s: float = 5.0) -> CaptureStats:
        """Stop acquisition, finalise any recording, and return the final counters.

        Frames still in the circular buffer go to the recording (for up to ``timeout_s``);
        the tracker finishes what it was handed. Never hangs: what does not finish within
        ``timeout_s`` is abandoned (and counted as lost).
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
        self,
        path: str | Path,
        fmt: Literal["ome-tiff", "ome-zarr"] = "ome-zarr",
        visit: Visit | None = None,
        pixel_size_um: float | None = None,
        limits: RecordingLimits | None = None,
    ) -> Path:
        """Record from the next frame on; returns the path actually used.

        Called before ``start()``, the recording begins with the session's first frame (what
        a replay or a scripted session wants). Never overwrites: the format's suffix is added
        if missing, and when that path (or its analysis folder) exists the recording goes to
        ``<name>-1``, ``-2``, ... (the returned path says which). Starting a recording starts
        a new tracking session (tracker reset), so the recording's analysis stands alone and a
        replay of it gives the same numbers. ``visit``, when anything was entered, goes into
        the recording's metadata and its results.json (its start time: now, unless set).
        ``pixel_size_um`` replaces the core's pixel size (a camera without a pixel-size
        configuration, or one the user measured). ``limits``: a size on disk or a length
        after which the recording stops by itself (``recording_limit_reached``, then
        ``recording_stopped``) while live tracking goes on.
        Raises ``RuntimeError`` when already recording, ``OSError``/``ValueError`` (one line)
        when the path cannot be written.
        """
        with self._lock:
            if self._session.recording is not None:
                raise RuntimeError(f"already recording to {self._session.recording.path}")
            attrs = self._session_attrs()
            if pixel_size_um is not None:
                attrs["pixel_size_um"] = pixel_size_um
            if visit is not None and visit.entered:
                attrs["visit"] = visit.started().to_json()
            rec = Recording.create(path, fmt, attrs=attrs, limits=limits)
            self._session = Session(self._cfg, recording=rec)
            self._last_recording = None
        self.events.recording_started.emit(rec.path)
        return rec.path

    def stop_recording(self, timeout_s: float = 60.0) -> Path | None:
        """Finalise the recording (image file, results.json, frames.csv); its path or None.

        Live tracking goes on undisturbed; the recording's analysis ends with its last frame.
        """
        with self._lock:
            session = self._session
            rec = session.recording
            if rec is None:
                return None
            session.recording = None
            self._last_recording = rec
            marker = EndRecording(rec, session)
            worker = self._worker
            if worker is not None and worker.is_alive():
                self._queue.put_marker(marker)  # after the recording's last frame
        if worker is None or not worker.is_alive():
            finish_recording(marker, self.events)
        elif not marker.done.wait(timeout_s):
            error = rec.close(None, error="tracking did not finish the recording's analysis")
            self.events.recording_stopped.emit(rec.path, error)
        return rec.path

    def set_tracker_config(self, cfg: TrackerConfig) -> None:
        """Use ``cfg`` from the next frame on (a new tracking session).

        Refused (``RuntimeError``) while recording: a recording's analysis uses one
        configuration.
        """
        with self._lock:
            if self._session.recording is not None:
                raise RuntimeError("stop recording before changing the tracker configuration")
            self._cfg = cfg
            self._session = Session(cfg)

    # -- the capture thread -----------------------------------------------------------------
    def _run(self, run: _Run) -> None:
        error: str | None = None
        try:
            error = self._capture(run)
        except Exception as e:  # a bug or an unexpected core failure: report, never hang
            error = f"capture failed: {_one_line(e)}"
        if run is not self._run_state:
            return  # a thread that was stuck past its stop: a newer run owns the camera now
        self._stop_camera()
        self._finalize(error, timeout_s=5.0)

    def _capture(self, run: _Run) -> str | None:
        """Pop and hand over frames until halted or the camera ends; the error message, if any."""
        core = self._core
        last_frame_at = time.perf_counter()
        stall_s = self._stall_timeout_s or max(_MIN_STALL_S, 20 * self._period_s)
        first_grace_s = 2.0  # cameras may take a moment to deliver their first frame
        while True:
            if run.halt.is_set() or run is not self._run_state:
                return self._drain(run)
            if core.getRemainingImageCount() > 0:
                if self._take_next():
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
        """After a stop: hand over what is still in the buffer, until the deadline."""
        core = self._core
        while (
            run is self._run_state
            and core.getRemainingImageCount() > 0
            and time.perf_counter() < run.drain_deadline
        ):
            if self._take_next():
                break
        return None  # a stop is never an error

    def _take_next(self) -> bool:
        """Record the next frame and offer it to the tracker; True on a replay's last frame."""
        img, md_obj = self._core.popNextImageAndMD(fix=False)
        md: dict[str, str] = dict(md_obj)  # (Metadata.get raises on a missing key)
        frame = camera_frame(img, self._n_components(img))
        number = _int(md.get("ImageNumber"), self._next_number)
        gap = max(0, number - self._next_number)
        self._next_number = max(number + 1, self._next_number + 1)
        self._acquired = self._next_number
        t_cam = _float(md.get(KEY_TIME_S))
        if t_cam is None:
            t_cam = _float(md.get("ElapsedTime-ms"), 0.0) / 1000.0  # type: ignore[operator]
        if self._first_cam is None:
            self._first_cam = (number, t_cam)
        self._last_cam = (number, t_cam)
        failed: Recording | None = None
        limited: Recording | None = None
        with self._lock:
            session = self._session
            rec = session.recording
            if gap:
                self._lost += gap
                if rec is not None:
                    rec.note_lost(gap)
            if session.t0 is None:
                session.t0 = t_cam
            t = t_cam - session.t0
            index = session.next_index
            session.next_index += 1
            if rec is not None and (reason := rec.limit_reason(t, frame.nbytes)) is not None:
                # a limit: the recording ends before this frame, which it never sees
                rec.limit_reached = reason
                limited, rec = rec, None
                session.recording = None
                self._last_recording = limited
            if rec is not None:
                with contextlib.suppress(OSError):  # the writer failed: rec.failed says why
                    rec.write(frame, t, md)
                if rec.failed is not None:  # disk full, path gone: stop recording, keep tracking
                    failed, rec = rec, None
                    session.recording = None
                    self._last_recording = failed
        if gap:
            self.events.frames_lost.emit(gap, self._lost)
        if limited is not None:  # before this frame: the analysis ends with the last recorded
            self._queue.put_marker(EndRecording(limited, session))
            self.events.recording_limit_reached.emit(limited.path, limited.limit_reached)
        self._queue.put(
            Offered(
                session,
                index,
                t,
                frame,
                _readout_time(md),
                recording=rec,
                flow=md.get(KEY_FLOW),
                arrived=time.perf_counter(),
            )
        )
        if failed is not None:
            message = f"recording stopped: {failed.failed}"
            self.events.error.emit(message)
            self._queue.put_marker(EndRecording(failed, session, error=message))
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
        """Once per run: end the session and any recording, stop the tracker, report the end."""
        with self._finalize_lock:
            if self._finished.is_set():
                return
            self._ended_at = time.perf_counter()
            left = 0
            with contextlib.suppress(Exception):
                left = int(self._core.getRemainingImageCount())
            with self._lock:
                session = self._session
                rec = session.recording
                session.recording = None
                if rec is not None:
                    rec.note_lost(left)
                    self._last_recording = rec
            self._lost += left
            self._acquired += left
            if rec is not None:
                self._queue.put_marker(EndRecording(rec, session, error=error))
            self._queue.put_marker(EndSession(session))
            self._queue.put_marker(QUIT)
            worker = self._worker
            if worker is not None and not worker.join(timeout_s) and rec is not None:
                # the tracker is stuck inside a frame: close the recording without its analysis
                rec_error = rec.close(None, error=error or "tracking did not finish")
                self.events.recording_stopped.emit(rec.path, rec_error or error)
            _thread_errors.unwatch(id(self))
            self._state = LoopState.FAILED if error else LoopState.IDLE
            self._finished.set()
        if error:
            self.events.error.emit(error)
        self.events.stopped.emit(self.stats)

    # -- helpers ----------------------------------------------------------------------------
    def _reset_counters(self) -> None:
        self._acquired = self._lost = self._next_number = 0
        self._first_cam = self._last_cam = None
        self._last_recording = None
        self._components = None
        self._started_at = self._ended_at = None
        self._camera_label = ""
        self._period_s = 0.0

    def _is_acquisition_thread(self, thread: threading.Thread) -> bool:
        return (
            type(thread).__module__.startswith("pymmcore_plus")
            and getattr(thread, "label", None) == self._camera_label
        )

    def _on_camera_error(self, exc: BaseException) -> None:
        self._camera_error = exc

    def _session_attrs(self) -> dict[str, Any]:
        """Describe the session for a recording: camera, pixel size, tracker settings."""
        core = self._core
        label = str(core.getCameraDevice())
        period = _frame_period_s(core)
        props: dict[str, str] = {}
        try:
            for name in core.getDevicePropertyNames(label):
                props[name] = str(core.getProperty(label, name))
        except Exception:
            pass
        pixel_size = _safe(lambda: float(core.getPixelSizeUm()))
        return {
            "camera": label,
            "camera_library": _safe(lambda: str(core.getDeviceLibrary(label))),
            "camera_name": _safe(lambda: str(core.getDeviceName(label))),
            "camera_python_device": is_python_device(core, label),
            "camera_properties": props,
            "exposure_ms": _safe(lambda: float(core.getExposure())),
            "pixel_size_um": pixel_size if pixel_size else None,  # 0: no pixel-size config
            "frame_period_s": period,
            "fps": 1.0 / period if period > 0 else None,
            "tracker_config": self._cfg.to_json(),
        }


def _rate(times: Any) -> float:
    """Events per second over a deque of perf_counter times."""
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return (len(times) - 1) / span if span > 0 else 0.0


def _readout_time(md: dict[str, str]) -> float | None:
    """When the camera read the frame out (Unix s), for the result latency.

    The project's cameras stamp it (``tfll.readout_time``), so a frame that reaches the core
    late counts as late; other cameras give the time the core received it.
    """
    readout = _float(md.get(KEY_READOUT))
    if readout is not None:
        return readout
    try:
        return datetime.fromisoformat(str(md.get("TimeReceivedByCore"))).timestamp()
    except ValueError:
        return None


def _frame_period_s(core: Any) -> float:
    """Return the camera's nominal frame period (exposure), for stall detection and metadata."""
    try:
        return max(float(core.getExposure()), 0.0) / 1000.0
    except Exception:
        return 0.0


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
