"""GUI responsiveness while live: napari + TFLL Live dock, synthetic camera, tracking, recording.

Measures, with the real capture loop, tracker, recorder and napari canvas:
- Qt event-loop stalls: a 1 ms probe timer on the main thread; the longest gap between its ticks
  is the longest time the GUI could not respond (target < 50 ms). Also the display timer's gaps.
- lost frames: the capture loop's counters (acquired / recorded / lost / tracked).
- frame-to-overlay latency: core buffer -> FrameResult (the loop's own histogram) plus
  FrameResult -> overlay drawn on the canvas (measured per displayed frame here, at the vispy
  draw event that follows the layer update).
- where a stall's time goes: layer updates, the vispy draw, and the whole window repaint
  (Qt composes the OpenGL canvas with the docks; with software OpenGL that is the raster work).
- the repaint floor after live, with nothing else running: the same window with the TFLL layers,
  with no layer at all, and a bare Qt OpenGL window of the same size; and the OpenGL renderer.

Needs a display: run as  xvfb-run -a python benchmarks/bench_gui.py [--seconds 20] [--fps 60]
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


def pct(values, q):
    return float(np.percentile(values, q)) if len(values) else float("nan")


class StallSampler:
    """Samples the main thread's Python stack while the probe timer has not ticked for 30 ms."""

    def __init__(self, probe_times: list[float], after_s: float = 0.06) -> None:
        import threading

        self.probe_times, self.after_s = probe_times, after_s
        self.main_id = threading.main_thread().ident
        self.samples: list[tuple[float, str]] = []  # (stall age s, innermost frames)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import traceback

        while not self._stop.wait(0.005):
            if not self.probe_times:
                continue
            age = time.perf_counter() - self.probe_times[-1]
            if age < self.after_s:
                continue
            frame = sys._current_frames().get(self.main_id)
            if frame is None:
                continue
            stack = [f for f in traceback.extract_stack(frame)
                     if not f.filename.startswith("<frozen")][-6:]  # imports: who imported
            where = " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}"
                                for f in reversed(stack))
            self.samples.append((age, where))

    def report(self) -> None:
        from collections import Counter

        counts = Counter(where for _, where in self.samples)
        print(f"  stall samples (main thread stuck > {self.after_s * 1e3:.0f} ms): "
              f"{len(self.samples)}")
        for where, n in counts.most_common(8):
            print(f"    {n:4d}  {where}")


def repaint_ms(widget, app, n: int = 15) -> float:
    """Median wall time of one repaint of ``widget``'s window (update, then process events)."""
    times = []
    for _ in range(n):
        time.sleep(0.02)
        app.processEvents()
        widget.update()
        t = time.perf_counter()
        app.processEvents()
        times.append((time.perf_counter() - t) * 1000.0)
    return float(np.median(times))


