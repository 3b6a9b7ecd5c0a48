"""Every key, in one place."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

HELP = """\
[b]kiro-tui[/b] keeps your Kiro / CodeWhisperer logins fresh.

[b]Accounts[/b]
  [b]i[/b]        re-import every login from kiro-cli's database
  [b]r[/b]        refresh the selected account now
  [b]R[/b]        refresh every account now
  [b]l[/b]        log in with a device code (Builder ID or IAM Identity Center)
  [b]p[/b]        choose the selected account's profile ARN
  [b]m[/b]        change how it coexists with kiro-cli: sync, follow or own
  [b]c[/b]        copy its access token (asks first)
  [b]delete[/b]   remove it from kiro-tui (asks first; kiro-cli is untouched)
  [b]enter[/b]    on an account that needs a login: re-import or log in again
  [b]/[/b]        filter by name, method, region or profile; [b]escape[/b] clears
  [b]ctrl+p[/b]   command palette
  [b]?[/b]        this help;  [b]q[/b] quit

[b]Health[/b]
  fresh · expiring (refreshed 10 minutes before expiry) · refreshing
  retrying in …   a passing error; kiro-tui backs off and tries again
  NEEDS LOGIN     the refresh token or client registration is dead:
                  press enter on it to re-import or log in again
  SUSPENDED       AWS suspended the account
  out of sync     kiro-cli holds a different token; kiro-tui kept its own

[b]Modes[/b]
  sync    refresh, and write the new token back into kiro-cli
  follow  never refresh; mirror kiro-cli
  own     refresh independently; never touch kiro-cli

Press escape to close.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "close", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog help"):
            yield Static(HELP)

    def action_close(self) -> None:
        self.dismiss(None)
