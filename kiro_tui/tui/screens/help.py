"""Every key (from the screen's own bindings: defined once), what the statuses mean, the modes."""

from __future__ import annotations

from datetime import timedelta

import humanize
from rich.console import Group
from rich.padding import Padding
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import ActiveBinding, Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from kiro_tui.core.models import DEFAULT_QUOTA_WARNING, DEFAULT_REFRESH_WINDOW
from kiro_tui.tui.widgets.keys_footer import KeysFooter


def statuses(window: timedelta, quota_warning: float) -> str:
    """What each status word means, with this configuration's refresh window and quota warning."""
    minutes = humanize.naturaldelta(window)
    return f"""\
  fresh        the access token is good for more than the refresh window
  expiring     inside the refresh window ({minutes}): refreshed now
               (in follow mode, by kiro-cli when it next runs)
  expired      the access token has expired
               (follow mode, or refreshes keep failing)
  refreshing   a refresh is under way (here or in another kiro-tui)
  retrying     a passing error: kiro-tui backs off and tries again
  NEEDS LOGIN  the refresh token or client registration is dead:
               press enter on it to re-import or log in again
  suspended    AWS suspended the account
  quota low    {quota_warning:.0%} or more of this month's requests used
  over quota   all of them used (the reset date is in the details)
  !            a token held in memory, or a copy that could not be written
               (the detail panel says which)

Usage: requests used of the month's limit, ▰▰▰▱▱  62%; ~ marks figures that
may be out of date (the last fetch failed, or they are over an hour old)."""


MODES = """\
  sync    refresh, and write the new token back where it came from
  follow  never refresh; mirror the place it came from (kiro-cli)
  own     refresh independently; never touch the place it came from"""


def key_name(key: str) -> str:
    return {"slash": "/", "question_mark": "?", "escape": "esc", "delete": "del"}.get(key, key)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "close", "Close")]

    def __init__(self, bindings: dict[str, ActiveBinding], window: timedelta = DEFAULT_REFRESH_WINDOW,
                 quota_warning: float = DEFAULT_QUOTA_WARNING) -> None:
        super().__init__()
        self.window, self.quota_warning = window, quota_warning
        self.keys: list[tuple[str, str]] = []
        quiet: list[tuple[str, str]] = []
        seen: set[str] = set()
        for key, (_, binding, _, tooltip) in bindings.items():
            # the keys in the footer, then quiet keys with words of their own (home, end, ctrl+p)
            if (binding.show or tooltip) and binding.description and binding.action not in seen:
                seen.add(binding.action)
                (self.keys if binding.show else quiet).append((key_name(key), tooltip or binding.description))
        self.keys += quiet
        if "command_palette" not in seen:
            self.keys.append(("ctrl+p", "command palette: every action by name"))

    def compose(self) -> ComposeResult:
        intro = Text()
        intro.append("kiro-tui", style="bold")
        intro.append(" keeps your Kiro / CodeWhisperer logins fresh.\n\n")
        intro.append("Keys", style="bold")
        # a grid, so a description too long for 80 columns wraps under itself, not under the keys
        keys = Table.grid(padding=(0, 1))
        keys.add_column(style="bold", min_width=8, no_wrap=True)
        keys.add_column()
        for key, what in self.keys:
            keys.add_row(key, what)
        rest = Text()
        rest.append("\nStatus\n", style="bold")
        rest.append(statuses(self.window, self.quota_warning) + "\n\n")
        rest.append("Modes\n", style="bold")
        rest.append(MODES + "\n")
        with VerticalScroll(classes="dialog help"):
            yield Static(Group(intro, Padding(keys, (0, 0, 0, 2)), rest))
        yield KeysFooter()

    def action_close(self) -> None:
        self.dismiss(None)
