"""The form of the "TFLL Live" dock: camera, tracking, recording controls and status lines.

Only widgets and which of them are enabled in which state; what they do is ``LiveWidget``'s.
The Micro-Manager camera's controls are pymmcore-widgets' own (loading a configuration into
the shared core, the current camera's exposure), so they behave as in napari-micromanager.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pymmcore_widgets import ConfigurationWidget, DefaultCameraExposureWidget
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from .fixed_label import FixedLabel
from .recording_form import FORMATS, RecordingForm
from .tracker_form import FLOW_NAMES, TrackerForm
from .visit_form import VisitForm

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus

SYNTHETIC, REPLAY, MICRO_MANAGER = "Synthetic camera", "Replay a recording", "Micro-Manager camera"
STATUS_LINES = 3  # counts; eye, interval and fit; thickness, last spread, REC
__all__ = ["FLOW_NAMES", "FORMATS", "MICRO_MANAGER", "REPLAY", "SYNTHETIC", "LiveControls"]


def _path_row(placeholder: str = "") -> tuple[QLineEdit, QPushButton, QHBoxLayout]:
    """A path field with its browse button ("…"), laid out in a row."""
    edit, button, row = QLineEdit(), QPushButton("…"), QHBoxLayout()
    edit.setPlaceholderText(placeholder)
    button.setFixedWidth(30)
    row.addWidget(edit)
    row.addWidget(button)
    return edit, button, row


class LiveControls(QWidget):
    """The dock's controls, laid out; ``set_state`` enables what makes sense."""

    def __init__(self, mmcore: CMMCorePlus, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        cam = QGroupBox("Camera")
        self.camera_combo = QComboBox()
        self.camera_combo.addItems([SYNTHETIC, REPLAY, MICRO_MANAGER])
        # the Micro-Manager camera: whatever the shared core has (napari-micromanager's too)
        self.config_widget = ConfigurationWidget(mmcore=mmcore)
        self.config_widget.setToolTip("load a Micro-Manager configuration into the shared core")
        self.mm_camera_label = FixedLabel(n_lines=1)
        self.exposure_widget = DefaultCameraExposureWidget(mmcore=mmcore)
        self.path_edit, self.browse_button, path_row = _path_row("file to replay")
        self.fps_spin = QDoubleSpinBox()
        self.fps_spin.setRange(1.0, 500.0)
        self.fps_spin.setValue(45.0)
        self.fps_spin.setSuffix(" fps")
        self.loop_check = QCheckBox("loop the recording")
        self.live_button = QPushButton("Start live")
        self.live_button.setCheckable(True)
        form = QFormLayout(cam)
        form.addRow("Source", self.camera_combo)
        form.addRow("Frame rate", self.fps_spin)
        form.addRow("File", path_row)
        form.addRow("", self.loop_check)
        form.addRow("Configuration", self.config_widget)
        form.addRow("Camera", self.mm_camera_label)
        form.addRow("Exposure", self.exposure_widget)

        trk = QGroupBox("Tracking")
        self.tracker_form = TrackerForm()
        # Qt handles for the form's parts (the tests and ``set_state`` use them)
        self.enhancement_combo = self.tracker_form.enhancement.native
        self.flow_combo = self.tracker_form.flow.native
        self.calibration_edit = self.tracker_form.calibration.line_edit.native
        self.calibration_button = self.tracker_form.calibration.choose_btn.native
        # how the view follows the eye: a display choice, not a tracker setting
        self.stabilized_check = QCheckBox("stabilized view (follow the eye)")
        trk_lay = QVBoxLayout(trk)
        trk_lay.addWidget(self.tracker_form.native)
        trk_lay.addWidget(self.stabilized_check)

        visit = QGroupBox("Visit")
        self.visit_form = VisitForm()
        QVBoxLayout(visit).addWidget(self.visit_form.native)

        rec = QGroupBox("Recording")
        self.recording_form = RecordingForm()
        # Qt handles for the form's parts (the tests and ``set_state`` use them)
        self.folder_edit = self.recording_form.folder.line_edit.native
        self.folder_button = self.recording_form.folder.choose_btn.native
        self.format_combo = self.recording_form.fmt.native
        self.report_button = QPushButton("Session report…")
        self.report_button.setToolTip("HTML report of the last recording (tfll report)")
        rec_lay = QVBoxLayout(rec)
        rec_lay.addWidget(self.recording_form.native)
        rec_lay.addWidget(self.report_button)

        # the forms scroll; the buttons and status lines below them never do, and keep their
        # place and size whatever the state (nothing appears, disappears or grows while live)
        forms = QWidget()
        forms_lay = QVBoxLayout(forms)
        for w in (cam, trk, visit, rec):
            # a group keeps the height its rows need: the scroll area scrolls, never squashes
            w.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
            forms_lay.addWidget(w)
        forms_lay.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setWidget(forms)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setMinimumHeight(80)

        self.record_button = QPushButton("Record")
        self.record_button.setCheckable(True)
        for button in (self.live_button, self.record_button):
            # the longer of each button's two texts sets its width: no jump when it toggles
            button.setMinimumWidth(button.fontMetrics().horizontalAdvance("Stop recording") + 24)
        self.saved_recording: Path | None = None  # the last finished recording, for the report
        self.status_label = FixedLabel("idle", n_lines=STATUS_LINES, wrap=False)
        self.rate_label = FixedLabel("", n_lines=2)
        self.rate_label.setStyleSheet("color: #ffb000;")
        self.message_label = FixedLabel("", n_lines=2, elide=Qt.TextElideMode.ElideMiddle)
        self.message_label.setStyleSheet("color: #ff7b5c;")
        self.bar = QWidget()
        bar = QVBoxLayout(self.bar)
        bar.setContentsMargins(9, 4, 9, 4)
        buttons = QHBoxLayout()
        buttons.addWidget(self.live_button)
        buttons.addWidget(self.record_button)
        bar.addLayout(buttons)
        for label in (self.status_label, self.rate_label, self.message_label):
            bar.addWidget(label)
        self.bar.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.scroll, 1)
        lay.addWidget(self.bar)
        # expanding: napari adds no stretch below it, the scroll area takes the dock's height
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)

    def showEvent(self, event: Any) -> None:
        """Fix the buttons' height once napari's style is applied (its checked style is taller)."""
        super().showEvent(event)
        for button in (self.live_button, self.record_button):
            if button.minimumHeight() != button.maximumHeight():
                button.setFixedHeight(button.sizeHint().height() + 4)

    def set_state(self, live: bool, recording: bool) -> None:
        """Enable only the controls that make sense when ``live`` / ``recording``."""
        rec = recording
        source = self.camera_combo.currentText()
        self.camera_combo.setEnabled(not live)
        self.fps_spin.setEnabled(not live and source == SYNTHETIC)
        self.loop_check.setEnabled(not live and source == REPLAY)
        # a new configuration would pull the camera from under the running acquisition
        self.config_widget.setEnabled(not live and source == MICRO_MANAGER)
        self.path_edit.setEnabled(not live and source == REPLAY)
        self.browse_button.setEnabled(not live and source == REPLAY)
        self.live_button.setChecked(live)
        self.live_button.setText("Stop live" if live else "Start live")
        # a new tracker configuration restarts tracking: not in the middle of a recording
        self.enhancement_combo.setEnabled(not rec)
        self.flow_combo.setEnabled(not rec)
        self.calibration_edit.setEnabled(not rec)
        self.calibration_button.setEnabled(not rec)
        self.record_button.setEnabled(live)
        self.record_button.setChecked(rec)
        self.record_button.setText("Stop recording" if rec else "Record")
        self.folder_edit.setEnabled(not rec)
        self.folder_button.setEnabled(not rec)
        self.format_combo.setEnabled(not rec)
        self.recording_form.name_edit.enabled = not rec
        self.recording_form.pixel_size.enabled = not rec
        self.visit_form.enabled = not rec  # a recording's visit is fixed when it starts
        self.report_button.setEnabled(not rec and self.saved_recording is not None)

    def show_message(self, text: str, error: bool = True) -> None:
        """Tell the user in the message line (red for errors)."""
        self.message_label.setStyleSheet("color: #ff7b5c;" if error else "color: #9ad19a;")
        self.message_label.setText(text)
