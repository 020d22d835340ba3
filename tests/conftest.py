"""Fixtures shared by the tests: Micro-Manager's adapters, and the ecosystem's shared core."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from micromanager import DEMO_CFG, MM_DIR, WHY_NOT


@pytest.fixture
def demo_cfg(monkeypatch: pytest.MonkeyPatch) -> Path:
    """``MICROMANAGER_PATH`` set to the DemoCamera adapters (as a user sets it); the demo config.

    Skips (saying why) where the adapters are absent or pymmcore loads another interface.
    """
    if WHY_NOT is not None:
        pytest.skip(WHY_NOT)
    monkeypatch.setenv("MICROMANAGER_PATH", str(MM_DIR))
    return DEMO_CFG


@pytest.fixture
def fresh_global_core(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No ``CMMCorePlus.instance()`` yet: the next core created becomes it, for this test only."""
    from pymmcore_plus.core import _mmcore_plus

    monkeypatch.setattr(_mmcore_plus, "_instance", None)
    yield
