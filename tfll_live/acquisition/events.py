"""Events of the capture loop, as a psygnal ``SignalGroup`` a GUI or a script connects to.

``frame_tracked``, ``blink``, ``interval_fit`` and ``recording_stopped`` fire on the tracking
thread, ``frames_lost`` and ``recording_limit_reached`` on the capture thread, the others on
whichever thread ends the thing they report. Keep slots fast (a slow slot holds the tracker
back, never the recording), or connect with ``thread="main"`` (psygnal queues the call to the
main thread) as a GUI should.
"""

from __future__ import annotations

from psygnal import Signal, SignalGroup


class CaptureEvents(SignalGroup):
    """What the capture loop reports; each signal's comment names its payload."""

    started = Signal()  # acquisition began
    frame_tracked = Signal(object)  # FrameResult (emitted from the tracking thread!)
    frames_lost = Signal(int, int)  # frames just lost in the camera's buffer, lost in all
    blink = Signal(object)  # Blink, when a blink ended
    interval_fit = Signal(object)  # Interval, when an interval closed with its final fit
    recording_started = Signal(object)  # Path of the new recording
    recording_stopped = Signal(object, object)  # Path, str | None (error message on a fault)
    recording_limit_reached = Signal(object, str)  # Path, why (one line); recording_stopped follows
    error = Signal(str)  # one-line message; the loop stopped (or the recording stopped)
    stopped = Signal(object)  # CaptureStats at the end
