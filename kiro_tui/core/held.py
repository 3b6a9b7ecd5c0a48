"""Tokens the service handed over that the store would not take yet (disk full, read-only).

The service has already rotated: a held token is the only live copy. It is kept in memory,
copied to a rescue file verified on disk (`rescue`; else into a place of the account, in its
tool's own format), retried with backoff, and committed by the same transaction as a fresh
refresh (`commit_new_token`); its copies are removed once the store has it or has gone past it.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from kiro_tui.core import rescue
from kiro_tui.core.errors import KiroTuiError, StoreError
from kiro_tui.core.masking import fingerprint
from kiro_tui.core.models import Account, AuthMethod, Health, Place, PlaceState
from kiro_tui.core.place_sync import PlaceSync, writable
from kiro_tui.core.places import TokenCopy, place_format
from kiro_tui.core.store import AccountStore, RefreshLogEntry
from kiro_tui.core.timefmt import format_timestamp, parse_timestamp, shift

log = logging.getLogger("kiro_tui.refresh")


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
    judged: tuple[str, str | None] | None = None
    """(health, error) a failed refresh with this token stored since (a backoff, a suspension):
    saving the token keeps the row's verdict while it is still that one, rather than calling the
    account healthy and due; any other (another process's, about the spent token) is cleared."""

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
                "spent": self.spent, "since": format_timestamp(self.since),
                "judged": list(self.judged) if self.judged else None}

    @classmethod
    def from_json(cls, data: dict[str, object], reason: str) -> HeldToken:
        return cls(str(data["account_id"]), str(data["access_token"]), str(data["refresh_token"]),
                   parse_timestamp(data["expires_at"]), str(data["spent"]) if data.get("spent") else None, reason,
                   parse_timestamp(data["since"]), judged=verdict(data.get("judged")))


def verdict(data: object) -> tuple[str, str | None] | None:
    """`HeldToken.judged` as its rescue copy has it (none from a copy that predates it)."""
    if isinstance(data, list) and len(data) == 2 and isinstance(data[0], str) and (
            data[1] is None or isinstance(data[1], str)):
        return data[0], data[1]
    return None


def rescue_dir(store: AccountStore) -> Path:
    """Beside the store: the first place a held token is written when the store will not take it."""
    return rescue.beside_store(store.path)

ANY_TOKEN = "*"
"""`only_over` of a commit that replaces whatever token the row holds (a refresh, under its lease)."""


class MovedOn(Exception):
    """The row no longer holds the token a commit was to replace (another process wrote it)."""


async def commit_new_token(store: AccountStore, sync: PlaceSync, account: Account, *, replaced: str | None,
                           lineage: list[str | None], refreshed_at: datetime, now: datetime,
                           places: list[Place] | None, moved_on: bool, entry: RefreshLogEntry | None = None,
                           profile_arn: str | None = None, only_over: str | None = ANY_TOKEN) -> list[Place]:
    """The one transaction that stores a new token (a refresh's answer, or a held token later):
    the account's token and health, its lineage, every place to write marked pending (from the
    token `replaced`, by fingerprint; `places`, or None: every place to write, read in this
    transaction) and, when the token `moved_on`, the places kiro-tui does not write marked
    stale; a new `profile_arn` the answer named, too (no commit of its own). Returns the places
    as now stored (pending), to be written. Raises StoreError when the store will not take it.
    Committed by the store's writer, durably, with whatever other writes are queued then; the
    caller is answered only once it is done, even if cancelled meanwhile. (The places are read
    there, not on the event loop: after the writer's commits the loop's connection reads them
    from a cold cache, and this is between a refresh's answer and its network slot's return.)
    `only_over`: the fingerprint of the token the row must still hold, else MovedOn. The health,
    error, failure count and next try stored are the account's as the caller set them."""
    changes: dict[str, object] = dict(
        access_token=account.access_token, refresh_token=account.refresh_token, expires_at=account.expires_at,
        health=account.health, last_error=account.last_error, consecutive_failures=account.consecutive_failures,
        next_refresh_at=account.next_refresh_at, last_refresh_at=refreshed_at)
    if profile_arn:
        changes["profile_arn"] = profile_arn
    def commit(tx: sqlite3.Connection) -> list[Place]:
        if only_over != ANY_TOKEN and not store.holds_print(tx, account.id, only_over):
            raise MovedOn(account.id)
        targets = sync.places_to_write(account, tx) if places is None else places
        pending = [replace(place, state=PlaceState.PENDING, pending_from=replaced, detail="writing the new token")
                   for place in targets]
        stale = sync.left_stale(account, targets, tx) if moved_on else []
        store.update(account.id, tx, **changes)
        store.add_lineage(tx, account.id, lineage, now)
        for place in [*pending, *stale]:
            store.save_place(tx, place)
        if entry is not None:
            store.log_refresh(tx, entry)
        return pending

    return await store.writer.run(commit, see_through=True)


