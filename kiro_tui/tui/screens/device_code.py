"""The device-code step of a login: the code as text and in large type, copied at once; polling
until approved.

The whole flow runs in one worker, every step on the engine (its thread, its HTTP client):
start, show and copy the code, poll (escape cancels the worker and with it the polling, at
once), pick a profile, save. The account is saved only at the very end, so a failure or a
cancel leaves nothing behind. After a failure, `l` starts again and escape goes back to the form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import humanize
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static

from kiro_tui.core.errors import KiroTuiError
from kiro_tui.core.login import DeviceLogin, LoginRequest, PollStatus, RenewsAnother
from kiro_tui.core.models import Account
from kiro_tui.core.summary import printable
from kiro_tui.tui.clipboard import SYSTEM, copy_text
from kiro_tui.tui.host import Host, host
from kiro_tui.tui.screens.choice import ChoiceScreen
from kiro_tui.tui.screens.confirm import ConfirmScreen
from kiro_tui.tui.widgets.big_code import BigCode
from kiro_tui.tui.widgets.keys_footer import KeysFooter

if TYPE_CHECKING:
    from kiro_tui.core.aws.codewhisperer import Profile

AGAIN = "again"
"""What the screen dismisses with when the person wants the login form back."""


def profile_options(profiles: list[Profile], current: str | None = None) -> list[tuple[str, str]]:
    """One line per profile: name, region, ARN; the one in use now is marked."""
    width = max((len(p.name) for p in profiles), default=0)

    def mark(profile: Profile) -> str:
        return "" if current is None else ("● " if profile.arn == current else "  ")

    return [(p.arn, f"{mark(p)}{p.name.ljust(width)}  {p.region:<14} {p.arn}") for p in profiles]


@dataclass
class PollUpdate(Message):
    """Posted from the engine's thread while polling."""

    status: PollStatus


