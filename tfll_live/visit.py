"""A clinic visit: whose eye, which eye, who measured, and when.

Everything here is optional and pseudonymous: nothing identifying is written unless the user
entered it, and nothing is guessed (an analysis of a plain file has no visit time). The visit
goes into a recording's metadata, ``results.json`` (the top-level ``visit`` object of the
output format) and the report. Recordings of a visit go to one folder in a study folder,
named by the visit's date, time and eye (``visit_folder``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

EYES = ("OD", "OS")
"""Right eye (oculus dexter) and left eye (oculus sinister), as clinicians write them."""

ENTERED = ("patient_id", "eye", "operator", "notes")
"""The fields a user enters; ``started_utc`` is the time the visit's first recording began."""

MAX_FIELD_CHARS = 2000  # a field is a name or a note, not a file


def check_eye(text: str | None) -> str | None:
    """The eye as ``OD`` or ``OS`` (any case, surrounding blanks ignored); None when empty.

    Raises ValueError (one line) for anything else: a wrong eye in a record is worse than none.
    """
    if text is None or not text.strip():
        return None
    eye = text.strip().upper()
    if eye not in EYES:
        raise ValueError(f"eye {text.strip()!r} is not OD (right) or OS (left)")
    return eye


def _clean(name: str, value: Any) -> str | None:
    """A text field as stored: None when blank; refused when it is not one line of text."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"visit {name} is {type(value).__name__}, not text")
    text = value.strip()
    if len(text) > MAX_FIELD_CHARS:
        raise ValueError(f"visit {name} is {len(text)} characters long (at most {MAX_FIELD_CHARS})")
    return text or None


@dataclass(frozen=True)
class Visit:
    """One visit's record, as the user entered it (every field optional)."""

    patient_id: str | None = None
    eye: str | None = None
    operator: str | None = None
    notes: str | None = None
    started_utc: str | None = None  # ISO 8601, set when the visit's first recording starts

    def __post_init__(self) -> None:
        for name in ("patient_id", "operator", "notes", "started_utc"):
            object.__setattr__(self, name, _clean(name, getattr(self, name)))
        object.__setattr__(self, "eye", check_eye(_clean("eye", self.eye)))
        if self.started_utc is not None:
            try:
                datetime.fromisoformat(self.started_utc)
            except ValueError:
                raise ValueError(
                    f"visit started_utc {self.started_utc!r} is not an ISO 8601 time"
                ) from None

    @property
    def entered(self) -> bool:
        """Whether the user entered anything (a time alone is not a visit)."""
        return any(getattr(self, name) is not None for name in ENTERED)

    def started(self, when: datetime | None = None) -> Visit:
        """A copy with its start time set (kept if already set): the first recording's."""
        if self.started_utc is not None:
            return self
        when = when or datetime.now(timezone.utc)
        return replace(self, started_utc=when.astimezone(timezone.utc).isoformat())

    def to_json(self) -> dict[str, str | None] | None:
        """The ``visit`` object of results.json, or None when nothing was entered."""
        return asdict(self) if self.entered else None

    def stored_text(self) -> str:
        """Say in one line which fields were stored (the report shows it)."""
        kept = [name for name in ENTERED if getattr(self, name) is not None]
        if not kept:
            return "no visit details were entered: nothing identifying is stored"
        return "stored: " + ", ".join(kept) + (", started_utc" if self.started_utc else "")

    @classmethod
    def from_json(cls, doc: object) -> Visit:
        """The visit of a results.json or a recording's metadata (empty when absent).

        Raises ValueError (one line) when the object is not a visit.
        """
        if doc is None:
            return cls()
        if not isinstance(doc, dict):
            raise ValueError(f"visit is {type(doc).__name__}, not an object")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in known})

    def merged(self, other: Visit) -> Visit:
        """A copy in which every field ``other`` has replaces ours (the command line wins)."""
        changes = {f.name: getattr(other, f.name) for f in fields(self)}
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def visit_folder(study: Path, visit: Visit, when: datetime | None = None) -> Path:
    """The folder of a visit's recordings: ``<study>/<YYYY-MM-DD_HHMMSS>[_<eye>]``.

    Named by the visit's start in local time (what the clinician's calendar says) and the
    eye; never by the patient, whose ID stays in the files' metadata only.
    """
    if when is None:
        started = visit.started_utc
        when = datetime.fromisoformat(started) if started else datetime.now(timezone.utc)
    name = when.astimezone().strftime("%Y-%m-%d_%H%M%S")
    return study / (f"{name}_{visit.eye}" if visit.eye else name)


def default_study_folder() -> Path:
    """Where recordings go unless the user chose a study folder: the user's data directory.

    ``~/.local/share/tfll-live/recordings`` on Linux, the platform's equivalent elsewhere;
    never the home folder's root, where a recording is lost among everything else.
    """
    import platformdirs

    return Path(platformdirs.user_data_dir("tfll-live", appauthor=False)) / "recordings"
