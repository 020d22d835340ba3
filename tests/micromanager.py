"""Micro-Manager's real C++ device adapters (DemoCamera, Utilities) for tests, where present.

The development machines and CI have them in ``../shared/micromanager`` beside the
repository (built for device interface 75, with the standard ``MMConfig_demo.cfg``); a
``MICROMANAGER_PATH`` that holds them is used instead. Tests that need them skip where they
are absent, or where the installed pymmcore loads another device interface.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pymmcore

ADAPTERS_INTERFACE = 75  # the device interface the shared adapters were built for
_SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "micromanager"
MM_DIR = Path(os.environ.get("MICROMANAGER_PATH") or _SHARED)
DEMO_CFG = MM_DIR / "MMConfig_demo.cfg"


def _device_interface() -> int:
    info = pymmcore.CMMCore().getAPIVersionInfo()  # "Device API version 75, Module API ..."
    found = re.search(r"Device API version (\d+)", info)
    return int(found.group(1)) if found else -1


def _why_not() -> str | None:
    if not (MM_DIR / "libmmgr_dal_DemoCamera.so.0").exists() and not any(
        MM_DIR.glob("*mmgr_dal_DemoCamera*")
    ):
        return f"no Micro-Manager DemoCamera adapter in {MM_DIR} (MICROMANAGER_PATH)"
    interface = _device_interface()
    if interface != ADAPTERS_INTERFACE:
        return (
            f"pymmcore loads device interface {interface}; the adapters in {MM_DIR} are "
            f"built for {ADAPTERS_INTERFACE} (pin pymmcore to a .{ADAPTERS_INTERFACE} release)"
        )
    return None


WHY_NOT = _why_not()
