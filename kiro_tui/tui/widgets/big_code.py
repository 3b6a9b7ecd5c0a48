"""A device user code in large type, readable from across the room (3-row box-drawing glyphs)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

_GLYPHS = {
    "A": ("╭─╮", "├─┤", "╵ ╵"), "B": ("┌─╮", "├─┤", "└─╯"), "C": ("╭─╴", "│  ", "╰─╴"),
    "D": ("┌─╮", "│ │", "└─╯"), "E": ("┌─╴", "├─ ", "└─╴"), "F": ("┌─╴", "├─ ", "╵  "),
    "G": ("╭─╴", "│╶╮", "╰─╯"), "H": ("╷ ╷", "├─┤", "╵ ╵"), "I": ("╶┬╴", " │ ", "╶┴╴"),
    "J": ("  ╷", "  │", "╰─╯"), "K": ("╷ ╱", "├┤ ", "╵ ╲"), "L": ("╷  ", "│  ", "└─╴"),
    "M": ("╭┬╮", "│││", "╵╵╵"), "N": ("╭─╮", "│ │", "╵ ╵"), "O": ("╭─╮", "│ │", "╰─╯"),
    "P": ("┌─╮", "├─╯", "╵  "), "Q": ("╭─╮", "│ │", "╰─┼"), "R": ("┌─╮", "├┬╯", "╵╰╴"),
    "S": ("╭─╴", "╰─╮", "╶─╯"), "T": ("╶┬╴", " │ ", " ╵ "), "U": ("╷ ╷", "│ │", "╰─╯"),
    "V": ("╷ ╷", "╲ ╱", " ╵ "), "W": ("╷╷╷", "│││", "╰┴╯"), "X": ("╲ ╱", " ╳ ", "╱ ╲"),
    "Y": ("╷ ╷", "╰┬╯", " ╵ "), "Z": ("╶─┐", " ╱ ", "└─╴"),
    "0": ("╭─╮", "│╱│", "╰─╯"), "1": ("╶┐ ", " │ ", "╶┴╴"), "2": ("╶─╮", "┌─╯", "└─╴"),
    "3": ("╶─╮", " ─┤", "╶─╯"), "4": ("╷ ╷", "╰─┤", "  ╵"), "5": ("┌─╴", "╰─╮", "╶─╯"),
    "6": ("╭─╴", "├─╮", "╰─╯"), "7": ("╶─┐", "  │", "  ╵"), "8": ("╭─╮", "├─┤", "╰─╯"),
    "9": ("╭─╮", "╰─┤", "╶─╯"), "-": ("   ", "╶─╴", "   "), " ": ("   ", "   ", "   "),
}


def render_big(code: str) -> str:
    """Three rows of equal width: trailing spaces are kept, so a centred block stays aligned
    (stripping them made rows of different widths, each centred on its own)."""
    rows = ["", "", ""]
    for char in code.upper():
        glyph = _GLYPHS.get(char, ("   ", f" {char} ", "   "))
        for i in range(3):
            rows[i] += glyph[i] + " "
    return "\n".join(row[:-1] for row in rows)


class BigCode(Static):
    """Shows `code` in large type; the plain code stays selectable in `plain`."""

    def __init__(self, code: str = "", **kwargs: Any) -> None:  # Static's own keywords, passed on
        super().__init__(**kwargs)
        self.plain = code
        self.show(code)

    def show(self, code: str) -> None:
        self.plain = code
        self.update(Text(render_big(code)) if code else "")
