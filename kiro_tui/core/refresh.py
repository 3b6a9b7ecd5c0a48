"""Refresh one account: the rules that keep tokens fresh without ever losing one.

- A lease in the store (taken in an IMMEDIATE transaction) makes sure only one kiro-tui
  process refreshes an account at a time; the row is re-read after taking it. The lease is
  released on every path.
- needs-login and suspended accounts cost no network call: exactly one call is spent on a
  dead refresh token, then the account waits for a login or re-import.
- Before spending a refresh token, the places that hold copies of it are read: a tool there
  that refreshed by itself hands over its newer token with no network call (`adopted`).
- The service rotates the refresh token on every refresh, so the answer is the only live copy:
  the new tokens are committed first, with only what is needed to use them, and every place
  still to be written is marked pending in that same transaction. Every other field of the
  answer is checked on its own and dropped with a warning if unusable, never at the token's
  cost. If the store will not take the commit (disk full, read-only), the token is held in
  memory (and in a rescue file beside the store when possible) and committed as soon as it can.
- Places are written after the commit, compare-and-swap on the account's token lineage; a token
  adopted from one place is written into every other.
- Every watch pass, a place a tool rewrote since the last pass is read at once, and a newer token
  there is adopted and passed on to the other places (a tool that refreshes earlier than kiro-tui,
  such as AIClient-2-API, would otherwise leave the others holding a spent refresh token until
  kiro-tui's own refresh came due). In this process one thing at a time happens to an account: a
  refresh, or that place work (a lock per account; the lease keeps other processes out).
- Transient failures back off exponentially with full jitter (base 5 s, cap 5 min). Whatever
  goes wrong with one account, even a bug, is that account's failure: it never stops a pass.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

import httpx

from kiro_tui.core import rescue
from kiro_tui.core.answer_identity import foreign_answer, quarantine
from kiro_tui.core.aws.endpoints import Endpoints
from kiro_tui.core.aws.errors import ErrorClass, ServiceError
from kiro_tui.core.aws.external_idp import ExternalIdpClient
from kiro_tui.core.aws.oidc import OidcClient
from kiro_tui.core.aws.social import SocialClient
from kiro_tui.core.aws.tokens import TokenResult
from kiro_tui.core.clock import Clock
from kiro_tui.core.config import Settings
from kiro_tui.core.errors import KiroTuiError, StoreError
from kiro_tui.core.identity import is_spent, mark_refresh_token_dead, merge_login, same_login, takes_over
from kiro_tui.core.masking import fingerprint
from kiro_tui.core.models import (
    Account,
    AuthMethod,
    Health,
    Mode,
    Outcome,
    Place,
    PlaceRole,
    PlaceState,
    Status,
)
from kiro_tui.core.places import (
    PlaceError,
    TokenCopy,
    WriteOutcome,
    WriteResult,
    effective_window,
    place_format,
)
from kiro_tui.core.refresh_result import RefreshResult, StatusChange
from kiro_tui.core.store import AccountStore, RefreshLogEntry
from kiro_tui.core.timefmt import format_timestamp, parse_timestamp, shift

log = logging.getLogger("kiro_tui.refresh")

LEASE_SECONDS = 60.0
REFRESH_DEADLINE = 40.0
"""The whole network call, however slowly the answer trickles in (a slow-loris server beats
every per-read timeout): over well before the lease runs out, so no other process can take the
lease and spend the same refresh token while this call may still be answered."""
SOCIAL_AUTH_REGION = "us-east-1"
DEFAULT_WRITE_TIMEOUT = 2.0


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: uniform(0, min(cap, base · 2^(n-1)))."""

    base: float = 5.0
    cap: float = 300.0

    def ceiling(self, failures: int) -> float:
        return min(self.cap, self.base * 2 ** max(0, min(failures, 64) - 1))

    def delay(self, failures: int, rng: random.Random) -> float:
        return rng.uniform(0, self.ceiling(failures))


@dataclass(frozen=True)
class RefreshClients:
    oidc: OidcClient
    social: SocialClient
    external: ExternalIdpClient

    @classmethod
    def create(cls, http: httpx.AsyncClient, endpoints: Endpoints) -> RefreshClients:
        return cls(OidcClient(http, endpoints), SocialClient(http, endpoints), ExternalIdpClient(http, endpoints))


@dataclass
class HeldToken:
    """A token the service handed over that the store would not take yet. The service has
    already rotated: this is the only live copy, so it is kept, retried, and shown loudly."""

    account_id: str
    access_token: str
    refresh_token: str
    expires_at: datetime
    spent: str | None
    """Fingerprint of the refresh token it replaced (what the store still holds)."""
    reason: str
    since: datetime
    attempts: int = 0
    next_try: datetime | None = None
    rescue: str | None = None
    """Where a copy was verified on disk (a rescue file, or a place in its tool's format)."""
    rescue_failures: list[str] = field(default_factory=list)
    """Why each rescue location tried failed: said when none took it."""

    @property
    def message(self) -> str:
        return f"token held in memory: {self.reason}"

    @property
    def shown(self) -> str:
        """For the detail panel and `list --json`'s `held`: why, and where its copy is."""
        where = f"rescue copy in {self.rescue}" if self.rescue else "no rescue copy: only in this process's memory"
        return f"{self.message}; {where}"

    @property
    def rescue_note(self) -> str:
        """What survives this process, as verified on disk: for a person about to see it exit."""
        if self.rescue:
            return f"a rescue copy is saved in {self.rescue} (read back and verified); it is saved into the store " \
                   "at the next start"
        tried = "; ".join(self.rescue_failures) or "nowhere to write"
        return f"NO rescue copy could be written ({tried}): the new token is only in this process's memory " \
               "and is lost when it exits"

    def to_json(self) -> dict[str, object]:
        return {"account_id": self.account_id, "access_token": self.access_token,
                "refresh_token": self.refresh_token, "expires_at": format_timestamp(self.expires_at),
                "spent": self.spent, "since": format_timestamp(self.since)}

    @classmethod
    def from_json(cls, data: dict[str, object], reason: str) -> HeldToken:
        return cls(str(data["account_id"]), str(data["access_token"]), str(data["refresh_token"]),
                   parse_timestamp(data["expires_at"]), str(data["spent"]) if data.get("spent") else None, reason,
                   parse_timestamp(data["since"]))


