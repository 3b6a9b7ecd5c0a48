"""Ask for an account's name (`n`): one word, unique; empty takes the name away."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from kiro_tui.core.summary import printable
from kiro_tui.tui.widgets.keys_footer import KeysFooter


class NamePromptScreen(ModalScreen[str | None]):
    """Dismisses with the name typed (stripped; "" removes the name), or None on escape."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", tooltip="Close without doing anything")]

    def __init__(self, title: str, current: str) -> None:
        super().__init__()
        self.title_text, self.current = printable(title), current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.title_text, classes="dialog-title", markup=False)
            yield Static("Shown instead of the email, and typed wherever an id is (`kiro-tui use work --in "
                         "kiro-ide`). One word; empty removes the name.", classes="dialog-text", markup=False)
            yield Input(self.current, placeholder="e.g. work", id="name", max_length=40)
        yield KeysFooter()

    def on_mount(self) -> None:
        self.query_one("#name", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)
