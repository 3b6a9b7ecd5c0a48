"""Everything about the selected account that is not a secret (tokens masked)."""

from __future__ import annotations

from datetime import datetime

import humanize
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from kiro_tui.core.config import Settings
from kiro_tui.core.masking import mask
from kiro_tui.core.models import AccountView, Outcome, PlaceState, Status, UsageRecord
from kiro_tui.core.store import RefreshLogEntry
from kiro_tui.core.summary import describe_usage, printable
from kiro_tui.tui import format as fmt


class AccountDetail(VerticalScroll):
    """Colours come from the theme: component classes styled in app.tcss."""

    COMPONENT_CLASSES = {"detail--label", "detail--muted", "detail--good", "detail--bad", "detail--warn"}
    shown: list[tuple[str, str]] = []
    """What the panel shows now, as (label, text) rows: compared to skip needless repaints."""

    def compose(self) -> ComposeResult:
        yield Static(id="detail-body")

    def style(self, name: str) -> Style:
        return self.get_component_rich_style(f"detail--{name}", partial=True)

    def show(self, view: AccountView | None, history: list[RefreshLogEntry], now: datetime, settings: Settings,
             usage_enabled: bool = True, filtered_out: bool = False, used_by: list[str] | None = None) -> None:
        """`used_by`: the tools whose login this account is now (shown as a mark: "In use by")."""
        body = self.query_one("#detail-body", Static)
        if view is None:
            message = "No account matches the filter (escape clears it)." if filtered_out else "No account selected."
            self._update_body(body, [], Text(message, style=self.style("muted")))
            return
        account = view.account
        rows: list[tuple[str, Text]] = []

        def row(label: str, value: object) -> None:
            """A plain value becomes Text: it is data (names, ARNs, errors), never markup, and
            made printable (no escape sequence reaches the terminal)."""
            if value not in (None, ""):
                rows.append((label, value if isinstance(value, Text) else Text(printable(str(value)))))

        status = view.status(now, settings.window, settings.quota_warning)
        row("Account", f"{account.name}  [{account.id}]")
        if account.nickname:  # the name given is shown instead of the email: the email is still here
            row("Email", account.email)
        tone = ("bad" if status.is_alert or view.held or status is Status.OVER_QUOTA
                else "warn" if status is Status.QUOTA_LOW else "label")
        row("Status", Text(fmt.status_detail(view, now, settings.window, settings.quota_warning),
                           style=self.style(tone)))
        row("Expires", f"{fmt.countdown(account.expires_at, now)}  ({account.expires_at:%Y-%m-%d %H:%M:%S} UTC)")
        row("Usage", self._usage_text(view.usage, usage_enabled, now))
        row("Method", account.auth_method.label + (f" ({account.provider})" if account.provider else ""))
        row("Region", account.region)
        row("Start URL", account.start_url)
        row("Profile", account.profile_name)
        row("Profile ARN", account.profile_arn  # (its row is always there: a refresh's answer may bring one)
            or Text("none", style=self.style("muted")))
        row("Mode", account.mode.value)
        row("In use by", Text("● " + ", ".join(used_by), style=self.style("good")) if used_by else None)
        row("Places", self._places_text(view) if view.places else "logged in with kiro-tui (no other copy)")
        row("Scopes", ", ".join(account.scopes or []))
        row("Client", account.client_id)
        if account.client_secret_expires_at:
            row("Registration", f"expired {fmt.ago(account.client_secret_expires_at, now)}"
                if account.client_secret_expires_at <= now
                else f"expires in {humanize.naturaldelta(account.client_secret_expires_at - now)}")
        row("Access token", mask(account.access_token))
        row("Refresh token", mask(account.refresh_token))
        row("Last refresh", fmt.ago(account.last_refresh_at, now))
        if account.next_refresh_at:
            row("Next attempt", fmt.ago(account.next_refresh_at, now) if account.next_refresh_at <= now
                else f"in {humanize.naturaldelta(account.next_refresh_at - now)}")
        row("Failures", account.consecutive_failures or None)
        row("Last error", Text(printable(account.last_error), style=self.style("bad")) if account.last_error else None)
        row("Held", Text(printable(view.held), style=self.style("bad")) if view.held else None)
        row("Sync", Text(printable(account.sync_error), style=self.style("warn")) if account.sync_error else None)
        row("History", self._history_text(history, now))
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style=self.style("label"), no_wrap=True)
        grid.add_column()
        for label, value in rows:
            grid.add_row(label, value)
        self._update_body(body, rows, grid)

    def _update_body(self, body: Static, rows: list[tuple[str, Text]], content: object) -> None:
        """Update only when what is shown changed: most seconds, nothing did."""
        signature = [(label, value.markup) for label, value in rows]
        if not rows:
            signature = [("", str(content))]
        if signature == self.shown:
            return
        self.shown = signature
        body.update(content, layout=False)  # type: ignore[arg-type]  # a Rich renderable, which Static takes
        # A layout reflows the whole screen, the table's every visible row with it: only when the
        # panel's height changes, not for a countdown ticking (once a second, for the selected row).
        width = body.size.width
        if not width or body.get_content_height(self.size, self.app.size, width) != body.size.height:
            body.refresh(layout=True)

    def _usage_text(self, usage: UsageRecord | None, enabled: bool, now: datetime) -> Text:
        if usage is None or not usage.known:
            if usage is not None and usage.error:
                return Text(f"unavailable ({fmt.short_reason(usage.error)})", style=self.style("muted"))
            return Text("loading…" if enabled else "not fetched", style=self.style("muted"))
        text = Text(describe_usage(usage))
        if usage.subscription:
            text.append(f"  {printable(usage.subscription)}")
        if usage.resets_at:
            text.append(f"  resets {usage.resets_at:%Y-%m-%d}")
        if usage.error:  # stale, as the table's `~` says, and why
            text.append(f"  (stale: {fmt.short_reason(usage.error)})", style=self.style("warn"))
        elif usage.resets_at is not None and usage.resets_at <= now:
            text.append("  (stale: the month has reset since)", style=self.style("warn"))
        elif fmt.usage_is_stale(usage, now) and usage.fetched_at is not None:
            text.append(f"  (stale: fetched {fmt.ago(usage.fetched_at, now)})", style=self.style("warn"))
        return text

    def _places_text(self, view: AccountView) -> Text:
        text = Text()
        for place in view.places:
            style = {PlaceState.ERROR: "bad", PlaceState.PENDING: "warn",
                     PlaceState.STALE: "warn"}.get(place.state, "muted")
            text.append(f"{place.kind} ({place.role.value}) ", style=self.style("label"))
            text.append(printable(place.path + (f"  {place.entry}" if place.entry else "")))
            text.append(f"  {place.state.value}", style=self.style(style))
            if place.detail and place.state is not PlaceState.IN_SYNC:
                text.append(f": {printable(place.detail)}", style=self.style(style))
            text.append("\n")
        text.rstrip()
        return text

    def _history_text(self, history: list[RefreshLogEntry], now: datetime) -> Text:
        if not history:
            return Text("no refreshes yet", style=self.style("muted"))
        text = Text()
        for entry in history[:5]:
            good = Outcome(entry.outcome).succeeded if entry.outcome in Outcome._value2member_map_ else False
            text.append(f"{fmt.ago(entry.at, now)}: ", style=self.style("muted"))
            text.append(entry.outcome.replace("-", " "), style=self.style("good" if good else "bad"))
            if entry.classification:
                text.append(f" ({entry.classification})", style=self.style("muted"))
            text.append("\n")
        text.rstrip()
        return text
