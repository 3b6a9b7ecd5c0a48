"""Textual's footer, showing the keys that fit (the ones a person needs most always), rebuilt
only when what it shows has changed."""

from __future__ import annotations

from rich.cells import cell_len
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.dom import NoScreen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

Key = tuple[Binding, bool, str]
"""A binding, whether it works now, its tooltip."""
ESSENTIAL = frozenset({"help", "quit"})
"""Actions whose keys are shown whatever the width (with the command palette's, docked right)."""
# A screen may also say, by key name, the order in which its other keys claim the room left
# (`FOOTER_ORDER = ("r", "x", ...)`; keys it does not name come after, in binding order).
PALETTE_WIDTH_EXTRA = 2
"""The palette key's left border and right padding (Footer's CSS)."""


class KeysFooter(Footer):
    """Textual's footer lays every key out in a row and cuts what does not fit: at 80 columns
    the accounts screen's footer ended in "c", hiding `/`, `?` and `q`. This one shows the
    essential keys (help, quit; the palette on the right) always, then the others in their
    order as long as they fit, skipping one that does not for a shorter one after it.

    Bindings are refreshed on every focus change and every new selection, and Textual's
    footer rebuilds all its key widgets each time. Most of those refreshes change nothing it
    shows, and rebuilding was the costliest part of drawing the first screen: skip them.
    """

    def __init__(self) -> None:
        super().__init__()
        self._shown: tuple[object, ...] | None = None
        self._layout: tuple[list[Key], Key | None] | None = None
        """What recompose just worked out, for compose to use."""

    def key_width(self, binding: Binding) -> int:
        """Cells a FooterKey takes: " key " then "description " (Footer's CSS, not compact)."""
        return cell_len(self.app.get_key_display(binding)) + cell_len(binding.description) + 3

    def plan_keys(self, width: int) -> tuple[list[Key], Key | None]:
        """The keys to show in `width` cells, in the screen's order of need, and the palette's
        key: the essential keys (help, quit, and whatever the screen's `footer_essentials()`
        says matters now) claim their room first, then each other key that still fits."""
        active = self.screen.active_bindings  # computed once: Textual builds it anew each time
        seen: dict[str, Key] = {}
        for _, binding, enabled, tooltip in active.values():
            if binding.show and binding.action not in seen:
                seen[binding.action] = (binding, enabled, tooltip)
        # the screen's order of need (FOOTER_ORDER, by key), then the rest in binding order
        order: tuple[str, ...] = getattr(self.screen, "FOOTER_ORDER", ())
        keys = sorted(seen.values(), key=lambda key: order.index(key[0].key) if key[0].key in order else len(order))
        essential = ESSENTIAL | getattr(self.screen, "footer_essentials", frozenset)()
        palette = None
        if self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE:
            found = active.get(self.app.COMMAND_PALETTE_BINDING)
            if found is not None:
                palette = (found[1], found[2], found[3])
                width -= self.key_width(found[1]) + PALETTE_WIDTH_EXTRA
        room = width - sum(self.key_width(b) for b, _, _ in keys if b.action in essential)
        chosen = []
        for key in keys:
            if key[0].action in essential:
                chosen.append(key)
            elif self.key_width(key[0]) <= room:
                room -= self.key_width(key[0])
                chosen.append(key)
        return chosen, palette

    def compose(self) -> ComposeResult:
        if not self._bindings_ready:
            return
        keys, palette = self._layout if self._layout is not None else self.plan_keys(self.width_now())
        self._layout = None
        for binding, enabled, tooltip in keys:
            yield FooterKey(binding.key, self.app.get_key_display(binding), binding.description, binding.action,
                            disabled=not enabled, tooltip=tooltip).data_bind(compact=Footer.compact)
        if palette is not None:
            binding, enabled, _ = palette
            yield FooterKey(binding.key, self.app.get_key_display(binding), binding.description, binding.action,
                            classes="-command-palette", disabled=not enabled,
                            tooltip=binding.tooltip or binding.description)

    def width_now(self) -> int:
        return self.size.width or self.app.size.width

    def on_resize(self, event: events.Resize) -> None:
        self.call_after_refresh(self.recompose)  # other keys may fit now

    async def recompose(self) -> None:
        try:
            layout = self.plan_keys(self.width_now())
        except NoScreen:  # a dialog that has just closed
            return
        keys, palette = layout
        shown = (tuple((b.key, b.description, enabled, tooltip) for b, enabled, tooltip in keys),
                 palette is not None and palette[1], self.compact)
        if shown == self._shown:
            return
        self._shown, self._layout = shown, layout
        await super().recompose()
