"""Turn the pixel layouts Micro-Manager hands out into the (H, W) / (H, W, 3) the tracker takes."""

from __future__ import annotations

import numpy as np


def bgra_to_rgb(img: np.ndarray) -> np.ndarray:
    """RGB (H, W, 3) from Micro-Manager's 32-bit BGRA (or 64-bit BGRA of 16-bit channels).

    Accepts the packed form ((H, W) uint32/uint64, as the C++ core returns it) or the
    unpacked (H, W, 4) form; the alpha byte is dropped.
    """
    raise NotImplementedError
