"""The dock's visit form: a magicgui form bound to ``tfll_live.visit.Visit``.

The form keeps what was entered between recordings, so the recordings of one visit (both eyes,
several takes) carry the same patient, operator and start time; "New visit" clears it. Every
field is optional, and an empty form stores nothing.
"""

from __future__ import annotations

from dataclasses import fields, replace

from magicgui.widgets import ComboBox, Container, Label, LineEdit, PushButton

from tfll_live.visit import ENTERED, Visit

EYE_CHOICES = [("not entered", None), ("OD (right eye)", "OD"), ("OS (left eye)", "OS")]
LABELS = {"patient_id": "Patient ID", "eye": "Eye", "operator": "Operator", "notes": "Notes"}
TIPS = {
    "patient_id": "pseudonymous ID (never a name); stored only if entered",
    "eye": "which eye is filmed; part of the visit folder's name",
    "operator": "who takes the measurement",
    "notes": "free notes on the visit",
}


class VisitForm(Container):
    """Patient ID, eye, operator and notes; ``visit`` is the form's value as a ``Visit``."""

    def __init__(self) -> None:
        self._fields: dict[str, LineEdit | ComboBox] = {}
        for f in fields(Visit):
            if f.name not in ENTERED:
                continue  # the start time is the first recording's, not typed in
            kw = {"name": f.name, "label": LABELS[f.name], "tooltip": TIPS[f.name]}
            if f.name == "eye":
                widget: LineEdit | ComboBox = ComboBox(choices=EYE_CHOICES, **kw)
            else:
                widget = LineEdit(**kw)
            self._fields[f.name] = widget
        self.new_button = PushButton(text="New visit", tooltip="clear the form for the next visit")
        self.started_label = Label(label="Started", value="at the first recording")
        super().__init__(widgets=[*self._fields.values(), self.started_label, self.new_button])
        self._started_utc: str | None = None
        self.new_button.changed.connect(self.new_visit)
        # another patient is another visit: its start time is that of its own first recording
        self._fields["patient_id"].changed.connect(lambda *_: self._set_started(None))

    @property
    def visit(self) -> Visit:
        """The visit as entered (raises ValueError, one line, for a value it cannot hold)."""
        values = {name: w.value for name, w in self._fields.items()}
        return Visit(**values, started_utc=self._started_utc)

    @visit.setter
    def visit(self, visit: Visit) -> None:
        for name, w in self._fields.items():
            value = getattr(visit, name)
            w.value = value if name == "eye" else (value or "")
        self._set_started(visit.started_utc)

    def start_recording(self) -> Visit:
        """The visit for a recording starting now: its start time set at its first recording.

        An empty form gets a start time too, which names the visit's folder (the recordings
        of one visit stay together); the files store it only with something entered.
        """
        visit = self.visit.started()
        self._set_started(visit.started_utc)
        return visit

    def new_visit(self) -> None:
        """Clear every field and the start time."""
        self.visit = replace(Visit())

    def _set_started(self, started_utc: str | None) -> None:
        self._started_utc = started_utc
        self.started_label.value = started_utc or "at the first recording"
