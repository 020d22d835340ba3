"""The dock's tracker settings: a magicgui form bound to ``tfll_live.tracking.TrackerConfig``.

The settings a user tunes in the dock (the enhancement, the flow method, the thickness
calibration); the others keep ``TrackerConfig``'s validated defaults, as ``tfll live`` does.
"""

from __future__ import annotations

from dataclasses import replace

from magicgui.widgets import ComboBox, Container, FileEdit

from tfll_live.thickness import checked_calibration
from tfll_live.tracking import Enhancement, FlowMethod, TrackerConfig

FLOW_NAMES = {
    FlowMethod.LUCAS_KANADE: "Lucas-Kanade",
    FlowMethod.FARNEBACK: "Farneback",
    FlowMethod.SSD: "SSD templates",
}
TIPS = {
    "enhancement": "the paper's visual enhancement of the interference pattern before tracking",
    "flow": "how the lipid layer is followed: sparse Lucas-Kanade, dense Farneback, templates",
    "thickness_calibration": "the camera's colour calibration for lipid thickness "
    "(tfll calibrate makes one); without it thickness is uncalibrated",
}


class TrackerForm(Container):
    """Enhancement, flow and calibration; ``config(base)`` is ``base`` with the form's values."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        config = config if config is not None else TrackerConfig()
        self.enhancement = ComboBox(
            choices=[(e.value, e) for e in Enhancement],
            value=config.enhancement,
            name="enhancement",
            label="Enhancement",
            tooltip=TIPS["enhancement"],
        )
        self.flow = ComboBox(
            choices=[(FLOW_NAMES.get(f, f.value), f) for f in FlowMethod],
            value=config.flow,
            name="flow",
            label="Flow",
            tooltip=TIPS["flow"],
        )
        self.calibration = FileEdit(
            mode="r",
            filter="Calibrations (*.json);;All files (*)",
            value=config.thickness_calibration or "",
            name="thickness_calibration",
            label="Calibration",
            tooltip=TIPS["thickness_calibration"],
        )
        self.calibration.line_edit.native.setPlaceholderText("none (tfll calibrate makes one)")
        # a narrow dock: "…" as the dock's other browse buttons, the path gets the width
        self.calibration.choose_btn.text = "…"
        self.calibration.choose_btn.native.setFixedWidth(30)
        super().__init__(widgets=[self.enhancement, self.flow, self.calibration])

    @property
    def calibration_text(self) -> str:
        """The calibration file as typed ("" for none)."""
        return str(self.calibration.line_edit.value).strip()

    def config(self, base: TrackerConfig | None = None) -> TrackerConfig:
        """``base`` (default: the defaults) with the form's values; ValueError for a bad file."""
        return replace(
            base if base is not None else TrackerConfig(),
            enhancement=self.enhancement.value,
            flow=self.flow.value,
            thickness_calibration=checked_calibration(self.calibration_text),
        )
