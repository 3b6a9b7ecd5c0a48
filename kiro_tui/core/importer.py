"""Merge the logins found in a place (kiro-cli's database, another tool's file) into the store.

Rules: a login is one account, however many places hold copies of it (see `match_login`);
the same login updates its account in place; a token in the store that expires later than
the place's is never replaced by it; fields the place lacks are kept from what kiro-tui knew;
an account whose login has left the place is kept and reported, never deleted; a login
removed from kiro-tui is not brought back (a new login at that place is). The import is one
transaction; a login that cannot be stored is skipped with its reason, the others land.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from kiro_tui.core.identity import (
    META_FIELDS,
    UNCHANGED,
    is_spent,
    merge_login,
    new_account_id,
    other_person,
    same_login,
    url_key,
)
from kiro_tui.core.identity import NEWER_TOLERANCE as NEWER_TOLERANCE  # re-exported: they lived here
from kiro_tui.core.identity import UPDATED as UPDATED
from kiro_tui.core.identity import is_dead_refresh_token as is_dead_refresh_token
from kiro_tui.core.identity import mark_refresh_token_dead as mark_refresh_token_dead
from kiro_tui.core.masking import fingerprint
from kiro_tui.core.models import Account, AuthMethod, Health, Mode, Place, PlaceRole, PlaceState
from kiro_tui.core.place_reads import SINGLE_LOGIN_KINDS
from kiro_tui.core.places import PlaceError, place_format
from kiro_tui.core.places.base import PlaceLogin, PlaceSnapshot
from kiro_tui.core.places.kiro_cli import KiroCliSnapshot, SkippedKey
from kiro_tui.core.store import AccountStore, UnlinkMark, touch_updated

ADDED = "added"


@dataclass
class ImportedLogin:
    id: str
    label: str
    auth_method: str
    key: str
    action: str
    note: str | None = None
    kind: str = "kiro-cli"
    path: str = ""

    @property
    def where(self) -> str:
        """The login's place, for a person: the key in a database, else the file."""
        return self.key or self.path

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "label": self.label,
            "auth_method": self.auth_method,
            "key": self.key,
            "action": self.action,
            "note": self.note,
            "kind": self.kind,
            "path": self.path,
        }


@dataclass
class ImportReport:
    source: Path
    imported: list[ImportedLogin] = field(default_factory=list)
    skipped: list[SkippedKey] = field(default_factory=list)
    missing: list[Account] = field(default_factory=list)
    kind: str = "kiro-cli"
    sources: list[tuple[str, Path]] = field(default_factory=list)
    """Every (kind, path) read, when one import covered several places (`--from all`)."""
    problems: list[tuple[str, Path, str]] = field(default_factory=list)
    """(kind, path, why) for each place that could not be read at all; the others still imported."""
    cannot_find: list[tuple[str, str]] = field(default_factory=list)
    """(kind, how to point kiro-tui there) for each tool `--from all` could not find by itself."""

    def to_json(self) -> dict[str, object]:
        return {
            "source": str(self.source),
            "kind": self.kind,
            "imported": [item.to_json() for item in self.imported],
            "skipped": [{"key": s.key, "reason": s.reason, "path": s.path} for s in self.skipped],
            "missing": [{"id": a.id, "label": a.label, "key": a.source_key} for a in self.missing],
            "sources": [{"kind": kind, "path": str(path)} for kind, path in self.sources],
            "problems": [{"kind": kind, "path": str(path), "error": why} for kind, path, why in self.problems],
            "cannot_find": [{"kind": kind, "how": how} for kind, how in self.cannot_find],
        }

    @property
    def changed(self) -> bool:
        return any(item.action != UNCHANGED for item in self.imported)

    def merge(self, other: ImportReport) -> None:
        """Fold another place's report into this one (an import from several places)."""
        self.imported += other.imported
        self.skipped += other.skipped
        self.missing += [a for a in other.missing if a.id not in {m.id for m in self.missing}]
        self.sources += other.sources
        self.problems += other.problems


def first_login_hint(kind: str) -> str:
    """What to do when a place holds no login yet."""
    return "run `kiro-cli login` first" if kind == "kiro-cli" else "log in with that tool first"


def default_label(login: PlaceLogin, kind: str = "kiro-cli") -> str:
    """A name for the account until its email is known: what it is, and where it was found."""
    where = f" ({_TITLES.get(kind, kind)})"
    if login.auth_method is AuthMethod.SOCIAL:
        provider = {"github": "GitHub", "google": "Google"}.get(login.provider or "", login.provider or "social")
        return provider + where
    if login.auth_method is AuthMethod.IDC:
        portal = (login.start_url or "").removeprefix("https://").split(".")[0]
        return "IdC" + (f" {portal}" if portal else "") + where
    if login.auth_method is AuthMethod.EXTERNAL_IDP:
        host = urllib.parse.urlsplit(login.issuer_url or login.token_endpoint or "").hostname
        return (host or "external IdP") + where
    if login.key.startswith("codewhisperer:"):
        where = " (Amazon Q)"
    return "Builder ID" + where


