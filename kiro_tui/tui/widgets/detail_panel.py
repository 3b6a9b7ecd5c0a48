"""Everything about the selected account that is not a secret (tokens masked)."""

from __future__ import annotations

from datetime import datetime, timedelta

import humanize
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from kiro_tui.core.aws.codewhisperer import Usage
from kiro_tui.core.masking import mask
from kiro_tui.core.models import Account
from kiro_tui.core.store import RefreshLogEntry
from kiro_tui.core.summary import printable
from kiro_tui.tui import format as fmt


class UsageState:
    """The last usage answer for an account: value, when, and whether it is stale."""

    def __init__(self, usage: Usage | None = None, fetched_at: datetime | None = None, error: str | None = None):
        self.usage, self.fetched_at, self.error = usage, fetched_at, error


class AccountDetail(VerticalScroll):
    shown: list[tuple[str, str]] = []
    """What the panel shows now, as (label, text) rows: compared to skip needless repaints."""

    def compose(self):  # type: ignore[no-untyped-def]
        yield Static(id="detail-body")

    def show(self, account: Account | None, history: list[RefreshLogEntry], usage: UsageState | None,
             now: datetime, window: timedelta, refreshing: bool, usage_enabled: bool = True) -> None:
        body = self.query_one("#detail-body", Static)
        if account is None:
            self._update_body(body, [], Text("No account selected.", style="dim"))
            return
        rows: list[tuple[str, Text]] = []

        def row(label: str, value: object) -> None:
            """A plain value becomes Text: it is data (names, ARNs, errors), never markup, and
            made printable (no escape sequence reaches the terminal)."""
            if value not in (None, ""):
                rows.append((label, value if isinstance(value, Text) else Text(printable(str(value)))))

        row("Account", f"{account.name}  [{account.id}]")
        row("Health", fmt.health(account, now, window, refreshing))
        row("Expires", f"{fmt.expires(account, now)}  ({account.expires_at:%Y-%m-%d %H:%M:%S} UTC)")
        row("Usage", _usage_text(usage, now, usage_enabled))
        row("Method", account.auth_method.title + (f" ({account.provider})" if account.provider else ""))
        row("Region", account.region)
        row("Start URL", account.start_url)
        row("Profile", account.profile_name)
        row("Profile ARN", account.profile_arn)
        row("Mode", account.mode.value)
        row("Source", f"{account.source}  {account.source_key}" if account.source else "logged in with kiro-tui")
        row("Scopes", ", ".join(account.scopes or []))
        row("Client", account.client_id)
        if account.client_secret_expires_at:
            row("Registration", f"expires {fmt.ago(account.client_secret_expires_at, now)}"
                if account.client_secret_expires_at <= now
                else f"expires in {humanize.naturaldelta(account.client_secret_expires_at - now)}")
        row("Access token", mask(account.access_token))
        row("Refresh token", mask(account.refresh_token))
        row("Last refresh", fmt.ago(account.last_refresh_at, now))
        if account.next_refresh_at:
            row("Next attempt", fmt.ago(account.next_refresh_at, now) if account.next_refresh_at <= now
                else f"in {humanize.naturaldelta(account.next_refresh_at - now)}")
        row("Failures", account.consecutive_failures or None)
        row("Last error", Text(printable(account.last_error), style="red") if account.last_error else None)
        row("Sync", Text(printable(account.sync_error), style="yellow") if account.sync_error else None)
        row("History", _history_text(history, now))
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column()
        for label, value in rows:
            grid.add_row(label, value)
        self._update_body(body, rows, grid)

    def _update_body(self, body: Static, rows: list[tuple[str, Text]], content: object) -> None:
        """Update only when what is shown changed: most seconds, nothing did."""
        signature = [(label, value.markup) for label, value in rows]
        if not rows:
            signature = [("", str(content))]
        if signature != self.shown:
            self.shown = signature
            body.update(content)  # type: ignore[arg-type]


def _usage_text(state: UsageState | None, now: datetime, enabled: bool) -> Text:
    if state is None:
        return Text("loading…" if enabled else "not fetched", style="dim")
    if state.usage is None:
        return Text(f"unavailable ({fmt.short_reason(state.error)})", style="dim")
    usage = state.usage
    text = Text(f"{usage.used:g} of {usage.limit:g} used")
    if usage.subscription:
        text.append(f"  {usage.subscription}")
    if usage.reset_at:
        text.append(f"  resets {usage.reset_at:%Y-%m-%d}")
    if state.error:
        text.append(f"  (stale: {fmt.short_reason(state.error)})", style="yellow")
    return text


def _history_text(history: list[RefreshLogEntry], now: datetime) -> Text:
    if not history:
        return Text("no refreshes yet", style="dim")
    text = Text()
    for entry in history[:5]:
        style = "green" if entry.outcome in ("refreshed", "adopted", "logged-in") else "red"
        text.append(f"{fmt.ago(entry.at, now)}: ", style="dim")
        text.append(entry.outcome.replace("-", " "), style=style)
        if entry.classification:
            text.append(f" ({entry.classification})", style="dim")
        text.append("\n")
    text.rstrip()
    return text
