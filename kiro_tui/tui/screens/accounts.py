"""The accounts screen: every account at a glance, its details, and every action on it.

It presents the core and nothing more: the store is re-read when it changes (by us or by
another process), the table is reconciled in place, and actions call the core through
workers so the UI never waits on network or disk.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets import DataTable, Input, Static

from kiro_tui.core.aws.codewhisperer import Profile
from kiro_tui.core.aws.errors import ServiceError
from kiro_tui.core.errors import KiroTuiError
from kiro_tui.core.importer import ImportReport, import_snapshot
from kiro_tui.core.kiro_cli import profile_region, read_kiro_cli
from kiro_tui.core.login import LoginRequest, last_request, set_profile
from kiro_tui.core.models import Account, Health, Mode, Status
from kiro_tui.core.store import RefreshLogEntry
from kiro_tui.core.summary import describe_expiry, printable
from kiro_tui.tui import format as fmt
from kiro_tui.tui.clipboard import copy_text
from kiro_tui.tui.commands import AccountCommands
from kiro_tui.tui.messages import AccountStatusChanged, ImportFailed, ImportFinished, UsageLoaded
from kiro_tui.tui.screens.choice import ChoiceScreen, LoadingChoiceScreen
from kiro_tui.tui.screens.confirm import ConfirmScreen
from kiro_tui.tui.screens.device_code import DeviceCodeScreen, profile_options
from kiro_tui.tui.screens.help import HelpScreen
from kiro_tui.tui.screens.login_form import LoginFormScreen
from kiro_tui.tui.widgets.accounts_table import AccountsTable
from kiro_tui.tui.widgets.detail_panel import AccountDetail, UsageState
from kiro_tui.tui.widgets.keys_footer import KeysFooter
from kiro_tui.tui.widgets.summary_bar import SummaryBar

if TYPE_CHECKING:
    from kiro_tui.tui.app import KiroTuiApp

USAGE_MAX_AGE = timedelta(minutes=5)
NEEDS_ACCOUNT = {"refresh", "profile", "mode", "copy_token", "remove"}
MODE_HELP = {
    Mode.SYNC: "sync — refresh, and write the new token back into kiro-cli",
    Mode.FOLLOW: "follow — never refresh; mirror kiro-cli's database",
    Mode.OWN: "own — refresh independently; never touch kiro-cli",
}


class AccountsScreen(Screen[None]):
    BINDINGS = [
        Binding("i", "import", "Import"),
        Binding("r", "refresh", "Refresh"),
        Binding("R", "refresh_all", "Refresh all"),
        Binding("l", "login", "Log in"),
        Binding("p", "profile", "Profile"),
        Binding("m", "mode", "Mode"),
        Binding("c", "copy_token", "Copy token"),
        Binding("delete", "remove", "Remove"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter"),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]
    COMMANDS = {AccountCommands}
    AUTO_FOCUS = "AccountsTable"

    def __init__(self) -> None:
        super().__init__()
        self.accounts: list[Account] = []
        self.refreshing: set[str] = set()
        self.filter_text = ""
        self.usage: dict[str, UsageState] = {}
        self.known_status: dict[str, Status] = {}
        self._marker: tuple[int, int] | None = None
        self._history: tuple[str, tuple[int, int] | None, list[RefreshLogEntry]] | None = None
        self._statuses: tuple[datetime, datetime, list[Status]] | None = None  # from, until, statuses
        self.profiles_cache: dict[str, Profile] = {}

    @property
    def kiro_app(self) -> KiroTuiApp:
        return self.app  # type: ignore[return-value]

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Toasts carry account names, paths and server errors: plain, printable text unless asked."""
        super().notify(message if markup else printable(message), title=title, severity=severity,
                       timeout=timeout, markup=markup)

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield SummaryBar(id="summary")
        with Vertical(id="main"):
            yield AccountsTable(id="accounts")
            yield AccountDetail(id="detail")
        yield KeysFooter()
        # The filter box and the empty-state text are mounted only when needed: a lighter
        # screen to style means a faster first paint with many accounts.

    def on_mount(self) -> None:
        table = self.query_one(AccountsTable)
        table.window = self.kiro_app.settings.window
        self.reload()
        self.set_interval(1, self.tick, name="countdown")

    # ------------------------------------------------------------------ reading the store

    @property
    def table(self) -> AccountsTable:
        return self.query_one(AccountsTable)

    def selected(self) -> Account | None:
        """The highlighted account (asked for every key's check_action: a lookup, not a scan)."""
        return self.table.accounts.get(self.table.selected_id or "")

    def visible_accounts(self) -> list[Account]:
        needle = self.filter_text.lower()
        if not needle:
            return self.accounts
        return [a for a in self.accounts if needle in " ".join(
            (a.name, a.auth_method.title, a.region, fmt.profile_label(a), a.mode.value, a.id)).lower()]

    def reload(self) -> None:
        """Re-read the store and reconcile every widget with it."""
        store, now = self.kiro_app.store, self.kiro_app.clock.now()
        self._marker = store.change_marker()
        self.accounts = store.accounts()
        self.refreshing = store.refreshing_ids(now)
        self._statuses = None
        self.table.show(self.visible_accounts(), self.refreshing, now)
        self.alert_on_new_trouble(now)
        self.update_summary(now)
        self.update_empty_state()
        self.update_detail()
        self.refresh_bindings()  # the footer rebuilds only if its keys changed

    def account_changed(self, account_id: str) -> None:
        """After this screen changed an account in the store: reschedule it, then re-read."""
        if self.kiro_app.engine:
            self.kiro_app.engine.scheduler.schedule(account_id)
        self.reload()

    def tick(self) -> None:
        """Once a second: re-read if anything committed; else repaint countdowns only."""
        now = self.kiro_app.clock.now()
        if self.kiro_app.store.change_marker() != self._marker:
            self.reload()
            return
        self.table.tick(now)
        self.update_summary(now)
        self.update_detail(fetch_usage=False)

    def statuses(self, now: datetime) -> list[Status]:
        """Every account's status, in `self.accounts` order. Recomputed after a re-read, or once
        the clock passes the next moment one can change by itself (a refresh window opening, a
        token expiring): with a thousand accounts that was most of each second's work."""
        cached = self._statuses
        if cached is None or not cached[0] <= now < cached[1]:
            window = self.kiro_app.settings.window
            statuses = [a.status(now, window, a.id in self.refreshing) for a in self.accounts]
            edges = [edge for a in self.accounts if a.health is Health.OK
                     for edge in (a.expires_at - window, a.expires_at) if edge > now]
            cached = self._statuses = (now, min(edges, default=now + window), statuses)
        return cached[2]

    def alert_on_new_trouble(self, now: datetime) -> None:
        """A toast (and the optional bell) once, when an account turns needs-login or suspended."""
        first_look = not self.known_status
        for account, status in zip(self.accounts, self.statuses(now), strict=True):
            before = self.known_status.get(account.id)
            self.known_status[account.id] = status
            if first_look or status not in fmt.ALERT_STATUSES or before in fmt.ALERT_STATUSES:
                continue
            title = "Needs login" if status is Status.NEEDS_LOGIN else "Suspended"
            self.notify(f"{account.name}: {fmt.short_reason(account.last_error) or status.value}. "
                        "Select it and press enter.", title=title, severity="error", timeout=10)
            if self.kiro_app.settings.bell:
                self.app.bell()

    def update_summary(self, now: datetime) -> None:
        watcher = self.kiro_app.engine.watcher if self.kiro_app.engine else None
        summary = self.query_one(SummaryBar)
        summary.show(self.statuses(now), self.kiro_app.kiro_cli_db, self.kiro_app.last_import_at, now,
                     str(watcher.last_error) if watcher and watcher.last_error else None)

    def update_empty_state(self) -> None:
        main = self.query_one("#main")
        has_rows = bool(self.accounts)
        main.display = has_rows
        existing = self.query("#empty")
        if has_rows:
            existing.remove()
        else:
            empty = existing.first(Static) if existing else Static(id="empty")
            if not existing:
                self.mount(empty, before=main)
            looked = "\n".join(str(path) for path in self.kiro_app.kiro_cli_candidates)
            found = (f"kiro-cli's database is at {self.kiro_app.kiro_cli_db}."
                     if self.kiro_app.kiro_cli_db else f"No kiro-cli database found. Looked in:\n{looked}")
            empty.update(Text.assemble(
                ("No accounts yet.", "bold"), f"\n\n{found}\n\nPress ", ("i", "bold"),
                " to import kiro-cli's logins, or ", ("l", "bold"), " to log in with a device code.",
            ))

    def update_detail(self, fetch_usage: bool = True) -> None:
        account = self.selected()
        now = self.kiro_app.clock.now()
        history = self.history_of(account.id) if account else []
        usage = self.usage.get(account.id) if account else None
        self.query_one(AccountDetail).show(account, history, usage, now, self.kiro_app.settings.window,
                                           bool(account and account.id in self.refreshing),
                                           self.kiro_app.fetch_usage)
        if account and fetch_usage and self.kiro_app.fetch_usage and (
            usage is None or usage.fetched_at is None or now - usage.fetched_at > USAGE_MAX_AGE
        ):
            self.load_usage(account)

    def history_of(self, account_id: str) -> list[RefreshLogEntry]:
        """The last refreshes of one account, re-read only when the store changed."""
        if self._history is None or self._history[:2] != (account_id, self._marker):
            self._history = (account_id, self._marker, self.kiro_app.store.refresh_history(account_id, limit=5))
        return self._history[2]

    # ------------------------------------------------------------------ events

    @on(DataTable.RowHighlighted)
    def row_highlighted(self) -> None:
        self.update_detail()
        self.refresh_bindings()  # the footer rebuilds only if its keys changed

    @on(DataTable.RowSelected)
    def row_selected(self) -> None:
        self.action_resolve()

    def on_account_status_changed(self, message: AccountStatusChanged) -> None:
        self.reload()

    def on_import_finished(self, message: ImportFinished) -> None:
        report = message.report
        self.kiro_app.last_import_at = self.kiro_app.clock.now()
        if self.kiro_app.engine:
            self.kiro_app.engine.scheduler.schedule_all()
        self.reload()
        if not message.automatic:
            self.notify(describe_import(report), title="Imported from kiro-cli",
                        severity="warning" if report.skipped else "information")
        elif report.changed:
            self.notify(describe_import(report), title="kiro-cli changed")

    def on_import_failed(self, message: ImportFailed) -> None:
        if not message.automatic:
            self.notify(message.error, title="Import failed", severity="error", timeout=10)
        self.update_summary(self.kiro_app.clock.now())

    def on_usage_loaded(self, message: UsageLoaded) -> None:
        previous = self.usage.get(message.account_id)
        now = self.kiro_app.clock.now()
        if message.usage is not None:
            self.usage[message.account_id] = UsageState(message.usage, now)
            account = self.kiro_app.store.get(message.account_id)
            if account and message.usage.email and account.email != message.usage.email:
                self.kiro_app.store.update(account.id, email=message.usage.email)
                self.reload()
                return
        else:  # keep the last good figures, marked stale
            self.usage[message.account_id] = UsageState(previous.usage if previous else None, now, message.error)
        self.update_detail(fetch_usage=False)

    # ------------------------------------------------------------------ which keys work now

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        account = self.selected() if self.is_mounted else None
        if action in NEEDS_ACCOUNT:
            return account is not None
        if action == "resolve":
            return account is not None and account.status(
                self.kiro_app.clock.now(), self.kiro_app.settings.window) in fmt.ALERT_STATUSES
        if action in ("refresh_all", "filter"):
            return bool(self.accounts)
        if action == "clear_filter":
            return bool(self.filter_text) or bool(self.query("#filter"))
        return True

    # ------------------------------------------------------------------ actions

    def action_import(self) -> None:
        self.import_from_kiro_cli()

    @work(group="import", exclusive=True, exit_on_error=False, description="import from kiro-cli")
    async def import_from_kiro_cli(self) -> None:
        kiro_app = self.kiro_app
        db = kiro_app.kiro_cli_db or kiro_app.find_kiro_cli_db()
        if db is None:
            looked = ", ".join(str(p) for p in kiro_app.kiro_cli_candidates)
            self.post_message(ImportFailed(f"no kiro-cli database found (looked in {looked}); "
                                           "run `kiro-cli login` first", automatic=False))
            return
        now = kiro_app.clock.now()
        try:
            snapshot = await asyncio.to_thread(read_kiro_cli, db, now)
            report = import_snapshot(kiro_app.store, snapshot, now, kiro_app.settings.default_import_mode)
        except KiroTuiError as exc:
            self.post_message(ImportFailed(str(exc), automatic=False))
            return
        if not report.imported and not report.skipped:
            self.post_message(ImportFailed(f"no login in {db}; run `kiro-cli login` first", automatic=False))
            return
        self.post_message(ImportFinished(report, automatic=False))

    def action_refresh(self) -> None:
        account = self.selected()
        if account is not None:
            self.refresh_accounts([account.id], announce=True)

    def action_refresh_all(self) -> None:
        self.refresh_accounts([a.id for a in self.accounts], announce=False)

    @work(group="refresh", exit_on_error=False, description="refresh now")
    async def refresh_accounts(self, account_ids: list[str], announce: bool) -> None:
        try:
            engine = await self.kiro_app.built_engine()
        except KiroTuiError as exc:
            self.notify(str(exc), title="Cannot refresh", severity="error", timeout=15)
            return
        limit = asyncio.Semaphore(self.kiro_app.settings.concurrency)

        async def one(account_id: str):  # type: ignore[no-untyped-def]
            async with limit:
                return await engine.refresher.refresh(account_id, force=True)

        self.refreshing |= set(account_ids)
        self.reload()
        results = await asyncio.gather(*(one(i) for i in account_ids))
        for account_id in account_ids:
            engine.scheduler.schedule(account_id)
        self.reload()
        failed = [r for r in results if r.outcome == "failed"]
        if announce and results:
            result = results[0]
            if result.outcome == "failed" or result.status in fmt.ALERT_STATUSES:
                self.notify(result.message or result.status.value, title="Refresh failed", severity="error")
            elif result.outcome == "skipped":
                self.notify(result.message or "nothing to do", title=result.label)
            elif result.expires_at is not None:
                expiry = describe_expiry(result.expires_at, self.kiro_app.clock.now())
                self.notify(f"{result.outcome}; expires {expiry}", title=result.label)
        elif not announce:
            self.notify(f"{len(results) - len(failed)} refreshed or up to date, {len(failed)} failed",
                        title="Refresh all", severity="warning" if failed else "information")

    def action_login(self, prefill: LoginRequest | None = None) -> None:
        self.start_login(prefill)

    @work(group="login-ui", exclusive=True, exit_on_error=False, description="log in")
    async def start_login(self, prefill: LoginRequest | None) -> None:
        request = await self.app.push_screen_wait(LoginFormScreen(prefill or last_request(self.kiro_app.store)))
        if request is None:
            return
        if prefill is not None and prefill.replaces:
            request = replace(request, replaces=prefill.replaces)
        account_id = await self.app.push_screen_wait(DeviceCodeScreen(request))
        if account_id is None:
            return
        self.account_changed(account_id)
        self.table.move_cursor(row=self.table.get_row_index(account_id))
        account = self.kiro_app.store.get(account_id)
        name = account.name if account else account_id
        meant = self.kiro_app.store.get(request.replaces) if request.replaces else None
        if meant is not None and meant.id != account_id:
            self.notify(f"You signed in as {name}, not {meant.name}: {meant.name} still needs a login. "
                        f"{name} is saved as its own account.", title="Someone else signed in",
                        severity="warning", timeout=15)
            return
        self.notify(f"{name} is ready; kiro-tui keeps it fresh.", title="Logged in")

    def action_profile(self) -> None:
        account = self.selected()
        if account is not None:
            self.choose_profile(account)

    @work(group="profile", exclusive=True, exit_on_error=False, description="choose a profile")
    async def choose_profile(self, account: Account) -> None:
        picker = LoadingChoiceScreen(f"Profile for {account.name}",
                                     "Profiles this login may use, from every profile region:")
        self.app.push_screen(picker, callback=lambda arn: self.profile_chosen(account, arn))
        try:
            listing = await (await self.kiro_app.login_flow()).profiles(account.access_token)
        except KiroTuiError as exc:
            picker.fail(str(exc))
            return
        if not listing.profiles:
            picker.fail("This login has no profiles (Builder ID logins usually have none).")
            return
        self.profiles_cache = {p.arn: p for p in listing.profiles}
        picker.fill(profile_options(listing.profiles), account.profile_arn)

    def profile_chosen(self, account: Account, arn: str | None) -> None:
        profile = self.profiles_cache.get(arn) if arn else None
        if profile is None:
            return
        set_profile(self.kiro_app.store, account.id, profile)
        self.usage.pop(account.id, None)
        self.account_changed(account.id)
        self.notify(f"{account.name} now uses {profile.name} ({profile.region}).", title="Profile")

    def action_mode(self) -> None:
        account = self.selected()
        if account is None:
            return
        modes = account.allowed_modes
        explanation = "" if len(modes) > 1 else "Only own applies: this login is not in kiro-cli's database."
        self.app.push_screen(
            ChoiceScreen(f"Mode for {account.name}", [(m.value, MODE_HELP[m]) for m in modes], explanation,
                         highlighted=account.mode.value),
            callback=lambda chosen: self.mode_chosen(account, chosen),
        )

    def mode_chosen(self, account: Account, chosen: str | None) -> None:
        if chosen is None or chosen == account.mode.value:
            return
        self.kiro_app.store.set_mode(account, Mode(chosen))
        self.account_changed(account.id)
        self.notify(f"{account.name}: {MODE_HELP[Mode(chosen)]}", title="Mode")

    def action_copy_token(self) -> None:
        account = self.selected()
        if account is None:
            return
        question = Text.assemble(
            "Copy the access token of ", (printable(account.name), "bold"), "?\n\n",
            "Anyone who can paste it can act as this account until it expires "
            f"({fmt.expires(account, self.kiro_app.clock.now())}).")
        self.app.push_screen(ConfirmScreen(question, "Copy"), callback=lambda ok: self.copy_confirmed(account, ok))

    def copy_confirmed(self, account: Account, ok: bool | None) -> None:
        if ok:
            how = copy_text(self.app, account.access_token)
            self.notify(f"The access token of {account.name} was {how}.", title="Copied")

    def action_remove(self) -> None:
        account = self.selected()
        if account is None:
            return
        question = Text.assemble(
            "Remove ", (printable(account.name), "bold"), " from kiro-tui?\n\n",
            "Its tokens are deleted from kiro-tui's store. kiro-cli's own login is not touched.")
        self.app.push_screen(ConfirmScreen(question, "Remove"), callback=lambda ok: self.remove_confirmed(account, ok))

    def remove_confirmed(self, account: Account, ok: bool | None) -> None:
        if ok:
            self.kiro_app.store.delete(account.id)
            self.account_changed(account.id)
            self.notify(f"Removed {account.name}.", title="Removed")

    def action_resolve(self) -> None:
        account = self.selected()
        if account is None or not self.check_action("resolve", ()):
            return
        options = []
        if account.source:
            options.append(("import", "Re-import from kiro-cli (after `kiro-cli login`)"))
        options.append(("login", "Log in again with a device code"))
        self.app.push_screen(
            ChoiceScreen(f"{account.name} needs a login",
                         options, fmt.short_reason(account.last_error) or "Its refresh token no longer works."),
            callback=lambda chosen: self.resolve_chosen(account, chosen),
        )

    def resolve_chosen(self, account: Account, chosen: str | None) -> None:
        if chosen == "import":
            self.action_import()
        elif chosen == "login":
            start_url = account.start_url if account.auth_method.value == "idc" else None
            self.action_login(LoginRequest(start_url, account.region, replaces=account.id))

    def action_filter(self) -> None:
        existing = self.query("#filter")
        box = existing.first(Input) if existing else Input(
            placeholder="filter by name, method, region, profile… (escape clears)", id="filter")
        if not existing:
            self.mount(box, before=self.query_one("#main"))
        box.focus()
        self.refresh_bindings()

    @on(Input.Changed, "#filter")
    def filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self.table.show(self.visible_accounts(), self.refreshing, self.kiro_app.clock.now())
        self.update_detail(fetch_usage=False)

    @on(Input.Submitted, "#filter")
    def filter_done(self) -> None:
        self.table.focus()

    def action_clear_filter(self) -> None:
        self.query("#filter").remove()
        self.filter_text = ""
        self.table.show(self.visible_accounts(), self.refreshing, self.kiro_app.clock.now())
        self.table.focus()
        self.refresh_bindings()

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        self.app.exit()

    # ------------------------------------------------------------------ usage

    @work(group="usage", exclusive=True, exit_on_error=False, description="fetch usage")
    async def load_usage(self, account: Account) -> None:
        region = profile_region(account.profile_arn) or "us-east-1"
        try:
            q = await self.kiro_app.q_client()
            usage = await q.get_usage_limits(account.access_token, region, account.profile_arn)
        except ServiceError as exc:
            self.post_message(UsageLoaded(account.id, None, exc.message))
            return
        except KiroTuiError as exc:  # no TLS to reach AWS with
            self.post_message(UsageLoaded(account.id, None, str(exc)))
            return
        self.post_message(UsageLoaded(account.id, usage))


def describe_import(report: ImportReport) -> str:
    counts: dict[str, int] = {}
    for item in report.imported:
        counts[item.action] = counts.get(item.action, 0) + 1
    parts = [f"{n} {action}" for action, n in counts.items()] or ["no logins"]
    if report.skipped:
        parts.append(f"{len(report.skipped)} skipped ({report.skipped[0].key}: {report.skipped[0].reason})")
    if report.missing:
        parts.append(f"{len(report.missing)} kept (no longer in kiro-cli)")
    return ", ".join(parts)
