"""Every key (from the screen's own bindings: defined once), what the statuses mean, the modes."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from kiro_tui.tui.widgets.keys_footer import KeysFooter

STATUSES = """\
  fresh        the access token is good for more than the refresh window
  expiring     inside the refresh window (10 minutes): refreshed now
  refreshing   a refresh is under way (here or in another kiro-tui)
  retrying     a passing error: kiro-tui backs off and tries again
  NEEDS LOGIN  the refresh token or client registration is dead:
               press enter on it to re-import or log in again
  suspended    AWS suspended the account
  quota low    90 % or more of this month's requests used; over quota: all
  !            a token held in memory, or a copy that could not be written
               (the detail panel says which)"""

MODES = """\
  sync    refresh, and write the new token back where it came from
  follow  never refresh; mirror the place it came from (kiro-cli)
  own     refresh independently; never touch the place it came from"""


def key_name(key: str) -> str:
    return {"slash": "/", "question_mark": "?", "escape": "esc", "delete": "del"}.get(key, key)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "close", "Close")]

    def __init__(self, bindings: dict[str, object]) -> None:
        super().__init__()
        self.keys: list[tuple[str, str]] = []
        seen: set[str] = set()
        for key, (_, binding, _, tooltip) in bindings.items():  # type: ignore[misc]
            if binding.show and binding.description and binding.action not in seen:
                seen.add(binding.action)
                self.keys.append((key_name(key), tooltip or binding.description))

    def compose(self) -> ComposeResult:
        text = Text()
        text.append("kiro-tui", style="bold")
        text.append(" keeps your Kiro / CodeWhisperer logins fresh.\n\n")
        text.append("Keys\n", style="bold")
        for key, what in [*self.keys, ("ctrl+p", "command palette: every action by name")]:
            text.append(f"  {key:<8}", style="bold")
            text.append(f" {what}\n")
        text.append("\n/ filters by name, method, region, profile, mode or id.\n\n")
        text.append("Status\n", style="bold")
        text.append(STATUSES + "\n\n")
        text.append("Modes\n", style="bold")
        text.append(MODES + "\n")
        with VerticalScroll(classes="dialog help"):
            yield Static(text)
        yield KeysFooter()

    def action_close(self) -> None:
        self.dismiss(None)
