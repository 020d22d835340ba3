"""The dock works on the Micro-Manager core the ecosystem shares (``CMMCorePlus.instance()``).

napari-micromanager and pymmcore-widgets configure the user's hardware there; the dock uses
that camera as it is and never loads it a second time. The project's own cameras join the
shared core as Python devices while they are used.
"""

import gc

import pytest
from pymmcore_plus import CMMCorePlus
from pymmcore_plus.experimental.unicore import UniMMCore
from pymmcore_widgets import ConfigurationWidget

from napari_plugin.live_controls import MICRO_MANAGER
from napari_plugin.live_widget import LiveWidget
from tfll_live.acquisition.shared_core import SYNTHETIC_LABEL
from tfll_live.synth import SynthConfig

SMALL = SynthConfig(height=240, width=320, n_frames=200, seed=2)


# demo_cfg comes first in the tests that need the real adapters: where they are absent it skips
# before napari's viewer fixture is set up (whose teardown fails on a test skipped in setup)


def _dock(make_napari_viewer) -> LiveWidget:
    viewer = make_napari_viewer()
    widget = LiveWidget(viewer)
    viewer.window.add_dock_widget(widget, name="TFLL Live")
    return widget


def _cores_with_a_democamera() -> list[CMMCorePlus]:
    gc.collect()
    return [c for c in gc.get_objects() if isinstance(c, CMMCorePlus)
            and any(c.getDeviceLibrary(d) == "DemoCamera" for d in c.getLoadedDevices())]


def test_the_dock_uses_the_camera_a_pymmcore_widgets_widget_loaded(
    demo_cfg, make_napari_viewer, qtbot, fresh_global_core
):
    core = CMMCorePlus.instance()  # a plain CMMCorePlus, as napari-micromanager makes it
    loader = ConfigurationWidget()  # pymmcore-widgets, on the shared core
    qtbot.addWidget(loader)
    loader.cfg_LineEdit.setText(str(demo_cfg))
    loader.load_cfg_Button.click()
    assert core.getCameraDevice() == "Camera"
    devices = core.getLoadedDevices()
    w = _dock(make_napari_viewer)
    assert w.mmcore is core and w.mm_camera_label.text() == "Camera: DCam (DemoCamera)"
    w.camera_combo.setCurrentText(MICRO_MANAGER)
    w.exposure_widget.spinBox.setValue(10.0)  # pymmcore-widgets' control, on the same camera
    assert core.getExposure() == pytest.approx(10.0)
    try:
        assert w.start_live(), w.message_label.text()
        assert w.loop.core is core
        # the status line names the state of the frame on show: wait for the display's tick
        qtbot.waitUntil(lambda: w.loop.stats.tracked > 20 and w.last_shown is not None,
                        timeout=20_000)
        w._status()
        assert "NO EYE IN VIEW" in w.status_label.text()  # the demo camera shows waves
    finally:
        w.stop_live()
    assert core.getLoadedDevices() == devices  # nothing loaded, nothing unloaded
    assert _cores_with_a_democamera() == [core]  # no second copy of the camera anywhere


def test_the_synthetic_camera_joins_the_shared_core_while_it_is_used(
    make_napari_viewer, qtbot, fresh_global_core
):
    w = _dock(make_napari_viewer)
    w.synth_config = SMALL
    w.fps_spin.setValue(30.0)
    core = CMMCorePlus.instance()
    assert w.mmcore is core and isinstance(core, UniMMCore)  # made so, for Python devices
    try:
        assert w.start_live(), w.message_label.text()
        assert w.loop.core is core and core.getCameraDevice() == SYNTHETIC_LABEL
        assert core.isPyDevice(SYNTHETIC_LABEL)
        # what another tool on the shared core sees: this camera, its frames, its rate
        other = CMMCorePlus.instance()
        assert other.getCameraDevice() == SYNTHETIC_LABEL and other.getImageWidth() == 320
        assert other.getExposure() == pytest.approx(1000 / 30.0)
        qtbot.waitUntil(lambda: w.loop.stats.tracked > 5, timeout=20_000)
    finally:
        w.stop_live()
    assert SYNTHETIC_LABEL not in core.getLoadedDevices()  # taken out again


def test_a_plain_shared_core_keeps_its_camera_and_the_synthetic_one_runs_beside_it(
    demo_cfg, make_napari_viewer, qtbot, fresh_global_core
):
    core = CMMCorePlus.instance()
    core.loadSystemConfiguration(str(demo_cfg))
    w = _dock(make_napari_viewer)
    w.synth_config = SMALL
    try:
        assert w.start_live(), w.message_label.text()
        assert w.loop.core is not core and "core of its own" in w.message_label.text()
        assert core.getCameraDevice() == "Camera" and SYNTHETIC_LABEL not in core.getLoadedDevices()
        qtbot.waitUntil(lambda: w.loop.stats.tracked > 5, timeout=20_000)
    finally:
        w.stop_live()
    assert _cores_with_a_democamera() == [core]