def default_owner() -> str:
    return f"{os.uname().nodename if hasattr(os, 'uname') else 'host'}:{os.getpid()}:{secrets.token_hex(3)}"


def rescue_dir(store: AccountStore) -> Path:
    """Beside the store: the first place a held token is written when the store will not take it."""
    return rescue.beside_store(store.path)


class Refresher:
    def __init__(
        self,
        store: AccountStore,
        clients: RefreshClients,
        clock: Clock,
        settings: Settings,
        *,
        owner: str | None = None,
        rng: random.Random | None = None,
        backoff: Backoff = Backoff(),
        on_change: Callable[[StatusChange], None] | None = None,
        writeback_timeout: float = DEFAULT_WRITE_TIMEOUT,
        deadline: float = REFRESH_DEADLINE,
    ) -> None:
        self.store, self.clients, self.clock, self.settings = store, clients, clock, settings
        self.writeback_timeout = writeback_timeout
        self.deadline = min(deadline, LEASE_SECONDS * 2 / 3)
        self.owner = owner or default_owner()
        self.rng = rng or random.Random()
        self.backoff = backoff
        self.on_change = on_change
        self.held: dict[str, HeldToken] = {}
        self.store_trouble: str | None = None
        """Why the store would not take the last write, until a write goes through again."""
        self.backing_off: dict[str, tuple[int, datetime]] = {}
        """In memory, for failures the store could not record: failures so far and next try."""
        self._locks: dict[str, asyncio.Lock] = {}
        """One per account: a refresh and the watch pass's place work never overlap in this process."""
        self._seen: dict[str, PlaceSignature] = {}
        """How each place file looked at the last pass (or just after kiro-tui wrote it)."""
        self.saved_held: list[tuple[str, str, str | None]] = []
        """(id, name, where its rescue copy was) of each held token committed since: told once."""
        self._looked: dict[str, PlaceSignature] = {}
        """How each place file looks in this watch pass (`look_at_places`): one stat a file a pass."""
        self._load_rescued()

    # ------------------------------------------------------------------ entry point

    async def refresh(self, account_id: str, force: bool = False,
                      unless_valid_for: timedelta | None = None) -> RefreshResult:
        """One attempt for one account; `force` refreshes even if not yet due; `unless_valid_for`
        refreshes only if the token (re-read under the lease) expires within it (`kiro-tui
        token`: another process that just refreshed is not followed by a second refresh).
        Never raises: whatever goes wrong is this account's outcome."""
        async with self._account_lock(account_id):  # the watch pass's place work finishes first
            return await self._refresh_unlocked(account_id, force, unless_valid_for)

    async def _refresh_unlocked(self, account_id: str, force: bool,
                                unless_valid_for: timedelta | None = None) -> RefreshResult:
        now = self.clock.now()
        try:
            leased = self.store.acquire_lease(account_id, self.owner, now, LEASE_SECONDS)
        except StoreError as exc:
            return self._unrecorded_failure(account_id, str(exc))
        if not leased:
            return self._busy(account_id, now)
        try:
            return await self._refresh_leased(account_id, force, unless_valid_for)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug, or anything unforeseen: this account's failure, backed off
            log.exception("refresh of %s failed unexpectedly", account_id)
            return self._record_failure_safely(account_id, exc)
        finally:
            self._release(account_id)

    def _busy(self, account_id: str, now: datetime) -> RefreshResult:
        try:
            account = self.store.get(account_id)
        except StoreError as exc:
            return self._unrecorded_failure(account_id, str(exc))
        status = account.status(now, self.settings.window, refreshing=True) if account else Status.REFRESHING
        return RefreshResult(account_id, Outcome.BUSY, status, account.label if account else "",
                             message="another kiro-tui process is refreshing it")

    def _account_lock(self, account_id: str) -> asyncio.Lock:
        lock = self._locks.get(account_id)
        if lock is None:
            lock = self._locks[account_id] = asyncio.Lock()
        return lock

    @asynccontextmanager
    async def _exclusive(self, account_id: str) -> AsyncIterator[bool]:
        """The account to ourselves for the watch pass's place work: True, or False at once when
        it is being refreshed here or by another kiro-tui process (that refresh reads and writes
        its places itself)."""
        lock = self._account_lock(account_id)
        if lock.locked():
            yield False
            return
        async with lock:
            try:
                leased = self.store.acquire_lease(account_id, self.owner, self.clock.now(), LEASE_SECONDS)
            except StoreError:
                leased = False
            if not leased:
                yield False
                return
            try:
                yield True
            finally:
                self._release(account_id)

    def _release(self, account_id: str) -> None:
        try:
            self.store.release_lease(account_id, self.owner)
        except StoreError as exc:  # it runs out by itself within a minute; retried on the next pass
            log.warning("could not release the lease on %s: %s", account_id, exc)

    async def _refresh_leased(self, account_id: str, force: bool,
                              unless_valid_for: timedelta | None = None) -> RefreshResult:
        try:
            account = self.store.get(account_id)  # re-read: another process may have refreshed already
        except StoreError as exc:  # its row cannot be read (hand-edited): this account's failure, by name
            return RefreshResult(account_id, Outcome.FAILED, Status.REFRESH_FAILING,
                                 classification=ErrorClass.FATAL_CONFIG.value, message=str(exc))
        now = self.clock.now()
        if account is None:
            self._forget_held(account_id)
            return RefreshResult(account_id, Outcome.SKIPPED, Status.EXPIRED, message="no such account")
        held = self._live_held(account)
        if held is not None:  # the store has the spent token; the live one is here
            account.access_token, account.refresh_token, account.expires_at = (
                held.access_token, held.refresh_token, held.expires_at)
        before = account.status(now, self.settings.window)
        if account.health in (Health.NEEDS_LOGIN, Health.SUSPENDED):
            return self._result(account, Outcome.SKIPPED, account.last_error)
        if unless_valid_for is not None:
            if account.expires_at > shift(now, unless_valid_for):
                return self._result(account, Outcome.SKIPPED, "still valid")
            force = True
        if held is None:
            adopted = await self._adopt_from_places(account, before)
            if account.mode is Mode.FOLLOW and account.source:
                return adopted or self._result(account, Outcome.FOLLOWED, "follow mode: kiro-cli refreshes this login")
            if adopted and not account.is_due(self.clock.now(), self.window_for(account.id)) and (
                    unless_valid_for is None or account.expires_at > shift(self.clock.now(), unless_valid_for)):
                return adopted
        if not force and not account.is_due(now, self.window_for(account.id)):
            return self._result(account, Outcome.SKIPPED, "not due yet")
        try:  # the service rotates the token: spend it only if the new one can be kept
            self.store.probe_commit()
        except StoreError as exc:
            return self._unrecorded_failure(
                account.id, f"store not writable: not refreshing, the current token stays valid until "
                            f"{format_timestamp(account.expires_at.astimezone())} ({exc})", account)
        self._emit(account, before, Status.REFRESHING)
        return await self._refresh_over_network(account)

    # ------------------------------------------------------------------ places

    def window_for(self, account_id: str, places: list[Place] | None = None) -> timedelta:
        """This account's refresh window: earlier than configured when a linked tool would
        otherwise refresh first (see places.effective_window)."""
        found = places if places is not None else self.store.places(account_id)
        return effective_window(self.settings.window, found)

    def _places_to_read(self, account: Account) -> list[Place]:
        """Copies a tool may have refreshed by itself: sources (unless own mode) and links."""
        return [p for p in self.store.places(account.id)
                if p.role is PlaceRole.LINK or account.mode is not Mode.OWN]

    def _places_to_write(self, account: Account) -> list[Place]:
        """Copies kiro-tui keeps fresh: links always, sources in sync mode; never a place kiro-tui
        must not write (opencode's kiro.db: opencode saves over it; it is synced through kiro-cli)."""
        return [p for p in self.store.places(account.id)
                if (p.role is PlaceRole.LINK or account.mode is Mode.SYNC) and _writable(p.kind)]

    def _left_stale(self, account: Account, written: list[Place]) -> list[Place]:
        """The account's other places, marked as holding an older token: kiro-tui does not write
        them (opencode's kiro.db, a source in own or follow mode), so after the token moved on they
        are never "in-sync"."""
        addresses = {p.address for p in written}
        return [replace(p, state=PlaceState.STALE, pending_from=None,
                        detail="holds an older token: kiro-tui does not write this place"
                        + ("" if _writable(p.kind) else f" ({p.kind})"))
                for p in self.store.places(account.id)
                if p.address not in addresses and p.state in (PlaceState.IN_SYNC, PlaceState.ADOPTED)]

    async def _adopt_from_places(self, account: Account, before: Status) -> RefreshResult | None:
        """If a place holds a newer token of this login, take it instead of calling the network."""
        for place in self._places_to_read(account):
            try:
                login = await asyncio.to_thread(place_format(place.kind).read_entry, Path(place.path), place.entry,
                                                self.clock.now())
            except PlaceError as exc:
                log.info("%s: cannot read %s %s before refreshing: %s", account.id, place.kind, place.path, exc)
                continue
            if login is None or not login.refresh_token:
                continue
            ours = login.refresh_token == account.refresh_token
            if ours and login.expires_at <= account.expires_at:
                continue  # the place holds what we hold
            spent = is_spent(self.store, account, login)  # with `ours`: the token is of this lineage
            if not ((ours or spent or same_login(account, login)) and takes_over(account, login, spent)):
                continue
            replaced = fingerprint(account.refresh_token)
            merge_login(account, login, spent)
            account.sync_error = None
            account.last_refresh_at = self.clock.now()
            now = self.clock.now()
            # Every other copy still holds the token just replaced, which the tool has spent: mark
            # them pending with the adoption (as a refresh does), then write them.
            others = [replace(p, state=PlaceState.PENDING, pending_from=replaced,
                              detail=f"writing the token taken from {place.kind}")
                      for p in self._places_to_write(account) if p.address != place.address]
            with self.store.transaction() as tx:
                self.store.save(account, tx)
                self.store.save_place(tx, replace(place, state=PlaceState.ADOPTED, pending_from=None,
                                                  detail=f"took its newer token ({format_timestamp(now)})"))
                for other in others:
                    self.store.save_place(tx, other)
                for stale in self._left_stale(account, [*others, place]):
                    self.store.save_place(tx, stale)
                self.store.log_refresh(tx, RefreshLogEntry(account.id, now, Outcome.ADOPTED,
                                                           message=f"newer token from {place.kind}"))
            await self.write_places(account, others)
            result = self._result(account, Outcome.ADOPTED, f"took {place.kind}'s newer token")
            self._emit(account, before, result.status)
            return result
        return None

    async def write_places(self, account: Account, places: list[Place] | None = None) -> list[WriteResult]:
        """Write the account's current token into its places (compare-and-swap on the lineage)
        and record each place's state. A place that cannot be written now stays pending."""
        if not account.refresh_token:
            return []
        targets = places if places is not None else self._places_to_write(account)
        copy = TokenCopy.of(account)

        def write(place: Place) -> WriteResult:
            def belongs(token_print: str | None) -> bool:
                return may_replace(self.store, account.id, place, token_print)

            result = place_format(place.kind).write_token(Path(place.path), place.entry, copy, belongs,
                                                          self.writeback_timeout)
            if result.outcome is WriteOutcome.WRITTEN:  # our own write is not a tool's refresh
                self._seen[place.path] = place_signature(place.path, is_database(place.kind))
                if place.path in self._looked:  # nor a change for what this pass looked at before it
                    self._looked[place.path] = self._seen[place.path]
            return result

        results = []
        for place in targets:
            try:
                result = await asyncio.to_thread(write, place)
            except Exception as exc:
                log.exception("writing %s %s failed unexpectedly", place.kind, place.path)
                result = WriteResult(WriteOutcome.FAILED, f"{type(exc).__name__}: {exc}")
            results.append(result)
            if result.outcome is WriteOutcome.WRITTEN and result.detail:  # e.g. a mode tightened to 0600
                log.warning("%s %s: %s", account.id, account.name, result.detail)
            self._record_place(account, place, result)
        return results

    def _record_place(self, account: Account, place: Place, result: WriteResult) -> None:
        state = result.state
        now = self.clock.now()
        detail = None if state is PlaceState.IN_SYNC else _place_detail(place, result)
        holds_ours = state is PlaceState.IN_SYNC and account.refresh_token
        updated = replace(place, state=state, detail=detail,
                          pending_from=place.pending_from if state is PlaceState.PENDING else None,
                          written_at=now if result.outcome is WriteOutcome.WRITTEN else place.written_at,
                          written_print=fingerprint(account.refresh_token) if holds_ours else place.written_print)
        sync_error = None if state is PlaceState.IN_SYNC else f"out of sync: {detail}"
        if state is PlaceState.ERROR:
            sync_error = f"out of sync: {detail}; kept kiro-tui's token"
        if updated == place and (place.role is not PlaceRole.SOURCE or account.sync_error == sync_error):
            return  # nothing to record (a place found already holding the token): no commit
        # In sync needs no fsync of the store: the place was marked pending durably before it was
        # written, so a crash that loses this record leaves it pending, and the next pass finds it
        # holding the token already (unchanged). A place left pending or in error is recorded durably.
        try:
            with self.store.transaction(durable=state is not PlaceState.IN_SYNC) as tx:
                self.store.save_place(tx, updated)
                if place.role is PlaceRole.SOURCE:
                    self.store.update(account.id, tx, sync_error=sync_error)
        except StoreError as exc:
            log.warning("%s: could not record the state of %s: %s", account.id, place.path, exc)
            return
        account.sync_error = sync_error if place.role is PlaceRole.SOURCE else account.sync_error
        if sync_error:
            log.warning("%s %s: %s", account.id, account.name, sync_error)

    async def retry_pending_places(self) -> None:
        """Write every place still pending (locked, missing, or after a failed write)."""
        pending = {p.account_id for p in self.store.places() if p.state is PlaceState.PENDING}
        for account_id in pending:
            if account_id in self.held:
                continue  # the store holds a spent token: nothing right to write yet
            async with self._exclusive(account_id) as mine:
                if not mine:
                    continue  # being refreshed: that refresh writes its places
                try:
                    account = self.store.get(account_id)
                except StoreError:
                    continue
                if account is None or account.health in (Health.NEEDS_LOGIN, Health.SUSPENDED):
                    continue
                places = [p for p in self._places_to_write(account) if p.state is PlaceState.PENDING]
                if places:
                    await self.write_places(account, places)

    async def look_at_places(self, places: list[Place]) -> dict[str, PlaceSignature]:
        """How each of these place files looks now: one stat each (and its -wal, for a
        database), shared by the watch pass's steps; kiro-tui's own writes keep it current."""
        databases: dict[str, bool] = {}
        for place in places:
            databases.setdefault(place.path, is_database(place.kind))
        self._looked = await asyncio.to_thread(
            lambda: {path: place_signature(path, database) for path, database in databases.items()})
        return self._looked

    async def adopt_from_changed_places(self, every: list[Place] | None = None,
                                        looked: dict[str, PlaceSignature] | None = None) -> set[str]:
        """Read every place a tool rewrote since the last pass (a cheap stat tells), and take a
        newer token found there at once, writing it into the account's other places; a changed
        place that holds the account's own token (kiro-cli refreshed and a re-import took it) has
        its siblings written too. The first pass only learns how each place looks. `looked`: how
        the files looked earlier in this pass (`look_at_places`); only places not in it are
        looked at here. Returns the accounts whose token was taken from a place."""
        adopted: set[str] = set()
        places: dict[str, list[Place]] = {}
        for place in self.store.places() if every is None else every:
            places.setdefault(place.path, []).append(place)
        looked = looked or {}
        unseen = [path for path in places if path not in looked]
        fresh = await asyncio.to_thread(
            lambda: {path: place_signature(path, is_database(places[path][0].kind)) for path in unseen}
        ) if unseen else {}
        now_seen = {path: looked[path] if path in looked else fresh[path] for path in places}
        for gone in self._seen.keys() - now_seen.keys():  # unlinked or removed since
            del self._seen[gone]
        changed: dict[str, list[str]] = {}  # account id -> its changed place paths
        for path, signature in now_seen.items():
            before = self._seen.get(path)
            self._seen[path] = signature
            if before is not None and before != signature:
                for place in places[path]:
                    changed.setdefault(place.account_id, []).append(path)
        for account_id, paths in changed.items():
            if account_id in self.held:
                continue
            async with self._exclusive(account_id) as mine:
                if mine:
                    if await self._adopt_or_pass_on(account_id, paths):
                        adopted.add(account_id)
                    continue
            for path in paths:  # being refreshed: look again next pass
                self._seen[path] = _LOOK_AGAIN
        return adopted

    async def _adopt_or_pass_on(self, account_id: str, paths: list[str]) -> bool:
        """True when a newer token was taken from one of these places."""
        try:
            account = self.store.get(account_id)
        except StoreError:
            return False
        if account is None or account.health in (Health.NEEDS_LOGIN, Health.SUSPENDED):
            return False
        if await self._adopt_from_places(account, account.status(self.clock.now(), self.settings.window)):
            return True
        mine = [p for p in self._places_to_read(account) if p.path in paths]
        for place in mine:
            try:
                login = await asyncio.to_thread(place_format(place.kind).read_entry, Path(place.path), place.entry,
                                                self.clock.now())
            except PlaceError:
                continue
            if login is not None and login.refresh_token == account.refresh_token:
                others = [p for p in self._places_to_write(account) if p.path not in paths]
                await self.write_places(account, others)
                return False
        return False

    async def write_places_now(self, account_id: str, places: list[Place]) -> None:
        """Write these places now (a new link), never while this account is being refreshed here."""
        async with self._account_lock(account_id):
            account = self.store.get(account_id)
            if account is not None:
                await self.write_places(account, places)

    # ------------------------------------------------------------------ the network call

    async def _call(self, account: Account) -> TokenResult:
        token = account.refresh_token
        if not token:
            raise ServiceError("no refresh token stored", ErrorClass.NEEDS_LOGIN)
        if account.auth_method is AuthMethod.SOCIAL:
            return await self.clients.social.refresh(token, SOCIAL_AUTH_REGION)
        if account.auth_method is AuthMethod.EXTERNAL_IDP:
            if not (account.token_endpoint and account.client_id):
                raise ServiceError("no token endpoint stored for this external IdP login", ErrorClass.NEEDS_LOGIN)
            return await self.clients.external.refresh(account.token_endpoint, account.client_id, token, account.scopes)
        if not (account.client_id and account.client_secret):
            raise ServiceError("no OIDC client registration stored", ErrorClass.NEEDS_LOGIN)
        return await self.clients.oidc.refresh(account.region, account.client_id, account.client_secret, token)

    async def _refresh_over_network(self, account: Account) -> RefreshResult:
        spent = account.refresh_token
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.deadline):
                token = await self._call(account)
        except TimeoutError:
            error = ServiceError(f"no complete answer within {self.deadline:g} s (the refresh's deadline, shorter "
                                 "than its lease); retrying", ErrorClass.TRANSIENT)
            return self._failed(account, error, round((time.monotonic() - started) * 1000))
        except ServiceError as exc:
            return self._failed(account, exc, round((time.monotonic() - started) * 1000))
        except KiroTuiError as exc:  # e.g. a stored token endpoint that is not a URL
            error = ServiceError(str(exc), ErrorClass.FATAL_CONFIG)
            return self._failed(account, error, round((time.monotonic() - started) * 1000))
        duration = round((time.monotonic() - started) * 1000)
        now = self.clock.now()
        foreign = foreign_answer(account, token)
        if foreign is not None:  # never this account's token; kept for a person, retried with our own
            kept = quarantine(self.store.path, account, token, foreign, now)
            return self._failed(account, ServiceError(kept, ErrorClass.TRANSIENT, status=200), duration)
        before = account.status(now, self.settings.window, refreshing=True)
        account.access_token = token.access_token
        account.refresh_token = token.refresh_token or spent
        account.expires_at = token.expires_at(now)
        account.health, account.last_error = Health.OK, None
        account.consecutive_failures, account.next_refresh_at = 0, None
        account.last_refresh_at = now
        warnings = list(token.warnings)
        held = self._commit_token(account, spent, now, duration, warnings)
        if held is not None and held.rescue is None:
            await self._rescue_into_places(account, held)
        if held is None:
            warnings += self._commit_details(account, token)
            self.backing_off.pop(account.id, None)
            if spent and account.refresh_token != spent:
                await self.write_places(account)
        for warning in warnings:
            log.warning("%s %s: %s", account.id, account.name, warning)
        result = self._result(account, Outcome.REFRESHED, held.message if held else None)
        result.warnings = warnings
        self._emit(account, before, result.status)
        return result

    def _commit_token(self, account: Account, spent: str | None, now: datetime, duration: int,
                      warnings: list[str]) -> HeldToken | None:
        """Commit the new tokens (and mark every place to write as pending) in one durable
        transaction. If the store will not take it, hold the token instead; returns it then."""
        places = self._places_to_write(account) if spent and account.refresh_token != spent else []
        message = "; ".join(warnings) or None
        for attempt in (1, 2):
            try:
                self._commit_token_once(account, spent, now, duration, message, places)
                break
            except StoreError as exc:
                if attempt == 1 and getattr(exc, "reason", None) in ("disk full", "disk I/O error") \
                        and self.store.make_room():  # the WAL's space, given back: once more
                    log.warning("%s: the store's disk was full; checkpointed its WAL and trying again", account.id)
                    continue
                return self._hold(account, spent, now, exc)
        if account.id in self.held:  # a held token was spent for this one: it and its copies are history
            self._forget_held(account.id)
        self._store_ok()
        return None

    def _commit_token_once(self, account: Account, spent: str | None, now: datetime, duration: int,
                           message: str | None, places: list[Place]) -> None:
        with self.store.transaction() as tx:
            self.store.update(
                account.id, tx, access_token=account.access_token, refresh_token=account.refresh_token,
                expires_at=account.expires_at, health=Health.OK, last_error=None, consecutive_failures=0,
                next_refresh_at=None, last_refresh_at=now,
            )
            self.store.add_lineage(tx, account.id, [spent, account.refresh_token], now)
            for place in places:
                self.store.save_place(tx, replace(place, state=PlaceState.PENDING, pending_from=fingerprint(spent),
                                                  detail="writing the new token"))
            if spent and account.refresh_token != spent:
                for place in self._left_stale(account, places):
                    self.store.save_place(tx, place)
            self.store.log_refresh(tx, RefreshLogEntry(account.id, now, Outcome.REFRESHED, duration_ms=duration,
                                                       http_status=200, message=message))

    def _commit_details(self, account: Account, token: TokenResult) -> list[str]:
        """Fields of the answer beyond the token, each on its own: a bad one is dropped, named."""
        warnings = []
        if token.profile_arn and token.profile_arn != account.profile_arn:
            try:
                self.store.update(account.id, profile_arn=token.profile_arn)
                account.profile_arn = token.profile_arn
            except StoreError as exc:
                warnings.append(f"profileArn not saved: {exc}")
        return warnings

    # ------------------------------------------------------------------ tokens held in memory

    def _hold(self, account: Account, spent: str | None, now: datetime, exc: StoreError) -> HeldToken:
        reason = str(exc) if not hasattr(exc, "reason") else f"the store is not writable: {exc.reason}"
        held = HeldToken(account.id, account.access_token, account.refresh_token or "", account.expires_at,
                         fingerprint(spent), reason, now, next_try=shift(now, self.backoff.base))
        self.held[account.id] = held
        self.store_trouble = reason
        self._write_rescue(held)
        log.error("%s %s: %s; retrying, and it is written as soon as the store takes writes",
                  account.id, account.name, held.message)
        return held

    def _write_rescue(self, held: HeldToken) -> None:
        """A second copy outside the database, verified on disk, so even a crash now does not
        lose it: the first rescue folder that takes it (beside the store, state, runtime)."""
        path, failures = rescue.save(self.store.path, held.account_id, held.to_json())
        held.rescue, held.rescue_failures = (str(path) if path else None), failures
        for failure in failures:
            log.error("%s: the rescue copy could not be written in %s", held.account_id, failure)
        if path is not None:
            log.warning("%s: a rescue copy of the held token is saved in %s", held.account_id, path)

    async def _rescue_into_places(self, account: Account, held: HeldToken) -> None:
        """No rescue folder took the token: write it, in the tool's own format, into a place of
        this account that kiro-tui reads back at the next start (compare-and-swap on the lineage,
        as every write-back), and count it only once it reads back."""
        copy = TokenCopy(held.access_token, held.refresh_token, held.expires_at,
                         account.profile_arn if account.auth_method is AuthMethod.SOCIAL else None)

        def belongs(token_print: str | None) -> bool:
            return self.store.in_lineage(account.id, token_print)

        for place in [p for p in self._places_to_read(account) if _writable(p.kind)]:
            fmt = place_format(place.kind)
            try:
                written = await asyncio.to_thread(fmt.write_token, Path(place.path), place.entry, copy, belongs,
                                                  self.writeback_timeout)
                login = await asyncio.to_thread(fmt.read_entry, Path(place.path), place.entry, self.clock.now())
            except Exception as exc:  # noqa: BLE001 - one place that cannot take it; the next may
                held.rescue_failures.append(f"{place.path}: {exc}")
                continue
            if login is not None and login.refresh_token == held.refresh_token:
                self._seen[place.path] = place_signature(place.path, is_database(place.kind))
                held.rescue = f"{fmt.title}'s {place.path} (in its own format)"
                log.warning("%s: the held token is saved in %s", account.id, held.rescue)
                return
            held.rescue_failures.append(f"{place.path}: {written.detail or written.outcome.value}")

    def _forget_held(self, account_id: str) -> None:
        """The store holds this token now (or went past it): drop it and every rescue copy."""
        self.held.pop(account_id, None)
        for stuck in rescue.remove(self.store.path, account_id):
            log.error("%s: the rescue copy %s could not be removed; it is never used again, as the store "
                      "has gone past it", account_id, stuck)

    def _live_held(self, account: Account) -> HeldToken | None:
        """The held token, unless the store has it already or has gone past it: a rescue older
        than the stored token is never used (its refresh token is spent). The store still holding
        the token it replaced (or none) is the one case a held token is certainly the newer."""
        held = self.held.get(account.id)
        if held is None:
            return None
        stored = fingerprint(account.refresh_token) if account.refresh_token else None
        if stored is None or stored == held.spent:
            return held
        mine = fingerprint(held.refresh_token)
        if stored == mine or self.store.in_lineage(account.id, mine):
            log.info("%s: the store already holds the held token or a newer one; the held copy is dropped",
                     account.id)
        elif account.expires_at >= held.expires_at:  # the store moved on (a login, an import): it wins
            log.warning("%s: the held token is older than the store's; dropped", account.id)
        else:
            return held
        self._forget_held(account.id)
        return None

    def _load_rescued(self) -> None:
        """Tokens a run could not commit, from every rescue folder: held again (the newest of an
        account's copies), committed at the next start or pass; stale ones are removed."""
        for path, data, problem in rescue.load(self.store.path):
            held: HeldToken | None = None
            if data is not None:
                try:
                    held = HeldToken.from_json(data, "left by an earlier run that could not write the store")
                except (ValueError, KeyError, TypeError, KiroTuiError) as exc:
                    problem = str(exc)
            if held is None:
                log.error("cannot read the rescued token %s: %s; left in place", path, problem)
                continue
            held.rescue = str(path)
            known = self.held.get(held.account_id)
            if known is None or held.since > known.since:
                self.held[held.account_id] = held
        for account_id in list(self.held):
            try:
                account = self.store.get(account_id)
            except StoreError:
                continue
            if account is None:
                continue  # commit_held drops it (with its files) once the store says so again
            self._live_held(account)

    async def commit_held(self, force: bool = False) -> None:
        """Try again to commit every held token (with backoff unless `force`)."""
        now = self.clock.now()
        for account_id, held in list(self.held.items()):
            if not force and held.next_try is not None and held.next_try > now:
                continue
            try:
                account = self.store.get(account_id)
            except StoreError as exc:
                self._held_retry_later(held, now, str(exc))
                continue
            if account is None:  # removed meanwhile: nothing to keep it for
                self._forget_held(account_id)
                continue
            if self._live_held(account) is None:
                continue
            before = account.status(now, self.settings.window)
            account.access_token, account.refresh_token, account.expires_at = (
                held.access_token, held.refresh_token, held.expires_at)
            account.health, account.last_error, account.consecutive_failures = Health.OK, None, 0
            places = self._places_to_write(account)
            try:
                with self.store.transaction() as tx:
                    self.store.update(account_id, tx, access_token=held.access_token,
                                      refresh_token=held.refresh_token, expires_at=held.expires_at,
                                      health=Health.OK, last_error=None, consecutive_failures=0,
                                      next_refresh_at=None, last_refresh_at=held.since)
                    self.store.add_lineage(tx, account_id, [held.refresh_token], now)
                    for place in places:
                        self.store.save_place(tx, replace(place, state=PlaceState.PENDING, pending_from=held.spent,
                                                          detail="writing the new token"))
                    for place in self._left_stale(account, places):
                        self.store.save_place(tx, place)
            except StoreError as exc:
                self._held_retry_later(held, now, f"the store is not writable: {getattr(exc, 'reason', exc)}")
                continue
            self._forget_held(account_id)
            self._store_ok()
            self.saved_held.append((account_id, account.name, held.rescue))
            log.warning("%s %s: the held token is now saved in the store", account_id, account.name)
            await self.write_places(account, places)
            self._emit(account, before, account.status(self.clock.now(), self.settings.window), force=True)

    def _held_retry_later(self, held: HeldToken, now: datetime, reason: str) -> None:
        held.attempts += 1
        held.reason = reason
        held.next_try = shift(now, self.backoff.ceiling(held.attempts))
        self.store_trouble = reason

    def _store_ok(self) -> None:
        if self.store_trouble is not None:
            self.store_trouble = None
            try:
                self.store.release_leases(self.owner)  # any a failed release left behind
            except StoreError:
                pass

    # ------------------------------------------------------------------ failures

    def _failed(self, account: Account, exc: ServiceError, duration: int) -> RefreshResult:
        now = self.clock.now()
        before = account.status(now, self.settings.window, refreshing=True)
        retry_in = None
        if exc.classification in (ErrorClass.TRANSIENT, ErrorClass.QUOTA):
            account.consecutive_failures += 1
            retry_in = self.backoff.delay(account.consecutive_failures, self.rng)
            if exc.retry_after:
                retry_in = max(retry_in, min(exc.retry_after, self.backoff.cap))
            account.health = Health.REFRESH_FAILING
            account.next_refresh_at = shift(now, retry_in)
            account.last_error = exc.message
        elif exc.classification is ErrorClass.SUSPENDED:
            account.health, account.last_error = Health.SUSPENDED, f"account suspended: {exc.message}"
            account.consecutive_failures += 1
        else:
            account.health = Health.NEEDS_LOGIN
            account.last_error = _needs_login_text(exc)
            account.consecutive_failures += 1
            account.next_refresh_at = None
            if exc.classification is ErrorClass.NEEDS_LOGIN:
                mark_refresh_token_dead(account)
        try:
            with self.store.transaction() as tx:
                self.store.update(
                    account.id, tx, health=account.health, last_error=account.last_error,
                    consecutive_failures=account.consecutive_failures, next_refresh_at=account.next_refresh_at,
                    extra=account.extra,
                )
                self.store.log_refresh(tx, RefreshLogEntry(account.id, now, Outcome.FAILED, exc.classification.value,
                                                           duration, exc.status, exc.message))
        except StoreError as store_exc:
            return self._unrecorded_failure(account.id, f"{exc.message}; and the store is not writable: {store_exc}",
                                            account)
        result = self._result(account, Outcome.FAILED, account.last_error)
        result.classification = exc.classification.value
        result.retry_in = retry_in
        self._emit(account, before, result.status)
        return result

    def _record_failure_safely(self, account_id: str, exc: Exception) -> RefreshResult:
        """An unforeseen error: recorded as a transient failure of this account (backed off)."""
        error = ServiceError(f"internal error: {type(exc).__name__}: {str(exc)[:120]}", ErrorClass.TRANSIENT)
        try:
            account = self.store.get(account_id)
        except StoreError as store_exc:
            return self._unrecorded_failure(account_id, f"{error.message}; {store_exc}")
        if account is None:
            return RefreshResult(account_id, Outcome.SKIPPED, Status.EXPIRED, message="no such account")
        return self._failed(account, error, 0)

    def _unrecorded_failure(self, account_id: str, message: str, account: Account | None = None) -> RefreshResult:
        """A failure the store could not record: backed off in memory so it is not retried at once."""
        failures, _ = self.backing_off.get(account_id, (0, self.clock.now()))
        retry_in = self.backoff.delay(failures + 1, self.rng) + 1.0
        self.backing_off[account_id] = (failures + 1, shift(self.clock.now(), retry_in))
        self.store_trouble = message
        log.warning("%s: %s", account_id, message)
        status = account.status(self.clock.now(), self.settings.window) if account else Status.REFRESH_FAILING
        return RefreshResult(account_id, Outcome.FAILED, status, account.label if account else "",
                             classification=ErrorClass.TRANSIENT.value, message=message, retry_in=retry_in)

    # ------------------------------------------------------------------ helpers

    def _result(self, account: Account, outcome: Outcome, message: str | None = None) -> RefreshResult:
        status = account.status(self.clock.now(), self.settings.window)
        return RefreshResult(account.id, outcome, status, account.label, message=message,
                             expires_at=account.expires_at)

    def _emit(self, account: Account, before: Status, after: Status, force: bool = False) -> None:
        if (force or before is not after) and self.on_change is not None:
            self.on_change(StatusChange(account.id, account.name, before, after, account.last_error))


