"""A label that keeps its height whatever it says, so a changing status never moves a control."""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import QEvent, Qt
from qtpy.QtGui import QFontMetrics
from qtpy.QtWidgets import QLabel, QSizePolicy, QWidget


def wrap_lines(
    text: str,
    metrics: QFontMetrics,
    width: int,
    n_lines: int,
    elide: Qt.TextElideMode,
    wrap: bool = True,
) -> list[str]:
    """``text`` word-wrapped to ``width`` px in at most ``n_lines`` lines, the rest elided.

    Explicit newlines start a new line; a word wider than the line (a path) is elided itself.
    ``wrap=False``: one line per explicit line, each elided (a status of fixed lines).
    """
    out: list[str] = []
    for paragraph in text.split("\n"):
        if not wrap:
            out.append(paragraph)
            continue
        line = ""
        for word in paragraph.split(" "):
            trial = f"{line} {word}" if line else word
            if line and metrics.horizontalAdvance(trial) > width:
                out.append(line)
                line = word
            else:
                line = trial
        out.append(line)
    if len(out) > n_lines:  # what does not fit goes into the last line, elided
        out = [*out[: n_lines - 1], " ".join(out[n_lines - 1 :])]
    return [metrics.elidedText(line, elide, width) for line in out]


class FixedLabel(QLabel):
    """``n_lines`` lines of text at a fixed height; longer text is elided (all of it: tooltip).

    A word-wrapped QLabel grows and shrinks with its text and pushes every widget below it
    around while live; this one wraps and elides itself inside a constant box, and never asks
    the dock for more width. ``text()`` is the full text.
    """

    def __init__(
        self,
        text: str = "",
        n_lines: int = 1,
        elide: Qt.TextElideMode = Qt.TextElideMode.ElideRight,
        wrap: bool = True,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.n_lines, self.elide, self.wrap = n_lines, elide, wrap
        self._full = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.setWordWrap(False)
        self._fix_height()
        self.setText(text)

    def text(self) -> str:
        """The full text (the label may show it elided)."""
        return self._full

    def setText(self, text: str | None) -> None:
        """Show ``text`` (wrapped and elided to the fixed box)."""
        self._full = text or ""
        self.setToolTip(self._full if self._full else "")
        self._relayout()

    def _fix_height(self) -> None:
        m = self.contentsMargins()
        self.setFixedHeight(
            self.fontMetrics().lineSpacing() * self.n_lines + 4 + m.top() + m.bottom()
        )

    def _relayout(self) -> None:
        width = max(self.contentsRect().width() - 2, 20)
        lines = wrap_lines(
            self._full, self.fontMetrics(), width, self.n_lines, self.elide, self.wrap
        )
        super().setText("\n".join(lines))

    def resizeEvent(self, event: Any) -> None:
        """Re-wrap for the new width."""
        super().resizeEvent(event)
        self._relayout()

    def changeEvent(self, event: Any) -> None:
        """Keep room for exactly n lines when the font changes (napari's stylesheet, docked)."""
        super().changeEvent(event)
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.StyleChange):
            self._fix_height()
            self._relayout()
