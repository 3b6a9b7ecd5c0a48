"""Pick one of a few options (mode, what to do about a dead login, a profile).

Titles, options and errors carry account and profile names: shown as plain, printable text,
never markup.
"""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import LoadingIndicator, OptionList, Static
from textual.widgets.option_list import Option

from kiro_tui.core.summary import printable
from kiro_tui.tui.widgets.keys_footer import KeysFooter


class ChoiceScreen(ModalScreen[str | None]):
    """Options as (id, label); dismisses with the chosen id, or None on escape."""

    BINDINGS = [Binding("enter", "choose", "Choose", tooltip="Take the highlighted option"),
                Binding("escape", "cancel", "Cancel", tooltip="Close without choosing")]

    def __init__(self, title: str, options: list[tuple[str, str]], explanation: str = "",
                 highlighted: str | None = None, current: str | None = None) -> None:
        super().__init__()
        self.title_text, self.initial = printable(title), highlighted
        # the current choice is marked as the profile picker marks the profile in use: "● "
        self.options = [(option_id, ("" if current is None else "● " if option_id == current else "  ")
                         + printable(label)) for option_id, label in options]
        self.explanation = printable(explanation, keep_newlines=True)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.title_text, classes="dialog-title", markup=False)
            if self.explanation:
                yield Static(self.explanation, classes="dialog-text", markup=False)
            yield OptionList(*(Option(label, id=option_id) for option_id, label in self.options), id="choices",
                             markup=False)
        yield KeysFooter()

    def on_mount(self) -> None:
        choices = self.query_one("#choices", OptionList)
        ids = [option_id for option_id, _ in self.options]
        choices.highlighted = ids.index(self.initial) if self.initial in ids else 0
        choices.focus()
        self.call_after_refresh(self.fit_choices)

    def on_resize(self, event: events.Resize) -> None:
        self.call_after_refresh(self.fit_choices)

    def fit_choices(self) -> None:
        """A dialog clips what does not fit: at 80x24 the `x` menu's last rows (Unlink) were cut
        off, and End highlighted a row nobody could see. So the list gets only the rows left
        below the title and explanation, and scrolls its highlighted row into view within them."""
        if not self.is_mounted:
            return
        dialog, choices = self.query_one(".dialog"), self.query_one("#choices", OptionList)
        footer = self.query_one(KeysFooter)
        room = (self.size.height - footer.outer_size.height - (choices.region.y - dialog.region.y)
                - dialog.styles.gutter.bottom - choices.styles.margin.bottom)
        comfortable = choices.styles.base.max_height  # app.tcss: the most it takes on a tall terminal
        fits = comfortable is not None and room >= comfortable.value
        choices.styles.max_height = None if fits else max(room, 3)
        choices.scroll_to_highlight()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_choose(self) -> None:
        choices = self.query_one("#choices", OptionList)
        if choices.highlighted is not None and choices.option_count:
            choices.action_select()

    def action_cancel(self) -> None:
        self.dismiss(None)


class LoadingChoiceScreen(ChoiceScreen):
    """A ChoiceScreen whose options arrive later (e.g. profiles from the network).

    They may arrive before the screen has mounted (the engine answered first): `fill` and
    `fail` then wait for `on_mount`, which would otherwise hide the options just shown.
    """

    def __init__(self, title: str, explanation: str = "") -> None:
        super().__init__(title, [], explanation)
        self._arrived: tuple[str, tuple[object, ...]] | None = None
        self._ready = False
        self.waiting = True
        """Neither the options nor a failure has come yet (the loading indicator shows)."""

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.title_text, classes="dialog-title", markup=False)
            yield Static(self.explanation, classes="dialog-text", id="explanation", markup=False)
            yield LoadingIndicator(id="loading")
            yield OptionList(id="choices", markup=False)
        yield KeysFooter()

    def on_mount(self) -> None:
        self.query_one("#choices", OptionList).display = False
        self._ready = True
        if self._arrived is not None:
            name, args = self._arrived
            getattr(self, name)(*args)

    def fill(self, options: list[tuple[str, str]], highlighted: str | None = None) -> None:
        self.waiting = False
        if not self._ready:
            self._arrived = ("fill", (options, highlighted))
            return
        self.options = [(option_id, printable(label)) for option_id, label in options]
        self.initial = highlighted  # ChoiceScreen.on_mount (Textual runs it too) highlights it
        self.query_one("#loading").display = False
        choices = self.query_one("#choices", OptionList)
        choices.add_options([Option(label, id=option_id) for option_id, label in self.options])
        choices.display = True
        ids = [option_id for option_id, _ in options]
        choices.highlighted = ids.index(highlighted) if highlighted in ids else 0
        choices.focus()
        self.call_after_refresh(self.fit_choices)

    def fail(self, message: str) -> None:
        self.waiting = False
        if not self._ready:
            self._arrived = ("fail", (message,))
            return
        self.query_one("#loading").display = False
        explanation = self.query_one("#explanation", Static)
        explanation.add_class("error")  # the theme's $error (app.tcss), not a fixed colour
        explanation.update(Text(f"{printable(message)}\n\nPress escape to go back."))
