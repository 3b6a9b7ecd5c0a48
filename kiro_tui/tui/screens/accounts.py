"""The accounts screen: every account at a glance, its details, and the keys for every action.

It presents the engine and nothing more: it holds the views the engine last gave it, re-reads
just the accounts an event names (gathering a burst of events into a few reads), repaints
those rows in place, and asks the engine for everything from a worker, so the UI never waits
on network or disk. The actions themselves are in tui/screens/accounts_flows.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import ActiveBinding, Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Input, Static

from kiro_tui.core.config import Settings
from kiro_tui.core.errors import KiroTuiError
from kiro_tui.core.events import KiroCliState
from kiro_tui.core.models import Account, AccountView, Health, Status
from kiro_tui.core.store import RefreshLogEntry, UnreadableRow
from kiro_tui.tui import format as fmt
from kiro_tui.tui import messages
from kiro_tui.tui.commands import AccountCommands
from kiro_tui.tui.screens.accounts_flows import AccountFlows, kiro_cli_state
from kiro_tui.tui.screens.help import HelpScreen
from kiro_tui.tui.status_tally import StatusTally
from kiro_tui.tui.widgets.accounts_table import AccountsTable
from kiro_tui.tui.widgets.detail_panel import AccountDetail
from kiro_tui.tui.widgets.keys_footer import KeysFooter
from kiro_tui.tui.widgets.summary_bar import SummaryBar

if TYPE_CHECKING:
    from kiro_tui.core.engine import Engine, Views

REPAINT_GAP = 1.0
"""Seconds between two re-reads while changes keep coming (a burst of refreshes): once a second,
as the countdowns tick, is what a person can follow, and each costs the UI loop a redraw of the
table (and the engine's thread the interpreter lock it shares with it). A change after a quiet
second is shown at once."""
NEEDS_ACCOUNT = {"refresh", "profile", "mode", "copy_token", "remove", "places", "use", "rename"}


class AccountsScreen(AccountFlows):
    # In order of need: the footer shows as many as fit, in this order (help and quit always).
    BINDINGS = [
        Binding("r", "refresh", "Refresh", tooltip="Refresh the highlighted account now"),
        Binding("l", "login", "Log in", tooltip="Log in with a device code: AWS Builder ID or IAM Identity Center"),
        Binding("i", "import", "Import", tooltip="Import logins: kiro-cli, or any place another tool keeps them"),
        Binding("slash", "filter", "Filter", tooltip="Filter by name, method, region, profile, mode or id"),
        Binding("escape", "clear_filter", "Clear filter", tooltip="Show every account again"),
        Binding("delete", "remove", "Remove", tooltip="Remove the highlighted account from kiro-tui (asks first)"),
        Binding("c", "copy_token", "Copy token", tooltip="Copy the highlighted account's access token (asks first)"),
        Binding("p", "profile", "Profile", tooltip="Pick the profile ARN of the highlighted account"),
        Binding("m", "mode", "Mode", tooltip="sync, follow or own for the highlighted account"),
        Binding("x", "places", "Link", tooltip="Keep a copy fresh in another tool's file, export one, or unlink"),
        Binding("u", "use", "Use in",
                tooltip="Make the highlighted account the one a tool uses (what was there is kept)"),
        Binding("n", "rename", "Name", tooltip="Give the highlighted account a name, typed wherever an id is"),
        Binding("R", "refresh_all", "Refresh all", tooltip="Refresh every account now"),
        Binding("question_mark", "help", "Help", tooltip="Every key and what the statuses mean"),
        Binding("q", "quit", "Quit", tooltip="Quit (refreshes under way finish first)"),
    ]
    FOOTER_ORDER = ("enter", "r", "x", "u", "l", "i", "p", "escape", "m", "c", "slash", "delete", "R")
    """What the footer shows first when not every key fits (80 columns): a dead login's fix, then
    the keys the product is for (copies, `u` to use an account in a tool) before keys a person
    learns once (/, del)."""
    COMMANDS = {AccountCommands}
    AUTO_FOCUS = "AccountsTable"

    def __init__(self) -> None:
        super().__init__()
        self.views: dict[str, AccountView] = {}
        self.unreadable: list[UnreadableRow] = []
        self.loaded = False
        self.filter_text = ""
        self.alerted: set[str] = set()
        """Accounts in an alert (needs-login, suspended) already toasted: one toast an alert,
        whichever news of it the screen hears first (a re-read, or the engine's message)."""
        self._looked = False
        self._dirty: set[str] = set()
        self._dirty_all = False
        self._loading = False
        self._last_apply = 0.0
        self._history: tuple[str, list[RefreshLogEntry]] | None = None
        self.tally = StatusTally(Settings().window, Settings().quota_warning)  # set from the app's on mount
        self._search: dict[str, tuple[AccountView, str]] = {}  # id -> (the view, its text a filter looks in)
        self._usage_asked: set[str] = set()
        self._profiles_asked: set[str] = set()
        self.profiles_cache = {}
        self.used_by: dict[str, list[str]] = {}
        """Account id -> the tools using its login now (the IDE's file, kiro-cli's database)."""
        self.profile_counts: dict[str, int] = {}
        """How many profiles each account may choose from, once listed (p is shown when several)."""
        self.kiro_cli = KiroCliState(None, None, None)
        """kiro-cli's database as the engine last said (asked with every full read and import)."""
        self.problem: str | None = None
        """What is wrong beyond one account, as the engine last said (or why there is no engine)."""
        self.keepers: str | None = None
        """What keeps the accounts fresh once this window is closed (None until the engine says)."""

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
        table.window = self.host.settings.window
        table.quota_warning = self.host.settings.quota_warning
        self.tally = StatusTally(self.host.settings.window, self.host.settings.quota_warning)
        self.mark_dirty(None)
        self.set_interval(1, self.tick, name="countdown")

    # ------------------------------------------------------------------ reading through the engine

    @property
    def table(self) -> AccountsTable:
        return self.query_one(AccountsTable)

    def selected(self) -> Account | None:
        """The highlighted account (asked for every key's check_action: a lookup, not a scan)."""
        view = self.views.get(self.table.selected_id or "")
        return view.account if view else None

    def selected_view(self) -> AccountView | None:
        return self.views.get(self.table.selected_id or "")

    def visible_views(self) -> list[AccountView]:
        views = list(self.views.values())
        return [v for v in views if self.shown(v)] if self.filter_text else views

    def shown(self, view: AccountView) -> bool:
        """The account passes the filter (a row of its own in the table)."""
        needle = self.filter_text.lower()
        return not needle or needle in self.search_text(view)

    def search_text(self, view: AccountView) -> str:
        """What a filter looks in: built once per account, again only when it was re-read."""
        cached = self._search.get(view.id)
        if cached is None or cached[0] is not view:
            account = view.account
            text = " ".join((account.name, account.auth_method.label, account.region, fmt.profile_label(account),
                             account.mode.value, view.id)).lower()
            cached = self._search[view.id] = (view, text)
        return cached[1]

    def mark_dirty(self, ids: frozenset[str] | None) -> None:
        """These accounts changed (None: any may have): re-read them through the engine. Changes
        arriving while a read is under way are gathered into the next one, so a burst of a
        thousand refreshes costs a few reads, not a thousand."""
        self._gather(ids)
        if not self._loading:
            self._loading = True
            self.load_dirty()

    @work(group="load", exit_on_error=False, description="read accounts through the engine")
    async def load_dirty(self) -> None:
        try:
            in_a_burst = False
            while True:
                # What the engine changed meanwhile: taken here, not by a message each (see
                # on_accounts_updated); nothing is awaited between the last take and the end.
                self._gather(self.host.take_changed())
                if not (self._dirty_all or self._dirty):
                    break
                wait = REPAINT_GAP - (time.monotonic() - self._last_apply)
                if in_a_burst and wait > 0:  # changes keep coming: gather them into one re-read
                    await asyncio.sleep(wait)
                    self._gather(self.host.take_changed())
                ids = None if self._dirty_all else frozenset(self._dirty)
                self._dirty_all, self._dirty = False, set()
                try:
                    result = await self.host.engine_thread.call(_views_of(ids))
                    if ids is None:  # with every full read: where kiro-cli's database is (the empty state says)
                        self.kiro_cli = await self.host.engine_thread.call(kiro_cli_state)
                except KiroTuiError as exc:
                    self.engine_unavailable(exc)
                    return
                self.apply(result, ids)
                self._last_apply = time.monotonic()
                in_a_burst = ids is not None
        finally:
            self._loading = False
            # Ended early (the engine failed, a bug): take what came meanwhile, which also lets
            # the app tell of the next change again; else the screen would hear of none again.
            self._gather(self.host.take_changed())

    def _gather(self, ids: frozenset[str] | None) -> None:
        if ids is None:
            self._dirty_all = True
        else:
            self._dirty |= ids

    def apply(self, result: Views, ids: frozenset[str] | None) -> None:
        """Repaint what was re-read: every row (ids None) or just those rows."""
        now = self.host.clock.now()
        if ids is None:
            self.views = {view.id: view for view in result.views}
            self.unreadable = result.unreadable
            if not self.loaded:  # once these rows are drawn, the engine starts its background work
                self.call_after_refresh(self.host.engine_thread.begin)
            self.loaded = True
            self._search = {}
            self.tally.reset(self.views, now)
            self.table.show(self.visible_views(), now)
            self.load_tools()
        else:
            fresh = {view.id: view for view in result.views}
            for account_id in ids:
                if account_id in fresh:
                    self.views[account_id] = fresh[account_id]
                else:
                    self.views.pop(account_id, None)
                    self._search.pop(account_id, None)
            self.tally.update(ids, self.views, now)
            self.table.update_rows(ids, self.views, self.shown, now)
        if self._history is not None and (ids is None or self._history[0] in ids):
            self._history = None
        self.alert_on_new_alerts(now, ids)
        self.update_summary(now)
        self.update_empty_state()
        self.update_detail()
        self.refresh_bindings()  # the footer rebuilds only if its keys changed

    def engine_unavailable(self, exc: KiroTuiError) -> None:
        """No engine (an unusable store, no certificates): say it once; nothing else can work."""
        if self.problem is None:
            self.problem = str(exc)
            self.notify(f"{exc}. Nothing can be shown or refreshed.", title="The engine cannot start",
                        severity="error", timeout=60)
        self.update_summary(self.host.clock.now())

    def tick(self) -> None:
        """Once a second: repaint countdowns (no store read: the engine says when anything changed)."""
        now = self.host.clock.now()
        self.table.tick(now)
        self.update_summary(now)
        self.update_detail(fetch=False)

    def statuses(self, now: datetime) -> dict[str, Status]:
        """Every account's status, counted again only where something changed (StatusTally)."""
        self.tally.advance(now)
        return self.tally.statuses

    def alert_on_new_alerts(self, now: datetime, ids: frozenset[str] | None = None) -> None:
        """A toast (and the optional bell) once, when an account turns needs-login or suspended
        (only a re-read brings either: the accounts re-read are the ones to look at)."""
        first_look = not self._looked  # (what the first screen shows is no news)
        statuses = self.statuses(now)
        self._looked = self._looked or bool(statuses)
        for account_id, status in (statuses.items() if ids is None else
                                   ((i, statuses[i]) for i in ids if i in statuses)):
            if self._entered_alert(account_id, status) and not first_look:
                account = self.views[account_id].account
                self.toast_alert(account.name, status, account.last_error)

    def _entered_alert(self, account_id: str, status: Status) -> bool:
        """Keep `alerted` up to date with this news of an account's status: True when it entered
        an alert no news had told of yet (one toast an alert, whichever news comes first)."""
        if not status.is_alert:
            self.alerted.discard(account_id)
            return False
        if account_id in self.alerted:
            return False
        self.alerted.add(account_id)
        return True

    def toast_alert(self, name: str, status: Status, reason: str | None) -> None:
        title = "Needs login" if status is Status.NEEDS_LOGIN else "Suspended"
        self.notify(f"{name}: {fmt.short_reason(reason) or status.label}. Select it and press enter.",
                    title=title, severity="error", timeout=10)
        if self.host.settings.bell:
            self.app.bell()

    def update_summary(self, now: datetime) -> None:
        self.tally.advance(now)
        shown = len(self.table.accounts) if self.filter_text else None
        self.query_one(SummaryBar).show(
            self.tally.counts, self.kiro_cli, now, shown=shown, problem=self.problem,
            unreadable=len(self.unreadable), held=self.tally.held, place_errors=self.tally.place_errors,
            loaded=self.loaded, keepers=self.keepers)

    def update_empty_state(self) -> None:
        main = self.query_one("#main")
        has_rows = bool(self.views) or not self.loaded
        main.display = has_rows
        existing = self.query("#empty")
        if has_rows:
            existing.remove()
            if self.focused is None and self.views:  # the first accounts in: enter, home, end work on them
                self.table.focus()
        else:
            empty = existing.first(Static) if existing else Static(id="empty")
            if not existing:
                self.mount(empty, before=main)
            looked = "\n".join(str(path) for path in self.kiro_cli.looked_in)
            found = (f"kiro-cli's database is at {self.kiro_cli.db}."
                     if self.kiro_cli.db else f"No kiro-cli database found. Looked in:\n{looked}")
            empty.update(Text.assemble(
                ("No accounts yet.", "bold"), f"\n\n{found}\n\nPress ", ("i", "bold"),
                " to import kiro-cli's logins, or ", ("l", "bold"), " to log in with a device code.",
            ))

    def update_detail(self, fetch: bool = True) -> None:
        view = self.selected_view()
        now = self.host.clock.now()
        history = self._history[1] if view and self._history and self._history[0] == view.id else None
        self.query_one(AccountDetail).show(view, history or [], now, self.host.settings,
                                           self.host.fetch_usage, filtered_out=bool(self.views),
                                           used_by=self.used_by.get(view.id, []) if view else [])
        if view is not None and fetch:
            if history is None:
                self.load_history(view.id)
            if self.host.fetch_usage and view.usage is None and view.id not in self._usage_asked:
                self._usage_asked.add(view.id)
                self.fetch_usage(view.id)
            asked = view.id in self._profiles_asked or view.id in self.profile_counts
            if self.host.fetch_usage and self.host.settings.fetch_usage and not asked \
                    and view.account.health is Health.OK:
                self._profiles_asked.add(view.id)
                self.count_profiles(view.account)

    @work(group="history", exclusive=True, exit_on_error=False, description="read refresh history")
    async def load_history(self, account_id: str) -> None:
        try:
            history = await self.host.engine_thread.call(lambda engine: engine.history(account_id))
        except KiroTuiError:
            return
        self._history = (account_id, history)
        self.update_detail(fetch=False)

    @work(group="profiles", exit_on_error=False, description="count the profiles of the selected account")
    async def count_profiles(self, account: Account) -> None:
        """Once per account and session, like its usage: whether `p` has a choice to offer."""
        try:
            listing = await self.host.engine_thread.call(lambda engine: engine.list_profiles(account.access_token))
        except KiroTuiError:
            return  # unknown: p keeps its place by room, as before
        self.profile_counts[account.id] = len(listing.profiles)
        self.refresh_bindings()

    @work(group="usage", exit_on_error=False, description="fetch usage of the selected account")
    async def fetch_usage(self, account_id: str) -> None:
        try:
            await self.host.engine_thread.call(lambda engine: engine.fetch_usage_now(account_id))
        except KiroTuiError:
            return  # shown in the panel as unavailable when the engine says why

    @work(group="tools", exclusive=True, exit_on_error=False, description="which account each tool uses")
    async def load_tools(self) -> None:
        try:
            tools = await self.host.engine_thread.call(lambda engine: engine.tools_found())
        except KiroTuiError:
            return
        used_by: dict[str, list[str]] = {}
        for tool in tools:
            if tool.holder:
                used_by.setdefault(tool.holder, []).append(fmt.place_title(tool.kind))
        if used_by != self.used_by:
            self.used_by = used_by
            self.update_detail(fetch=False)

    # ------------------------------------------------------------------ events

    @on(AccountsTable.Filled)
    def table_filled(self) -> None:
        self.host.freeze_what_is_built()

    @on(DataTable.RowHighlighted)
    def row_highlighted(self) -> None:
        self.update_detail()
        self.refresh_bindings()  # the footer rebuilds only if its keys changed

    @on(DataTable.RowSelected)
    def row_selected(self) -> None:
        self.action_resolve()

    def on_accounts_updated(self, message: messages.AccountsUpdated) -> None:
        if self._loading:  # the re-read under way takes them when it next reads: until then the
            return  # engine sends no message per change (one per refresh cost the UI 4 wake-ups each)
        self.mark_dirty(self.host.take_changed())

    def on_account_status_changed(self, message: messages.AccountStatusChanged) -> None:
        """This engine turned an account: toast now if it needs a person (the row is re-read by
        the AccountsUpdated that follows; turns made by other processes are found by re-reading).
        A re-read may have come first and toasted it already (`alerted`): one toast."""
        change = message.event.change
        if self._entered_alert(change.account_id, change.after) and not change.before.is_alert:
            self.toast_alert(change.name, change.after, change.message)

    def on_engine_notice(self, message: messages.EngineNotice) -> None:
        self.notify(message.text, title=message.title, severity="warning", timeout=30)

    def on_keepers_changed(self, message: messages.KeepersChanged) -> None:
        self.keepers = message.keepers
        self.update_summary(self.host.clock.now())

    def on_engine_problem(self, message: messages.EngineProblem) -> None:
        before = self.problem
        self.problem = message.problem
        if message.problem and message.problem != before:
            self.notify(message.problem, title=message.title, severity="error",
                        timeout=60 if message.title != "kiro-tui" else 15)
        elif message.problem is None and before:
            self.notify("All is well again.", title="kiro-tui")
        self.update_summary(self.host.clock.now())

    # ------------------------------------------------------------------ which keys work now

    def footer_essentials(self) -> frozenset[str]:
        """Keys the footer shows at every width while they matter: esc while a filter is on (the
        way back to every account), p on an account with several profiles to choose from."""
        account = self.selected() if self.is_mounted else None
        wanted = {"clear_filter"} if self.is_mounted and self.check_action("clear_filter", ()) else set()
        if account is not None and self.profile_counts.get(account.id, 0) > 1:
            wanted.add("profile")
        return frozenset(wanted)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        account = self.selected() if self.is_mounted else None
        if action in NEEDS_ACCOUNT:
            return account is not None
        if action == "resolve":
            view = self.selected_view() if self.is_mounted else None
            return view is not None and fmt.offers_fixes(view, self.host.clock.now(), self.host.settings.window)
        if action in ("refresh_all", "filter"):
            return bool(self.views)
        if action == "clear_filter":
            return bool(self.filter_text) or bool(self.query("#filter"))
        return True

    # ------------------------------------------------------------------ filter, help, quit

    def action_filter(self) -> None:
        existing = self.query("#filter")
        box = existing.first(Input) if existing else Input(
            placeholder="filter by name, method, region, profile, mode or id… (escape clears)", id="filter")
        if not existing:
            self.mount(box, before=self.query_one("#main"))
        box.focus()
        self.refresh_bindings()

    @on(Input.Changed, "#filter")
    def filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        now = self.host.clock.now()
        self.table.show(self.visible_views(), now)
        self.update_summary(now)
        self.update_detail(fetch=False)

    @on(Input.Submitted, "#filter")
    def filter_done(self) -> None:
        self.table.focus()

    async def action_clear_filter(self) -> None:
        await self.query("#filter").remove()  # gone before the footer asks whether esc still works
        self.filter_text = ""
        now = self.host.clock.now()
        self.table.show(self.visible_views(), now)
        self.update_summary(now)
        self.table.focus()
        self.refresh_bindings()

    def action_help(self) -> None:
        settings = self.host.settings
        bindings = dict(self.active_bindings)
        for binding in self.table.BINDINGS:  # enter is listed even while the account under it is fine
            if isinstance(binding, Binding) and binding.key not in bindings:
                bindings[binding.key] = ActiveBinding(self.table, binding, False, binding.tooltip)
        self.app.push_screen(HelpScreen(bindings, settings.window, settings.quota_warning))

    async def action_quit(self) -> None:
        self.app.exit()


def _views_of(ids: frozenset[str] | None) -> Callable[[Engine], Awaitable[Views]]:
    """The engine call that reads these accounts' views (all of them: None)."""
    return lambda engine: engine.views(ids)