class DeviceCodeScreen(Screen[Account | str | None]):
    """Dismisses with the new account, AGAIN (back to the form), or None when cancelled."""

    BINDINGS = [
        Binding("c", "copy_code", "Copy code", tooltip="Copy the code again"),
        Binding("o", "open_browser", "Open browser", tooltip="Open the verification page"),
        Binding("l", "restart", "Start again", tooltip="Ask AWS for a new code"),
        Binding("escape", "cancel", "Back", tooltip="Stop polling and go back"),
    ]

    def __init__(self, request: LoginRequest) -> None:
        super().__init__()
        self.request = request.normalised()
        self.login: DeviceLogin | None = None
        self.failed = False

    @property
    def host(self) -> Host:
        return host(self)

    def compose(self) -> ComposeResult:
        where = "AWS Builder ID" if self.request.is_builder_id else f"{self.request.portal} ({self.request.region})"
        with Vertical(id="device"):
            # What AWS sends (URLs, errors) is shown as written: no Static here reads markup.
            yield Static(f"Log in to {where}", classes="dialog-title", markup=False)
            yield Static("Asking AWS for a code…", id="instructions", markup=False)
            yield Static("", id="code-text", markup=False)
            yield BigCode(id="user-code")
            yield Static("", id="clipboard", markup=False)
            yield Static("", id="countdown", markup=False)
            yield Static("", id="poll-status", markup=False)
            yield Static("", id="login-error", classes="error", markup=False)
        yield KeysFooter()

    def on_mount(self) -> None:
        self.set_interval(1, self.update_countdown)
        self.run_login()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("copy_code", "open_browser"):
            return self.login is not None and not self.failed
        if action == "restart":
            return self.failed
        return True

    # ------------------------------------------------------------------ the flow

    @work(group="login", exclusive=True, exit_on_error=False, description="device-code login")
    async def run_login(self) -> None:
        engine = self.host.engine_thread
        try:
            self.login = await engine.call(lambda e: e.start_login(self.request))
            self.show_code(self.login)
            login = self.login
            token = await engine.call(lambda e: e.wait_for_token(login, lambda s: self.post_message(PollUpdate(s))))
            approved = Text.assemble(("Approved.", "bold"), " Listing your profiles…")
            self.query_one("#poll-status", Static).update(approved)
            listing = await engine.call(lambda e: e.list_profiles(token.access_token))
        except KiroTuiError as exc:  # a LoginError, or no TLS to reach AWS with
            self.fail(str(exc))
            return
        profile = None
        if listing.profiles:
            chosen = await self.app.push_screen_wait(
                ChoiceScreen("Choose a profile", profile_options(listing.profiles),
                             "Kiro sends requests under this profile ARN. You can change it later with p.")
            )
            profile = next((p for p in listing.profiles if p.arn == chosen), None)
            if profile is None:
                self.fail("no profile chosen: nothing was saved. Press l to log in again.")
                return
        try:
            try:
                outcome = await engine.call(lambda e: e.finish_login(login, token, profile))
            except RenewsAnother as exc:  # never renew another account without asking
                question = (f"You signed in as {exc.email}, not {exc.meant.name}.\n\nThat is the login of "
                            f"{exc.other.name} ({exc.other.id}, {exc.other.mode.value} mode). Renew that "
                            "account with this login? It becomes kiro-tui's own login (mode own), and its "
                            "copies elsewhere (kiro-cli's included) are no longer written.")
                if not await self.app.push_screen_wait(ConfirmScreen(question, f"Renew {exc.other.name}")):
                    self.fail(f"nothing saved: {exc.meant.name} still needs a login, and {exc.other.name} "
                              "is as it was.")
                    return
                outcome = await engine.call(lambda e: e.finish_login(login, token, profile, renew_other=True))
        except KiroTuiError as exc:
            self.fail(str(exc))
            return
        note = outcome.detached_note()
        if note:
            self.app.notify(note, title="Copies detached", severity="warning", timeout=20, markup=False)
        self.dismiss(outcome.account)

    def on_poll_update(self, message: PollUpdate) -> None:
        status = message.status
        if status.state == "waiting":
            text = "Waiting for you to approve in the browser…"
        elif status.state == "slow down":
            text = f"AWS asked us to slow down: checking every {status.interval} s"
        else:
            text = status.state[:1].upper() + status.state[1:]
        self.query_one("#poll-status", Static).update(printable(text))

    def show_code(self, login: DeviceLogin) -> None:
        self.query_one("#instructions", Static).update(
            Text.assemble("Open ", (printable(login.verification_uri), "bold"),
                          " and enter this code (o opens it for you):")
        )
        self.query_one("#code-text", Static).update(Text(login.user_code, style="bold"))
        self.query_one("#user-code", BigCode).show(login.user_code)
        self.copy_code(announce=False)  # the line under the code says what was done
        self.update_countdown()
        self.query_one("#poll-status", Static).update("Waiting for you to approve in the browser…")
        self.refresh_bindings()

    def update_countdown(self) -> None:
        if self.login is None or self.failed:
            return
        left = self.login.expires_at - self.host.clock.now()
        text = (f"The code expires in {humanize.naturaldelta(left)}." if left.total_seconds() > 0
                else Text("The code has expired.", style="bold"))
        self.query_one("#countdown", Static).update(text)

    def fail(self, message: str) -> None:
        self.failed = True
        for part in ("#instructions", "#poll-status", "#countdown", "#clipboard", "#code-text"):
            self.query_one(part, Static).update("")
        self.query_one("#user-code", BigCode).show("")
        self.query_one("#login-error", Static).update(
            f"{printable(message)}\n\nPress l to start again, or escape to change where you log in.")
        self.refresh_bindings()

    # ------------------------------------------------------------------ keys

    def action_copy_code(self) -> None:
        self.copy_code(announce=True)

    def copy_code(self, announce: bool) -> None:
        """Copy the code and say how, under it; a toast too when `c` was pressed (feedback)."""
        if self.login is None:
            return
        how = copy_text(self.app, self.login.user_code)
        text = (f"The code was {how}." if how == SYSTEM
                else f"The code was {how}; if nothing was copied, select the code above.")
        self.query_one("#clipboard", Static).update(text)
        if announce:
            self.notify(text, title="Code", timeout=3)

    def action_open_browser(self) -> None:
        if self.login is not None:
            self.app.open_url(self.login.verification_uri_complete)
            self.notify(f"Asked your system to open {self.login.verification_uri_complete}. If no browser "
                        "opened (over SSH, say), open that address on any device.", title="Browser", timeout=8,
                        markup=False)

    def action_restart(self) -> None:
        if self.failed:
            self.failed, self.login = False, None
            self.query_one("#login-error", Static).update("")
            self.query_one("#instructions", Static).update("Asking AWS for a code…")
            self.refresh_bindings()
            self.run_login()

    def action_cancel(self) -> None:
        self.workers.cancel_group(self, "login")  # stops polling at once
        self.dismiss(AGAIN if self.failed else None)
