"""The line at the top: how many accounts are in each state, and anything wrong beyond one account."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from rich.style import Style
from rich.text import Text
from textual.widgets import Static

from kiro_tui.core.events import KiroCliState
from kiro_tui.core.models import Status
from kiro_tui.core.summary import printable
from kiro_tui.tui import format as fmt
from kiro_tui.tui.widgets.accounts_table import STATUS_CLASSES

_ORDER = (Status.NEEDS_LOGIN, Status.SUSPENDED, Status.REFRESH_FAILING, Status.OVER_QUOTA, Status.QUOTA_LOW,
          Status.EXPIRED, Status.REFRESHING, Status.EXPIRING, Status.FRESH)


class SummaryBar(Static):
    COMPONENT_CLASSES = {*STATUS_CLASSES.values(), "summary--muted", "summary--bad"}

    def style(self, name: str) -> Style:
        return self.get_component_rich_style(name, partial=True)

    def show(self, counts: Mapping[Status, int], kiro_cli: KiroCliState, now: datetime, *, shown: int | None = None,
             problem: str | None = None, unreadable: int = 0, held: int = 0, place_errors: int = 0,
             loaded: bool = True, keepers: str | None = None) -> None:
        total = sum(counts.values())
        text = Text()
        text.append("kiro-tui ", style="bold")
        if not loaded:
            text.append("reading accounts…", style=self.style("summary--muted"))
        elif shown is not None:
            text.append(f"{shown:,} of {total:,} shown")
        else:
            text.append(f"{total:,} account{'s' if total != 1 else ''}")
        for status in _ORDER:
            if counts.get(status):
                text.append(" · ")
                text.append(f"{counts[status]:,} {status.label}", style=self.style(STATUS_CLASSES[status]))
        bad = self.style("summary--bad")
        if held and not (problem and "held in memory" in problem):
            text.append(f" · {held} token{'s' if held > 1 else ''} held in memory", style=bad)
        if place_errors:
            text.append(f" · {place_errors} place{'s' if place_errors > 1 else ''} in error", style=bad)
        if unreadable:
            text.append(f" · {unreadable} unreadable (see `kiro-tui list`)", style=bad)
        if problem:
            text.append(f" · {printable(problem)}", style=bad)
        text.append("   ")
        muted = self.style("summary--muted")
        if kiro_cli.db is None:
            text.append("kiro-cli: no database found", style=muted)
        else:
            text.append(f"kiro-cli: {printable(fmt.home_relative(kiro_cli.db))}", style=muted)
            if kiro_cli.error:
                text.append(f" (unreadable: {fmt.short_reason(kiro_cli.error)[:60]})", style=bad)
            elif kiro_cli.read_at is not None:
                text.append(f", read {fmt.ago(kiro_cli.read_at, now)}", style=muted)
        if keepers:  # what keeps the accounts fresh once this window is closed
            text.append(f" · {keepers}", style=muted)
        if text.markup != getattr(self, "_shown", None):  # most seconds nothing changed
            self._shown = text.markup
            self.update(text, layout=False)  # one line, always (app.tcss): a layout would reflow the screen
