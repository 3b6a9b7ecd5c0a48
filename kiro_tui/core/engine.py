"""The engine: everything that runs in the background, behind one small front.

`kiro-tui watch`, `refresh`, `import` and `login` drive it directly; the TUI drives it through
`EngineThread` (its own thread, event loop, store connection and HTTP client), so nothing it
does ever runs on Textual's loop. What it does is told as typed events (core/events.py).

The front: `import_now`, `refresh_now` (through the scheduler's concurrency bound),
`account_changed`, `views` (what to show), the login steps, and the few store edits a person
makes (mode, profile, remove). Every background pass is guarded: one failure is logged and
reported as an `EngineProblem`, and the loop carries on; if a whole loop dies it is restarted
with backoff. `stop` lets refreshes under way finish and commit before returning.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

import httpx

from kiro_tui.core import events, runners
from kiro_tui.core.aws.codewhisperer import Profile, ProfileListing, QClient, Usage, is_invalid_bearer
from kiro_tui.core.aws.endpoints import Endpoints
from kiro_tui.core.aws.errors import ErrorClass, ServiceError
from kiro_tui.core.aws.oidc import OidcClient
from kiro_tui.core.aws.tokens import TokenResult
from kiro_tui.core.aws.transport import make_http_client
from kiro_tui.core.clock import Clock
from kiro_tui.core.config import Settings
from kiro_tui.core.errors import KiroCliError, KiroTuiError, NeedsLoginError, StoreError, TlsSetupError
from kiro_tui.core.events import (
    AccountsChanged,
    EngineEvent,
    EngineNotice,
    EngineProblem,
    ImportFailed,
    ImportFinished,
    RunnersChanged,
    StatusChanged,
)
from kiro_tui.core.identity import portal_key, same_login, takes_over
from kiro_tui.core.importer import ImportReport, import_snapshot
from kiro_tui.core.login import (
    DeviceLogin,
    LoginFlow,
    LoginOutcome,
    LoginRequest,
    PollStatus,
    remember_request,
    save_login,
)
from kiro_tui.core.masking import fingerprint
from kiro_tui.core.models import (
    Account,
    AccountView,
    AuthMethod,
    Health,
    Mode,
    Outcome,
    Place,
    PlaceRole,
    PlaceState,
    Status,
    UsageRecord,
)
from kiro_tui.core.names import rename
from kiro_tui.core.notify import Announcer
from kiro_tui.core.place_sync import PlaceSignature, is_database, place_signature
from kiro_tui.core.places import (
    FORMATS,
    PlaceError,
    PlaceFormat,
    TokenCopy,
    gateway_sqlite_paths,
    link_refusal,
    place_format,
)
from kiro_tui.core.places._files import remove_stale_temps
from kiro_tui.core.places.kiro_cli import (
    PlaceLogin,
    find_kiro_cli_db,
    profile_region,
    read_kiro_cli,
)
from kiro_tui.core.refresh import RefreshClients, Refresher
from kiro_tui.core.refresh_result import RefreshResult, StatusChange
from kiro_tui.core.runners import Runner
from kiro_tui.core.scheduler import RefreshScheduler
from kiro_tui.core.store import AccountStore, RefreshLogEntry, UnreadableRow, damage_message
from kiro_tui.core.switch import Tool, UseOutcome, holders, rewrite_places, tools_found, use_account
from kiro_tui.core.timefmt import EARLIEST, shift

log = logging.getLogger("kiro_tui.engine")
T = TypeVar("T")
KIRO_CLI, GATEWAY, GATEWAY_DB, ALL = "kiro-cli", "gateway", "gateway-db", "all"
RESTART_BACKOFF = (1.0, 60.0)
USAGE_MAX_AGE = timedelta(minutes=10)
USAGE_PER_PASS = 4
TOKEN_WAIT = 30.0
"""Seconds `kiro-tui token` waits for another process already refreshing the account."""
"""Usage calls per watch pass (every `watch_interval` seconds): quota for a thousand accounts
is refreshed in about twelve minutes without ever bursting at the service."""
EXPORTED_PREFERENCE, EXPORTS_REMEMBERED = "exported_places", 50
"""The files `export` wrote, newest last: where `sources` also looks."""


@dataclass(frozen=True)
class Source:
    """One place kiro-tui knows to look for logins (`kiro-tui sources`)."""

    kind: str
    path: Path | None
    """None: a tool kiro-tui cannot find by itself (`error` says how to point it there)."""
    found: bool
    logins: int = 0
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "path": str(self.path) if self.path else None, "found": self.found,
                "logins": self.logins, "error": self.error}


def _logins_at(fmt: PlaceFormat, target: Path, now: datetime) -> list[tuple[Path, str, PlaceLogin]]:
    """Every login already at `target`, as (file, entry, login): a file's (one that cannot be
    read is an error), or those of the tool's files in a folder (one that cannot be read is
    passed over: it is not this account's to link). Nothing when there is nothing there yet."""
    if target.is_file():
        snapshot = fmt.scan(target, now)
        return [(snapshot.path, login.key, login) for login in snapshot.logins]
    found = []
    for file in fmt.discover(target) if target.is_dir() else []:
        try:
            snapshot = fmt.scan(file, now)
        except PlaceError:
            continue
        found += [(snapshot.path, login.key, login) for login in snapshot.logins]
    return found


