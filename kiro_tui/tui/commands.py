"""The command palette: the accounts screen's key bindings that work right now, by their own
descriptions and tooltips (keys are defined once, in the bindings; the help is made from them too)."""

from __future__ import annotations

from functools import partial

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

PALETTE_SKIPS = {"quit", "clear_filter", "command_palette"}


class AccountCommands(Provider):
    def _available(self) -> list[tuple[str, str, str]]:
        """(action, name, help) for every binding of the screen and its table that works now."""
        screen = self.screen
        found: dict[str, tuple[str, str, str]] = {}
        own = {binding.action for binding in screen.BINDINGS if isinstance(binding, Binding)} | {"select_cursor"}
        for _, binding, enabled, tooltip in screen.active_bindings.values():
            action = binding.action.removeprefix("screen.")
            # the screen's own actions and the table's enter: not cursor keys, scrolling or focus
            if enabled and action in own and action not in PALETTE_SKIPS and action not in found:
                name = "Fix login" if action == "select_cursor" else binding.description
                found[action] = ("resolve" if action == "select_cursor" else action, name, tooltip or name)
        return list(found.values())

    async def discover(self) -> Hits:
        for action, name, help_text in self._available():
            yield DiscoveryHit(name, partial(self.screen.run_action, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for action, name, help_text in self._available():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), partial(self.screen.run_action, action), help=help_text)