_TITLES = {"kiro-cli": "kiro-cli", "kiro-ide": "Kiro IDE", "cliproxy": "CLIProxyAPI", "opencode": "opencode",
           "aiclient": "AIClient-2-API", "gateway": "kiro-gateway", "gateway-db": "kiro-gateway"}


def import_snapshot(
    store: AccountStore, snapshot: KiroCliSnapshot | PlaceSnapshot, now: datetime, mode: Mode,
    automatic: bool = False, signature: str | None = None,
) -> ImportReport:
    """Merge `snapshot` into the store. `automatic` (the watcher) leaves `own` accounts alone
    unless they need a login; an explicit import updates every account. `signature`: how the
    file looked before it was read (`PlaceReads.signature`), kept with what each login imported
    holds, so the place is not read again until it changes.

    A login is matched to an account by evidence only: a refresh token of the account's
    lineage, the same place with nothing contradicting it, or (from another place) the same
    client registration and start URL. Each login lands in its own savepoint: one that cannot
    be stored is skipped with its reason, and the rest of the import still lands."""
    kind = getattr(snapshot, "kind", "kiro-cli")
    source = str(snapshot.path)
    skipped = [SkippedKey(s.key, s.reason, s.path or source) if isinstance(s, SkippedKey)
               else SkippedKey(s[0] or "", s[1], source) for s in snapshot.skipped]
    report = ImportReport(source=snapshot.path, skipped=skipped, kind=kind, sources=[(kind, snapshot.path)])
    with store.transaction() as tx:
        taken = _TakenIds(store)
        matched: set[str] = set()
        reads: dict[tuple[str, str, str], tuple[str, str | None]] = {}
        for login in snapshot.logins:
            forgotten = store.forgotten(login.refresh_token)
            if forgotten is not None:
                report.skipped.append(SkippedKey(
                    login.key, f"{forgotten[0]} was removed from kiro-tui on {forgotten[1]:%Y-%m-%d}; "
                               "a new login there imports again", source))
                continue
            mark = store.unlinked(kind, source, login.key)
            if mark is not None and _same_session(store, mark, login):
                owner, when = mark.account_id, mark.at
                reason = (f"an older session of account {owner}, which was logged in again with kiro-tui on "
                          f"{when:%Y-%m-%d}; a new login there imports again" if mark.why == "login" else
                          f"unlinked from account {owner} on {when:%Y-%m-%d}; "
                          f"`kiro-tui link {owner} --to {kind} --path {source}` keeps it fresh again")
                report.skipped.append(SkippedKey(login.key, reason, source))
                continue
            tx.execute("SAVEPOINT login")
            try:
                item = _import_login(store, tx, login, kind, source, now, mode, automatic, taken)
            except Exception as exc:  # noqa: BLE001 - any damage in one login is that login's skip
                tx.execute("ROLLBACK TO login")
                report.skipped.append(SkippedKey(login.key, f"cannot be stored ({type(exc).__name__}: {exc})", source))
            else:
                report.imported.append(item)
                matched.add(item.id)
                if signature is not None:
                    reads[(kind, source, login.key)] = (signature, fingerprint(login.refresh_token))
            tx.execute("RELEASE login")
        if signature is not None and kind in SINGLE_LOGIN_KINDS:  # the login its tool uses (`place_reads.holders`)
            used = snapshot.logins[0] if snapshot.logins else None
            reads[(kind, source, "")] = (signature, fingerprint(used.refresh_token) if used else None)
        if reads:
            store.save_place_reads(reads, tx)
        report.missing = store.accounts_in_order([i for i in store.ids_from_place(kind, source) if i not in matched])
    return report


class _TakenIds:
    """The ids in use, asked of the store one at a time (an import costs what it imports, not
    what the store already holds), plus those this import just gave out."""

    def __init__(self, store: AccountStore) -> None:
        self.store = store
        self.added: set[str] = set()

    def __contains__(self, account_id: object) -> bool:
        return account_id in self.added or self.store.has_id(str(account_id))

    def add(self, account_id: str) -> None:
        self.added.add(account_id)


