"""Textual's footer, rebuilt only when the keys it shows have changed."""

from __future__ import annotations

from textual.dom import NoScreen
from textual.widgets import Footer


class KeysFooter(Footer):
    """Bindings are refreshed on every focus change and every new selection, and Textual's
    footer rebuilds all its key widgets each time. Most of those refreshes change nothing it
    shows, and rebuilding was the costliest part of drawing the first screen: skip them.
    """

    def __init__(self) -> None:
        super().__init__()
        self._shown: tuple[object, ...] | None = None

    def shown_keys(self) -> tuple[object, ...]:
        """What the footer would show now: each key, its label, whether it works, its tooltip."""
        keys = tuple(
            (binding.key, binding.description, enabled, tooltip)
            for (_, binding, enabled, tooltip) in self.screen.active_bindings.values()
            if binding.show
        )
        return keys, self.compact, self.show_command_palette

    async def recompose(self) -> None:
        try:
            shown = self.shown_keys()
        except NoScreen:  # a dialog that has just closed
            return
        if shown == self._shown:
            return
        self._shown = shown
        await super().recompose()
