"""The device-code step of a login: the code in large type, copied at once; polling until approved.

The whole flow runs in one worker: start, show and copy the code, poll (escape cancels the
worker and with it the polling, at once), pick a profile, save. The account is saved only at
the very end, so a failure or a cancel leaves nothing behind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import humanize
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Static

from kiro_tui.core.aws.codewhisperer import Profile
from kiro_tui.core.errors import KiroTuiError
from kiro_tui.core.login import DeviceLogin, LoginRequest, PollStatus, remember_request, save_login
from kiro_tui.core.summary import printable
from kiro_tui.tui.clipboard import copy_text
from kiro_tui.tui.screens.choice import ChoiceScreen
from kiro_tui.tui.widgets.big_code import BigCode
from kiro_tui.tui.widgets.keys_footer import KeysFooter

if TYPE_CHECKING:
    from kiro_tui.tui.app import KiroTuiApp


def profile_options(profiles: list[Profile]) -> list[tuple[str, str]]:
    width = max((len(p.name) for p in profiles), default=0)
    return [(p.arn, f"{p.name.ljust(width)}  {p.region:<14} {p.arn}") for p in profiles]


class DeviceCodeScreen(Screen[str | None]):
    """Dismisses with the new account's id, or None when cancelled or failed."""

    BINDINGS = [
        Binding("c", "copy_code", "Copy code"),
        Binding("o", "open_browser", "Open browser"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, request: LoginRequest) -> None:
        super().__init__()
        self.request = request
        self.login: DeviceLogin | None = None

    @property
    def kiro_app(self) -> KiroTuiApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        where = "AWS Builder ID" if self.request.is_builder_id else f"{self.request.portal} ({self.request.region})"
        with Vertical(id="device"):
            # What AWS sends (URLs, errors) is shown as written: no Static here reads markup.
            yield Static(f"Log in to {where}", classes="dialog-title", markup=False)
            yield Static("Asking AWS for a code…", id="instructions", markup=False)
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
            return self.login is not None
        return True

    # ------------------------------------------------------------------ the flow

    @work(group="login", exclusive=True, exit_on_error=False, description="device-code login")
    async def run_login(self) -> None:
        try:
            flow = await self.kiro_app.login_flow()
            self.login = await flow.start(self.request)
            self.show_code(self.login)
            token = await flow.wait_for_token(self.login, self.show_poll_status)
            approved = Text.assemble(("Approved.", "green"), " Listing your profiles…")
            self.query_one("#poll-status", Static).update(approved)
            listing = await flow.profiles(token.access_token)
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
                self.fail("no profile chosen: nothing was saved. Log in again to choose one.")
                return
        email = await flow.email(token.access_token, profile)
        store = self.kiro_app.store
        account = save_login(store, self.login, token, profile, self.kiro_app.clock.now(), email)
        remember_request(store, self.request)
        self.dismiss(account.id)

    def show_code(self, login: DeviceLogin) -> None:
        self.refresh_bindings()
        self.query_one("#instructions", Static).update(
            Text.assemble("Open ", (printable(login.verification_uri), "bold"),
                          " and enter this code (o opens it for you):")
        )
        self.query_one("#user-code", BigCode).show(login.user_code)
        self.action_copy_code()
        self.update_countdown()
        self.query_one("#poll-status", Static).update("Waiting for you to approve in the browser…")

    def show_poll_status(self, status: PollStatus) -> None:
        text = ("Waiting for you to approve in the browser…" if status.state == "waiting"
                else f"AWS asked us to slow down: checking every {status.interval} s")
        self.query_one("#poll-status", Static).update(text)

    def update_countdown(self) -> None:
        if self.login is None:
            return
        left = self.login.expires_at - self.kiro_app.clock.now()
        text = (f"The code expires in {humanize.naturaldelta(left)}" if left.total_seconds() > 0
                else Text("The code has expired.", style="red"))
        self.query_one("#countdown", Static).update(text)

    def fail(self, message: str) -> None:
        self.query_one("#poll-status", Static).update("")
        self.query_one("#login-error", Static).update(f"{printable(message)}\n\nPress escape to go back.")

    # ------------------------------------------------------------------ keys

    def action_copy_code(self) -> None:
        if self.login is not None:
            how = copy_text(self.app, self.login.user_code)
            self.query_one("#clipboard", Static).update(f"The code was {how}.")

    def action_open_browser(self) -> None:
        if self.login is not None:
            self.app.open_url(self.login.verification_uri_complete)

    def action_cancel(self) -> None:
        self.workers.cancel_group(self, "login")  # stops polling at once
        self.dismiss(None)
