"""The "TFLL Live" dock widget: camera, live tracking, recording and status.

The widget works on the Micro-Manager core the ecosystem shares (``CMMCorePlus.instance()``,
as napari-micromanager and pymmcore-widgets do; ``mmcore`` to give another): a camera loaded
there is used as it is, never loaded twice, and the project's synthetic and replay cameras
join it as Python devices while they are used. The capture loop (``tfll_live.acquisition``)
records and tracks on its own threads. This widget only starts and stops it, forwards the
user's settings, and shows what it produces: a QTimer at display rate (<= 30 Hz) takes the
newest frame and result (``loop.latest()``) for the layers and drains every FrameResult from a
``LoopFeed`` for the trajectories and the spread plot. Nothing here runs on the capture
thread, and nothing here waits for it.
"""

from __future__ import annotations

import contextlib
import time
import webbrowser
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

# QOpenGLWidget: QtWidgets in Qt 5, QtOpenGLWidgets in Qt 6; qtpy (>= 2.0, the first with Qt 6)
# offers it from QtWidgets in both, while qtpy.QtOpenGLWidgets raises on Qt 5
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QMainWindow,
    QMessageBox,
    QOpenGLWidget,
    QWidget,
)

from tfll_live.acquisition.recorder import (
    analysis_dir_for,
    free_path,
    remove_recording,
    with_format_suffix,
)
from tfll_live.acquisition.shared_core import (
    REPLAY_LABEL,
    SYNTHETIC_LABEL,
    PythonCamera,
    micromanager_camera,
    shared_core,
)
from tfll_live.acquisition.status import counts_text, eye_word, lost_text, rate_text
from tfll_live.analyze import recorded_pixel_size
from tfll_live.report import write_report
from tfll_live.synth import SynthConfig
from tfll_live.tracking import FrameResult, TrackerConfig
from tfll_live.visit import default_study_folder, visit_folder

from .feed import LoopFeed
from .layer_data import TrackHistory
from .live_controls import MICRO_MANAGER, REPLAY, SYNTHETIC, LiveControls
from .live_layers import LiveLayers
from .spread_panel import SpreadPanel

if TYPE_CHECKING:
    import napari
    from pymmcore_plus import CMMCorePlus

    from tfll_live.acquisition import CaptureLoop

DISPLAY_HZ = 30.0
# the trajectories are the costliest layer to rebuild (and the paint after it doubles, with
# software OpenGL): at most this often, and on a display tick of their own (not on top of a
# frame's update), so no single tick does all the work; the points move at display rate
TRACKS_PERIOD_S = 0.5
# the tracker has priority: the display pauses while more frames than this wait for it
BACKLOG_FRAMES, BACKLOG_S = 2, 0.05
MAX_DISPLAY_PAUSE_S = 0.5
# a dock's repaint recomposes the whole window, canvas included (tens of ms with software
# OpenGL): the plot dock redraws at most this often, the status line half as often
PANEL_PERIOD_S = 0.25
STATUS_PERIOD_S = 0.5
# vertices per trajectory: with software OpenGL every vertex costs raster time in each paint
# (140 features x 120 vertices: about 8 ms a paint); 60, spread evenly over the interval,
# still draw the spread's curve
TRACK_VERTICES = 60
LIVE_DOCK_SHARE = 0.6  # of the dock column's height, the rest for the spread dock


def _stop_quietly(holder: list[Any], connections: list[tuple[Any, Any]]) -> None:
    """Teardown without the (half-destroyed) widget: stop, unplug, disconnect from the core."""
    loop, plugged = holder
    with contextlib.suppress(Exception):  # teardown must not raise
        if loop is not None and loop.is_running:
            loop.stop()
    if plugged is not None:
        plugged.remove()
    for signal, slot in connections:
        with contextlib.suppress(Exception):
            signal.disconnect(slot)


def _alive(widget: QWidget) -> bool:
    """Whether the C++ side of a Qt widget still exists."""
    try:
        widget.objectName()
    except RuntimeError:
        return False
    return True


def spread_text(kinetics: Any) -> str:
    """The status line's word on the last interval's spread (``kinetics.SpreadKinetics``)."""
    if kinetics.spread_time_s is None:
        return f"last spread > {kinetics.duration_s:.1f} s"  # still spreading at the blink
    return f"last spread {kinetics.spread_time_s:.2f} s"