def bare_gl_window_ms(size, app) -> float:
    """Repaint cost of a Qt window holding only an OpenGL widget that clears (no napari)."""
    from qtpy.QtOpenGLWidgets import QOpenGLWidget
    from qtpy.QtWidgets import QMainWindow
    from vispy.gloo import gl

    class Clear(QOpenGLWidget):
        def paintGL(self) -> None:
            gl.glClearColor(0.0, 0.0, 0.0, 1.0)
            gl.glClear(gl.GL_COLOR_BUFFER_BIT)

    window, canvas = QMainWindow(), Clear()
    window.setCentralWidget(canvas)
    window.resize(size)
    window.show()
    repaint_ms(canvas, app, n=5)  # first paints create the context
    ms = repaint_ms(canvas, app)
    window.close()
    return ms


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="measured time (after warm-up)")
    ap.add_argument("--fps", type=float, default=60.0)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--window", default="1400x900",
                    help="napari window size WxH (software OpenGL: repaints cost grows with it)")
    ap.add_argument("--format", choices=["OME-Zarr", "OME-TIFF"], default="OME-Zarr")
    ap.add_argument("--no-record", action="store_true")
    ap.add_argument("--stabilized", action="store_true", help="stabilized view")
    ap.add_argument("--screenshot", type=Path, help="save the window to this PNG at the end")
    ap.add_argument("--prerender", action="store_true",
                    help="the synthetic camera renders its session before live (as a real camera, "
                    "it then costs no CPU per frame)")
    ap.add_argument("--switch-ms", type=float,
                    help="the interpreter's GIL switch interval (default: as the widget leaves it)")
    ap.add_argument("--why", action="store_true",
                    help="sample the main thread's stack during stalls and print where they were")
    args = ap.parse_args()
    try:
        window_w, window_h = (int(v) for v in args.window.lower().split("x"))
    except ValueError:
        print(f"bench_gui: --window must be WxH, e.g. 1400x900, got {args.window!r}")
        return 2

    from napari_plugin.demo import NO_DISPLAY, has_display

    if not has_display():
        print(f"bench_gui: {NO_DISPLAY}")
        return 1

    import napari
    from napari._qt.qt_main_window import _QtMainWindow
    from qtpy.QtCore import QEvent, QTimer
    from qtpy.QtWidgets import QApplication

    from napari_plugin.live_widget import LiveWidget
    from tfll_live.synth import SynthConfig

    # the window's repaint (UpdateRequest): the vispy draw, the docks, and Qt's composition of
    # the OpenGL canvas into the window (benchmark-only patch of napari's event override)
    repaint_log: list[tuple[float, float]] = []  # (start, ms)
    window_event = _QtMainWindow.event

    def timed_window_event(self, e):  # type: ignore[no-untyped-def]
        if e.type() != QEvent.Type.UpdateRequest:
            return window_event(self, e)
        t = time.perf_counter()
        out = window_event(self, e)
        repaint_log.append((t, (time.perf_counter() - t) * 1000.0))
        return out

    _QtMainWindow.event = timed_window_event
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(window_w, window_h)
    widget = LiveWidget(viewer)
    viewer.window.add_dock_widget(widget, name="TFLL Live", area="right")
    widget.synth_config = SynthConfig(height=args.height, width=args.width, n_frames=1800)
    if args.prerender:
        from dataclasses import replace

        from tfll_live.acquisition import make_core

        def prerendered_core():
            cfg = replace(widget.synth_config, n_frames=600, fps=args.fps)
            core = make_core(synth=cfg, prerender=True)
            core.setExposure(1000.0 / args.fps)
            return core

        widget._make_core = prerendered_core
    widget.fps_spin.setValue(args.fps)
    widget.stabilized_check.setChecked(args.stabilized)
    app = QApplication.instance()

    probe_times: list[float] = []
    probe = QTimer()
    probe.setInterval(1)
    probe.timeout.connect(lambda: probe_times.append(time.perf_counter()))

    # overlay on screen = the canvas draw that follows a layer update
    drawn: list[tuple[float, float]] = []  # (arrival of the FrameResult, drawn)
    pending: list[float] = []
    shown_before = [0]

    renderer: list[str] = []

    def on_draw(event=None) -> None:
        now = time.perf_counter()
        if not renderer:
            from vispy.gloo import gl

            renderer.append(str(gl.glGetParameter(gl.GL_RENDERER)))
        new = widget.shown_at[shown_before[0]:]
        shown_before[0] = len(widget.shown_at)
        pending.extend(arrived for _, arrived, _ in new)
        drawn.extend((a, now) for a in pending)
        pending.clear()

    viewer.window._qt_viewer.canvas._scene_canvas.events.draw.connect(on_draw)

    # where main-thread time goes: layer updates vs canvas paints
    show_ms: list[float] = []
    paint_ms: list[float] = []
    original_show = widget._show

    def timed_show(*a, **k):
        t = time.perf_counter()
        original_show(*a, **k)
        show_ms.append(round((time.perf_counter() - t) * 1000.0, 1))

    widget._show = timed_show
    paint_start = [0.0]
    canvas = viewer.window._qt_viewer.canvas._scene_canvas
    canvas.events.draw.connect(lambda e: paint_start.__setitem__(0, time.perf_counter()),
                               position="first")
    canvas.events.draw.connect(
        lambda e: paint_ms.append((time.perf_counter() - paint_start[0]) * 1000.0),
        position="last")

    watchdog = StallSampler(probe_times) if args.why else None
    out_dir = Path(tempfile.mkdtemp(prefix="bench_gui_"))
    phase: dict[str, float] = {}

    def thread_cpu() -> dict[str, float]:
        """CPU seconds per thread so far, by thread name (OpenGL's own threads as 'other')."""
        import threading

        import psutil

        names = {t.native_id: t.name for t in threading.enumerate()}
        out: dict[str, float] = {}
        for t in psutil.Process().threads():
            name = names.get(t.id, "other (OpenGL, Qt, numcodecs)")
            out[name] = out.get(name, 0.0) + t.user_time + t.system_time
        return out

    def begin() -> None:
        phase["cpu0"] = thread_cpu()  # type: ignore[assignment]
        if watchdog is not None:
            watchdog.samples.clear()  # only the measured span
        widget.keep_timing = True
        probe_times.clear()
        widget.tick_times.clear()
        show_ms.clear()
        paint_ms.clear()
        drawn.clear()
        repaint_log.clear()
        phase["start"] = time.perf_counter()
        phase["tracked0"] = widget.loop.stats.tracked
        if not args.no_record:
            widget.folder_edit.setText(str(out_dir))
            widget.format_combo.setCurrentText(args.format)
            if widget.start_recording() is None:
                print(f"bench_gui: {widget.message_label.text()}")
                app.exit(0)

    def finish() -> None:
        phase["end"] = time.perf_counter()
        phase["cpu1"] = thread_cpu()  # type: ignore[assignment]
        if watchdog is not None:
            watchdog.stop()
        probe.stop()
        widget.keep_timing = False
        if args.screenshot:
            viewer.screenshot(str(args.screenshot), canvas_only=False, flash=False)
        if widget.is_recording:
            widget.stop_recording()
        phase["stats"] = widget.loop.stop()  # type: ignore[assignment]
        phase["repaints"] = [ms for t, ms in repaint_log  # type: ignore[assignment]
                             if phase["start"] <= t <= phase["end"]]
        # the floor, with nothing else running: the same window, with and without the layers
        phase["floor_layers"] = repaint_ms(canvas.native, app)
        shown = [(layer, layer.visible) for layer in viewer.layers]
        text = viewer.canvas.overlays.text if hasattr(viewer, "canvas") else viewer.text_overlay
        text_visible = text.visible
        for layer, _ in shown:
            layer.visible = False
        text.visible = False
        phase["floor_empty"] = repaint_ms(canvas.native, app)
        for layer, visible in shown:
            layer.visible = visible
        text.visible = text_visible
        phase["floor_bare"] = bare_gl_window_ms(viewer.window._qt_window.size(), app)
        app.exit(0)

    if args.switch_ms is not None:
        sys.setswitchinterval(args.switch_ms / 1000.0)
    if not widget.start_live():
        print(f"bench_gui: {widget.message_label.text()}")
        return 1
    probe.start()
    if watchdog is not None:
        watchdog.start()
    warmup_ms = 2000
    QTimer.singleShot(warmup_ms, begin)
    QTimer.singleShot(warmup_ms + int(args.seconds * 1000), finish)
    # app.exit, not app.quit: in Qt 6 quit() also closes the windows, and napari's window deletes
    # its viewer on close (viewer.close() below would find it gone)
    app.exec()

    stats = phase["stats"]
    span = phase["end"] - phase["start"]
    gaps_ms = np.diff(probe_times) * 1000.0
    ticks_ms = np.diff(widget.tick_times) * 1000.0
    gui_ms = np.array([d - a for a, d in drawn]) * 1000.0
    shown = sum(1 for _, a, s in widget.shown_at if phase["start"] <= s <= phase["end"])
    tracked = stats.tracked - phase["tracked0"]
    rec = "off" if args.no_record else args.format
    print(f"bench_gui: {args.height}x{args.width} RGB synthetic camera at {args.fps:g} fps, "
          f"tracking on, recording {rec}, {span:.1f} s measured, napari {napari.__version__}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, GIL switch interval "
          f"{sys.getswitchinterval() * 1e3:g} ms")
    print(f"  event-loop stalls (1 ms probe): max gap {gaps_ms.max():.1f} ms, p99 "
          f"{pct(gaps_ms, 99):.1f} ms, gaps > 50 ms: {(gaps_ms > 50).sum()}  (target: max < 50 ms)")
    print(f"  display timer (30 Hz): max gap between ticks {ticks_ms.max():.1f} ms, median "
          f"{pct(ticks_ms, 50):.1f} ms")
    nan = float("nan")
    print(f"  main thread: layer update median {pct(show_ms, 50):.1f} ms, max "
          f"{max(show_ms, default=nan):.1f} ms; canvas paint median {pct(paint_ms, 50):.1f} ms, "
          f"max {max(paint_ms, default=nan):.1f} ms")
    repaints = phase["repaints"]
    print(f"  window repaints (vispy draw + docks + Qt composition): median "
          f"{pct(repaints, 50):.1f} ms, p99 {pct(repaints, 99):.1f} ms, max "
          f"{max(repaints, default=nan):.1f} ms")
    print(f"  slowest layer updates {sorted(show_ms)[-5:][::-1]} ms".replace("np.float64", ""))
    print(f"  slowest paints {[round(x, 1) for x in sorted(paint_ms)[-5:][::-1]]} ms")
    cpu0, cpu1 = phase["cpu0"], phase["cpu1"]
    used = {k: (v - cpu0.get(k, 0.0)) / span for k, v in cpu1.items()}  # type: ignore[union-attr]
    top = sorted(used.items(), key=lambda kv: -kv[1])[:6]
    print(f"  CPU: {100 * sum(used.values()):.0f}% of {100 * (os.cpu_count() or 1)}%; "
          + ", ".join(f"{name} {100 * v:.0f}%" for name, v in top))
    print(f"  capture: acquired {stats.acquired}, tracked {stats.tracked}, recorded "
          f"{stats.recorded}, lost {stats.lost}")
    print(f"  display: {shown / span:.1f} frames/s shown of {tracked / span:.1f} tracked "
          "(display may skip, and so may tracking when it falls behind; recording never does)")
    print(f"  latency buffer -> FrameResult (loop): median {stats.latency_ms_median:.1f} ms, "
          f"p95 {stats.latency_ms_p95:.1f} ms")
    print(f"  latency FrameResult -> overlay drawn (GUI): median {pct(gui_ms, 50):.1f} ms, "
          f"p95 {pct(gui_ms, 95):.1f} ms  ({len(gui_ms)} frames)")
    print(f"  frame -> overlay on screen: median ~{stats.latency_ms_median + pct(gui_ms, 50):.1f} "
          f"ms, p95 <= {stats.latency_ms_p95 + pct(gui_ms, 95):.1f} ms (sum of the two parts)")
    size = viewer.window._qt_window.size()
    print(f"  repaint floor after live, nothing else running ({size.width()}x{size.height()} "
          f"window, OpenGL renderer {renderer[0] if renderer else '?'}): with the TFLL layers "
          f"{phase['floor_layers']:.1f} ms, no layer {phase['floor_empty']:.1f} ms, bare Qt "
          f"OpenGL window {phase['floor_bare']:.1f} ms")
    if watchdog is not None:
        watchdog.report()
    viewer.close()
    shutil.rmtree(out_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
