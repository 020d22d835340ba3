"""Fixtures shared by the tests: Micro-Manager's adapters, the ecosystem's shared core, and no
modal dialog left waiting for a click that never comes."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from micromanager import DEMO_CFG, MM_DIR, WHY_NOT
from tfll_cli import SMALL_CFG


@pytest.fixture
def small_cfg(tmp_path: Path) -> Path:
    """A small synthetic camera's Micro-Manager configuration file (``tfll_cli.SMALL_CFG``)."""
    cfg = tmp_path / "small.cfg"
    cfg.write_text(SMALL_CFG)
    return cfg


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


@pytest.fixture(autouse=True)
def no_unexpected_dialog(monkeypatch: pytest.MonkeyPatch) -> None:
    """A question box in a GUI test fails the test instead of waiting forever for an answer.

    Tests that drive a dialog patch ``QMessageBox.question`` themselves (after this).
    """
    widgets = sys.modules.get("qtpy.QtWidgets")
    if widgets is None:  # no Qt in this test: nothing can ask
        return

    def unexpected(_parent: object, title: str, text: str, *args: object) -> None:
        raise AssertionError(f"unexpected dialog {title!r}: {text}")

    monkeypatch.setattr(widgets.QMessageBox, "question", unexpected)
