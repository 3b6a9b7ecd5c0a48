"""Ask for one file or folder path (where to link or export a login), prefilled when there is a usual one."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from kiro_tui.core.summary import printable
from kiro_tui.tui.widgets.keys_footer import KeysFooter


class PathPromptScreen(ModalScreen[str | None]):
    """Dismisses with the path typed (stripped), or None on escape."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", tooltip="Close without doing anything")]

    def __init__(self, title: str, explanation: str, default: str = "") -> None:
        super().__init__()
        self.title_text, self.explanation, self.default = printable(title), printable(explanation), default

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.title_text, classes="dialog-title", markup=False)
            yield Static(self.explanation, classes="dialog-text", markup=False)
            yield Input(self.default, placeholder="a file or a folder", id="path")
            yield Static("", id="path-error", classes="error", markup=False)
        yield KeysFooter()

    def on_mount(self) -> None:
        self.query_one("#path", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        path = event.value.strip()
        if not path:
            self.query_one("#path-error", Static).update("Type a file or folder path (escape to cancel).")
            return
        self.dismiss(path)

    def action_cancel(self) -> None:
        self.dismiss(None)