def _same_session(store: AccountStore, mark: UnlinkMark, login: PlaceLogin) -> bool:
    """The login at a detached place is still the session it held then, though the tool there
    may have refreshed it since: a token of the account's lineage, the same client registration,
    or (a login without one) nothing that says it is another person's. A new login there (a new
    registration) is not."""
    if store.lineage_owner(login.refresh_token) == mark.account_id:
        return True
    account = store.get(mark.account_id)
    if account is None:  # the account is gone: nothing left to keep the place from
        return False
    if other_person(account.email, login.email):
        return False
    if mark.client_id or login.client_id:
        return login.client_id == mark.client_id
    return same_login(account, login)


def _import_login(
    store: AccountStore, tx: sqlite3.Connection, login: PlaceLogin, kind: str, source: str, now: datetime, mode: Mode,
    automatic: bool, taken: _TakenIds,
) -> ImportedLogin:
    account = match_login(store, login, kind, source)
    place = store.place_at(kind, source, login.key)
    unwritable = None if can_write_place(kind, source) else f"follow mode: kiro-tui cannot write {source}"
    if account is None:
        account = _new_account(login, new_account_id(taken), source,
                               Mode.FOLLOW if unwritable and mode is Mode.SYNC else mode, kind)
        taken.add(account.id)
        touch_updated(account, now)
        store.save(account, tx)
        store.save_place(tx, Place(account.id, kind, source, login.key, PlaceRole.SOURCE))
        note = login.needs_login or (unwritable if account.mode is not mode else None)
        return _imported(account, login, ADDED, note, kind, source)
    if place is None or place.account_id != account.id:
        store.save_place(tx, Place(account.id, kind, source, login.key,
                                   place.role if place else PlaceRole.SOURCE))
    elif place.state is PlaceState.STALE and login.refresh_token == account.refresh_token:
        store.save_place(tx, replace(place, state=PlaceState.IN_SYNC, detail=None))
    if unwritable and account.mode is Mode.SYNC and account.source == source:
        # Refreshing it would spend the tool's own token and leave the tool logged out.
        account.mode = Mode.FOLLOW
        touch_updated(account, now)
        store.save(account, tx)
    if automatic and account.mode is Mode.OWN and account.health is not Health.NEEDS_LOGIN:
        return _imported(account, login, UNCHANGED, "own mode: refreshed by kiro-tui", kind, source)
    action, note = merge_login(account, login, spent=is_spent(store, account, login))
    if action != UNCHANGED:
        touch_updated(account, now)
        store.save(account, tx)
    return _imported(account, login, action, note, kind, source)


def can_write_place(kind: str, path: str) -> bool:
    """Whether kiro-tui can write this place back: a kind it writes (never opencode's kiro.db),
    and a file (and folder, for atomic replacement) it has the right to write."""
    try:
        if not place_format(kind).writable:
            return False
    except PlaceError:
        return False
    target = Path(path)
    return os.access(target, os.W_OK) and os.access(target.parent, os.W_OK)


def match_login(store: AccountStore, login: PlaceLogin, kind: str, path: str) -> Account | None:
    """The account this login is a copy of, by evidence; None when it is a new login."""
    owner = store.lineage_owner(login.refresh_token)
    if owner is not None:
        account = store.get(owner)
        if account is not None:
            return account
    place = store.place_at(kind, path, login.key)
    if place is not None:
        account = store.get(place.account_id)
        if account is not None and same_login(account, login, same_place=True):
            return account
    if login.client_id and login.auth_method in (AuthMethod.BUILDER_ID, AuthMethod.IDC):
        # A device registration is one install's own; an external IdP's client id is the app's,
        # shared by every person of the tenant: no evidence of the same login.
        for account in store.accounts_in_order(store.ids_with_client(login.client_id)):
            # A start URL the place lacks (a tool's rewrite dropped it) is no contradiction.
            if url_key(login.start_url) in ("", url_key(account.start_url)) and same_login(account, login):
                return account
    return None


def _imported(account: Account, login: PlaceLogin, action: str, note: str | None, kind: str,
              path: str) -> ImportedLogin:
    return ImportedLogin(account.id, account.label, account.auth_method.value, login.key, action, note, kind, path)


def _new_account(login: PlaceLogin, account_id: str, source: str, mode: Mode, kind: str) -> Account:
    account = Account(
        id=account_id,
        auth_method=login.auth_method,
        access_token=login.access_token,
        expires_at=login.expires_at,
        refresh_token=login.refresh_token,
        label=default_label(login, kind),
        source=source,
        source_key=login.key or None,
        mode=mode,
    )
    for name in META_FIELDS:
        setattr(account, name, getattr(login, name))
    account.email = login.email
    if login.needs_login:
        account.health, account.last_error = Health.NEEDS_LOGIN, login.needs_login
    return account
