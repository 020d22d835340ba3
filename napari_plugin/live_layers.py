"""The live view's napari layers: camera image, tracked features, trajectories, pupil and lid.

``LiveLayers.show`` is called on the Qt main thread at display rate with the newest frame and
its ``FrameResult``; it only converts result fields to layer data (``layer_data``). The
stabilized view moves every layer by the eye's motion through the layers' ``translate``
(no pixel is resampled), so the overlays stay registered to the image they belong to.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from tfll_live.tracking import FrameResult

from .layer_data import (
    displacement_colors,
    eye_state_text,
    lid_path,
    points_yx,
    pupil_ellipse,
)

if TYPE_CHECKING:
    import napari

IMAGE = "TFLL camera"
POINTS = "TFLL features"
TRACKS = "TFLL tracks"
ANATOMY = "TFLL pupil & lid"

PUPIL_COLOR = np.array([0.2, 1.0, 0.2, 1.0])
LID_COLOR = np.array([1.0, 0.9, 0.1, 1.0])
OPEN_COLOR = (0.3, 1.0, 0.3, 1.0)
BLINK_COLOR = (1.0, 0.55, 0.1, 1.0)
ANATOMY_TOLERANCE_PX = 0.5
TEXT_PERIOD_S = 0.25
GLYPHS = "OPEN BLINK interval tau 0123456789 .-s"


def text_overlay(viewer: napari.Viewer) -> Any:
    """Return the canvas text overlay (``viewer.canvas.overlays.text`` since napari 0.9)."""
    canvas = getattr(viewer, "canvas", None)
    if canvas is not None and hasattr(canvas, "overlays"):
        return canvas.overlays.text
    return viewer.text_overlay  # napari < 0.9


def _translate(layer: Any, shift: tuple[float, float]) -> None:
    """Set a layer's translate only when it changes (each change re-derives the viewer's dims)."""
    if not np.allclose(layer.translate[-2:], shift):
        layer.translate = shift


class LiveLayers:
    """Creates the live layers on first use and updates them in place afterwards."""

    def __init__(self, viewer: napari.Viewer) -> None:
        self.viewer = viewer
        self.dy_limit_px = 5.0  # colour scale of feature displacement, grows with the interval
        self._interval: int | None = None
        self._tracks_hidden = False  # hidden by us because empty, not by the user
        self._overlay_ready = False
        self._anatomy_drawn = np.zeros(0)  # the outlines' vertices as last drawn
        self._text_state: str | None = None  # eye state and time of the canvas text
        self._text_at = 0.0
        self._anatomy_kinds: list[str] = []
        self._blank = False  # the camera layer shows the placeholder, not a frame
        viewer.layers.events.removed.connect(self._on_removed)

    def _on_removed(self, event: Any) -> None:
        """Without the camera layer, the canvas line about the eye state is stale: hide it."""
        if getattr(event, "value", None) is not None and event.value.name == IMAGE:
            text_overlay(self.viewer).visible = False
            self._overlay_ready, self._text_state = False, None

    # -- layers, created lazily (and again if the user deleted one) ----------------------------
    def _get(self, name: str) -> Any:
        return self.viewer.layers[name] if name in self.viewer.layers else None  # noqa: SIM401

    def _image(self, frame: np.ndarray) -> Any:
        layer = self._get(IMAGE)
        rgb = frame.ndim == 3 and frame.shape[-1] in (3, 4)
        if layer is not None and (layer.rgb != rgb or layer.data.ndim != frame.ndim):
            self.viewer.layers.remove(layer)  # the camera changed between mono and colour
            layer = None
        if layer is None:
            layer = self.viewer.add_image(frame, name=IMAGE, rgb=rgb)
            for name in (TRACKS, ANATOMY, POINTS):  # overlays stay on top of the image
                if name in self.viewer.layers:
                    self.viewer.layers.move(self.viewer.layers.index(name), -1)
        elif self._blank:  # the first frame after the placeholder: its own contrast
            layer.data = frame
            if not rgb:
                layer.reset_contrast_limits_range()
                layer.reset_contrast_limits()
        elif layer.data.shape != frame.shape or layer.data.dtype != frame.dtype:
            layer.data = frame  # a new camera size or bit depth: the viewer's ranges change
            if not rgb:
                layer.reset_contrast_limits_range()
        else:
            with self._quietly(layer):
                layer.data = frame
        self._blank = False
        return layer

    def _points(self) -> Any:
        layer = self._get(POINTS)
        if layer is None:
            h = self._frame_height()
            layer = self.viewer.add_points(
                np.zeros((0, 2)), name=POINTS, size=max(4.0, h / 80.0), border_width=0.15,
                border_color="black", face_color="white",
            )
        return layer

    def _tracks(self, tracks: np.ndarray) -> Any:
        layer = self._get(TRACKS)
        if layer is None:
            layer = self.viewer.add_tracks(
                tracks, name=TRACKS, tail_width=1.5, tail_length=1, head_length=0,
                colormap="turbo", blending="translucent",
            )
            self.viewer.layers.move(self.viewer.layers.index(TRACKS), -1)
            if POINTS in self.viewer.layers:  # keep the features above their trajectories
                self.viewer.layers.move(self.viewer.layers.index(POINTS), -1)
        return layer

    def _anatomy(self) -> Any:
        layer = self._get(ANATOMY)
        if layer is None:
            layer = self.viewer.add_shapes(name=ANATOMY, edge_width=2.0, face_color="transparent",
                                           blending="translucent")
        return layer

    def _frame_height(self) -> int:
        img = self._get(IMAGE)
        return 480 if img is None else int(img.data.shape[0])

    @staticmethod
    def _quietly(layer: Any) -> Any:
        """Replace a layer's data without the viewer re-deriving its dims for it.

        Overlays lie within the camera image; a new frame of the same size leaves the viewer's
        ranges as they were, but napari recomputes them (and the layer list repaints the
        layer's row) on each ``data`` event: a third to a half of an update's time. Only that
        event is held back (the canvas redraws on ``set_data``); public API only.
        """
        return layer.events.data.blocker()

    # -- updates --------------------------------------------------------------------------------
    def placeholder(self, shape: tuple[int, ...], dtype: Any) -> bool:
        """A blank camera image of the coming frames' size, until the first frame arrives.

        Added as streaming starts, it takes napari's welcome screen away at once and sets the
        view's extent, so the first frame neither flashes the welcome screen nor moves the view.
        A camera layer already there (a previous run) stays as it is. Whether one was added.
        """
        if self._get(IMAGE) is not None:
            return False
        self._image(np.zeros(shape, dtype))
        self._blank = True
        self.viewer.reset_view()
        return True

    def remove_placeholder(self) -> None:
        """Take the blank image away again (the camera did not start)."""
        layer = self._get(IMAGE)
        if layer is not None and self._blank:
            self.viewer.layers.remove(layer)
        self._blank = False

    def show(self, frame: np.ndarray, result: FrameResult, tracks: np.ndarray | None = None,
             stabilized: bool = False) -> None:
        """Draw ``frame`` with ``result``'s overlays; ``tracks`` are ``[id, t, y, x]`` rows."""
        shift = (-result.eye_dy_px, -result.eye_dx_px) if stabilized else (0.0, 0.0)
        image = self._image(frame)
        _translate(image, shift)
        self._show_points(result, shift)
        self._show_anatomy(result, frame.shape[1], shift)
        if tracks is not None:
            self.show_tracks(tracks)
        elif self._get(TRACKS) is None:
            # create the tracks layer now, with one zero-length track that draws nothing, so
            # its set-up (and shader compilation) happens at start, not in the middle of live
            h, w = frame.shape[:2]
            self._tracks(np.array([[0, 0, h / 2, w / 2], [0, 0, h / 2, w / 2]], float))
        overlay = text_overlay(self.viewer)
        if not self._overlay_ready:
            overlay.position, overlay.font_size, overlay.visible = "top_left", 14, True
            self._overlay_ready = True
            # every glyph the text will need, drawn once (transparent) at start: rendering a
            # glyph the first time it appears costs a paint tens of ms in the middle of live
            overlay.text, overlay.color = GLYPHS, (0.0, 0.0, 0.0, 0.0)
            self._text_state = None
            return
        # re-laying out the text is a large part of a paint: a new eye state shows at once,
        # a new tau at most every TEXT_PERIOD_S
        state = result.state.value
        now = time.monotonic()
        if state != self._text_state or now - self._text_at >= TEXT_PERIOD_S:
            overlay.text = eye_state_text(result)
            overlay.color = BLINK_COLOR if state == "blink" else OPEN_COLOR
            self._text_state, self._text_at = state, now

    def _show_points(self, result: FrameResult, shift: tuple[float, float]) -> None:
        if result.interval != self._interval:
            self._interval, self.dy_limit_px = result.interval, 5.0
        dy = np.asarray(result.point_dy_px, float)
        if dy.size:
            self.dy_limit_px = max(self.dy_limit_px, float(np.nanmax(np.abs(dy), initial=0.0)))
        layer = self._points()
        yx = points_yx(result.points)
        with self._quietly(layer):
            layer.data = yx
            if len(yx):
                layer.face_color = displacement_colors(
                    dy if dy.size == len(yx) else np.zeros(len(yx)), self.dy_limit_px
                )
        _translate(layer, shift)

    def _show_anatomy(self, result: FrameResult, width: int, shift: tuple[float, float]) -> None:
        shapes: list[tuple[np.ndarray, str]] = []
        colors = []
        if result.pupil is not None:
            shapes.append((pupil_ellipse(result.pupil), "ellipse"))
            colors.append(PUPIL_COLOR)
        if result.lid is not None:
            shapes.append((lid_path(result.lid, width), "path"))
            colors.append(LID_COLOR)
        layer = self._anatomy()
        # re-triangulating shapes is the costliest update: only when an outline moved by more
        # than ANATOMY_TOLERANCE_PX (under a screen pixel at a frame-filling zoom)
        vertices = np.concatenate([v.ravel() for v, _ in shapes]) if shapes else np.zeros(0)
        kinds = [kind for _, kind in shapes]
        drawn = self._anatomy_drawn
        moved = (
            kinds != self._anatomy_kinds
            or drawn.shape != vertices.shape
            or len(layer.data) != len(shapes)
            or bool(np.any(np.abs(vertices - drawn) > ANATOMY_TOLERANCE_PX))
        )
        if moved:
            with self._quietly(layer):
                layer.data = shapes  # keeps each shape's colour when the kinds are unchanged
            if shapes and kinds != self._anatomy_kinds:
                layer.edge_color = np.array(colors)
            self._anatomy_drawn, self._anatomy_kinds = vertices, kinds
        _translate(layer, shift)

    def show_tracks(self, tracks: np.ndarray) -> None:
        """Replace the trajectories (already in the coordinates of the current view).

        napari's tracks layer cannot hold zero tracks, so an empty history (a blink, a new
        interval) hides the layer instead; it comes back with the next trajectories unless the
        user hid it.
        """
        layer = self._get(TRACKS)
        if not len(tracks):
            if layer is not None and layer.visible:
                layer.visible = False
                self._tracks_hidden = True
            return
        if layer is None:
            self._tracks(tracks)
            return
        with self._quietly(layer):
            layer.data = tracks
        if self._tracks_hidden:
            layer.visible, self._tracks_hidden = True, False
