"""``tfll demo``: napari with the TFLL Live dock already streaming the synthetic camera.

Importing this module is cheap (no Qt, no napari) so the CLI can check for a display first and
say so in one line instead of letting Qt abort the process.
"""

from __future__ import annotations

import os

NO_DISPLAY = ("tfll demo needs a display (no DISPLAY or WAYLAND_DISPLAY is set, or Qt is set "
              "to offscreen); run it under xvfb-run, or use `tfll live` for headless acquisition")


def has_display() -> bool:
    """Tell whether napari can open its window here: an X or Wayland display.

    Qt's ``offscreen`` platform does not count: napari's OpenGL canvas cannot be created
    there, and the demo would hang instead of saying so.
    """
    if os.environ.get("QT_QPA_PLATFORM", "").startswith(("offscreen", "minimal")):
        return False
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def display_problem() -> str | None:
    """Why the display napari would open cannot be reached, in one line (None: it can).

    A DISPLAY that is set but has no X server behind it (a closed SSH forwarding, an Xvfb
    that exited) makes Qt abort the process (exit 134) with a hint about platform plugins;
    a connection attempt to the server's socket says what is wrong instead, without Qt.
    """
    if not has_display():
        return NO_DISPLAY
    x_display = os.environ.get("DISPLAY")
    wayland = os.environ.get("WAYLAND_DISPLAY")
    if wayland and not x_display:
        runtime = os.environ.get("XDG_RUNTIME_DIR", "")
        path = wayland if os.path.isabs(wayland) else os.path.join(runtime, wayland)
        if not os.path.exists(path):
            return f"tfll demo cannot open the Wayland display {wayland} (no socket at {path})"
        return None
    assert x_display is not None
    if not _x_server_answers(x_display):
        return (
            f"tfll demo cannot open the display {x_display} (DISPLAY is set, but no X server "
            "answers there): check DISPLAY or the SSH forwarding, run it under xvfb-run -a, "
            "or use `tfll live` for headless acquisition"
        )
    return None


def _x_server_answers(display: str, timeout_s: float = 2.0) -> bool:
    """Whether something listens where ``display`` (``[host]:N[.screen]``) points.

    Local displays are a Unix socket (Linux also has it in the abstract namespace); remote
    ones TCP port 6000+N. Forms not understood are let through: Qt will say.
    """
    import socket

    host, _, rest = display.rpartition(":")
    try:
        number = int(rest.split(".")[0])
    except ValueError:
        return True
    if host.startswith("/"):  # macOS XQuartz launchd socket: a path
        return os.path.exists(display)
    if host in ("", "unix"):
        path = f"/tmp/.X11-unix/X{number}"
        for address in ("\0" + path, path):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(timeout_s)
                try:
                    s.connect(address)
                    return True
                except OSError:
                    continue
        if host == "unix":
            return False
        host = "localhost"
    try:
        socket.create_connection((host, 6000 + number), timeout=timeout_s).close()
    except OSError:
        return False
    return True


def run_demo(fps: float = 45.0, duration_s: float | None = None) -> int:
    """Open napari, start the synthetic camera with tracking, run until the window closes.

    ``duration_s`` closes the window after that many seconds (for smoke tests). Returns the
    exit status: 0, or 1 when live acquisition could not start (the reason is printed).
    """
    import napari
    from qtpy.QtCore import QTimer

    from tfll_live.acquisition.status import counts_text

    from .live_widget import LiveWidget

    viewer = napari.Viewer(title="tfll demo: synthetic tear film interferometer")
    widget = LiveWidget(viewer)
    viewer.window.add_dock_widget(widget, name="TFLL Live", area="right")
    widget.fps_spin.setValue(fps)
    if not widget.start_live():
        print(f"tfll: error: {widget.message_label.text()}")
        viewer.close()
        return 1
    loop = widget.loop
    assert loop is not None

    def finish() -> None:
        widget.stop_live()
        viewer.close()

    if duration_s is not None:
        QTimer.singleShot(int(duration_s * 1000), finish)
    napari.run()
    if loop.is_running:  # the window was closed by the user: the widget is gone, stop here
        loop.stop()
    s = loop.stats
    print(f"tfll demo: {counts_text(s, recording=s.recorded > 0)}, {s.fps:.1f} tracked/s")
    return 0
