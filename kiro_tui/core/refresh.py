"""Refresh one account: the rules that keep tokens fresh without ever damaging kiro-cli.

- A lease in the store (taken in an IMMEDIATE transaction) makes sure only one kiro-tui
  process refreshes an account at a time; the row is re-read after taking it.
- needs-login and suspended accounts cost no network call: exactly one call is spent on a
  dead refresh token, then the account waits for a login or re-import.
- `follow` never calls the network; `sync` first adopts a newer token from kiro-cli, and
  after a refresh writes the new one back only if kiro-cli still holds the token we spent.
- A rotated refresh token is committed to the store before anything is reported or written back.
- Transient failures back off exponentially with full jitter (base 5 s, cap 5 min).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx

from kiro_tui.core.aws.endpoints import Endpoints
from kiro_tui.core.aws.errors import ErrorClass, ServiceError
from kiro_tui.core.aws.external_idp import ExternalIdpClient
from kiro_tui.core.aws.oidc import OidcClient
from kiro_tui.core.aws.social import SocialClient
from kiro_tui.core.aws.tokens import TokenResult
from kiro_tui.core.clock import Clock
from kiro_tui.core.config import Settings
from kiro_tui.core.errors import KiroTuiError
from kiro_tui.core.importer import mark_refresh_token_dead, merge_login
from kiro_tui.core.kiro_cli import KiroCliLogin, read_kiro_cli
from kiro_tui.core.kiro_cli_writeback import DEFAULT_WRITE_TIMEOUT, WriteBack, write_back_token
from kiro_tui.core.masking import fingerprint
from kiro_tui.core.models import Account, AuthMethod, Health, Mode, Status
from kiro_tui.core.store import AccountStore, RefreshLogEntry
from kiro_tui.core.timefmt import format_timestamp

log = logging.getLogger("kiro_tui.refresh")

LEASE_SECONDS = 60.0
SOCIAL_AUTH_REGION = "us-east-1"
WRITEBACK_PENDING = "writeback_from"  # extra: fingerprint of the token kiro-cli still holds

REFRESHED, ADOPTED, FOLLOWED, FAILED, SKIPPED, BUSY = "refreshed", "adopted", "followed", "failed", "skipped", "busy"


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: uniform(0, min(cap, base · 2^(n-1)))."""

    base: float = 5.0
    cap: float = 300.0

    def ceiling(self, failures: int) -> float:
        return min(self.cap, self.base * 2 ** max(0, failures - 1))

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


@dataclass(frozen=True)
class StatusChange:
    """An account moved from one status to another: for `watch`'s log lines and the TUI."""

    account_id: str
    name: str
    before: Status
    after: Status
    message: str | None = None

    def describe(self) -> str:
        text = f"{self.account_id} {self.name}: {self.before.value} → {self.after.value}"
        return f"{text} ({self.message})" if self.message and self.after is not Status.FRESH else text


@dataclass
class RefreshResult:
    account_id: str
    outcome: str
    status: Status
    label: str = ""
    classification: str | None = None
    message: str | None = None
    expires_at: datetime | None = None
    retry_in: float | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.account_id,
            "label": self.label,
            "outcome": self.outcome,
            "status": self.status.value,
            "classification": self.classification,
            "message": self.message,
            "expires_at": format_timestamp(self.expires_at) if self.expires_at else None,
            "retry_in_seconds": round(self.retry_in, 1) if self.retry_in is not None else None,
        }