PlaceSignature = tuple[tuple[int, int, int] | None, ...]
_LOOK_AGAIN: PlaceSignature = (None, None, None)
"""Never a real signature: the place counts as changed at the next pass."""


def place_signature(path: str, database: bool = False) -> PlaceSignature:
    """Cheap change detector for a place file (and a database's -wal): inode, mtime, size. A
    tool's atomic rename gives a new inode; a write in place, a new mtime or size."""
    found: list[tuple[int, int, int] | None] = []
    for candidate in (path, f"{path}-wal") if database else (path,):
        try:
            st = os.stat(candidate)
            found.append((st.st_ino, st.st_mtime_ns, st.st_size))
        except OSError:
            found.append(None)
    return tuple(found)


def may_replace(store: AccountStore, account_id: str, place: Place, token_print: str | None) -> bool:
    """The compare-and-swap's rule: a place's token is replaced only when it is the one kiro-tui
    last wrote (or found) there, or one of the lineage it has not yet seen spent there (newer
    than that one). An older token of the lineage (a backup restored, a stale copy put there by
    someone) is not replaced: the place is shown in error instead."""
    if not store.in_lineage(account_id, token_print):
        return False
    if place.written_print is None or token_print == place.written_print:
        return True
    last, held = store.lineage_rank(account_id, place.written_print), store.lineage_rank(account_id, token_print)
    return last is None or (held is not None and held >= last)


def is_database(kind: str) -> bool:
    """The kind's places are SQLite files (`PlaceFormat.is_database`); an unknown kind is not."""
    try:
        return place_format(kind).is_database
    except PlaceError:
        return False


def _writable(kind: str) -> bool:
    try:
        return bool(place_format(kind).writable)
    except PlaceError:
        return False


def _place_detail(place: Place, result: WriteResult) -> str:
    text = result.detail or result.outcome.value
    if result.state is PlaceState.PENDING:
        return f"{text}; will retry"
    return text


def _needs_login_text(exc: ServiceError) -> str:
    if exc.code == "invalid_client":
        return f"client registration invalid or expired: log in again ({exc.message})"
    if exc.classification is ErrorClass.FATAL_CONFIG:
        return f"refresh cannot work as configured: log in again ({exc.message})"
    return f"refresh token invalid: log in again ({exc.message})"

