"""The synthetic interferometer as a Micro-Manager camera (a unicore Python device).

Frames of ``tfll_live.synth`` come out live at the rate the camera's exposure and interval
set, with the simulated frame time in the metadata. This is the default camera when no
configuration is given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
from numpy.typing import DTypeLike
from pymmcore_plus.experimental.unicore import CameraDevice

from tfll_live.synth import SynthConfig


class SyntheticCamera(CameraDevice):
    """Synthetic tear-film interferometer camera; frame period = max(exposure, interval)."""

    def __init__(self, config: SynthConfig | None = None) -> None:
        super().__init__()
        raise NotImplementedError

    def get_exposure(self) -> float:
        """Exposure in ms."""
        raise NotImplementedError

    def set_exposure(self, exposure: float) -> None:
        """Set the exposure in ms."""
        raise NotImplementedError

    def shape(self) -> tuple[int, int] | tuple[int, int, int]:
        """Frame shape, (H, W) or (H, W, 3)."""
        raise NotImplementedError

    def dtype(self) -> DTypeLike:
        """uint8 or uint16."""
        raise NotImplementedError

    def start_sequence(
        self, n: int | None, get_buffer: Callable[[Sequence[int], DTypeLike], np.ndarray]
    ) -> Iterator[Mapping]:
        """Render frames into the core's buffer at the frame period."""
        raise NotImplementedError
