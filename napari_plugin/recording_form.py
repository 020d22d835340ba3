"""The dock's recording options: a magicgui form bound to ``RecordingOptions``.

Where a recording goes (a study folder, one folder per visit inside it), what it is called,
its format, the pixel size it states (which also gives the dock's µm values), and where it
stops by itself (a size or a length: a recording left running must not fill the disk).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from magicgui.widgets import ComboBox, Container, FileEdit, FloatSpinBox, LineEdit

from tfll_live.acquisition.limits import RecordingLimits
from tfll_live.visit import default_study_folder

FORMATS = {"OME-Zarr": "ome-zarr", "OME-TIFF": "ome-tiff"}


@dataclass(frozen=True)
class RecordingOptions:
    """How the dock records: ``tfll live --record/--format/--pixel-size-um`` in a form."""

    folder: Path  # the study folder: each visit's recordings in a folder of their own inside it
    name: str = ""  # the recording's name; empty: its start time (tfll-YYYYmmdd-HHMMSS)
    fmt: str = "ome-zarr"
    pixel_size_um: float = 0.0  # 0: the camera's (Micro-Manager's pixel-size configuration)
    max_size_mb: float = 0.0  # the recording stops before it passes this size on disk; 0: none
    max_minutes: float = 0.0  # and after this long; 0: no limit

    @property
    def limits(self) -> RecordingLimits | None:
        """The size and time limits as ``tfll live --max-size/--max-minutes`` sets them."""
        limits = RecordingLimits(
            max_bytes=round(self.max_size_mb * 1024**2) if self.max_size_mb > 0 else None,
            max_s=60.0 * self.max_minutes if self.max_minutes > 0 else None,
        )
        return limits if limits.any else None


LABELS = {
    "folder": "Study folder",
    "name": "Name",
    "fmt": "Format",
    "pixel_size_um": "Pixel size",
    "max_size_mb": "Stop at size",
    "max_minutes": "Stop after",
}
TIPS = {
    "folder": "study folder: each visit's recordings go to a folder of their own inside it, "
    "named by the visit's date, time and eye",
    "name": "the recording's name (empty: its start time); an existing one is replaced only "
    "after you confirm",
    "fmt": "OME-Zarr (a folder) or OME-TIFF (one file); napari, Fiji and any OME tool read both",
    "pixel_size_um": "µm per image pixel, for µm and µm/s beside px; 0: the camera's "
    "(the recording's, when replaying)",
    "max_size_mb": "the recording stops by itself before it passes this size on disk "
    "(every frame recorded so far kept, analysed); 'no limit': only the free space stops it",
    "max_minutes": "the recording stops by itself after this long; 'no limit': it goes on "
    "until you stop it",
}


class RecordingForm(Container):
    """The recording options; ``options`` is the form's value as ``RecordingOptions``."""

    def __init__(self) -> None:
        default = RecordingOptions(default_study_folder())
        self.folder = FileEdit(mode="d", value=default.folder, name="folder")
        self.name_edit = LineEdit(value=default.name, name="name")
        self.name_edit.native.setPlaceholderText("start time")
        self.fmt = ComboBox(
            choices=[(k, v) for k, v in FORMATS.items()], value=default.fmt, name="fmt"
        )
        self.pixel_size = FloatSpinBox(
            value=default.pixel_size_um, min=0.0, max=1000.0, step=0.01, name="pixel_size_um"
        )
        self.pixel_size.native.setDecimals(3)
        self.pixel_size.native.setSuffix(" µm")
        self.pixel_size.native.setSpecialValueText("the camera's")
        self.max_size = _limit_spin(default.max_size_mb, " MB", 1e7, 100.0)
        self.max_minutes = _limit_spin(default.max_minutes, " min", 1e4, 1.0)
        widgets = {
            "folder": self.folder,
            "name": self.name_edit,
            "fmt": self.fmt,
            "pixel_size_um": self.pixel_size,
            "max_size_mb": self.max_size,
            "max_minutes": self.max_minutes,
        }
        for f in fields(RecordingOptions):
            widgets[f.name].label = LABELS[f.name]
            widgets[f.name].tooltip = TIPS[f.name]
        # a narrow dock: "…" as the dock's other browse buttons, the path gets the width
        self.folder.choose_btn.text = "…"
        self.folder.choose_btn.native.setFixedWidth(30)
        super().__init__(widgets=list(widgets.values()))

    @property
    def options(self) -> RecordingOptions:
        """The options as entered (the folder as typed, ``~`` expanded)."""
        folder = Path(str(self.folder.line_edit.value).strip() or ".").expanduser()
        return RecordingOptions(
            folder,
            str(self.name_edit.value).strip(),
            str(self.fmt.value),
            float(self.pixel_size.value),
            float(self.max_size.value),
            float(self.max_minutes.value),
        )

    @options.setter
    def options(self, options: RecordingOptions) -> None:
        self.folder.value = options.folder
        self.name_edit.value = options.name
        self.fmt.value = options.fmt
        self.pixel_size.value = options.pixel_size_um
        self.max_size.value = options.max_size_mb
        self.max_minutes.value = options.max_minutes


def _limit_spin(value: float, suffix: str, top: float, step: float) -> FloatSpinBox:
    """A limit's spin box: 0 reads "no limit"."""
    spin = FloatSpinBox(value=value, min=0.0, max=top, step=step)
    spin.native.setDecimals(2)
    spin.native.setSuffix(suffix)
    spin.native.setSpecialValueText("no limit")
    return spin
