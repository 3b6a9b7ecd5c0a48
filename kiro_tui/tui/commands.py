"""The command palette: the accounts screen's key bindings that work right now, by their own
descriptions and tooltips (keys are defined once, in the bindings; the help is made from them too)."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

PALETTE_SKIPS = {"quit", "clear_filter", "command_palette"}


class AccountCommands(Provider):
    def _available(self) -> list[tuple[str, str, str]]:
        """(action, name, help) for every binding of the screen and its table that works now."""
        screen = self.screen
        found: dict[str, tuple[str, str, str]] = {}
        for _, binding, enabled, tooltip in screen.active_bindings.values():
            action = binding.action.removeprefix("screen.")
            if enabled and action not in PALETTE_SKIPS and action not in found:
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
