"""``tfll`` as a user runs it: a real process, on a small synthetic camera configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# a 160x120 RGB synthetic camera at 200 frames/s (seed 2), as a Micro-Manager configuration
SMALL_CFG = (
    "#py pyDevice,Camera,tfll_live.acquisition,SyntheticCamera\n"
    "#py Property,Camera,Width,160\n"
    "#py Property,Camera,Height,120\n"
    "#py Property,Camera,Seed,2\n"
    "Property,Core,Initialize,1\n"
    "#py Property,Camera,Exposure,5\n"
    "#py Property,Core,Camera,Camera\n"
)

# a user's shell, not this test process: importing pymmcore-widgets (the GUI tests) asks
# pymmcore-plus for Qt signals through the environment, which a headless CLI warns about
ENV = {k: v for k, v in os.environ.items() if k != "PYMM_SIGNALS_BACKEND"}


def tfll(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """``tfll ARGS`` in its own process, its output captured."""
    return subprocess.run([sys.executable, "-m", "tfll_live.cli", *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=timeout)
