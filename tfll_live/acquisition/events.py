"""Events of the capture loop, as a psygnal ``SignalGroup`` a GUI or a script connects to.

``frame_tracked`` fires on the capture thread for every frame: keep its slots fast, or connect
with ``thread="main"`` (psygnal queues the call to the main thread) as a GUI should. The other
signals fire on whichever thread ends the thing they report (capture thread or the caller of
``stop``/``stop_recording``).
"""

from __future__ import annotations

from psygnal import Signal, SignalGroup


class CaptureEvents(SignalGroup):
    """What the capture loop reports; each signal's comment names its payload."""

    started = Signal()  # acquisition began
    frame_tracked = Signal(object)  # FrameResult (emitted from the capture thread!)
    blink = Signal(object)  # Blink, when a blink ended
    interval_fit = Signal(object)  # Interval, when an interval closed with its final fit
    recording_started = Signal(object)  # Path of the new recording
    recording_stopped = Signal(object, object)  # Path, str | None (error message on a fault)
    error = Signal(str)  # one-line message; the loop stopped (or the recording stopped)
    stopped = Signal(object)  # CaptureStats at the end