def _frame_shape(core: Any) -> tuple[tuple[int, ...], Any]:
    """Shape and dtype of the frames ``core``'s camera will deliver, as the tracker gets them."""
    import numpy as np

    h, w = int(core.getImageHeight()), int(core.getImageWidth())
    if int(core.getNumberOfComponents()) > 1:
        return (h, w, 3), np.uint8
    return (h, w), np.uint16 if int(core.getBytesPerPixel()) > 1 else np.uint8


def one_line(exc: BaseException) -> str:
    """Make a one-line message of an exception (first line, without a traceback)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class LiveWidget(LiveControls):
    """Start/stop live tracking, record, and watch it in napari.

    ``mmcore``: the Micro-Manager core to work on (default: the one the ecosystem shares).
    """

    def __init__(
        self,
        napari_viewer: napari.viewer.Viewer,
        parent: QWidget | None = None,
        mmcore: CMMCorePlus | None = None,
    ) -> None:
        self.mmcore = mmcore if mmcore is not None else shared_core()
        super().__init__(self.mmcore, parent)
        self.viewer = napari_viewer
        self.loop: CaptureLoop | None = None
        self.synth_config = SynthConfig()  # the embedded camera's stream (tests use small ones)
        self.feed = LoopFeed()
        self.layers = LiveLayers(napari_viewer)
        self.history = TrackHistory(max_frames=TRACK_VERTICES)
        self.panel = SpreadPanel()
        self.recording_path: Path | None = None
        self.camera: PythonCamera | None = None  # the project's camera while it is plugged in
        self.source_pixel_size_um: float | None = None  # the camera's or the replayed file's
        self.last_shown: FrameResult | None = None
        self.shown_at: list[tuple[int, float, float]] = []  # (frame, arrival, shown), benchmark
        self.tick_times: list[float] = []  # perf_counter of each display tick, benchmark
        self.keep_timing = False
        self._arrivals: dict[int, float] = {}
        self._tracks_at = 0.0
        self._status_at = 0.0
        self._next_show_at = 0.0
        self._shown_at = 0.0  # last display update
        self._panel_at = 0.0  # last plot dock redraw
        self._last_spread: str | None = None  # the last closed interval's spread time
        self._canvas: QWidget | None = None
        self._connect()
        self.timer = QTimer(self)
        self.timer.setInterval(int(1000 / DISPLAY_HZ))
        self.timer.timeout.connect(self._tick)
        QTimer.singleShot(0, self._dock_panel)  # after napari has docked this widget: below it
        self._show_mm_camera()
        self._update_enabled()
        core = self.mmcore.events
        self._core_connections = [
            (core.systemConfigurationLoaded, self._show_mm_camera),
            (core.propertyChanged, self._on_core_property),
        ]
        for signal, slot in self._core_connections:
            signal.connect(slot)
        # dock widgets get no closeEvent when the viewer closes, but they are destroyed: stop the
        # camera then (the slot must not reference self, which is half gone by that time)
        holder = self._loop_holder = [None, None]
        connections = self._core_connections
        self.destroyed.connect(lambda *_: _stop_quietly(holder, connections))

    def _connect(self) -> None:
        self.camera_combo.currentIndexChanged.connect(self._update_enabled)
        self.browse_button.clicked.connect(self._browse_source)
        self.live_button.clicked.connect(self._live_clicked)
        self.record_button.clicked.connect(self._record_clicked)
        self.report_button.clicked.connect(self._report_clicked)
        self.enhancement_combo.currentIndexChanged.connect(self._tracker_changed)
        self.flow_combo.currentIndexChanged.connect(self._tracker_changed)
        self.stabilized_check.toggled.connect(self._view_changed)
        self.calibration_edit.editingFinished.connect(self._tracker_changed)
        # after FileEdit's own slot, which has set the chosen file by then
        self.tracker_form.calibration.choose_btn.changed.connect(self._tracker_changed)

    def _dock_panel(self) -> None:
        window = getattr(self.viewer, "window", None)
        if window is None or not hasattr(window, "add_dock_widget"):
            return
        panel_dock = window.add_dock_widget(self.panel, name="TFLL Spread", area="right")
        mine = self.parentWidget()
        while mine is not None and not isinstance(mine, QDockWidget):
            mine = mine.parentWidget()
        main = self.window()
        if mine is not None and isinstance(main, QMainWindow):
            # the controls get the larger share of the column (the plot needs less height)
            h = max(main.height(), 400)
            main.resizeDocks([mine, panel_dock], [int(LIVE_DOCK_SHARE * h),
                                                  int((1 - LIVE_DOCK_SHARE) * h)],
                             Qt.Orientation.Vertical)

    # -- state -----------------------------------------------------------------------------------
    @property
    def is_live(self) -> bool:
        """Whether a capture loop is running."""
        return self.loop is not None and self.loop.is_running

    @property
    def is_recording(self) -> bool:
        """Whether the running loop records."""
        return self.loop is not None and self.loop.is_recording

    def _update_enabled(self) -> None:
        """Enable only the controls that make sense now."""
        self.set_state(live=self.is_live, recording=self.is_recording)

    def tracker_config(self) -> TrackerConfig:
        """Return the tracker settings chosen in the widget."""
        base = self.loop.tracker_config if self.loop is not None else TrackerConfig()
        return self.tracker_form.config(base)

    # -- live ------------------------------------------------------------------------------------
    def _make_core(self) -> Any:
        """The core with the chosen camera current: the shared one, ours plugged in if need be."""
        from tfll_live.acquisition import ReplayCamera, SyntheticCamera

        source = self.camera_combo.currentText()
        if source == MICRO_MANAGER:
            if not micromanager_camera(self.mmcore):
                raise ValueError(
                    "no camera in the Micro-Manager core: load a configuration (above, or in "
                    "napari-micromanager)"
                )
            return self.mmcore
        if source == SYNTHETIC:
            synth = replace(self.synth_config, fps=self.fps_spin.value())  # exposure: 1/fps
            plugged = PythonCamera(self.mmcore, SYNTHETIC_LABEL, SyntheticCamera(synth))
        else:
            path = self.path_edit.text().strip()
            if not path:
                raise ValueError("choose a file to replay")
            if not Path(path).exists():
                raise FileNotFoundError(f"{path}: no such file")
            camera = ReplayCamera(path, loop=self.loop_check.isChecked())
            with contextlib.suppress(Exception):  # a bad size in a file: px only
                self.source_pixel_size_um = recorded_pixel_size(camera.source.metadata, path)
            plugged = PythonCamera(self.mmcore, REPLAY_LABEL, camera)
        self.camera = self._loop_holder[1] = plugged
        if not plugged.shared:
            self.show_message(
                f"{source} on a core of its own: the shared Micro-Manager core takes no "
                "Python cameras",
                error=False,
            )
        return plugged.core

    def pixel_size_um(self) -> float | None:
        """µm per pixel for the dock's µm values: as entered, else the camera's or the file's."""
        entered = self.recording_form.options.pixel_size_um
        return entered if entered > 0 else self.source_pixel_size_um

    def _unplug(self) -> None:
        """Take the project's camera out of the core again (the user's camera is current)."""
        if self.camera is not None:
            self.camera.remove()
            self.camera = self._loop_holder[1] = None

    def start_live(self) -> bool:
        """Build the chosen camera, start acquiring and tracking; False (and a message) if not."""
        from tfll_live.acquisition import CaptureLoop

        if self.is_live:
            return True
        self.show_message("")
        self.source_pixel_size_um = None
        placeholder = False
        try:
            core = self._make_core()
            if self.source_pixel_size_um is None:  # Micro-Manager's pixel-size configuration
                with contextlib.suppress(Exception):
                    self.source_pixel_size_um = float(core.getPixelSizeUm()) or None
            loop = CaptureLoop(core, tracker_config=self.tracker_config())
            # the camera's layer now (blank until the first frame): napari's welcome screen
            # goes as streaming starts and the view does not jump at the first frame; made
            # before the camera runs, so its cost does not hold up the tracker's first frames
            placeholder = self.layers.placeholder(*_frame_shape(core))
            self.feed.connect(loop)
            loop.start()
        except Exception as exc:  # any failure becomes a message; the widget lives on
            if placeholder:
                self.layers.remove_placeholder()
            self.feed.disconnect()
            self._unplug()
            self.show_message(f"Cannot start: {one_line(exc)}")
            self._update_enabled()
            return False
        self.loop = loop
        self._loop_holder[0] = loop
        self.history.clear()
        self.panel.set_pixel_size(self.pixel_size_um())
        self.panel.set_thickness_calibrated(bool(loop.tracker_config.thickness_calibration))
        self.panel.clear()
        self.last_shown, self._last_spread = None, None
        self._arrivals.clear()
        self.timer.start()
        self._update_enabled()
        return True

    def stop_live(self) -> None:
        """Stop acquisition (finalising any recording) and show the final counters."""
        loop = self.loop
        if loop is None:
            return
        try:
            loop.stop()
        except Exception as exc:
            self.show_message(f"Stop: {one_line(exc)}")
        self._finish_display()

    def _finish_display(self) -> None:
        """After the loop stopped: take its last results, show its last frame, final status."""
        self.timer.stop()
        loop = self.loop
        if loop is None:
            return
        for name, args in self.feed.drain_events():
            self._on_event(name, args)
        just = [r for r, _ in self.feed.drain_results()]
        self.history.extend(just)
        self.panel.extend(just)
        self.panel.refresh()
        latest = loop.latest()
        if latest is not None:  # the very last frame, with its trajectories
            self._show(*latest, with_tracks=True)
        self.feed.disconnect()
        self._unplug()
        self._update_enabled()
        self._status(stats=loop.stats)

    def _live_clicked(self, checked: bool) -> None:
        if checked:
            self.start_live()
        else:
            self.stop_live()
        self._update_enabled()

    # -- recording -------------------------------------------------------------------------------
    def start_recording(self) -> Path | None:
        """Record from now on into the chosen folder and format; the recording's path.

        A recording of the name entered already there is replaced only when the user says so
        (``confirm_replace``); otherwise nothing is recorded and it stays as it was. Without a
        name, the recording is named by its start time, made unique (``free_path``).
        """
        if not self.is_live or self.loop is None:
            self.show_message("Start live first, then record.")
            return None
        options = self.recording_form.options
        study = options.folder
        try:
            if study == default_study_folder():
                study.mkdir(parents=True, exist_ok=True)  # made on first use, not at startup
            if not study.is_dir():
                raise FileNotFoundError(f"{study}: no such folder")
            # the visit's start time (now, at its first recording) names its folder; the form
            # keeps it only once the recording goes ahead
            visit = self.visit_form.visit.started()
            folder = visit_folder(study, visit)
            if not options.name:  # named by its start time: two in a second take -1, -2...
                taken = free_path(folder / time.strftime("tfll-%Y%m%d-%H%M%S"), options.fmt)
            else:
                taken = with_format_suffix(folder / options.name, options.fmt)
            if options.name and free_path(taken, options.fmt) != taken:  # it or its analysis
                if not self.confirm_replace(taken):
                    self.show_message(f"Not recorded: {taken.name} exists (kept as it was)")
                    self._update_enabled()
                    return None
                remove_recording(taken)
            self.visit_form.visit = visit
            folder.mkdir(exist_ok=True)
            path = self.loop.start_recording(
                taken, fmt=options.fmt, visit=visit,  # type: ignore[arg-type]
                pixel_size_um=options.pixel_size_um or None, limits=options.limits,
            )
        except Exception as exc:
            self.show_message(f"Cannot record: {one_line(exc)}")
            self._update_enabled()
            return None
        self.recording_path = path
        self.history.clear()  # recording starts a new tracking session
        self.panel.clear()
        self.show_message(f"Recording to {path}", error=False)
        self._update_enabled()
        return path

    def confirm_replace(self, path: Path) -> bool:
        """Ask whether to replace the recording at ``path`` (and its analysis); No is default."""
        answer = QMessageBox.question(
            self, "Replace recording?",
            f"{path.name} already exists in {path.parent}.\n\nReplace it and its analysis? "
            "The recording there is deleted.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def stop_recording(self) -> Path | None:
        """Finalise the recording; its path."""
        if self.loop is None:
            return None
        try:
            path = self.loop.stop_recording()
        except Exception as exc:
            self.show_message(f"Recording: {one_line(exc)}")
            path = None
        if path is not None:
            self.show_message(f"Saved {path}", error=False)
            self.saved_recording = path
        self._update_enabled()
        return path

    def write_report(self) -> Path | None:
        """Write the HTML report of the last recording's analysis; its path (None on error)."""
        if self.saved_recording is None:
            return None
        try:
            out = write_report(analysis_dir_for(self.saved_recording))
        except Exception as exc:  # a report is a convenience: say why, keep the GUI going
            self.show_message(f"Report: {one_line(exc)}")
            return None
        self.show_message(f"Report written: {out}", error=False)
        return out

    def _report_clicked(self) -> None:
        out = self.write_report()
        if out is not None:
            webbrowser.open(out.as_uri())

    def _record_clicked(self, checked: bool) -> None:
        if checked:
            self.start_recording()
        else:
            self.stop_recording()
        self._update_enabled()

    # -- settings --------------------------------------------------------------------------------
    def _tracker_changed(self) -> None:
        if self.loop is not None and self.is_live:
            try:
                self.loop.set_tracker_config(self.tracker_config())
            except Exception as exc:
                self.show_message(f"Tracker: {one_line(exc)}")
            self.history.clear()
            self.panel.clear()
            self.panel.set_thickness_calibrated(bool(self.loop.tracker_config.thickness_calibration))

    def _view_changed(self) -> None:
        latest = self.loop.latest() if self.loop is not None else None
        if latest is not None:
            self._show(*latest, with_tracks=True)

    def _browse_source(self) -> None:
        if self.camera_combo.currentText() == REPLAY:
            name, _ = QFileDialog.getOpenFileName(
                self, "Recording to replay", "",
                "Streams (*.tif *.tiff *.zarr *.mp4 *.avi);;All files (*)")
        else:
            name, _ = QFileDialog.getOpenFileName(self, "Micro-Manager configuration", "",
                                                  "Micro-Manager config (*.cfg);;All files (*)")
        if name:
            self.path_edit.setText(name)

    # -- display (Qt main thread, timer driven) --------------------------------------------------
    def _tick(self) -> None:
        now = time.perf_counter()
        if self.keep_timing:
            self.tick_times.append(now)
        for name, args in self.feed.drain_events():
            self._on_event(name, args)
        results = self.feed.drain_results()
        if results:
            just = [r for r, _ in results]
            for r in just:
                if r.interval_ended is not None and r.interval_ended.kinetics is not None:
                    self._last_spread = spread_text(r.interval_ended.kinetics)
            self.history.extend(just)
            self.panel.extend(just)
            if self.keep_timing:
                self._arrivals.update((r.frame, t) for r, t in results)
        if now - self._panel_at >= PANEL_PERIOD_S:
            self.panel.refresh()
            self._panel_at = now
        latest = self.loop.latest() if self.loop is not None else None
        if now >= self._next_show_at and not self._tracker_behind(now):
            self._shown_at = now
            with self._paint_later():
                if self.last_shown is not None and now - self._tracks_at >= TRACKS_PERIOD_S:
                    self.layers.show_tracks(self.history.tracks(self.stabilized_check.isChecked()))
                    self._tracks_at = now
                elif latest is not None and latest[1] is not self.last_shown:
                    self._show(*latest, with_tracks=False)
            # a slow machine (software OpenGL, busy cores): leave the event loop at least as
            # much idle time as the update took, so the GUI stays responsive; display slows
            spent = time.perf_counter() - now
            self._next_show_at = time.perf_counter() + spent
        if now - self._status_at > STATUS_PERIOD_S:
            self._status()
        if self.loop is not None and not self.loop.is_running and self.timer.isActive():
            self._finish_display()  # the loop ended by itself (error or end of a replay)

    def _tracker_behind(self, now: float) -> bool:
        """Whether the display should yield to the tracker this tick.

        The display shares the CPU (and Python's GIL) with the capture thread; when frames
        queue up in the camera's buffer, the tracker is behind and every display update pushes
        it further back. The display then pauses until it has caught up, though never for
        longer than ``MAX_DISPLAY_PAUSE_S``.
        """
        if self.loop is None or now - self._shown_at > MAX_DISPLAY_PAUSE_S:
            return False
        return self.loop.backlog > max(BACKLOG_FRAMES, BACKLOG_S * self.fps_spin.value())

    @contextlib.contextmanager
    def _paint_later(self) -> Iterator[None]:
        """Let the event loop turn between a layer update and the canvas paint it causes.

        Qt paints right after the timer tick that changed the layers, so the GUI would not
        answer for the sum of both (with software OpenGL, tens of ms each). The canvas takes
        no repaint requests during the update; re-enabled on the next turn of the event loop,
        it repaints then (``setUpdatesEnabled(True)`` schedules the repaint).
        """
        canvas = self._canvas_widget()
        if canvas is None or not canvas.updatesEnabled():
            yield
            return
        canvas.setUpdatesEnabled(False)
        try:
            yield
        finally:
            QTimer.singleShot(0, lambda: _alive(canvas) and canvas.setUpdatesEnabled(True))

    def _canvas_widget(self) -> QWidget | None:
        """The viewer's OpenGL canvas, found among the window's widgets (None if not docked)."""
        if self._canvas is None or not _alive(self._canvas):
            window = self.window()
            self._canvas = None if window is self else window.findChild(QOpenGLWidget)
        return self._canvas

    def _show(self, frame: Any, result: FrameResult, with_tracks: bool) -> None:
        stabilized = self.stabilized_check.isChecked()
        tracks = self.history.tracks(stabilized) if with_tracks else None
        self.layers.show(frame, result, tracks, stabilized=stabilized)
        self.last_shown = result
        if self.keep_timing:
            arrived = self._arrivals.pop(result.frame, None)
            if arrived is not None:
                self.shown_at.append((result.frame, arrived, time.perf_counter()))
            if len(self._arrivals) > 5000:
                self._arrivals.clear()

    def _on_event(self, name: str, args: tuple[Any, ...]) -> None:
        if name == "error":
            self.show_message(f"Error: {args[0]}")
        elif name == "frames_lost" and self.loop is not None:
            self.show_message(lost_text(*args, self.loop.stats.elapsed_s))
        elif name == "recording_limit_reached":
            path, why = args
            self.saved_recording = path  # it stopped by itself: its report is one click away
            self.show_message(f"Recording stopped: {why}", error=False)
            self._update_enabled()
        elif name == "recording_stopped":
            _path, error = args
            if error:
                self.show_message(f"Recording stopped: {error}")
            self._update_enabled()
        elif name == "stopped":
            self._update_enabled()

    def _status(self, stats: Any = None) -> None:
        """Three status lines of fixed height (counts; eye and fit; thickness, spread, state).

        The live fit's tau is given only once the data support it (``SpreadFit.supported``),
        with its standard error; the rate line says when the camera cannot keep up.
        """
        self._status_at = time.perf_counter()
        if stats is None:
            if self.loop is None:
                return
            stats = self.loop.stats
        r = self.last_shown
        recording = self.is_recording or self.recording_path is not None
        counts = f"{counts_text(stats, recording)} · {stats.fps:.0f} tracked/s"
        eye: list[str] = []
        more: list[str] = []
        if r is not None:
            eye.append(eye_word(r.state.value).upper())
            if r.state.value == "open":
                eye.append(f"interval {r.interval}")
            if r.fit is not None and r.fit.supported:
                eye.append(f"tau {r.fit.tau_s:.2f} ± {r.fit.tau_se_s:.2f} s")
            elif r.state.value == "open":
                eye.append("tau: gathering data")
            if r.lipid_thickness_nm is not None:
                loop = self.loop
                calibrated = loop is not None and loop.tracker_config.thickness_calibration
                more.append(f"lipid {r.lipid_thickness_nm:.0f} nm"
                            + ("" if calibrated else " (uncalibrated)"))
        if self._last_spread is not None:
            more.append(self._last_spread)
        if self.is_recording:
            more.append("REC")
        if not self.is_live:
            more.append("stopped")
        self.status_label.setText("\n".join([counts, " · ".join(eye), " · ".join(more)]))
        self.rate_label.setText(rate_text(stats) or "")

    def _show_mm_camera(self) -> None:
        """Say which camera the shared core has (it may change in napari-micromanager)."""
        label = micromanager_camera(self.mmcore)
        if label:
            core = self.mmcore
            name = f"{core.getDeviceName(label)} ({core.getDeviceLibrary(label)})"
            self.mm_camera_label.setText(f"{label}: {name}")
        else:
            self.mm_camera_label.setText("none loaded")

    def _on_core_property(self, device: str, prop: str, _value: object) -> None:
        if (device, prop) == ("Core", "Camera"):
            self._show_mm_camera()

    # -- teardown --------------------------------------------------------------------------------
    def closeEvent(self, event: Any) -> None:
        """Stop the camera when the widget goes away."""
        self.stop_live()
        super().closeEvent(event)