class HeldTokens:
    """One refresher's held tokens by account id (`tokens`), and their rescue copies."""

    def __init__(self, store: AccountStore) -> None:
        self.store = store
        self.tokens: dict[str, HeldToken] = {}
        self.saved: list[tuple[str, str, str | None]] = []
        """(id, name, where its rescue copy was) of each held token committed since: told once."""
        self._load_rescued()

    def hold(self, account: Account, spent: str | None, now: datetime, exc: StoreError,
             next_try: datetime) -> HeldToken:
        """Keep the account's new token, which the store would not take, and copy it to disk."""
        reason = str(exc) if not hasattr(exc, "reason") else f"the store is not writable: {exc.reason}"
        prior = self.tokens.get(account.id)  # (a held token spent for this one: the store still has what it replaced)
        replaced = prior.spent if prior is not None and prior.refresh_token == spent else fingerprint(spent)
        held = HeldToken(account.id, account.access_token, account.refresh_token or "", account.expires_at,
                         replaced, reason, now, next_try=next_try)
        self.tokens[account.id] = held
        self._write_rescue(held)
        log.error("%s %s: %s; retrying, and it is written as soon as the store takes writes",
                  account.id, account.name, held.message)
        return held

    async def commit(self, account: Account, held: HeldToken, now: datetime, sync: PlaceSync) -> list[Place] | None:
        """Store the held token over the token `account` holds as read (`commit_new_token`) and
        forget it and its copies; returns the places to write it into, or None when the row has
        moved on since it was read (another process: the next try looks again). Raises
        StoreError when the store still will not take it."""
        read = fingerprint(account.refresh_token)
        account.access_token, account.refresh_token, account.expires_at = (
            held.access_token, held.refresh_token, held.expires_at)
        # A verdict stored since about the spent token is cleared (its own refresh's stays); a
        # suspension is the account's, whichever token heard it (a usage check): it stays.
        if held.judged != (account.health.value, account.last_error) and account.health is not Health.SUSPENDED:
            account.health, account.last_error, account.consecutive_failures = Health.OK, None, 0
            account.next_refresh_at = None
        try:
            places = await commit_new_token(self.store, sync, account, replaced=held.spent,
                                            lineage=[held.refresh_token], refreshed_at=held.since, now=now,
                                            places=None, moved_on=True, only_over=read)
        except MovedOn:
            log.info("%s: the store's token changed while its held token was being saved; looked at again next",
                     account.id)
            return None
        if self.tokens.get(account.id) is held:  # (not one held since, while this commit waited)
            self.forget(account.id)
        self.saved.append((account.id, account.name, held.rescue))
        log.warning("%s %s: the held token is now saved in the store", account.id, account.name)
        return places

    def retry_later(self, held: HeldToken, now: datetime, reason: str, delay: float) -> None:
        held.attempts += 1
        held.reason = reason
        held.next_try = shift(now, delay)

    def _write_rescue(self, held: HeldToken) -> None:
        """A second copy outside the database, verified on disk, so even a crash now does not
        lose it: the first rescue folder that takes it (beside the store, state, runtime)."""
        path, failures = rescue.save(self.store.path, held.account_id, held.to_json())
        held.rescue, held.rescue_failures = (str(path) if path else None), failures
        for failure in failures:
            log.error("%s: the rescue copy could not be written in %s", held.account_id, failure)
        if path is not None:
            log.warning("%s: a rescue copy of the held token is saved in %s", held.account_id, path)

    async def rescue_into_places(self, account: Account, held: HeldToken, sync: PlaceSync) -> None:
        """No rescue folder took the token: write it, in the tool's own format, into a place of
        this account that kiro-tui reads back at the next start (compare-and-swap on the lineage,
        as every write-back), and count it only once it reads back."""
        copy = TokenCopy(held.access_token, held.refresh_token, held.expires_at,
                         account.profile_arn if account.auth_method is AuthMethod.SOCIAL else None)

        try:
            lineage = self.store.lineage(account.id)  # asked here: the write runs in a worker thread
        except (StoreError, sqlite3.Error):  # the store is failing: the token it last had is ours
            lineage = {held.spent: 0} if held.spent else {}

        def belongs(token_print: str | None) -> bool:
            return token_print in lineage

        for place in [p for p in sync.places_to_read(account) if writable(p.kind)]:
            fmt = place_format(place.kind)
            try:
                written = await asyncio.to_thread(fmt.write_token, Path(place.path), place.entry, copy, belongs,
                                                  sync.writeback_timeout)
                login = await asyncio.to_thread(fmt.read_entry, Path(place.path), place.entry, sync.clock.now())
            except Exception as exc:  # noqa: BLE001 - one place that cannot take it; the next may
                held.rescue_failures.append(f"{place.path}: {exc}")
                continue
            if login is not None and login.refresh_token == held.refresh_token:
                sync.saw_own_write(place)
                held.rescue = f"{fmt.title}'s {place.path} (in its own format)"
                log.warning("%s: the held token is saved in %s", account.id, held.rescue)
                return
            held.rescue_failures.append(f"{place.path}: {written.detail or written.outcome.value}")

    def forget(self, account_id: str) -> None:
        """The store holds this token now (or went past it): drop it and every rescue copy."""
        self.tokens.pop(account_id, None)
        for stuck in rescue.remove(self.store.path, account_id):
            log.error("%s: the rescue copy %s could not be removed; it is never used again, as the store "
                      "has gone past it", account_id, stuck)

    def judged(self, account: Account) -> None:
        """A failure of the refresh of `account`'s token is now stored: if that token is the held
        one, remember the verdict (`HeldToken.judged`), in its rescue copy too."""
        held = self.tokens.get(account.id)
        if held is None or account.refresh_token != held.refresh_token:
            return
        held.judged = (account.health.value, account.last_error)
        if held.rescue is not None and rescue.is_copy(self.store.path, Path(held.rescue)):
            try:
                rescue.rewrite(Path(held.rescue), self.store.path, held.to_json())
            except OSError as exc:  # the copy still holds the token: only the verdict is lost at a restart
                log.warning("%s: the rescue copy %s could not be updated: %s", account.id, held.rescue, exc)

    def is_held(self, account: Account) -> bool:
        """Whether the account's token (as a refresh holds it) is the one held here."""
        held = self.tokens.get(account.id)
        return held is not None and account.refresh_token == held.refresh_token

    def stored_print(self, account: Account) -> str | None:
        """The fingerprint of the refresh token the store holds for `account` as a refresh read
        it: when the account's token is the held one, the token it replaced."""
        if self.is_held(account):
            return self.tokens[account.id].spent
        return fingerprint(account.refresh_token)

    def live(self, account: Account) -> HeldToken | None:
        """The held token, unless the store has it already or has gone past it: a rescue older
        than the stored token is never used (its refresh token is spent). The store still holding
        the token it replaced (or none) is the one case a held token is certainly the newer."""
        held = self.tokens.get(account.id)
        if held is None:
            return None
        stored = fingerprint(account.refresh_token)
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
        self.forget(account.id)
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
            known = self.tokens.get(held.account_id)
            if known is None or held.since > known.since:
                self.tokens[held.account_id] = held
        for account_id in list(self.tokens):
            try:
                account = self.store.get(account_id)
            except StoreError:
                continue
            if account is None:
                continue  # commit_held drops it (with its files) once the store says so again
            self.live(account)
