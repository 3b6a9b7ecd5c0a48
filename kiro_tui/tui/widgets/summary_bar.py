"""The line at the top: how many accounts are in each state, and where kiro-cli's DB is."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path

from rich.text import Text
from textual.widgets import Static

from kiro_tui.core.models import Status
from kiro_tui.tui import format as fmt

_ORDER = (Status.NEEDS_LOGIN, Status.SUSPENDED, Status.REFRESH_FAILING, Status.EXPIRED, Status.REFRESHING,
          Status.EXPIRING, Status.FRESH)


class SummaryBar(Static):
    def show(self, statuses: list[Status], kiro_cli_db: Path | None, last_read: datetime | None,
             now: datetime, watch_error: str | None = None) -> None:
        counts = Counter(statuses)
        text = Text()
        text.append("kiro-tui ", style="bold")
        text.append(f"{len(statuses)} account{'s' if len(statuses) != 1 else ''}")
        for status in _ORDER:
            if counts[status]:
                text.append(" · ")
                text.append(f"{counts[status]} {status.value.replace('-', ' ')}", style=fmt.STATUS_STYLES[status])
        text.append("   ")
        if kiro_cli_db is None:
            text.append("kiro-cli: no database found", style="dim")
        else:
            text.append(f"kiro-cli: {_home_relative(kiro_cli_db)}", style="dim")
            if watch_error:
                text.append(f" (unreadable: {fmt.short_reason(watch_error)[:60]})", style="red")
            elif last_read is not None:
                text.append(f", read {fmt.ago(last_read, now)}", style="dim")
        if text.markup != getattr(self, "_shown", None):  # most seconds nothing changed
            self._shown = text.markup
            self.update(text)


def _home_relative(path: Path) -> str:
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except ValueError:
        return str(path)
