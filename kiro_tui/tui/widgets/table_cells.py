"""The accounts table's cells: small immutable objects made into a rich Text only when drawn,
and shared where the text and style are the same (see `Cell`)."""

from __future__ import annotations

from functools import lru_cache

from rich.cells import cell_len
from rich.style import Style
from rich.text import Span, Text


class Cell:
    """One cell: its text, style and spans, made into a rich Text only when it is drawn.

    A Text per cell held 90,000 of them at 10,000 accounts, with their lists and a copy of each
    string: about a sixth of the TUI's memory. Cells are immutable, and all but the names are
    shared (`shared_cell`): a column of "Builder ID" or "in 20 min" is one object. A cell is a
    renderable (`__rich__`) rather than a string, which DataTable would read as markup ("[/]" in a
    label would crash the table).
    """

    __slots__ = ("plain", "style", "spans", "ellipsis")

    def __init__(self, plain: str, style: Style | str = "", spans: tuple[Span, ...] = (),
                 ellipsis: bool = False) -> None:
        self.plain, self.style, self.spans, self.ellipsis = plain, style, spans, ellipsis

    def __rich__(self) -> Text:
        if self.ellipsis:
            return Text(self.plain, style=self.style, spans=list(self.spans), overflow="ellipsis", no_wrap=True)
        return Text(self.plain, style=self.style, spans=list(self.spans))

    def __str__(self) -> str:
        return self.plain

    @property
    def cell_len(self) -> int:
        return cell_len(self.plain)


@lru_cache(maxsize=4096)
def shared_cell(plain: str, style: Style | str = "", spans: tuple[Span, ...] = (), ellipsis: bool = False) -> Cell:
    """The one cell for this text and style (a bounded cache: one dropped is made again)."""
    return Cell(plain, style, spans, ellipsis)


def text_cell(text: Text) -> Cell:
    """The shared cell for a Text assembled from parts (its spans kept)."""
    return shared_cell(text.plain, text.style, tuple(text.spans))
