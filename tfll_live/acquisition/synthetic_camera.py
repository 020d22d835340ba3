"""The synthetic interferometer as a Micro-Manager camera (a unicore Python device).

Frames of ``tfll_live.synth`` come out live, one per exposure (the camera free-runs at
``1000 / Exposure`` frames/s, slower when it cannot render that fast), each with its real frame
time in the metadata (``tfll.time_s``), as a camera's hardware timestamp would give it. The
camera samples the simulated eye at its own frame times, so changing the exposure changes the
frame rate, not the eye's dynamics.
This is the default camera when no configuration is given.

Rendering a 480x640 frame costs several milliseconds of CPU; at high frame rates set
``Prerender`` to render the whole (looping) stream once into memory and play it from there.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
from numpy.typing import DTypeLike
from pymmcore_plus.experimental.unicore import CameraDevice, pymm_property

from tfll_live.synth import SynthConfig, SyntheticStream

# metadata keys our cameras add to every frame (values are strings, as in Micro-Manager)
KEY_TIME_S = "tfll.time_s"  # the frame's time in s since the first frame of the sequence
KEY_FRAME = "tfll.frame"  # the camera's own frame counter in the sequence
KEY_SOURCE_FRAME = "tfll.source_frame"  # which frame of the stream/file this is
KEY_END = "tfll.end_of_stream"  # "1" on the last frame of a stream that does not loop
# when the frame was read out of the camera, in Unix seconds: result latency counts from here,
# so a frame that reaches the core late counts as late
KEY_READOUT = "tfll.readout_time"
# seconds of frames the camera holds when delivery falls behind its exposures (like on-board
# memory); further behind, it skips exposures and delivers fewer frames than requested
ONBOARD_S = 0.25


class SyntheticCamera(CameraDevice):
    """Synthetic tear-film interferometer camera; one frame per exposure."""

    def __init__(
        self,
        config: SynthConfig | None = None,
        *,
        prerender: bool = False,
        onboard_s: float = ONBOARD_S,
    ) -> None:
        super().__init__()
        self._onboard_s = onboard_s  # seconds of frames held when delivery falls behind
        self._cfg = config or SynthConfig()
        self._fps = float(self._cfg.fps)
        self._prerender = prerender
        self._stream: SyntheticStream | None = None
        self._cache: np.ndarray | None = None

    # -- device lifecycle ---------------------------------------------------------------
    def initialize(self) -> None:
        """Build the stream now (not on the first frame), and pre-render it if asked."""
        self._ensure_ready()

    def _ensure_ready(self) -> SyntheticStream:
        if self._stream is None:
            self._stream = SyntheticStream(self._cfg)
            # the first frame pays one-off costs (buffers, code paths warming up) that would
            # otherwise count as the camera falling behind and skip frames at the start
            self._stream.render(0)
        if self._prerender and self._cache is None:
            s = self._stream
            cache = np.empty((len(s), *s.shape), s.dtype)
            for i in range(len(s)):
                s.render(i, out=cache[i])
            self._cache = cache
        return self._stream

    def _reconfigure(self, **changes: object) -> None:
        self._cfg = dataclasses.replace(self._cfg, **changes)  # type: ignore[arg-type]
        self._fps = float(self._cfg.fps)
        self._stream = self._cache = None

    @property
    def stream(self) -> SyntheticStream:
        """The synthetic stream (with its ground truth) this camera plays."""
        return self._ensure_ready()

    # -- properties -------------------------------------------------------------------
    def get_exposure(self) -> float:
        """Exposure in ms; the camera free-runs at one frame per exposure."""
        return 1000.0 / self._fps

    def set_exposure(self, exposure: float) -> None:
        """Set the exposure in ms, hence the frame rate."""
        exposure = float(exposure)  # a configuration file hands strings
        if not exposure > 0:
            raise ValueError(f"exposure must be positive, got {exposure}")
        self._fps = 1000.0 / exposure

    @pymm_property(is_pre_init=True, name="Width")
    def width(self) -> int:
        """Frame width in pixels."""
        return self._cfg.width

    @width.setter  # type: ignore[no-redef]
    def width(self, value: int) -> None:
        self._reconfigure(width=int(value))

    @pymm_property(is_pre_init=True, name="Height")
    def height(self) -> int:
        """Frame height in pixels."""
        return self._cfg.height

    @height.setter  # type: ignore[no-redef]
    def height(self, value: int) -> None:
        self._reconfigure(height=int(value))

    @pymm_property(is_pre_init=True, name="Seed")
    def seed(self) -> int:
        """Seed of every random choice of the simulated session."""
        return self._cfg.seed

    @seed.setter  # type: ignore[no-redef]
    def seed(self, value: int) -> None:
        self._reconfigure(seed=int(value))

    @pymm_property(is_pre_init=True, name="StreamFrames")
    def stream_frames(self) -> int:
        """Length of the simulated session in frames (it loops)."""
        return self._cfg.n_frames

    @stream_frames.setter  # type: ignore[no-redef]
    def stream_frames(self, value: int) -> None:
        self._reconfigure(n_frames=int(value))

    @pymm_property(is_pre_init=True, allowed_values=["RGB", "Mono"], name="Color")
    def color(self) -> str:
        """RGB interferometer camera or monochrome."""
        return "RGB" if self._cfg.rgb else "Mono"

    @color.setter  # type: ignore[no-redef]
    def color(self, value: str) -> None:
        self._reconfigure(rgb=value == "RGB")

    @pymm_property(is_pre_init=True, allowed_values=["8", "16"], name="BitDepth")
    def bit_depth(self) -> str:
        """Bits per sample."""
        return str(self._cfg.bit_depth)

    @bit_depth.setter  # type: ignore[no-redef]
    def bit_depth(self, value: str) -> None:
        self._reconfigure(bit_depth=int(value))

    @pymm_property(allowed_values=["Off", "On"], name="Prerender")
    def prerender(self) -> str:
        """Render the whole stream into memory once (for high frame rates)."""
        return "On" if self._prerender else "Off"

    @prerender.setter  # type: ignore[no-redef]
    def prerender(self, value: str) -> None:
        self._prerender = value == "On"
        if not self._prerender:
            self._cache = None

    # -- acquisition ------------------------------------------------------------------
    def shape(self) -> tuple[int, int] | tuple[int, int, int]:
        """Frame shape, (H, W) or (H, W, 3)."""
        c = self._cfg
        return (c.height, c.width, 3) if c.rgb else (c.height, c.width)

    def dtype(self) -> DTypeLike:
        """uint8 or uint16."""
        return np.uint8 if self._cfg.bit_depth == 8 else np.uint16

    def start_sequence(
        self, n: int | None, get_buffer: Callable[[Sequence[int], DTypeLike], np.ndarray]
    ) -> Iterator[Mapping]:
        """Render frames into the core's buffer, one per exposure, paced by the clock.

        The camera exposes on a clock of one slot per exposure. Producing a frame (its
        readout, here the rendering) that takes longer than a slot makes the next exposure
        wait for a later slot: a camera that cannot keep up runs evenly slower, as hardware
        does. It holds ``onboard_s`` of frames it could not yet deliver (a busy moment delays
        frames; they keep their times and count as late); further behind, the slots missed
        were never exposed. So ``tfll.time_s`` is always the time the frame shows and
        ``tfll.readout_time`` when it was due out of the camera.
        """
        stream = self._ensure_ready()
        cache, fps, stream_fps = self._cache, self._fps, float(self._cfg.fps)
        shape, dtype = self.shape(), self.dtype()
        held_slots = self._onboard_s * fps
        exposure = f"{1000.0 / fps:.4f}"
        t0 = wall0 = 0.0
        k = 0
        slot = 0
        step = 1  # slots one frame takes (more when producing it is slower than a slot)
        produce_s: deque[float] = deque(maxlen=15)  # recent times to produce a frame
        while n is None or k < n:
            buf = get_buffer(shape, dtype)
            if k == 0:  # the clock starts with the first exposure, once the core has a buffer
                t0, wall0 = time.perf_counter(), time.time()  # (allocating it can take 0.3 s)
            now_slot = (time.perf_counter() - t0) * fps
            if now_slot > slot + 1 + held_slots:  # more behind than its memory holds
                slot = math.ceil(now_slot)  # the slots in between were never exposed
            t_s = slot / fps
            src = round(t_s * stream_fps) % len(stream)
            started = time.thread_time()  # its CPU time: waits for the machine are not its pace
            if cache is not None:
                np.copyto(buf, cache[src])
            else:
                stream.render(src, out=buf)
            took = time.thread_time() - started
            produce_s.append(took)
            # the frame is "read out" at the end of its exposure, or once it is produced
            readout_slot = slot + step
            delay = t0 + readout_slot / fps - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            yield {
                KEY_TIME_S: repr(t_s),
                KEY_READOUT: repr(wall0 + readout_slot / fps),
                KEY_FRAME: str(k),
                KEY_SOURCE_FRAME: str(src),
                "Exposure-ms": exposure,
            }
            k += 1
            slot += step
            # by the median: a moment's delay is held on board, a lasting slowness slows the rate
            step = max(1, math.ceil(statistics.median(produce_s) * fps - 0.1))
