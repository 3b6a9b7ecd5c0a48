"""The engine: everything that runs in the background, behind one small front.

`kiro-tui watch`, `refresh`, `import` and `login` drive it directly; the TUI drives it through
`EngineThread` (its own thread, event loop, store connection and HTTP client), so nothing it
does ever runs on Textual's loop. What it does is told as typed events (core/events.py).

The front: `import_now`, `refresh_now` (through the scheduler's concurrency bound),
`account_changed`, `views` (what to show), the login steps, and the few store edits a person
makes (mode, profile, remove). Every background pass is guarded: one failure is logged and
reported as an `EngineProblem`, and the loop carries on; if a whole loop dies it is restarted
with backoff. `stop` lets refreshes under way finish and commit before returning.

This module keeps the lifecycle (start, run, stop, close), the events, and the front's methods;
the work behind most of them lives in a module of its own, each one idea: the watch pass
(core/watch.py), quota (core/quota.py), imports and sources (core/imports.py), what to show
(core/views.py), links and exports (core/linking.py), a token handed out (core/fresh_token.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from kiro_tui.core import events, imports, linking, quota, runners
from kiro_tui.core.aws.endpoints import Endpoints
from kiro_tui.core.clock import Clock
from kiro_tui.core.config import Settings
from kiro_tui.core.errors import KiroTuiError, StoreError, TlsSetupError
from kiro_tui.core.events import AccountsChanged, EngineEvent, EngineNotice, EngineProblem, StatusChanged
from kiro_tui.core.fresh_token import TOKEN_WAIT, fresh_token
from kiro_tui.core.importer import ImportReport
from kiro_tui.core.imports import KIRO_CLI, KnownPlace
from kiro_tui.core.models import Account, AccountView, Mode, Place, PlaceRole, UsageRecord
from kiro_tui.core.names import rename
from kiro_tui.core.places._files import remove_stale_temps
from kiro_tui.core.refresh_result import RefreshResult, StatusChange
from kiro_tui.core.runners import Runner
from kiro_tui.core.store import AccountStore, RefreshLogEntry
from kiro_tui.core.switch import Tool, UseOutcome, rewrite_places, tools_found, use_account
from kiro_tui.core.views import Holdings, Views, holdings, read_views
from kiro_tui.core.watch import Watcher

if TYPE_CHECKING:  # the network's modules (httpx, AWS clients, refresh, login) load when the
    # engine starts or logs in: `list` and the TUI's first screen never wait for them
    import httpx

    from kiro_tui.core.aws.codewhisperer import Profile, ProfileListing, QClient
    from kiro_tui.core.aws.tokens import TokenResult
    from kiro_tui.core.login import DeviceLogin, LoginFlow, LoginOutcome, LoginRequest, PollStatus
    from kiro_tui.core.refresh import Refresher
    from kiro_tui.core.scheduler import RefreshScheduler

__all__ = ["Engine", "Holdings", "KnownPlace", "Views"]  # what the front hands over, named here

log = logging.getLogger("kiro_tui.engine")
T = TypeVar("T")
RESTART_BACKOFF = (1.0, 60.0)
"""Seconds before a background loop that died is started again: doubled each time, up to 60."""


class Engine:
    """The one front the CLI and the TUI drive; its parts are given the engine and use its
    events (`_emit`, `_set_problem`, `_status_changed`) and its network check (`_network`)."""

    def __init__(
        self,
        store: AccountStore,
        settings: Settings,
        clock: Clock,
        endpoints: Endpoints,
        kiro_cli_db: Path | None,
        *,
        http: httpx.AsyncClient | None = None,
        kiro_cli_candidates: list[Path] | None = None,
        on_event: Callable[[EngineEvent], None] | None = None,
        fetch_usage: bool = True,
        runner_kind: str | None = None,
    ) -> None:
        self.store, self.settings, self.clock, self.endpoints = store, settings, clock, endpoints
        self.kiro_cli_db = kiro_cli_db
        self.kiro_cli_candidates = kiro_cli_candidates if kiro_cli_candidates is not None else (
            [kiro_cli_db] if kiro_cli_db else [])
        self.fetch_usage = fetch_usage
        self._on_event = on_event
        self._http = http
        self._owns_http = http is None
        self.refresher: Refresher | None = None
        self.scheduler: RefreshScheduler | None = None
        self.q: QClient | None = None
        self.problem: str | None = None
        self.network_error: TlsSetupError | None = None
        self.watch_error: str | None = None
        self.last_import_at: datetime | None = None
        self.watcher = Watcher(self)
        """The watch pass and what it knew at the last one (core/watch.py)."""
        self._stopping = asyncio.Event()
        self._stop_task: asyncio.Task[list[str]] | None = None
        self._started = False
        self._start_task: asyncio.Future[None] | None = None
        self.saved_at_start: list[str] = []
        """What `start` said about tokens earlier runs rescued, now saved (for `list` to print)."""
        self.runner_kind = runner_kind
        """`watch` or `tui` when this engine runs for good: it records itself as a runner and
        announces logins that need a person (core/runners.py, core/notify.py); None otherwise."""

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Build the parts that need a loop: the HTTP client (its CA bundle is read in a thread).
        Without usable certificates the engine still reads, imports and shows; it only refuses
        what needs the network (and says so once). Every caller shares one start: two callers
        racing through the thread hop above would each build a refresher and a scheduler, and
        the second would hide the refreshes the first had under way from `stop`."""
        if self._started:
            return
        if self._start_task is None:
            self._start_task = asyncio.ensure_future(self._build())
        await asyncio.shield(self._start_task)

    async def _build(self) -> None:
        from kiro_tui.core.aws.codewhisperer import QClient
        from kiro_tui.core.aws.transport import make_http_client, offline_client
        from kiro_tui.core.notify import Announcer
        from kiro_tui.core.refresh import RefreshClients, Refresher
        from kiro_tui.core.scheduler import RefreshScheduler

        if self._http is None:
            try:
                self._http = await asyncio.to_thread(make_http_client)
            except TlsSetupError as exc:
                self.network_error = exc
                self._http = offline_client(exc)
                self._set_problem(f"{exc}. Accounts are shown, but nothing is refreshed.", "Cannot reach AWS")
        self.refresher = Refresher(self.store, RefreshClients.create(self._http, self.endpoints), self.clock,
                                   self.settings, on_change=self._status_changed)
        self.scheduler = RefreshScheduler(self.store, self.refresher, self.clock, self.settings)
        self.q = QClient(self._http, self.endpoints)
        self.store.others_committed()  # what the watch's passes compare with from now on
        if self.runner_kind is not None:
            self.watcher.announcer = Announcer(self.store, self.settings, self._http, self.clock.now)
        self._started = True
        if self.refresher.held:  # rescue copies an earlier run left: into the store first of all
            await self.refresher.commit_held(force=True)
            self.saved_at_start = self.tell_saved_held()
        try:  # read here, on the loop that owns the store; the folders are looked at in a thread
            folders = [Path(place.path).parent for place in self.store.places()]
        except StoreError:
            folders = []
        await asyncio.to_thread(_remove_stale_temps, folders)

    def tell_saved_held(self) -> list[str]:
        """Say (once each) which held or rescued tokens are now saved in the store; returns it."""
        if self.refresher is None:
            return []
        told = []
        for account_id, name, where in self.refresher.saved_held:
            text = (f"{account_id} {name}: the token an earlier run rescued in {where} is now saved in the store"
                    if where else f"{account_id} {name}: the held token is now saved in the store")
            told.append(text)
            self._emit(EngineNotice(text, "Token saved"))
        self.refresher.saved_held.clear()
        return told

    async def run(self) -> None:
        """Refresh, watch and fetch usage until `stop`; a loop that dies is restarted with backoff."""
        await self.start()
        self.watcher.register_runner()
        try:
            await self._run_loops()
        finally:
            self.watcher.unregister_runner()  # a clean exit, or a cancellation: not after kill -9

    async def _run_loops(self) -> None:
        delay = RESTART_BACKOFF[0]
        while not self._stopping.is_set():
            loops = [asyncio.create_task(self.watcher.loop(), name="watcher")]
            if self.network_error is None:
                assert self.scheduler is not None  # (built by start)
                loops.append(asyncio.create_task(self.scheduler.run(), name="scheduler"))
            stopper = asyncio.create_task(self._stopping.wait())
            try:
                done, _ = await asyncio.wait([*loops, stopper], return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (*loops, stopper):
                    task.cancel()
                await asyncio.gather(*loops, stopper, return_exceptions=True)
            crashed = [t for t in loops if t in done and not t.cancelled() and t.exception() is not None]
            if self._stopping.is_set() or not crashed:
                break
            exc = crashed[0].exception()
            log.error("background refresh stopped: %s; restarting in %g s", exc, delay, exc_info=exc)
            self._set_problem(f"background refresh stopped: {type(exc).__name__}: {exc}; restarting")
            await self.clock.sleep(delay)
            delay = min(delay * 2, RESTART_BACKOFF[1])

    async def stop(self, timeout: float | None = 20.0) -> list[str]:
        """Stop the loops and let refreshes under way finish and commit (each is bounded by the
        request timeout). Returns the ids still refreshing after `timeout`. Every caller (the
        TUI's quit, a signal, `close`) shares one stop: a second call waits for the first, and
        a caller cancelled meanwhile does not cancel the drain."""
        self._stopping.set()
        if self._stop_task is None:
            self._stop_task = asyncio.ensure_future(self._drain(timeout))
        return await asyncio.shield(self._stop_task)

    async def _drain(self, timeout: float | None) -> list[str]:
        if self.scheduler is None:
            return []
        left = await self.scheduler.drain(timeout)
        if self.refresher is not None and self.refresher.held:
            await self.refresher.commit_held(force=True)
        return left

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def until_stopped(self) -> None:
        """Until someone asks the engine to stop (for a presenter that runs no loops)."""
        await self._stopping.wait()

    async def abandon(self) -> list[str]:
        """After a second Ctrl-C: cancel what `stop` left running; returns their ids. Each
        cancelled refresh still releases its lease (the store stays open until `close`)."""
        if self.scheduler is None:
            return []
        left = self.scheduler.under_way
        await self.scheduler.abandon()
        return left

    @property
    def under_way(self) -> list[str]:
        """The ids of the refreshes under way (started, answer not yet committed)."""
        return self.scheduler.under_way if self.scheduler is not None else []

    async def close(self) -> None:
        """Close the HTTP client, only once no refresh is under way: a refresh whose answer is
        on its way needs the client to read it and the store to commit it. Closing without a
        `stop` first stops (and waits) here."""
        if self.scheduler is not None and (self.scheduler.in_flight or self._stop_task is not None):
            await self.stop()
        if self.refresher is not None:
            self.refresher.places.close()
        if self._owns_http and self._http is not None:
            await self._http.aclose()

    # ------------------------------------------------------------------ events

    def _emit(self, event: EngineEvent) -> None:
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:
                log.exception("event handler failed on %s", type(event).__name__)

    def _status_changed(self, change: StatusChange) -> None:
        self._emit(StatusChanged(change))
        self._emit(AccountsChanged(frozenset({change.account_id})))

    def _set_problem(self, problem: str | None, title: str = "kiro-tui") -> None:
        if problem != self.problem:
            self.problem = problem
            self._emit(EngineProblem(problem, title))

    def _network(self) -> None:
        """Refuse what needs the network when there is none to have (no usable certificates)."""
        if self.network_error is not None:
            raise self.network_error

    # ------------------------------------------------------------------ the watch pass (core/watch.py)

    async def watch_pass(self) -> None:
        """One pass, every `watch_interval`: kiro-cli's database, held tokens, pending places,
        other processes' commits, quota. Each step is guarded on its own."""
        await self.watcher.run_pass()

    # ------------------------------------------------------------------ quota (core/quota.py)

    async def q_call(self, account: Account, call: Callable[[Account], Awaitable[T]]) -> T:
        """One CodeWhisperer call made with an account's access token, refreshed once and tried
        again when the service calls it invalid."""
        return await quota.q_call(self, account, call)

    async def account_profiles(self, account_id: str) -> ProfileListing:
        """The profiles an account's login may use."""
        return await quota.account_profiles(self, account_id)

    async def fetch_usage_now(self, account_id: str) -> UsageRecord | None:
        """One GetUsageLimits call: saved (keeping the last good figures on error) and announced."""
        return await quota.fetch_usage_now(self, account_id)

    # ------------------------------------------------------------------ imports (core/imports.py)

    async def import_now(self, path: Path | None = None, kind: str = KIRO_CLI) -> ImportReport:
        """Import explicitly (every account is updated) from one kind of place: kiro-cli's
        database by default, or any kind at `path` (a file or a folder), or `all` that is found."""
        return await imports.import_now(self, path, kind)

    async def known_places(self) -> list[KnownPlace]:
        """Every place kiro-tui knows to look, found or not, with how many logins each holds."""
        return await imports.known_places(self)

    def exported_places(self) -> list[tuple[str, Path]]:
        """The files `export` wrote: still where a tool may keep a login."""
        return imports.exported_places(self)

    # ------------------------------------------------------------------ refreshing

    async def refresh_now(self, account_ids: list[str] | None = None, force: bool = True) -> list[RefreshResult]:
        """Refresh these accounts (all when None) through the scheduler's concurrency bound."""
        await self.start()
        self._network()
        if account_ids is None:
            account_ids = [a.id for a in self.store.accounts()]
        assert self.scheduler is not None  # (built by start)
        results = await self.scheduler.refresh_now(account_ids, force)
        self._emit(AccountsChanged(frozenset(account_ids)))
        return results

    async def fresh_token(self, account_id: str, min_valid: float, wait: float = TOKEN_WAIT) -> Account:
        """The account with a token valid `min_valid` seconds more, refreshed first when it is not
        (`kiro-tui token`; core/fresh_token.py). `NeedsLoginError` when only a login can help."""
        return await fresh_token(self, account_id, min_valid, wait)

    async def due_ids(self) -> list[str]:
        await self.start()
        now = self.clock.now()
        refresher = self.refresher
        assert refresher is not None  # (built by start)
        return [a.id for a in self.store.accounts() if a.is_due(now, refresher.window_for(a.id))]

    def account_changed(self, account_id: str) -> None:
        """A person changed this account (or it is new): reschedule it and repaint it."""
        if self.scheduler is not None:
            self.scheduler.schedule(account_id)
        self._emit(AccountsChanged(frozenset({account_id})))

    async def views(self, ids: list[str] | frozenset[str] | None = None) -> Views:
        """The accounts (all, or these) with what is known around them, for presenting. Only
        reads: what the watch pass compares another process's commit with is its own."""
        if self.scheduler is None or self.refresher is None:
            return read_views(self.store, self.clock.now(), ids)
        return read_views(self.store, self.clock.now(), ids, self.scheduler.in_flight, self.refresher.held,
                          owner=self.refresher.owner)

    async def holdings(self, views: list[AccountView]) -> Holdings:
        """What each place holds compared with its account (`current`, `older`, `newer`, `other`,
        `missing`) and whose login each single-login place holds (core/views.py). Reads the place
        files on this thread, blocking the loop: for a command (`show`), never a running engine."""
        return holdings(self.store, views, self.clock.now())

    async def history(self, account_id: str, limit: int = 5) -> list[RefreshLogEntry]:
        return self.store.refresh_history(account_id, limit)

    # ------------------------------------------------------------------ edits a person makes

    async def set_mode(self, account_id: str, mode: Mode) -> None:
        account = self.store.resolve_id(account_id)
        self.store.set_mode(account, mode)
        self.account_changed(account.id)

    async def set_profile(self, account_id: str, profile: Profile) -> None:
        self.store.update(account_id, profile_arn=profile.arn, profile_name=profile.name)
        self.account_changed(account_id)
        if self.fetch_usage:
            await self.fetch_usage_now(account_id)

    async def remove(self, account_id: str) -> bool:
        removed = self.store.delete(account_id)
        if self.scheduler is not None:
            self.scheduler.schedule(account_id)
        self._emit(AccountsChanged(frozenset({account_id})))
        return removed

    # ------------------------------------------------------------------ links and exports

    async def link(self, account_id: str, kind: str, path: Path | None = None) -> Place:
        """Keep a copy of this account fresh at a place (created if absent), written now and
        after every refresh from then on."""
        return await linking.link(self, account_id, kind, path)

    async def unlink(self, account_id: str, kind_or_path: str) -> list[Place]:
        """Stop keeping copies fresh at these places (by kind, or by path); the files are left."""
        return await linking.unlink(self, account_id, kind_or_path)

    async def export(self, account_id: str, kind: str, path: Path | None = None) -> Path:
        """Write this account's login once into a new file of that tool (no link: not kept fresh)."""
        return await linking.export(self, account_id, kind, path)

    async def caveat(self, account_id: str, kind: str) -> str | None:
        """What that tool cannot do with this login by itself, if anything."""
        return await linking.caveat(self, account_id, kind)

    async def usual_place(self, kind: str) -> Path | None:
        """Where that tool keeps its file when configured as usual, if it has such a place."""
        return await linking.usual_place(kind)

    # ------------------------------------------------------------------ use, names

    async def use(self, account_id: str, kind: str, path: Path | None = None) -> UseOutcome:
        """Make this account the one a tool uses (core/switch.py): what was there is kept."""
        await self.start()
        return await use_account(self, account_id, kind, path)

    async def tools_found(self) -> list[Tool]:
        """The tools `use` can put a login in that are where they usually are, and whose login
        each holds now (the TUI's "use in ..." and its marks)."""
        return await tools_found(self)

    async def rename(self, account_id: str, name: str) -> Account:
        account = rename(self.store, account_id, name)
        self.account_changed(account.id)
        return account

    # ------------------------------------------------------------------ logging in

    async def login_flow(self) -> LoginFlow:
        from kiro_tui.core.aws.oidc import OidcClient
        from kiro_tui.core.login import LoginFlow

        await self.start()
        self._network()
        assert self._http is not None and self.q is not None  # (built by start)
        return LoginFlow(OidcClient(self._http, self.endpoints), self.q, self.clock)

    async def start_login(self, request: LoginRequest) -> DeviceLogin:
        return await (await self.login_flow()).start(request)

    async def wait_for_token(self, login: DeviceLogin,
                             on_status: Callable[[PollStatus], object] | None = None) -> TokenResult:
        return await (await self.login_flow()).wait_for_token(login, on_status)

    async def list_profiles(self, access_token: str) -> ProfileListing:
        return await (await self.login_flow()).profiles(access_token)

    async def finish_login(self, login: DeviceLogin, token: TokenResult, profile: Profile | None,
                           identify_with: Profile | None = None, renew_other: bool = False) -> LoginOutcome:
        """Who signed in, then save the account (renewing the one it replaces, if the same person).
        A renewal writes the whole new login into the account's links, which stay linked; the
        outcome names any copy it had to detach, for the person to link again. Saved before a
        profile is chosen, `identify_with` (one of its profiles) still tells who it is."""
        from kiro_tui.core.login import learn_emails_of_twins, remember_request, save_login

        flow = await self.login_flow()
        email = await flow.email(token.access_token, profile or identify_with)
        if email:
            await learn_emails_of_twins(self.store, flow, login.request, self.clock.now())
        outcome = save_login(self.store, login, token, profile, self.clock.now(), email, renew_other)
        outcome = await rewrite_places(self, outcome)
        remember_request(self.store, login.request)
        self.account_changed(outcome.account.id)
        return outcome

    def last_login_request(self) -> LoginRequest:
        from kiro_tui.core.login import last_request

        return last_request(self.store)

    # ------------------------------------------------------------------ for the command line
    # (issue 25) What the commands used to ask of the store directly, asked of the front: the CLI
    # and the TUI then do the same thing. One block at the end of the class, on purpose.

    def resolve(self, wanted: str) -> str:
        """The full id of the account a person named (an id, name or email, or a unique prefix of
        one) without reading its row: an account that cannot be read can still be named."""
        return self.store.resolve_raw_id(wanted)

    def account(self, wanted: str) -> Account:
        """The account a person named (as `resolve`), read."""
        return self.store.resolve_id(wanted)

    def account_ids(self) -> list[str]:
        """Every account's id, readable or not, sorted."""
        return sorted(self.store.ids())

    def names(self) -> dict[str, str]:
        """Every readable account's name as people see it (nickname, else email or label), by id."""
        return {account.id: account.name for account in self.store.accounts()}

    def refresh_counts(self) -> dict[str, tuple[int, int]]:
        """(successes, failures) in the kept refresh history, by account."""
        return self.store.refresh_counts()

    def removal(self, wanted: str) -> tuple[str, str | None, list[str]]:
        """What removing the account a person named concerns, before asking them: its id, its name
        (None when its row cannot be read: it can still be removed) and the kinds of the places
        whose copies `remove` leaves untouched."""
        account_id = self.resolve(wanted)
        try:
            account = self.store.get(account_id)
            name: str | None = account.name if account else account_id
        except KiroTuiError:
            name = None
        return account_id, name, sorted({place.kind for place in self.store.places(account_id)})

    async def save_rescued(self) -> list[str]:
        """Commit the tokens earlier runs left in rescue copies (starting does) and say which, and
        what is still held. In the usual case, with none, this costs one look at the folders."""
        from kiro_tui.core import rescue

        if not rescue.pending(self.store.path):
            return []
        await self.start()
        return self.saved_at_start + self.held_notes()

    def held_notes(self) -> list[str]:
        """Each token held in memory because the store would not take it: whose, why, and where its
        rescue copy is."""
        held = self.refresher.held.values() if self.refresher is not None else []
        return [f"{token.account_id}: {token.message}; {token.rescue_note}" for token in held]

    async def fetch_all_usage(self, at_once: int = 4) -> None:
        """Fetch the quota now of every account whose token works, `at_once` at a time."""
        await quota.fetch_all_usage(self, at_once)

    def runners_now(self) -> list[Runner]:
        """Who keeps the accounts fresh (core/runners.py): each `watch` and TUI engine's row."""
        return runners.runners(self.store)

    def links(self) -> list[Place]:
        """Every copy kiro-tui keeps fresh in another tool's file, of every account."""
        return [place for place in self.store.places() if place.role is PlaceRole.LINK]

    def kiro_cli_state(self) -> events.KiroCliState:
        """Where kiro-cli's database is, when it was last read and why it could not be (the
        presenter's summary line asks this instead of keeping its own copy)."""
        return events.KiroCliState(self.kiro_cli_db, self.last_import_at, self.watch_error,
                                   tuple(self.kiro_cli_candidates))


def _remove_stale_temps(folders: list[Path]) -> None:
    """Token copies a killed kiro-tui left beside the place files it was writing: removed."""
    for path in remove_stale_temps(folders):
        log.warning("removed %s, a temporary copy of a token file left by a kiro-tui that was stopped", path)
