"""Turn the pixel layouts Micro-Manager hands out into the (H, W) / (H, W, 3) the tracker takes."""

from __future__ import annotations

import numpy as np


def bgra_to_rgb(img: np.ndarray) -> np.ndarray:
    """RGB (H, W, 3) from Micro-Manager's 32-bit BGRA (or 64-bit BGRA of 16-bit channels).

    Accepts the packed form ((H, W) uint32/uint64, as the C++ core returns it) or the
    unpacked (H, W, 4) form; the alpha channel is dropped. Returns a new contiguous array.
    """
    if img.ndim == 2 and img.dtype in (np.uint32, np.uint64):
        # the packed pixel is B, G, R, A in memory order (little endian), whatever the host
        chan = np.dtype(np.uint8 if img.dtype == np.uint32 else "<u2")
        img = np.ascontiguousarray(img).view(chan).reshape(*img.shape, 4)
    if img.ndim != 3 or img.shape[2] != 4:
        raise ValueError(
            f"expected BGRA pixels (H, W, 4) or packed (H, W), got {img.shape} {img.dtype}"
        )
    return np.ascontiguousarray(img[..., 2::-1]).astype(img.dtype.newbyteorder("="), copy=False)


def camera_frame(img: np.ndarray, n_components: int) -> np.ndarray:
    """Return the frame as the tracker wants it: mono (H, W) as is, colour as RGB (H, W, 3).

    Python cameras hand (H, W, 3) RGB already; C++ colour cameras hand packed BGRA.
    """
    if img.ndim == 3 and img.shape[2] == 3:
        return img
    if n_components == 4 or (img.ndim == 3 and img.shape[2] == 4):
        return bgra_to_rgb(img)
    return img