def place_files(kind: str, path: Path) -> list[tuple[str, Path]]:
    """The place files at `path` (itself, or those a folder holds), by kind: kiro-gateway's
    credentials.json also names kiro-cli-format databases, read as `gateway-db`."""
    files = [(kind, file) for file in place_format(kind).discover(Path(path))]
    if kind == GATEWAY:
        files += [(GATEWAY_DB, file) for file in gateway_sqlite_paths(Path(path))]
    return files


def _look(kind: str, path: Path, now: datetime) -> Source:
    """Read one place (a file or a folder of them) just to count its logins."""
    try:
        files = place_files(kind, path)
    except KiroTuiError as exc:
        return Source(kind, path, True, 0, str(exc))
    if not files:
        return Source(kind, path, os.path.lexists(path), 0, None)
    logins, errors = 0, []
    for file_kind, file in files:
        try:
            logins += len(place_format(file_kind).scan(file, now).logins)
        except KiroTuiError as exc:
            errors.append(str(exc))
    return Source(kind, path, True, logins, errors[0] if errors else None)


@dataclass
class Views:
    """What to show: the accounts asked for, and rows that could not be read."""

    views: list[AccountView]
    unreadable: list[UnreadableRow] = field(default_factory=list)


class Engine:
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
        self._signature: PlaceSignature | None = None
        self._place_signatures: dict[tuple[str, str], PlaceSignature] = {}
        self._looked: dict[str, PlaceSignature] | None = None
        """How every place file looks in the watch pass under way (one stat each), once looked at."""
        self._data_version: int | None = None
        self._known: dict[str, Account] = {}
        self._stopping = asyncio.Event()
        self._stop_task: asyncio.Task[list[str]] | None = None
        self._started = False
        self._start_task: asyncio.Future[None] | None = None
        self._store_failed = False
        """A pass failed because the store would not take a write: not over until it takes one."""
        self.saved_at_start: list[str] = []
        """What `start` said about tokens earlier runs rescued, now saved (for `list` to print)."""
        self.runner_kind = runner_kind
        """`watch` or `tui` when this engine runs for good: it records itself as a runner and
        announces logins that need a person (core/runners.py, core/notify.py); None otherwise."""
        self.runner: Runner | None = None
        self.keepers: str | None = None
        self.announcer: Announcer | None = None
        self._runner_beat_at: datetime | None = None

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
        if self._http is None:
            try:
                self._http = await asyncio.to_thread(make_http_client)
            except TlsSetupError as exc:
                self.network_error = exc
                self._http = httpx.AsyncClient(transport=_NoNetwork(exc))
                self._set_problem(f"{exc}. Accounts are shown, but nothing is refreshed.", "Cannot reach AWS")
        self.refresher = Refresher(self.store, RefreshClients.create(self._http, self.endpoints), self.clock,
                                   self.settings, on_change=self._status_changed)
        self.scheduler = RefreshScheduler(self.store, self.refresher, self.clock, self.settings)
        self.q = QClient(self._http, self.endpoints)
        self._data_version = self.store.data_version()
        if self.runner_kind is not None:
            self.announcer = Announcer(self.store, self.settings, self._http, self.clock.now)
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
        self._register_runner()
        try:
            await self._run_loops()
        finally:
            self._unregister_runner()  # a clean exit, or a cancellation: not after kill -9

    async def _run_loops(self) -> None:
        delay = RESTART_BACKOFF[0]
        while not self._stopping.is_set():
            loops = [asyncio.create_task(self._watch_loop(), name="watcher")]
            if self.network_error is None:
                loops.append(asyncio.create_task(self.scheduler.run(), name="scheduler"))  # type: ignore[union-attr]
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

    # ------------------------------------------------------------------ the watch loop

    async def _watch_loop(self) -> None:
        while not self._stopping.is_set():
            await self.watch_pass()
            await self.clock.sleep(self.settings.watch_interval)

    async def watch_pass(self) -> None:
        """One pass, every `watch_interval`: kiro-cli's database, held tokens, pending places,
        other processes' commits, quota. Each step is guarded on its own."""
        await self.start()
        failed = False
        self._looked = None
        store_failed = False
        for step in (self._check_store_file, self._check_kiro_cli, self._check_places, self._retry_held,
                     self._check_linked_places, self._retry_places, self._notice_others, self._fetch_some_usage,
                     self._announce, self._note_runners):
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failed = True
                store_failed = store_failed or isinstance(exc, StoreError)
                damaged = damage_message(self.store.path, exc)
                if isinstance(exc, StoreError) or damaged:  # disk full, read-only, locked: in words, no traceback
                    log.warning("background step %s failed: %s", step.__name__, damaged or exc)
                else:
                    log.exception("background step %s failed", step.__name__)
                self._set_problem(f"{step.__name__.strip('_').replace('_', ' ')} failed: {damaged or exc}")
        if store_failed:
            self._store_failed = True
        if not failed and self.problem and (" failed: " in self.problem
                                            or self.problem.startswith("background refresh stopped")):
            if self._store_takes_writes():
                self._set_problem(None)  # a whole pass went through: that failure (or restart) is over
        self._update_problem()

    def _store_takes_writes(self) -> bool:
        """After a pass failed on a write: a pass may write nothing, so the store must take a write
        again before that problem is over (never "all is well" while another program holds it)."""
        if self._store_failed and not self.store.writable(wait=0.5):
            return False
        self._store_failed = False
        return True

    def _update_problem(self) -> None:
        assert self.refresher is not None
        if self.network_error is not None:
            return
        held = self.refresher.held
        if held:
            first = next(iter(held.values()))
            count = f"{len(held)} tokens" if len(held) > 1 else "1 token"
            self._set_problem(f"{count} held in memory: {first.reason}")
        elif self.refresher.store_trouble:
            self._set_problem(self.refresher.store_trouble)
        elif self.problem and ("held in memory" in self.problem or "not writable" in self.problem) \
                and self._store_takes_writes():
            self._set_problem(None)

    async def _check_kiro_cli(self) -> None:
        """Re-import when kiro-cli's database changed (mtime and size of it and its -wal)."""
        db = self.kiro_cli_db or self._find_kiro_cli_db()
        if db is None:
            return
        signature = place_signature(str(db), database=True)
        if signature == self._signature:
            return
        self._signature = signature
        if signature[0] is None:
            return
        try:
            await self._import(db, automatic=True)
        except KiroTuiError as exc:
            self.watch_error = str(exc)
            log.warning("re-import from kiro-cli failed: %s", exc)
            self._emit(ImportFailed(str(exc), automatic=True))

    async def _check_places(self) -> None:
        """Re-import any other place an account was imported from, when its file changed: a
        tool there refreshed, logged in again, or logged out."""
        assert self.refresher is not None
        db = str(self.kiro_cli_db) if self.kiro_cli_db else None
        every = self.store.places()
        self._looked = looked = await self.refresher.look_at_places(every)
        places = {(p.kind, p.path) for p in every
                  if p.role is PlaceRole.SOURCE and not (p.kind == KIRO_CLI and p.path == db)}
        for kind, path in sorted(places):
            signature = looked[path]
            if self._place_signatures.get((kind, path)) == signature:
                continue
            first_look = (kind, path) not in self._place_signatures
            self._place_signatures[(kind, path)] = signature
            if first_look or signature[0] is None:
                continue  # known as it is now (imported already), or gone: nothing to read
            try:
                snapshot = await asyncio.to_thread(place_format(kind).scan, Path(path), self.clock.now())
            except KiroTuiError as exc:
                log.warning("re-import from %s %s failed: %s", kind, path, exc)
                self._emit(ImportFailed(f"{path}: {exc}", automatic=True))
                continue
            now = self.clock.now()
            report = import_snapshot(self.store, snapshot, now, self.settings.default_import_mode, automatic=True)
            self._after_import(report, automatic=True)

    async def _check_store_file(self) -> None:
        """The store's file was replaced under us (a backup restored, a rename over it): reopen
        the file now at the path and carry the newer tokens held here into it, loudly."""
        carried = self.store.reopen_if_replaced()
        if carried is None:
            return
        text = (f"the account store {self.store.path} was replaced while kiro-tui was running (a backup "
                f"restored?); reopened it and saved {len(carried)} newer token{'s' if len(carried) != 1 else ''} "
                "into it")
        log.warning("%s", text)
        self._emit(EngineNotice(text, "Account store replaced"))
        self._data_version = None  # everything is re-read and rescheduled
        await self._notice_others()
        self._emit(AccountsChanged(None))

    async def _retry_held(self) -> None:
        assert self.refresher is not None
        if self.refresher.held:
            ids = set(self.refresher.held)
            await self.refresher.commit_held()
            done = ids - set(self.refresher.held)
            if done:
                self.tell_saved_held()
                self._emit(AccountsChanged(frozenset(done)))

    async def _check_linked_places(self) -> None:
        """A tool that refreshed by itself: its token is taken at once and passed on to the
        account's other places (not only when kiro-tui's own refresh comes due)."""
        assert self.refresher is not None
        adopted = await self.refresher.adopt_from_changed_places(looked=self._looked)
        for account_id in adopted:
            self.scheduler.schedule(account_id)  # type: ignore[union-attr]
        if adopted:
            self._emit(AccountsChanged(frozenset(adopted)))

    async def _retry_places(self) -> None:
        assert self.refresher is not None
        await self.refresher.retry_pending_places()

    async def _notice_others(self) -> None:
        """Another kiro-tui process committed: reschedule, and say which accounts changed."""
        version = self.store.data_version()
        if version == self._data_version:
            return
        self._data_version = version
        accounts = {a.id: a for a in self.store.accounts()}
        changed = {i for i in accounts.keys() | self._known.keys() if accounts.get(i) != self._known.get(i)}
        self._known = accounts
        self.scheduler.schedule_all()  # type: ignore[union-attr]
        if changed:
            self._emit(AccountsChanged(frozenset(changed)))

    # ------------------------------------------------------------------ runners and notices

    def _register_runner(self) -> None:
        if self.runner_kind is None:
            return
        try:
            self.runner = runners.register(self.store, self.runner_kind, self.clock.now(),
                                           self.settings.watch_interval)
        except StoreError as exc:
            log.warning("could not record this %s as a runner: %s", self.runner_kind, exc)

    def _unregister_runner(self) -> None:
        if self.runner is None:
            return
        try:
            runners.unregister(self.store, self.runner)
        except StoreError as exc:  # it is not alive once its pid is gone
            log.warning("could not remove this %s from the runners: %s", self.runner_kind, exc)
        self.runner = None

    async def _note_runners(self) -> None:
        """Record this pass (at most once per heartbeat) and say when who keeps the accounts
        fresh changed."""
        now = self.clock.now()
        if self.runner is not None and (self._runner_beat_at is None or
                                        (now - self._runner_beat_at).total_seconds() >= self.runner.interval):
            runners.record_pass(self.store, self.runner, now)
            self._runner_beat_at = now
        if self.runner_kind is None:
            return
        keepers = runners.describe_keepers(runners.runners(self.store), now)
        if keepers != self.keepers:
            self.keepers = keepers
            self._emit(RunnersChanged(keepers))

    async def _announce(self) -> None:
        if self.announcer is not None:
            await self.announcer.check()

    # ------------------------------------------------------------------ quota

    async def _fetch_some_usage(self) -> None:
        if not self.fetch_usage or self.network_error is not None:
            return
        now = self.clock.now()
        usage = self.store.usage()
        candidates = [a for a in self.store.accounts()
                      if a.health is Health.OK and a.expires_at > now and _usage_stale(usage.get(a.id), now, a)]
        candidates.sort(key=lambda a: _last_try(usage.get(a.id)))  # never fetched, then the oldest
        for account in candidates[:USAGE_PER_PASS]:
            await self.fetch_usage_now(account.id)

    async def q_call(self, account: Account, call: Callable[[Account], Awaitable[T]]) -> T:
        """One CodeWhisperer call made with an account's access token. The service answers 403
        "bearer token ... invalid" where 401 is meant: that gets one refresh and one retry with
        the new token, and changes no status by itself (the refresh may, on its own evidence)."""
        try:
            return await call(account)
        except ServiceError as exc:
            if not is_invalid_bearer(exc) or not account.refresh_token:
                raise
            log.info("%s: CodeWhisperer refused its access token (403); refreshing once and retrying", account.id)
        await self.refresh_now([account.id])
        return await call(self.store.get(account.id) or account)

    async def account_profiles(self, account_id: str) -> ProfileListing:
        """The profiles an account's login may use (its own token; see `q_call`)."""
        self._network()
        account = self.store.resolve_id(account_id)
        external_idp = account.auth_method is AuthMethod.EXTERNAL_IDP

        def profiles_of(current: Account) -> Awaitable[ProfileListing]:
            q = self.q
            assert q is not None
            return q.list_available_profiles(current.access_token, external_idp=external_idp)

        try:
            return await self.q_call(account, profiles_of)
        except ServiceError as exc:
            raise KiroTuiError(f"listing {account.name}'s profiles failed: {exc.message}") from exc

    async def fetch_usage_now(self, account_id: str) -> UsageRecord | None:
        """One GetUsageLimits call: saved (keeping the last good figures on error) and announced."""
        await self.start()
        self._network()
        account = self.store.get(account_id)
        if account is None:
            return None
        previous = self.store.usage([account_id]).get(account_id)

        def usage_of(current: Account) -> Awaitable[Usage]:
            q = self.q
            assert q is not None
            return q.get_usage_limits(current.access_token, profile_region(current.profile_arn) or "us-east-1",
                                      current.profile_arn, external_idp=current.auth_method is AuthMethod.EXTERNAL_IDP)

        now = self.clock.now()
        try:
            usage = await self.q_call(account, usage_of)
        except ServiceError as exc:
            record = UsageRecord(previous.used if previous else None, previous.limit if previous else None,
                                 previous.resets_at if previous else None,
                                 previous.subscription if previous else None,
                                 previous.fetched_at if previous else None, exc.message, now)
            if exc.classification is ErrorClass.SUSPENDED:
                self._suspended(account, exc)
        else:
            record = UsageRecord(usage.used, usage.limit, usage.reset_at, usage.subscription, now)
            if usage.email and usage.email != account.email:
                self.store.update(account.id, email=usage.email)
        self.store.save_usage(account_id, record)
        self._emit(AccountsChanged(frozenset({account_id})))
        return record

    def _suspended(self, account: Account, exc: ServiceError) -> None:
        """CodeWhisperer said TEMPORARILY_SUSPENDED (outside a refresh): the account is shown
        suspended, as a refresh that hears it does, and the status change is told (toast, hook)."""
        now = self.clock.now()
        before = account.status(now, self.settings.window)
        message = f"account suspended: {exc.message}"
        self.store.update(account.id, health=Health.SUSPENDED, last_error=message)
        account.health, account.last_error = Health.SUSPENDED, message
        self._status_changed(StatusChange(account.id, account.name, before, account.status(now, self.settings.window),
                                          message))

    # ------------------------------------------------------------------ the front

    async def import_now(self, path: Path | None = None, kind: str = KIRO_CLI) -> ImportReport:
        """Import explicitly (every account is updated) from one kind of place: kiro-cli's
        database by default, or any kind at `path` (a file or a folder), or `all` that is found."""
        if kind == ALL:
            return await self._import_all()
        if kind == KIRO_CLI:  # one database, read with kiro-cli's own precise errors
            db = path or self.kiro_cli_db or self._find_kiro_cli_db()
            if db is None:
                looked = ", ".join(str(p) for p in self.kiro_cli_candidates)
                raise KiroCliError(f"no kiro-cli database found (looked in {looked}); run `kiro-cli login` first")
            return await self._import(db, automatic=False)
        fmt = place_format(kind)
        targets = [Path(path)] if path is not None else fmt.default_paths()
        report: ImportReport | None = None
        for target in targets:
            found = await self._import_place(kind, target, automatic=False)
            if report is None:
                report = found
            else:
                report.merge(found)
        if report is None:
            raise PlaceError(f"kiro-tui does not know where {fmt.title} keeps its logins; name the file with --path")
        if not report.imported and not report.skipped and report.problems:
            raise PlaceError(report.problems[0][2])
        return report

    async def _import_all(self) -> ImportReport:
        """Every place found where the tools keep logins (kiro-cli first)."""
        report: ImportReport | None = None
        sources = await self.sources()
        for source in sources:
            if source.path is None or not source.found or not source.logins:
                continue  # (a folder with one broken file and good ones: the good ones import)
            found = await self.import_now(source.path, source.kind)
            if report is None:
                report = found
            else:
                report.merge(found)
        unfound = [(s.kind, s.error or "") for s in sources if s.path is None]
        if report is None:
            titles = ", ".join(place_format(kind).title for kind, _ in unfound)
            how = f", and how to point it at {titles}, which it cannot find by itself)" if unfound else ")"
            raise PlaceError("no logins found in any place kiro-tui knows (`kiro-tui sources` lists them" + how)
        report.source, report.kind, report.cannot_find = Path("all"), ALL, unfound
        return report

    async def _import_place(self, kind: str, path: Path, automatic: bool) -> ImportReport:
        """Every place file at `path` (a folder gives several; kiro-gateway's credentials.json
        names its own), each imported on its own: one that cannot be read is a problem in the
        report, and the others still import."""
        fmt = place_format(kind)
        report = ImportReport(source=Path(path), kind=kind)
        try:
            files = await asyncio.to_thread(place_files, kind, Path(path))
        except PlaceError as exc:
            report.problems.append((kind, Path(path), str(exc)))
            files = []
        if not files and not report.problems:
            report.problems.append((kind, Path(path), f"no {fmt.title} login found at {path}"))
        now = self.clock.now()
        for file_kind, file in files:
            try:
                snapshot = await asyncio.to_thread(place_format(file_kind).scan, file, now)
            except PlaceError as exc:
                report.problems.append((file_kind, file, str(exc)))
                continue
            report.merge(import_snapshot(self.store, snapshot, now, self.settings.default_import_mode,
                                         automatic=automatic))
        if files:
            self._after_import(report, automatic)
        return report

    async def _import(self, db: Path, automatic: bool) -> ImportReport:
        now = self.clock.now()
        snapshot = await asyncio.to_thread(read_kiro_cli, db, now)
        report = import_snapshot(self.store, snapshot, now, self.settings.default_import_mode, automatic=automatic)
        self.watch_error = None
        self.last_import_at = now
        self._after_import(report, automatic)
        return report

    def _after_import(self, report: ImportReport, automatic: bool) -> None:
        if self.scheduler is not None:
            self.scheduler.schedule_all()
        changed = frozenset(i.id for i in report.imported if i.action != "unchanged")
        if changed:
            self._emit(AccountsChanged(changed))
        self._emit(ImportFinished(report, automatic))

    async def sources(self) -> list[Source]:
        """Every place kiro-tui knows to look (each tool's usual paths and the files its
        environment names, kiro-cli's database, every place it imported from, linked or exported
        to), found or not, with how many logins each holds; then each tool it cannot find by
        itself, with how to point it there."""
        now = self.clock.now()
        wanted: dict[tuple[str, Path], None] = {}
        db = self.kiro_cli_db or self._find_kiro_cli_db()
        for path in ([db] if db else self.kiro_cli_candidates):
            wanted[(KIRO_CLI, Path(path))] = None
        for kind, fmt in FORMATS.items():
            if kind != KIRO_CLI:
                for path in fmt.default_paths():
                    wanted[(kind, Path(path))] = None
        folders = [(kind, path) for kind, path in wanted if kind != KIRO_CLI]
        known = [(place.kind, Path(place.path)) for place in self.store.places()] + self.exported_places()
        for place_kind, path in known:
            # a file in a folder already looked in (CLIProxyAPI's) is counted there, not twice;
            # one in a subfolder is not (the folder is read one level deep)
            if place_kind in FORMATS and not any(kind == place_kind and path.parent == folder
                                                 for kind, folder in folders):
                wanted[(place_kind, path)] = None
        looked = [await asyncio.to_thread(_look, kind, path, now) for kind, path in wanted]
        return looked + [Source(kind, None, False, 0, fmt.finding) for kind, fmt in FORMATS.items()
                         if fmt.finding and not any(k == kind for k, _ in wanted)]

    def exported_places(self) -> list[tuple[str, Path]]:
        """The files `export` wrote (not kept fresh, so not places of an account): still where
        a tool may keep a login, so `sources` and `import --from all` look there."""
        recorded = self.store.preference(EXPORTED_PREFERENCE)
        return [(str(item[0]), Path(str(item[1]))) for item in recorded if isinstance(item, list) and len(item) == 2
                ] if isinstance(recorded, list) else []

    def _find_kiro_cli_db(self) -> Path | None:
        try:
            found = find_kiro_cli_db(self.kiro_cli_candidates)
        except KiroCliError:
            return None
        self.kiro_cli_db = found
        return found

    async def refresh_now(self, account_ids: list[str] | None = None, force: bool = True) -> list[RefreshResult]:
        """Refresh these accounts (all when None) through the scheduler's concurrency bound."""
        await self.start()
        self._network()
        if account_ids is None:
            account_ids = [a.id for a in self.store.accounts()]
        results = await self.scheduler.refresh_now(account_ids, force)  # type: ignore[union-attr]
        self._emit(AccountsChanged(frozenset(account_ids)))
        return results

    async def fresh_token(self, account_id: str, min_valid: float, wait: float = TOKEN_WAIT) -> Account:
        """The account with a token valid `min_valid` seconds more, refreshed first through the
        usual path (lease, commit, places) when it is not; another process already refreshing it
        is waited for (up to `wait` s), never followed by a second refresh. `NeedsLoginError`
        when only a login can help."""
        await self.start()
        assert self.refresher is not None
        waited, tried = 0.0, False
        while True:
            account = self.store.get(account_id)
            if account is None:
                raise StoreError(f"no account with id {account_id!r}; `kiro-tui list` shows the ids")
            held = self.refresher.held.get(account_id)
            if held is not None:  # the store would not take the new token: the live one is here
                account.access_token, account.refresh_token, account.expires_at = (
                    held.access_token, held.refresh_token, held.expires_at)
            now = self.clock.now()
            if account.health is Health.NEEDS_LOGIN:
                raise NeedsLoginError(f"{account.id} ({account.name}) needs a login: `kiro-tui login`, or log in "
                                      "with kiro-cli and `kiro-tui import`")
            if account.health is Health.SUSPENDED:
                raise KiroTuiError(f"{account.id} ({account.name}) is suspended by AWS; no token to give")
            if account.expires_at > shift(now, min_valid) or (tried and account.expires_at > now):
                return account  # (after a refresh, the freshest there is, even if it lives less)
            if tried:
                raise KiroTuiError(f"{account.id} ({account.name}): no valid token after refreshing"
                                   + (f" ({account.last_error})" if account.last_error else ""))
            self._network()
            # through the scheduler: a stop (Ctrl-C, SIGTERM, SIGHUP) waits for it to commit
            (result,) = await self.scheduler.refresh_now(  # type: ignore[union-attr]
                [account_id], force=False, unless_valid_for=timedelta(seconds=min_valid))
            if result.outcome is Outcome.BUSY:
                if waited >= wait:
                    raise KiroTuiError(f"another kiro-tui process has been refreshing {account_id} for "
                                       f"{wait:g} s; try again")
                await self.clock.sleep(0.25)
                waited += 0.25
                continue
            if result.outcome is Outcome.FAILED and result.status is not Status.NEEDS_LOGIN:
                raise KiroTuiError(f"could not refresh {account_id} ({account.name}): {result.message}")
            tried = not (result.outcome is Outcome.SKIPPED and result.message == "still valid")

    async def due_ids(self) -> list[str]:
        await self.start()
        now = self.clock.now()
        return [a.id for a in self.store.accounts() if a.is_due(now, self.refresher.window_for(a.id))]  # type: ignore[union-attr]

    def account_changed(self, account_id: str) -> None:
        """A person changed this account (or it is new): reschedule it and repaint it."""
        if self.scheduler is not None:
            self.scheduler.schedule(account_id)
        self._emit(AccountsChanged(frozenset({account_id})))

    async def views(self, ids: list[str] | frozenset[str] | None = None) -> Views:
        """The accounts (all, or these) with what is known around them, for presenting."""
        now = self.clock.now()
        accounts, unreadable = self.store.read_accounts(ids)
        refreshing = self.store.refreshing_ids(now) | (self.scheduler.in_flight if self.scheduler else set())
        usage = self.store.usage(a.id for a in accounts)
        places: dict[str, list] = {}
        for place in self.store.places(None if ids is None else [a.id for a in accounts]):
            places.setdefault(place.account_id, []).append(place)
        held = self.refresher.held if self.refresher else {}
        views = []
        for account in accounts:
            token = held.get(account.id)
            if token is not None:
                account.access_token, account.refresh_token, account.expires_at = (
                    token.access_token, token.refresh_token, token.expires_at)
            views.append(AccountView(account, account.id in refreshing, usage.get(account.id),
                                     places.get(account.id, []), token.shown if token else None))
        if ids is None:
            self._known = {a.id: a for a in accounts}
        return Views(views, unreadable)

    async def holdings(self, views: list[AccountView]) -> dict[tuple[str, str, str], str]:
        """What each place holds compared with its account: `current` (the same token), `older`
        (one of its lineage: behind), `newer` (a tool there refreshed by itself), `other` (not this
        login's token), or `missing` (not there, or unreadable).

        A place is read only when its file changed since it was last read (one stat tells): the
        fingerprint of the token found there is kept in the store with the file's signature."""
        now = self.clock.now()
        places = [(view.account, place) for view in views for place in view.places]
        looked = await asyncio.to_thread(
            lambda: {p.path: repr(place_signature(p.path, is_database(p.kind))) for _, p in places})
        kept = self.store.place_reads() if places else {}
        found: dict[tuple[str, str, str], str] = {}
        learned: dict[tuple[str, str, str], tuple[str, str | None]] = {}
        for account, place in places:
            signature = looked[place.path]
            login: PlaceLogin | None = None
            if kept.get(place.address, ("",))[0] == signature:
                token_print = kept[place.address][1]
            else:
                try:
                    login = await self._read_place(place, now)
                except KiroTuiError:
                    found[place.address] = "missing"  # unreadable now (locked, damaged): not remembered
                    continue
                token_print = fingerprint(login.refresh_token) if login and login.refresh_token else None
                learned[place.address] = (signature, token_print)
            if token_print is None:
                found[place.address] = "missing"
            elif token_print == fingerprint(account.refresh_token):
                found[place.address] = "current"
            elif self.store.in_lineage(account.id, token_print):
                found[place.address] = "older"
            else:  # newer or another login's: the login itself tells (rare: read it)
                try:
                    login = login or await self._read_place(place, now)
                except KiroTuiError:
                    login = None
                found[place.address] = self._compare(account, login)
        if learned:
            try:
                self.store.save_place_reads(learned)
            except StoreError as exc:  # a read-only store: read again next time
                log.info("cannot remember what the places hold: %s", exc)
        return found

    async def _read_place(self, place: Place, now: datetime) -> PlaceLogin | None:
        return await asyncio.to_thread(place_format(place.kind).read_entry, Path(place.path), place.entry, now)

    def _compare(self, account: Account, login: PlaceLogin | None) -> str:
        if login is None or not login.refresh_token:
            return "missing"
        token_print = fingerprint(login.refresh_token)
        if token_print == fingerprint(account.refresh_token):
            return "current"
        if self.store.in_lineage(account.id, token_print):
            return "older"
        # The refresher's own rule (PlaceSync.adopt_newer): a copy it will adopt at its
        # next pass is "newer" now, not "other", which reads as an error before the adoption.
        if same_login(account, login) and takes_over(account, login, spent=False):
            return "newer"
        return "other"

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
        """Keep a copy of this account fresh at a place: the file is created if absent (or found
        holding this login), written now, and written after every refresh from then on."""
        account = self.store.resolve_id(account_id)
        fmt, target, existing = await self._target(
            account, kind, path, "holds another login (or a token kiro-tui has never seen); a link does not "
            f"overwrite it. `kiro-tui use {account.id} --in {kind}` (and the same --path) makes this account the login "
            "there (the one there is kept), or name another file with --path")
        written_at = None
        if existing is not None:
            entry_path, entry = existing
        else:
            created = await asyncio.to_thread(fmt.create, target, account)
            entry_path, entry, written_at = created.path, created.entry, self.clock.now()
        taken = self.store.place_at(kind, str(entry_path), entry)
        if taken is not None and taken.account_id != account.id:
            raise PlaceError(f"{entry_path} is already a place of account {taken.account_id}")
        place = Place(account.id, kind, str(entry_path), entry, PlaceRole.LINK,  # a source linked is written too
                      PlaceState.PENDING, "writing the token", written_at=written_at)
        with self.store.transaction() as tx:
            self.store.save_place(tx, place)
        self.store.mark_unlinked(place, None, unlinked=False)
        await self.start()
        await self.refresher.write_places_now(account.id, [place])  # type: ignore[union-attr]
        self.account_changed(account.id)
        return next(p for p in self.store.places(account.id) if p.address == place.address)

    async def unlink(self, account_id: str, kind_or_path: str) -> list[Place]:
        """Stop keeping copies fresh at these places (by kind, or by path); the files are left as
        they are. Source places are not links: change the mode (own) to stop writing them."""
        account = self.store.resolve_id(account_id)
        is_path = "/" in kind_or_path or kind_or_path.startswith(".")
        # Path arithmetic only ($HOME and the working folder): no file is touched.
        wanted = str(Path(kind_or_path).expanduser().absolute()) if is_path else None  # noqa: ASYNC240
        gone = [p for p in self.store.places(account.id) if p.role is PlaceRole.LINK
                and (p.kind == kind_or_path or p.path == wanted or p.path == kind_or_path)]
        if not gone:
            raise PlaceError(f"{account.id} ({account.name}) has no link {kind_or_path!r}; "
                             f"`kiro-tui show {account.id}` shows its places")
        with self.store.transaction() as tx:
            for place in gone:
                self.store.delete_place(tx, place)
        for place in gone:  # an import of that file later does not link it back behind the person's back
            self.store.mark_unlinked(place, self.clock.now(), client_id=account.client_id)
        self.account_changed(account.id)
        return gone

    async def export(self, account_id: str, kind: str, path: Path | None = None) -> Path:
        """Write this account's login once into a new file of that tool (no link: not kept fresh)."""
        account = self.store.resolve_id(account_id)
        fmt, target, existing = await self._target(account, kind, path,
                                                   "already exists and does not hold this login; name a new file")
        if existing is not None:
            entry_path, entry = existing
            copy = TokenCopy.of(account)
            result = await asyncio.to_thread(fmt.write_token, entry_path, entry, copy,
                                             lambda p: self.store.in_lineage(account.id, p), 2.0)
            if result.state is not PlaceState.IN_SYNC:
                raise PlaceError(f"could not write {entry_path}: {result.detail or result.outcome.value}")
        else:
            entry_path = (await asyncio.to_thread(fmt.create, target, account)).path
        exported = [(k, p) for k, p in self.exported_places() if (k, p) != (kind, entry_path)]
        self.store.set_preference(EXPORTED_PREFERENCE, [[k, str(p)] for k, p in [*exported, (kind, entry_path)]
                                                        ][-EXPORTS_REMEMBERED:])
        return entry_path

    async def caveat(self, account_id: str, kind: str) -> str | None:
        """What that tool cannot do with this login by itself (a person linking or exporting it
        there is told), if anything."""
        return place_format(kind).caveat(self.store.resolve_id(account_id))

    async def usual_place(self, kind: str) -> Path | None:
        """Where that tool keeps its file when configured as usual, if it has such a place."""
        defaults = place_format(kind).default_paths()
        return defaults[0] if defaults else None

    async def _target(self, account: Account, kind: str, path: Path | None,
                      not_this_login: str) -> tuple[PlaceFormat, Path, tuple[Path, str] | None]:
        """The format and file a link or export writes, and the entry there already holding this
        login (its token is of the account's lineage), if any. A file holding anything else is
        refused with `not_this_login`: kiro-tui never overwrites a login it does not own."""
        fmt = place_format(kind)
        if refusal := link_refusal(kind):
            raise PlaceError(refusal)
        if path is not None:
            target = Path(path).expanduser().absolute()  # noqa: ASYNC240 - path arithmetic, no file touched
        elif defaults := fmt.default_paths():
            target = defaults[0]
        else:
            raise PlaceError(f"{fmt.title} has no usual place for its file; name it with --path")
        found = await asyncio.to_thread(_logins_at, fmt, target, self.clock.now())
        if target.is_dir():  # a folder of the tool's files: one may hold this login
            return fmt, target, next(((file, entry) for file, entry, login in found
                                      if self.store.in_lineage(account.id, fingerprint(login.refresh_token))), None)
        if not found:
            return fmt, target, None
        current = fingerprint(account.refresh_token)  # in a file of several logins, this one's, else the first
        entry_path, entry, login = next((f for f in found if fingerprint(f[2].refresh_token) == current), found[0])
        if not self.store.in_lineage(account.id, fingerprint(login.refresh_token)):
            raise PlaceError(f"{entry_path} {not_this_login}")
        return fmt, target, (entry_path, entry)

    # ------------------------------------------------------------------ use, names

    async def use(self, account_id: str, kind: str, path: Path | None = None) -> UseOutcome:
        """Make this account the one a tool uses (core/switch.py): what was there is kept."""
        await self.start()
        return await use_account(self, account_id, kind, path)

    async def holders(self, views: list[AccountView]) -> dict[tuple[str, str, str], str | None]:
        """Whose login each single-login place (the IDE's file, kiro-cli's database) holds now."""
        places = [place for view in views for place in view.places]
        return await asyncio.to_thread(holders, self.store, places, self.clock.now())

    async def tools_found(self) -> list[Tool]:
        """The tools `use` can put a login in that are where they usually are, and whose login
        each holds now (the TUI's "use in ..." and its marks)."""
        return await asyncio.to_thread(tools_found, self)

    async def rename(self, account_id: str, name: str) -> Account:
        account = rename(self.store, account_id, name)
        self.account_changed(account.id)
        return account

    # ------------------------------------------------------------------ logging in

    async def login_flow(self) -> LoginFlow:
        await self.start()
        self._network()
        return LoginFlow(OidcClient(self._http, self.endpoints), self.q, self.clock)  # type: ignore[arg-type]

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
        flow = await self.login_flow()
        email = await flow.email(token.access_token, profile or identify_with)
        if email:
            await self._learn_emails_of_twins(flow, login.request)
        outcome = save_login(self.store, login, token, profile, self.clock.now(), email, renew_other)
        outcome = await rewrite_places(self, outcome)
        remember_request(self.store, login.request)
        self.account_changed(outcome.account.id)
        return outcome

    async def _learn_emails_of_twins(self, flow: LoginFlow, request: LoginRequest, most: int = 5) -> None:
        """Ask who holds the accounts this login could be a renewal of (same kind and portal) whose
        email is not known yet, with their own working tokens: then one person's login renews
        their account (evidence, not a guess) instead of adding a second row. Best effort."""
        method = AuthMethod.BUILDER_ID if request.is_builder_id else AuthMethod.IDC
        start_url = None if method is AuthMethod.BUILDER_ID else request.portal
        now = self.clock.now()
        twins = [a for a in self.store.accounts() if not a.email and a.auth_method is method
                 and portal_key(a.start_url) == portal_key(start_url) and a.health is Health.OK and a.expires_at > now]
        for account in twins[:most]:
            profile = Profile(account.profile_arn, account.profile_name or "") if account.profile_arn else None
            email = await flow.email(account.access_token, profile)
            if email:
                self.store.update(account.id, email=email)

    def last_login_request(self) -> LoginRequest:
        from kiro_tui.core.login import last_request

        return last_request(self.store)

    # ------------------------------------------------------------------ for the command line
    # (issue 25) What the commands used to ask of the store directly, asked of the front: the CLI
    # and the TUI then do the same thing. One block at the end of the class, on purpose, while
    # other parts of the engine move out into modules of their own.

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
        now = self.clock.now()
        usable = [a.id for a in self.store.accounts() if a.health is Health.OK and a.expires_at > now]
        limit = asyncio.Semaphore(at_once)

        async def one(account_id: str) -> None:
            async with limit:
                await self.fetch_usage_now(account_id)

        await asyncio.gather(*(one(account_id) for account_id in usable))

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


class _NoNetwork(httpx.AsyncBaseTransport):
    """Stands in for a transport when TLS cannot be set up: nothing is ever sent."""

    def __init__(self, error: TlsSetupError) -> None:
        self.error = error

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(str(self.error), request=request)


def _last_try(record: UsageRecord | None) -> datetime:
    if record is None:
        return EARLIEST
    return max((t for t in (record.fetched_at, record.error_at) if t is not None), default=EARLIEST)


def _usage_stale(record: UsageRecord | None, now: datetime, account: Account) -> bool:
    if record is None:
        return True
    if record.error and record.error_at and account.last_refresh_at and account.last_refresh_at > record.error_at:
        return True  # refreshed since the error (an expired token's AccessDenied): try again now
    return shift(_last_try(record), USAGE_MAX_AGE) <= now


def _remove_stale_temps(folders: list[Path]) -> None:
    """Token copies a killed kiro-tui left beside the place files it was writing: removed."""
    for path in remove_stale_temps(folders):
        log.warning("removed %s, a temporary copy of a token file left by a kiro-tui that was stopped", path)
