"""Where to log in: an IAM Identity Center start URL (blank for AWS Builder ID) and region."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from kiro_tui.core.login import LoginError, LoginRequest
from kiro_tui.tui.widgets.keys_footer import KeysFooter


class LoginFormScreen(ModalScreen[LoginRequest | None]):
    BINDINGS = [Binding("enter", "submit", "Log in", tooltip="Ask AWS for a device code", priority=False),
                Binding("escape", "cancel", "Cancel", tooltip="Back to the accounts")]

    def __init__(self, prefill: LoginRequest) -> None:
        super().__init__()
        self.prefill = prefill

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("Log in with a device code", classes="dialog-title")
            yield Label("IAM Identity Center start URL (leave blank for AWS Builder ID)")
            yield Input(self.prefill.start_url or "", placeholder="https://d-1234567890.awsapps.com/start",
                        id="start-url")
            yield Label("Region of your Identity Center (Builder ID is always us-east-1)")
            yield Input(self.prefill.region, placeholder="us-east-1", id="region")
            yield Static("Enter logs in from either field; Tab moves between them.",
                         id="form-hint", classes="dialog-hint")
            yield Static("", id="form-error", classes="error", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Log in", variant="primary", id="submit")
                yield Button("Cancel", id="cancel")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.query_one("#start-url", Input).focus()

    def on_input_submitted(self) -> None:
        """Enter logs in from either field (the region is prefilled); Tab moves between them."""
        self.submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "submit":
            self.submit()
        else:
            self.dismiss(None)

    def submit(self) -> None:
        start_url = self.query_one("#start-url", Input).value.strip() or None
        region = self.query_one("#region", Input).value.strip() or "us-east-1"
        request = LoginRequest(start_url, region)
        try:
            request.validate()  # the region as typed: a typo is pointed out even for Builder ID
        except LoginError as exc:
            self.query_one("#form-error", Static).update(str(exc))
            return
        self.dismiss(request.normalised())

    def action_submit(self) -> None:
        self.submit()

    def action_cancel(self) -> None:
        self.dismiss(None)
