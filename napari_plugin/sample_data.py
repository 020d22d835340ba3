"""Sample data: a short synthetic interferometer stream (File > Open Sample > TFLL Live)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tfll_live.synth import SynthConfig, SyntheticStream

# small and quick to render (~0.5 s), but long enough to hold a blink and two intervals
SAMPLE_CONFIG = SynthConfig(height=240, width=320, fps=45.0, n_frames=180, seed=1)


def synthetic_stream() -> list[tuple[np.ndarray, dict[str, Any], str]]:
    """Render the "Synthetic TFLL stream" sample: (T, Y, X, 3) uint8, one RGB layer."""
    stream = SyntheticStream(SAMPLE_CONFIG)
    frames = np.empty((len(stream), *stream.shape), stream.dtype)
    for i in range(len(stream)):
        stream.render(i, out=frames[i])
    meta = {"fps": SAMPLE_CONFIG.fps, "blinks": stream.truth.blinks}
    return [(frames, {"name": "Synthetic TFLL stream", "rgb": True, "metadata": meta}, "image")]
