"""The accounts screen: every account at a glance, its details, and every action on it.

It presents the engine and nothing more: it holds the views the engine last gave it, re-reads
just the accounts an event names (gathering a burst of events into a few reads), repaints
those rows in place, and asks the engine for every action from a worker, so the UI never
waits on network or disk.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import ActiveBinding, Binding
from textual.containers import Vertical
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets import DataTable, Input, Static

from kiro_tui.core.aws.codewhisperer import Profile
from kiro_tui.core.config import Settings
from kiro_tui.core.errors import KiroTuiError
from kiro_tui.core.importer import ImportReport, first_login_hint
from kiro_tui.core.login import LoginRequest
from kiro_tui.core.models import (
    Account,
    AccountView,
    AuthMethod,
    Health,
    Mode,
    Outcome,
    PlaceRole,
    Status,
)
from kiro_tui.core.places import LINK_KINDS
from kiro_tui.core.store import RefreshLogEntry, UnreadableRow
from kiro_tui.core.summary import printable
from kiro_tui.core.switch import USE_KINDS
from kiro_tui.tui import format as fmt
from kiro_tui.tui import messages
from kiro_tui.tui.clipboard import copy_text
from kiro_tui.tui.commands import AccountCommands
from kiro_tui.tui.screens.choice import ChoiceScreen, LoadingChoiceScreen
from kiro_tui.tui.screens.confirm import ConfirmScreen
from kiro_tui.tui.screens.device_code import AGAIN, DeviceCodeScreen, profile_options
from kiro_tui.tui.screens.help import HelpScreen
from kiro_tui.tui.screens.login_form import LoginFormScreen
from kiro_tui.tui.screens.name_prompt import NamePromptScreen
from kiro_tui.tui.screens.path_prompt import PathPromptScreen
from kiro_tui.tui.status_tally import StatusTally
from kiro_tui.tui.widgets.accounts_table import AccountsTable
from kiro_tui.tui.widgets.detail_panel import AccountDetail
from kiro_tui.tui.widgets.keys_footer import KeysFooter
from kiro_tui.tui.widgets.summary_bar import SummaryBar

if TYPE_CHECKING:
    from kiro_tui.core.engine import Engine, Views
    from kiro_tui.tui.app import KiroTuiApp

REPAINT_GAP = 1.0
"""Seconds between two re-reads while changes keep coming (a burst of refreshes): once a second,
as the countdowns tick, is what a person can follow, and each costs the UI loop a redraw of the
table (and the engine's thread the interpreter lock it shares with it). A change after a quiet
second is shown at once."""
NEEDS_ACCOUNT = {"refresh", "profile", "mode", "copy_token", "remove", "places", "use", "rename"}
MODE_HELP = {
    Mode.SYNC: "sync — refresh, and write the new token back into kiro-cli",
    Mode.FOLLOW: "follow — never refresh; mirror kiro-cli's database",
    Mode.OWN: "own — refresh independently; never touch kiro-cli",
}


class AccountsScreen(Screen[None]):
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
        self.known_status: dict[str, Status] = {}
        self._dirty: set[str] = set()
        self._dirty_all = False
        self._loading = False
        self._last_apply = 0.0
        self._history: tuple[str, list[RefreshLogEntry]] | None = None
        self.tally = StatusTally(Settings().window, Settings().quota_warning)  # set from the app's on mount
        self._search: dict[str, tuple[AccountView, str]] = {}  # id -> (the view, its text a filter looks in)
        self._usage_asked: set[str] = set()
        self._profiles_asked: set[str] = set()
        self.profiles_cache: dict[str, Profile] = {}
        self.used_by: dict[str, list[str]] = {}
        """Account id -> the tools using its login now (the IDE's file, kiro-cli's database)."""
        self.profile_counts: dict[str, int] = {}
        """How many profiles each account may choose from, once listed (p is shown when several)."""

    @property
    def kiro_app(self) -> KiroTuiApp:
        return self.app  # type: ignore[return-value]

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Toasts carry account names, paths and server errors: plain text unless asked (the app
        makes them printable)."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

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
        table.quota_warning = self.kiro_app.settings.quota_warning
        self.tally = StatusTally(self.kiro_app.settings.window, self.kiro_app.settings.quota_warning)
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
        needle = self.filter_text.lower()
        views = list(self.views.values())
        if not needle:
            return views
        return [v for v in views if needle in self.search_text(v)]

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
        if ids is None:
            self._dirty_all = True
        else:
            self._dirty |= ids
        if not self._loading:
            self._loading = True
            self.load_dirty()

    @work(group="load", exit_on_error=False, description="read accounts through the engine")
    async def load_dirty(self) -> None:
        try:
            in_a_burst = False
            while self._dirty_all or self._dirty:
                wait = REPAINT_GAP - (time.monotonic() - self._last_apply)
                if in_a_burst and wait > 0:  # changes keep coming: gather them into one re-read
                    await asyncio.sleep(wait)
                ids = None if self._dirty_all else frozenset(self._dirty)
                self._dirty_all, self._dirty = False, set()
                try:
                    result = await self.kiro_app.engine.call(_views_of(ids))
                except KiroTuiError as exc:
                    self.engine_unavailable(exc)
                    return
                self.apply(result, ids)
                self._last_apply = time.monotonic()
                in_a_burst = ids is not None
        finally:
            self._loading = False

    def apply(self, result: Views, ids: frozenset[str] | None) -> None:
        """Repaint what was re-read: every row (ids None) or just those rows."""
        now = self.kiro_app.clock.now()
        if ids is None:
            self.views = {view.id: view for view in result.views}
            self.unreadable = result.unreadable
            if not self.loaded:  # once these rows are drawn, the engine starts its background work
                self.call_after_refresh(self.kiro_app.engine.begin)
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
            self.table.update_rows(ids, self.views, self.visible_views(), now)
        if self._history is not None and (ids is None or self._history[0] in ids):
            self._history = None
        self.alert_on_new_trouble(now, ids)
        self.update_summary(now)
        self.update_empty_state()
        self.update_detail()
        self.refresh_bindings()  # the footer rebuilds only if its keys changed

    def engine_unavailable(self, exc: KiroTuiError) -> None:
        """No engine (an unusable store, no certificates): say it once; nothing else can work."""
        if self.kiro_app.engine_problem is None:
            self.kiro_app.engine_problem = str(exc)
            self.notify(f"{exc}. Nothing can be shown or refreshed.", title="The engine cannot start",
                        severity="error", timeout=60)
        self.update_summary(self.kiro_app.clock.now())

    def tick(self) -> None:
        """Once a second: repaint countdowns (no store read: the engine says when anything changed)."""
        now = self.kiro_app.clock.now()
        self.table.tick(now)
        self.update_summary(now)
        self.update_detail(fetch=False)

    def statuses(self, now: datetime) -> dict[str, Status]:
        """Every account's status, counted again only where something changed (StatusTally)."""
        self.tally.advance(now)
        return self.tally.statuses

    def alert_on_new_trouble(self, now: datetime, ids: frozenset[str] | None = None) -> None:
        """A toast (and the optional bell) once, when an account turns needs-login or suspended
        (only a re-read brings either: the accounts re-read are the ones to look at)."""
        first_look = not self.known_status
        statuses = self.statuses(now)
        for account_id, status in (statuses.items() if ids is None else
                                   ((i, statuses[i]) for i in ids if i in statuses)):
            before = self.known_status.get(account_id)
            self.known_status[account_id] = status
            if first_look or not status.is_alert or (before is not None and before.is_alert):
                continue
            account = self.views[account_id].account
            self.toast_trouble(account.name, status, account.last_error)

    def toast_trouble(self, name: str, status: Status, reason: str | None) -> None:
        title = "Needs login" if status is Status.NEEDS_LOGIN else "Suspended"
        self.notify(f"{name}: {fmt.short_reason(reason) or status.label}. Select it and press enter.",
                    title=title, severity="error", timeout=10)
        if self.kiro_app.settings.bell:
            self.app.bell()

    def update_summary(self, now: datetime) -> None:
        app = self.kiro_app
        self.tally.advance(now)
        shown = len(self.table.accounts) if self.filter_text else None
        self.query_one(SummaryBar).show(
            self.tally.counts, app.kiro_cli_db, app.last_import_at, now, app.import_error,
            shown=shown, problem=app.engine_problem, unreadable=len(self.unreadable),
            held=self.tally.held, place_errors=self.tally.place_errors, loaded=self.loaded,
            keepers=app.keepers)

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
            looked = "\n".join(str(path) for path in self.kiro_app.kiro_cli_candidates)
            found = (f"kiro-cli's database is at {self.kiro_app.kiro_cli_db}."
                     if self.kiro_app.kiro_cli_db else f"No kiro-cli database found. Looked in:\n{looked}")
            empty.update(Text.assemble(
                ("No accounts yet.", "bold"), f"\n\n{found}\n\nPress ", ("i", "bold"),
                " to import kiro-cli's logins, or ", ("l", "bold"), " to log in with a device code.",
            ))

    def update_detail(self, fetch: bool = True) -> None:
        view = self.selected_view()
        now = self.kiro_app.clock.now()
        history = self._history[1] if view and self._history and self._history[0] == view.id else None
        self.query_one(AccountDetail).show(view, history or [], now, self.kiro_app.settings,
                                           self.kiro_app.fetch_usage, filtered_out=bool(self.views),
                                           used_by=self.used_by.get(view.id, []) if view else [])
        if view is not None and fetch:
            if history is None:
                self.load_history(view.id)
            if self.kiro_app.fetch_usage and view.usage is None and view.id not in self._usage_asked:
                self._usage_asked.add(view.id)
                self.fetch_usage(view.id)
            asked = view.id in self._profiles_asked or view.id in self.profile_counts
            if self.kiro_app.fetch_usage and self.kiro_app.settings.fetch_usage and not asked \
                    and view.account.health is Health.OK:
                self._profiles_asked.add(view.id)
                self.count_profiles(view.account)

    @work(group="history", exclusive=True, exit_on_error=False, description="read refresh history")
    async def load_history(self, account_id: str) -> None:
        try:
            history = await self.kiro_app.engine.call(lambda engine: engine.history(account_id))
        except KiroTuiError:
            return
        self._history = (account_id, history)
        self.update_detail(fetch=False)

    @work(group="profiles", exit_on_error=False, description="count the profiles of the selected account")
    async def count_profiles(self, account: Account) -> None:
        """Once per account and session, like its usage: whether `p` has a choice to offer."""
        try:
            listing = await self.kiro_app.engine.call(lambda engine: engine.list_profiles(account.access_token))
        except KiroTuiError:
            return  # unknown: p keeps its place by room, as before
        self.profile_counts[account.id] = len(listing.profiles)
        self.refresh_bindings()

    @work(group="usage", exit_on_error=False, description="fetch usage of the selected account")
    async def fetch_usage(self, account_id: str) -> None:
        try:
            await self.kiro_app.engine.call(lambda engine: engine.fetch_usage_now(account_id))
        except KiroTuiError:
            return  # shown in the panel as unavailable when the engine says why

    # ------------------------------------------------------------------ events

    @on(AccountsTable.Filled)
    def table_filled(self) -> None:
        self.kiro_app.freeze_what_is_built()

    @on(DataTable.RowHighlighted)
    def row_highlighted(self) -> None:
        self.update_detail()
        self.refresh_bindings()  # the footer rebuilds only if its keys changed

    @on(DataTable.RowSelected)
    def row_selected(self) -> None:
        self.action_resolve()

    def on_accounts_updated(self, message: messages.AccountsUpdated) -> None:
        self.mark_dirty(self.kiro_app.take_changed())

    def on_account_status_changed(self, message: messages.AccountStatusChanged) -> None:
        """This engine turned an account: toast now if it needs a person (the row is re-read by
        the AccountsUpdated that follows; turns made by other processes are found by comparing)."""
        change = message.change
        self.known_status[change.account_id] = change.after
        if change.after.is_alert and not change.before.is_alert:
            self.toast_trouble(change.name, change.after, change.message)

    def on_engine_notice(self, message: messages.EngineNotice) -> None:
        self.notify(message.text, title=message.title, severity="warning", timeout=30)
    def on_keepers_changed(self, message: messages.KeepersChanged) -> None:
        self.kiro_app.keepers = message.keepers
        self.update_summary(self.kiro_app.clock.now())

    def on_engine_trouble(self, message: messages.EngineTrouble) -> None:
        before = self.kiro_app.engine_problem
        self.kiro_app.engine_problem = message.problem
        if message.problem and message.problem != before:
            self.notify(message.problem, title=message.title, severity="error",
                        timeout=60 if message.title != "kiro-tui" else 15)
        elif message.problem is None and before:
            self.notify("All is well again.", title="kiro-tui")
        self.update_summary(self.kiro_app.clock.now())

    def on_import_finished(self, message: messages.ImportFinished) -> None:
        report = message.report
        self.kiro_app.last_import_at = self.kiro_app.clock.now()
        self.kiro_app.import_error = None
        kinds = {kind for kind, _ in report.sources} or {report.kind}
        if report.kind == "kiro-cli":
            self.kiro_app.kiro_cli_db = report.source
        where = fmt.place_title(next(iter(kinds))) if len(kinds) == 1 else "every place found"
        if not message.automatic and not report.imported and not report.skipped:
            self.notify(f"no login in {fmt.home_relative(report.source)}; {first_login_hint(report.kind)}",
                        title="Import failed", severity="error", timeout=10)
        elif not message.automatic:
            self.notify(describe_import(report), title=f"Imported from {where}",
                        severity="warning" if report.skipped else "information")
        elif report.changed:
            self.notify(describe_import(report), title=f"{where} changed")
        self.update_summary(self.kiro_app.clock.now())

    def on_import_failed(self, message: messages.ImportFailed) -> None:
        self.kiro_app.import_error = message.error
        if not message.automatic:
            self.notify(message.error, title="Import failed", severity="error", timeout=10)
        self.update_summary(self.kiro_app.clock.now())

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
            return view is not None and fmt.offers_fixes(view, self.kiro_app.clock.now(), self.kiro_app.settings.window)
        if action in ("refresh_all", "filter"):
            return bool(self.views)
        if action == "clear_filter":
            return bool(self.filter_text) or bool(self.query("#filter"))
        return True

    # ------------------------------------------------------------------ actions

    def action_import(self) -> None:
        self.choose_import()

    @work(group="import", exclusive=True, exit_on_error=False, description="import")
    async def choose_import(self) -> None:
        """kiro-cli at once when it is the only place holding logins; else every place found,
        with how many logins each holds (kiro-cli first), and all of them."""
        try:
            sources = await self.kiro_app.engine.call(lambda engine: engine.sources())
        except KiroTuiError as exc:
            self.post_message(messages.ImportFailed(str(exc), automatic=False))
            return
        found = [s for s in sources if s.found and s.logins]
        if not any(s.kind != "kiro-cli" for s in found):
            self.import_from(None, "kiro-cli")
            return
        options = [(f"{s.kind}\t{s.path}",
                    f"{fmt.place_title(s.kind):<16} {s.logins:>2} login{'s' if s.logins != 1 else ' '}"
                    f"  {fmt.home_relative(s.path) if s.path else '-'}") for s in found]
        options.append(("all\t", f"{'Everything above':<16} {sum(s.logins for s in found):>2} logins"))
        unfound = ", ".join(fmt.place_title(s.kind) for s in sources if s.path is None)
        chosen = await self.app.push_screen_wait(ChoiceScreen(
            "Import from", options, "Logins kiro-tui found; one credential is one account, however many "
            "places hold it." + (f"\nNot looked for: {unfound} (kiro-tui cannot find them by itself; "
                                 "`kiro-tui sources` says how to name them)." if unfound else "")))
        if chosen:
            kind, _, path = chosen.partition("\t")
            self.import_from(Path(path) if path else None, kind)

    @work(group="import-run", exclusive=True, exit_on_error=False, description="import")
    async def import_from(self, path: Path | None, kind: str) -> None:
        """The engine announces the import itself (ImportFinished): only a failure is said here."""
        try:
            await self.kiro_app.engine.call(lambda engine: engine.import_now(path, kind))
        except KiroTuiError as exc:
            self.post_message(messages.ImportFailed(str(exc), automatic=False))

    def action_places(self) -> None:
        view = self.selected_view()
        if view is not None:
            self.choose_place(view)

    @work(group="places", exclusive=True, exit_on_error=False, description="link, export or unlink")
    async def choose_place(self, view: AccountView) -> None:
        """Link (kept fresh after every refresh), export (written once), or unlink a copy."""
        name = view.account.name
        options = [(f"link\t{kind}", f"Link to {fmt.place_title(kind)}") for kind in LINK_KINDS]
        options += [(f"export\t{kind}", f"Export to {fmt.place_title(kind)} (once)") for kind in LINK_KINDS]
        options += [(f"unlink\t{p.path}", f"Unlink {fmt.place_title(p.kind)}  {fmt.home_relative(Path(p.path))}")
                    for p in view.places if p.role is PlaceRole.LINK]
        chosen = await self.app.push_screen_wait(ChoiceScreen(
            f"Copies of {name}", options, "A link is written now and after every refresh, in that tool's own "
            "format; an export is written once."))
        if not chosen:
            return
        what, _, target = chosen.partition("\t")
        if what == "unlink":
            question = Text.assemble(
                "Stop keeping ", (printable(fmt.home_relative(Path(target))), "bold"), " fresh for ",
                (printable(name), "bold"), "?\n\n",
                "The file is left as it is: the login in it expires unless that tool refreshes it itself.")
            if not await self.app.push_screen_wait(ConfirmScreen(question, "Unlink")):
                return
            self.edit(lambda engine: engine.unlink(view.id, target), f"{name}: {fmt.home_relative(Path(target))} "
                      "is no longer kept fresh (the file is left as it is).", "Unlinked")
            return
        default = await self.kiro_app.engine.call(lambda engine: engine.usual_place(target))
        path = await self.app.push_screen_wait(PathPromptScreen(
            f"{'Link' if what == 'link' else 'Export'} {name} to {fmt.place_title(target)}",
            "The file, or a folder to create it in:", str(default) if default else ""))
        if not path:
            return
        chosen_path = Path(path).expanduser()  # noqa: ASYNC240 - reads $HOME, touches no file
        caveat = await self.kiro_app.engine.call(lambda engine: engine.caveat(view.id, target))
        warning = f" Note: {caveat}." if caveat else ""
        if what == "link":
            self.edit(lambda engine: engine.link(view.id, target, chosen_path),
                      f"{name} is kept fresh in {fmt.place_title(target)} ({fmt.home_relative(chosen_path)})."
                      f"{warning}",
                      "Linked")
        else:
            self.edit(lambda engine: engine.export(view.id, target, chosen_path),
                      f"{name} was written to {fmt.home_relative(chosen_path)} (once).{warning}", "Exported")

    def action_use(self) -> None:
        view = self.selected_view()
        if view is not None:
            self.choose_use(view)

    @work(group="places", exclusive=True, exit_on_error=False, description="use an account in a tool")
    async def choose_use(self, view: AccountView) -> None:
        """The tools found where they keep their login, and whose login each holds now; or another file."""
        name = view.account.name
        try:
            tools = await self.kiro_app.engine.call(lambda engine: engine.tools_found())
        except KiroTuiError as exc:
            self.notify(str(exc), title="Use in", severity="error", timeout=10)
            return
        options = []
        for tool in tools:
            holder = self.views.get(tool.holder or "")
            now = ("already this one" if tool.holder == view.id else f"now {holder.account.name}" if holder
                   else "now a login kiro-tui has not seen")
            options.append((f"{tool.kind}\t{tool.path}", f"{fmt.place_title(tool.kind):<16} {now}"))
        options.append(("other\t", "Another file…"))
        chosen = await self.app.push_screen_wait(ChoiceScreen(
            f"Use {name} in", options, "Its whole login replaces the one there; that one is kept (imported if "
            "new, and a copy of the file), still refreshed, so switching back finds it alive."))
        if not chosen:
            return
        kind, _, path = chosen.partition("\t")
        if kind == "other":
            picked = await self.app.push_screen_wait(ChoiceScreen(
                f"Use {name} in", [(k, fmt.place_title(k)) for k in USE_KINDS], "Which tool's file?"))
            if not picked:
                return
            kind = picked
            default = await self.kiro_app.engine.call(lambda engine: engine.usual_place(picked))
            typed = await self.app.push_screen_wait(PathPromptScreen(
                f"Use {name} in {fmt.place_title(kind)}", "The file the tool reads:", str(default) if default else ""))
            if not typed:
                return
            path = typed
        target = Path(path).expanduser()  # noqa: ASYNC240 - reads $HOME, touches no file
        try:
            outcome = await self.kiro_app.engine.call(lambda engine: engine.use(view.id, kind, target))
        except KiroTuiError as exc:
            self.notify(str(exc), title="Use in", severity="error", timeout=10)
            return
        kept = "".join(f" {self.views[i].account.name if i in self.views else i} is kept, still refreshed."
                       for i, _ in outcome.previous)
        self.notify(f"{name} is now the login in {fmt.place_title(kind)} ({fmt.home_relative(outcome.path)})."
                    + kept, title="Use in")
        self.load_tools()

    def action_rename(self) -> None:
        account = self.selected()
        if account is not None:
            self.app.push_screen(NamePromptScreen(f"Name for {account.name}", account.nickname or ""),
                                 callback=lambda name: self.rename_chosen(account, name))

    def rename_chosen(self, account: Account, name: str | None) -> None:
        if name is None or name == (account.nickname or ""):
            return
        self.edit(lambda engine: engine.rename(account.id, name),
                  f"{account.id} is now called {name}." if name else f"{account.id} has no name now.", "Name")

    @work(group="tools", exclusive=True, exit_on_error=False, description="which account each tool uses")
    async def load_tools(self) -> None:
        try:
            tools = await self.kiro_app.engine.call(lambda engine: engine.tools_found())
        except KiroTuiError:
            return
        used_by: dict[str, list[str]] = {}
        for tool in tools:
            if tool.holder:
                used_by.setdefault(tool.holder, []).append(fmt.place_title(tool.kind))
        if used_by != self.used_by:
            self.used_by = used_by
            self.update_detail(fetch=False)

    def action_refresh(self) -> None:
        account = self.selected()
        if account is not None:
            self.refresh_accounts([account.id], announce=True)

    def action_refresh_all(self) -> None:
        self.refresh_accounts(list(self.views), announce=False)

    @work(group="refresh", exit_on_error=False, description="refresh now")
    async def refresh_accounts(self, account_ids: list[str], announce: bool) -> None:
        """Through the engine's scheduler: the same concurrency bound as background refreshes."""
        try:
            results = await self.kiro_app.engine.call(lambda engine: engine.refresh_now(account_ids))
        except KiroTuiError as exc:
            self.notify(str(exc), title="Cannot refresh", severity="error", timeout=15)
            return
        failed = [r for r in results if r.outcome is Outcome.FAILED]
        if announce and results:
            result = results[0]
            view = self.views.get(result.account_id)
            name = view.account.name if view else (result.label or result.account_id)  # the label may be ""
            if result.outcome is Outcome.FAILED or result.status.is_alert:
                self.notify(result.message or result.status.label, title="Refresh failed", severity="error")
            elif result.outcome is Outcome.SKIPPED:
                self.notify(result.message or "nothing to do", title=name)
            elif result.expires_at is not None:  # "followed; expired 16 seconds ago (follow mode: …)"
                expiry = fmt.expiry_phrase(result.expires_at, self.kiro_app.clock.now())
                self.notify(f"{result.outcome.value}; {expiry}" + (
                    f" ({result.message})" if result.message else ""), title=name)
        elif not announce:
            waiting = [r for r in results if r.outcome is Outcome.FOLLOWED and r.status is Status.EXPIRED]
            said = [f"{len(results) - len(failed) - len(waiting)} refreshed or up to date"]
            if waiting:  # nothing kiro-tui did or could do: say so, and where the way out is
                said.append(f"{len(waiting)} waiting for kiro-cli (follow mode, expired; enter on it offers "
                            "re-import)")
            self.notify(", ".join([*said, f"{len(failed)} failed"]), title="Refresh all",
                        severity="warning" if failed or waiting else "information")

    def action_login(self, prefill: LoginRequest | None = None) -> None:
        self.start_login(prefill)

    @work(group="login-ui", exclusive=True, exit_on_error=False, description="log in")
    async def start_login(self, prefill: LoginRequest | None) -> None:
        if prefill is None:
            try:
                prefill = await self.kiro_app.engine.call(_last_login_request)
            except KiroTuiError:
                prefill = LoginRequest()
        held_before = set(self.views)  # read now: the engine's re-read may show the new account first
        while True:  # the device screen can send the person back to the form after a failure
            request = await self.app.push_screen_wait(LoginFormScreen(prefill))
            if request is None:
                return
            if prefill.replaces:
                request = replace(request, replaces=prefill.replaces)
            account = await self.app.push_screen_wait(DeviceCodeScreen(request))
            if account != AGAIN:
                break
            prefill = request
        if not isinstance(account, Account):
            return
        renewed = account.id in held_before  # an account it already held (asked first, if another's)
        self.views[account.id] = AccountView(account)  # shown at once; the engine's re-read follows
        self.tally.update({account.id}, self.views, self.kiro_app.clock.now())
        self.table.update_rows(frozenset({account.id}), self.views, self.visible_views(), self.kiro_app.clock.now())
        if account.id in self.table.accounts:
            self.table.move_cursor(row=self.table.get_row_index(account.id))
        meant = self.views.get(request.replaces or "")
        if meant is not None and meant.id != account.id:
            saved = f"{account.name}'s account is renewed" if renewed else f"{account.name} is saved as its own account"
            self.notify(f"You signed in as {account.name}, not {meant.account.name}: {meant.account.name} still "
                        f"needs a login. {saved}.",
                        title="Someone else signed in", severity="warning", timeout=15)
            return
        self.notify(f"{account.name} is ready; kiro-tui keeps it fresh.", title="Logged in")

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
            listing = await self.kiro_app.engine.call(lambda engine: engine.account_profiles(account.id))
        except KiroTuiError as exc:
            picker.fail(str(exc))
            return
        if not listing.profiles:
            picker.fail("This login has no profiles (Builder ID logins usually have none).")
            return
        self.profiles_cache = {p.arn: p for p in listing.profiles}
        self.profile_counts[account.id] = len(listing.profiles)
        picker.fill(profile_options(listing.profiles, account.profile_arn), account.profile_arn)

    def profile_chosen(self, account: Account, arn: str | None) -> None:
        profile = self.profiles_cache.get(arn) if arn else None
        if profile is not None:
            self.edit(lambda engine: engine.set_profile(account.id, profile),
                      f"{account.name} now uses {profile.name} ({profile.region}).", "Profile")

    @work(group="edit", exit_on_error=False, description="change an account")
    async def edit(self, change: Callable[[Engine], Awaitable[object]], done: str, title: str) -> None:
        """A change a person asked for, made by the engine (it owns the store)."""
        try:
            await self.kiro_app.engine.call(change)
        except KiroTuiError as exc:
            self.notify(str(exc), title=title, severity="error", timeout=10)
            return
        self.notify(done, title=title)

    def action_mode(self) -> None:
        account = self.selected()
        if account is None:
            return
        modes = account.allowed_modes
        explanation = "" if len(modes) > 1 else "Only own applies: this login is not in kiro-cli's database."
        self.app.push_screen(
            ChoiceScreen(f"Mode for {account.name}", [(m.value, MODE_HELP[m]) for m in modes], explanation,
                         highlighted=account.mode.value, current=account.mode.value),
            callback=lambda chosen: self.mode_chosen(account, chosen),
        )

    def mode_chosen(self, account: Account, chosen: str | None) -> None:
        if chosen is None or chosen == account.mode.value:
            return
        mode = Mode(chosen)
        self.edit(lambda engine: engine.set_mode(account.id, mode), f"{account.name}: {MODE_HELP[mode]}", "Mode")

    def action_copy_token(self) -> None:
        account = self.selected()
        if account is None:
            return
        question = Text.assemble(
            "Copy the access token of ", (printable(account.name), "bold"), "?\n\n",
            "Anyone who can paste it can act as this account until it expires "
            f"({fmt.expiry_phrase(account.expires_at, self.kiro_app.clock.now())}).")
        self.app.push_screen(ConfirmScreen(question, "Copy"), callback=lambda ok: self.copy_confirmed(account, ok))

    def copy_confirmed(self, account: Account, ok: bool | None) -> None:
        if ok:
            how = copy_text(self.app, account.access_token)
            self.notify(f"The access token of {account.name} was {how}.", title="Copied")

    def action_remove(self) -> None:
        view = self.selected_view()
        if view is None:
            return
        account = view.account
        question = Text.assemble(
            "Remove ", (printable(account.name), "bold"), " from kiro-tui?\n\n",
            which_account(view, self.kiro_app.clock.now(), self.kiro_app.settings), "\n\n",
            "Its tokens are deleted from kiro-tui's store. kiro-cli's own login is not touched, and "
            "importing again will not bring this login back (a new login there will).")
        self.app.push_screen(ConfirmScreen(question, "Remove"), callback=lambda ok: self.remove_confirmed(account, ok))

    def remove_confirmed(self, account: Account, ok: bool | None) -> None:
        if ok:
            self.views.pop(account.id, None)
            self.tally.update({account.id}, self.views, self.kiro_app.clock.now())
            self.table.update_rows(frozenset({account.id}), self.views, self.visible_views(),
                                   self.kiro_app.clock.now())
            self.edit(lambda engine: engine.remove(account.id), f"Removed {account.name}.", "Removed")

    def action_resolve(self) -> None:
        view = self.selected_view()
        account = view.account if view else None
        if view is None or account is None or not self.check_action("resolve", ()):
            return
        if fmt.waits_for_kiro_cli(view, self.kiro_app.clock.now(), self.kiro_app.settings.window):
            self.app.push_screen(
                ChoiceScreen(f"{account.name} waits for kiro-cli", [
                    ("reimport", "Re-import from kiro-cli (once kiro-cli has run and refreshed it)"),
                    ("sync", MODE_HELP[Mode.SYNC].replace("sync —", "Switch to sync mode:", 1)),
                ], "Follow mode: kiro-tui never refreshes this login; it mirrors kiro-cli's database, and "
                   "kiro-cli refreshes the login when it next runs."),
                callback=lambda chosen: self.resolve_chosen(account, chosen),
            )
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
        elif chosen == "reimport":
            self.import_from(Path(account.source) if account.source else None, "kiro-cli")
        elif chosen == "sync":
            self.mode_chosen(account, Mode.SYNC.value)
        elif chosen == "login":
            start_url = account.start_url if account.auth_method.value == "idc" else None
            self.action_login(LoginRequest(start_url, account.region, replaces=account.id))

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
        now = self.kiro_app.clock.now()
        self.table.show(self.visible_views(), now)
        self.update_summary(now)
        self.update_detail(fetch=False)

    @on(Input.Submitted, "#filter")
    def filter_done(self) -> None:
        self.table.focus()

    async def action_clear_filter(self) -> None:
        await self.query("#filter").remove()  # gone before the footer asks whether esc still works
        self.filter_text = ""
        now = self.kiro_app.clock.now()
        self.table.show(self.visible_views(), now)
        self.update_summary(now)
        self.table.focus()
        self.refresh_bindings()

    def action_help(self) -> None:
        settings = self.kiro_app.settings
        bindings = dict(self.active_bindings)
        for binding in self.table.BINDINGS:  # enter is listed even while the account under it is fine
            if isinstance(binding, Binding) and binding.key not in bindings:
                bindings[binding.key] = ActiveBinding(self.table, binding, False, binding.tooltip)
        self.app.push_screen(HelpScreen(bindings, settings.window, settings.quota_warning))

    async def action_quit(self) -> None:
        self.app.exit()


async def _last_login_request(engine: Engine) -> LoginRequest:
    return engine.last_login_request()


def which_account(view: AccountView, now: datetime, settings: Settings) -> Text:
    """What tells this account apart from another with the same email: its id, its login
    (kind, portal, region, profile), where it came from, and how it is now."""
    account = view.account
    login = [account.auth_method.label + (f" ({account.provider})" if account.provider else "")]
    if account.start_url and account.auth_method is AuthMethod.IDC:
        login.append(account.start_url.removeprefix("https://").split(".")[0])
    login.append(account.region)
    if account.profile_name or account.profile_arn:
        login.append(f"profile {fmt.profile_label(account)}")
    sources = [p for p in view.places if p.role is PlaceRole.SOURCE]
    if sources:
        entry = f" ({sources[0].entry})" if sources[0].entry else ""
        origin = f"imported from {fmt.place_title(sources[0].kind)}{entry}"
    elif account.source_key:
        origin = f"imported from kiro-cli ({account.source_key})"
    else:
        origin = "logged in with kiro-tui"
    status = view.status(now, settings.window, settings.quota_warning)
    rows = (("id", account.id), ("login", ", ".join(login)), ("from", origin),
            ("status", f"{status.label}, {fmt.expiry_phrase(account.expires_at, now)}"))
    text = Text()
    for label, value in rows:
        text.append(f"  {label:<8}", style="bold")
        text.append(printable(value) + ("\n" if label != "status" else ""))
    return text


def _views_of(ids: frozenset[str] | None) -> Callable[[Engine], Awaitable[Views]]:
    """The engine call that reads these accounts' views (all of them: None)."""
    return lambda engine: engine.views(ids)


def describe_import(report: ImportReport) -> str:
    counts: dict[str, int] = {}
    for item in report.imported:
        counts[item.action] = counts.get(item.action, 0) + 1
    parts = [f"{n} {action}" for action, n in counts.items()] or ["no logins"]
    if report.skipped:
        first = report.skipped[0]
        parts.append(f"{len(report.skipped)} skipped ({first.key or fmt.home_relative(Path(first.path or ''))}: "
                     f"{first.reason})")
    if report.missing:
        parts.append(f"{len(report.missing)} kept (no longer there)")
    return ", ".join(parts)