def default_owner() -> str:
    return f"{os.uname().nodename if hasattr(os, 'uname') else 'host'}:{os.getpid()}:{secrets.token_hex(3)}"


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
    ) -> None:
        self.store, self.clients, self.clock, self.settings = store, clients, clock, settings
        self.writeback_timeout = writeback_timeout
        self.owner = owner or default_owner()
        self.rng = rng or random.Random()
        self.backoff = backoff
        self.on_change = on_change

    # ------------------------------------------------------------------ entry point

    def is_due(self, account: Account, now: datetime) -> bool:
        if account.health is Health.REFRESH_FAILING:
            return account.next_refresh_at is None or account.next_refresh_at <= now
        return account.expires_at - self.settings.window <= now

    async def refresh(self, account_id: str, force: bool = False) -> RefreshResult:
        """One attempt for one account. `force` refreshes even if not yet due."""
        now = self.clock.now()
        if not self.store.acquire_lease(account_id, self.owner, now, LEASE_SECONDS):
            account = self.store.get(account_id)
            status = account.status(now, self.settings.window, refreshing=True) if account else Status.REFRESHING
            return RefreshResult(account_id, BUSY, status, account.label if account else "",
                                 message="another kiro-tui process is refreshing it")
        try:
            return await self._refresh_leased(account_id, force)
        finally:
            self.store.release_lease(account_id, self.owner)

    async def _refresh_leased(self, account_id: str, force: bool) -> RefreshResult:
        account = self.store.get(account_id)  # re-read: another process may have refreshed already
        now = self.clock.now()
        if account is None:
            return RefreshResult(account_id, SKIPPED, Status.EXPIRED, message="no such account")
        before = account.status(now, self.settings.window)
        if account.health in (Health.NEEDS_LOGIN, Health.SUSPENDED):
            return self._result(account, SKIPPED, account.last_error)
        if account.mode in (Mode.SYNC, Mode.FOLLOW) and account.source:
            adopted = self._adopt_from_kiro_cli(account, before)
            if account.mode is Mode.FOLLOW:
                return adopted or self._result(account, FOLLOWED, "follow mode: kiro-cli refreshes this login")
            if adopted and not self.is_due(account, self.clock.now()):
                return adopted
        if not force and not self.is_due(account, now):
            return self._result(account, SKIPPED, "not due yet")
        self._emit(account, before, Status.REFRESHING)
        return await self._refresh_over_network(account)

    # ------------------------------------------------------------------ kiro-cli coexistence

    def _kiro_cli_login(self, account: Account) -> KiroCliLogin | None:
        try:
            snapshot = read_kiro_cli(Path(account.source or ""), self.clock.now(), busy_timeout=1.0)
        except KiroTuiError as exc:
            log.info("%s: cannot re-read kiro-cli before refreshing: %s", account.id, exc)
            return None
        return next((lg for lg in snapshot.logins
                     if lg.key == account.source_key and lg.login_key == account.login_key), None)

    def _adopt_from_kiro_cli(self, account: Account, before: Status) -> RefreshResult | None:
        """If kiro-cli holds a newer token for this login, take it instead of calling the network."""
        login = self._kiro_cli_login(account)
        if login is None or login.expires_at <= account.expires_at:
            return None
        merge_login(account, login)
        account.sync_error = None
        account.extra.pop(WRITEBACK_PENDING, None)
        now = self.clock.now()
        with self.store.transaction() as tx:
            self.store.save(account, tx)
            self.store.log_refresh(tx, RefreshLogEntry(account.id, now, ADOPTED, message="newer token from kiro-cli"))
        result = self._result(account, ADOPTED, "took kiro-cli's newer token")
        self._emit(account, before, result.status)
        return result

    async def retry_write_backs(self) -> None:
        """Write back tokens kiro-cli could not take earlier (its database was busy)."""
        for account in self.store.accounts_marked(WRITEBACK_PENDING):
            if account.mode is Mode.SYNC:
                await self._write_back(account, str(account.extra[WRITEBACK_PENDING]))

    async def _write_back(self, account: Account, spent: str) -> None:
        if not (account.source and account.source_key and account.refresh_token):
            return
        result = await asyncio.to_thread(
            write_back_token, Path(account.source), account.source_key, spent,
            account.access_token, account.refresh_token, account.expires_at,
            account.profile_arn if account.auth_method is AuthMethod.SOCIAL else None,
            self.writeback_timeout,
        )
        if result.outcome is WriteBack.WRITTEN:
            sync_error, pending = None, None
        elif result.outcome is WriteBack.LOCKED:
            sync_error, pending = f"out of sync: {result.detail}; will retry", spent
        else:
            sync_error, pending = f"out of sync: {result.detail}; kept kiro-tui's token", None
        if pending:
            account.extra[WRITEBACK_PENDING] = pending
        else:
            account.extra.pop(WRITEBACK_PENDING, None)
        account.sync_error = sync_error
        self.store.update(account.id, sync_error=sync_error, extra=account.extra)
        if sync_error:
            log.warning("%s %s: %s", account.id, account.name, sync_error)

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
            token = await self._call(account)
        except ServiceError as exc:
            return self._failed(account, exc, round((time.monotonic() - started) * 1000))
        duration = round((time.monotonic() - started) * 1000)
        now = self.clock.now()
        before = account.status(now, self.settings.window, refreshing=True)
        account.access_token = token.access_token
        account.refresh_token = token.refresh_token or spent
        account.expires_at = token.expires_at(now)
        if token.profile_arn:
            account.profile_arn = token.profile_arn
        account.health, account.last_error = Health.OK, None
        account.consecutive_failures, account.next_refresh_at = 0, None
        account.last_refresh_at = now
        # Durable first: the rotated refresh token is the only live copy there is.
        with self.store.transaction() as tx:
            self.store.update(
                account.id, tx, access_token=account.access_token, refresh_token=account.refresh_token,
                expires_at=account.expires_at, profile_arn=account.profile_arn, health=Health.OK,
                last_error=None, consecutive_failures=0, next_refresh_at=None, last_refresh_at=now,
            )
            self.store.log_refresh(tx, RefreshLogEntry(account.id, now, REFRESHED, duration_ms=duration,
                                                       http_status=200))
        if account.mode is Mode.SYNC and spent and account.refresh_token != spent:
            await self._write_back(account, fingerprint(spent) or "")
        result = self._result(account, REFRESHED)
        self._emit(account, before, result.status)
        return result

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
            account.next_refresh_at = now + timedelta(seconds=retry_in)
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
        with self.store.transaction() as tx:
            self.store.update(
                account.id, tx, health=account.health, last_error=account.last_error,
                consecutive_failures=account.consecutive_failures, next_refresh_at=account.next_refresh_at,
                extra=account.extra,
            )
            self.store.log_refresh(tx, RefreshLogEntry(account.id, now, FAILED, exc.classification.value,
                                                       duration, exc.status, exc.message))
        result = self._result(account, FAILED, account.last_error)
        result.classification = exc.classification.value
        result.retry_in = retry_in
        self._emit(account, before, result.status)
        return result

    # ------------------------------------------------------------------ helpers

    def _result(self, account: Account, outcome: str, message: str | None = None) -> RefreshResult:
        status = account.status(self.clock.now(), self.settings.window)
        return RefreshResult(account.id, outcome, status, account.label, message=message,
                             expires_at=account.expires_at)

    def _emit(self, account: Account, before: Status, after: Status) -> None:
        if before is not after and self.on_change is not None:
            self.on_change(StatusChange(account.id, account.name, before, after, account.last_error))


def _needs_login_text(exc: ServiceError) -> str:
    if exc.code == "invalid_client":
        return f"client registration invalid or expired: log in again ({exc.message})"
    if exc.classification is ErrorClass.FATAL_CONFIG:
        return f"refresh cannot work as configured: log in again ({exc.message})"
    return f"refresh token invalid: log in again ({exc.message})"
