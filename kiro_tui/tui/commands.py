"""The command palette: the accounts screen's actions, only those that work right now."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

# (action, name in the palette, help)
ACCOUNT_COMMANDS = (
    ("import", "Import from kiro-cli", "Re-read every login in kiro-cli's database"),
    ("refresh", "Refresh selected account", "Refresh the highlighted account now"),
    ("refresh_all", "Refresh all accounts", "Refresh every account now"),
    ("login", "Log in with a device code", "AWS Builder ID or an IAM Identity Center portal"),
    ("profile", "Choose profile", "Pick the profile ARN of the highlighted account"),
    ("mode", "Change mode", "sync, follow or own for the highlighted account"),
    ("copy_token", "Copy access token", "Copy the highlighted account's access token (asks first)"),
    ("remove", "Remove account", "Remove the highlighted account from kiro-tui (asks first)"),
    ("resolve", "Fix login", "Re-import or log in again for an account that needs it"),
    ("filter", "Filter accounts", "Show only accounts matching some text"),
    ("help", "Help", "Every key and what the health words mean"),
)


class AccountCommands(Provider):
    def _available(self) -> list[tuple[str, str, str]]:
        screen = self.screen
        return [c for c in ACCOUNT_COMMANDS if screen.check_action(c[0], ()) is True]

    async def discover(self) -> Hits:
        for action, name, help_text in self._available():
            yield DiscoveryHit(name, partial(self.screen.run_action, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for action, name, help_text in self._available():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), partial(self.screen.run_action, action), help=help_text)
