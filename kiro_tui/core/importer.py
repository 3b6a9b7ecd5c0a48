"""Merge kiro-cli's logins into the account store.

Rules: the same login (same database, key and kind of login) updates its account in place;
a token in the store that expires later than the database's is never replaced by it; an
account whose login has left the database is kept and reported, never deleted. The whole
import is one transaction: it lands entirely or not at all.
"""

from __future__ import annotations

import secrets
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from kiro_tui.core.kiro_cli import KiroCliLogin, KiroCliSnapshot, SkippedKey
from kiro_tui.core.masking import fingerprint
from kiro_tui.core.models import Account, AuthMethod, Health, Mode
from kiro_tui.core.store import AccountStore, touch_updated

ADDED, UPDATED, UNCHANGED = "added", "updated", "unchanged"
DEAD_TOKEN_MARK = "dead_refresh_token"

# Fields copied from a kiro-cli login when its token is taken.
_TOKEN_FIELDS = ("access_token", "refresh_token", "expires_at")
_META_FIELDS = (
    "region",
    "start_url",
    "scopes",
    "oauth_flow",
    "provider",
    "profile_arn",
    "profile_name",
    "client_id",
    "client_secret",
    "client_secret_expires_at",
    "token_endpoint",
    "issuer_url",
)


@dataclass
class ImportedLogin:
    id: str
    label: str
    auth_method: str
    key: str
    action: str
    note: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "label": self.label,
            "auth_method": self.auth_method,
            "key": self.key,
            "action": self.action,
            "note": self.note,
        }


@dataclass
class ImportReport:
    source: Path
    imported: list[ImportedLogin] = field(default_factory=list)
    skipped: list[SkippedKey] = field(default_factory=list)
    missing: list[Account] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "source": str(self.source),
            "imported": [item.to_json() for item in self.imported],
            "skipped": [{"key": s.key, "reason": s.reason} for s in self.skipped],
            "missing": [{"id": a.id, "label": a.label, "key": a.source_key} for a in self.missing],
        }

    @property
    def changed(self) -> bool:
        return any(item.action != UNCHANGED for item in self.imported)


def default_label(login: KiroCliLogin) -> str:
    """A name for the account until its email is known."""
    if login.auth_method is AuthMethod.SOCIAL:
        provider = {"github": "GitHub", "google": "Google"}.get(login.provider or "", login.provider or "social")
        return f"{provider} (kiro-cli)"
    if login.auth_method is AuthMethod.IDC:
        portal = (login.start_url or "").removeprefix("https://").split(".")[0] or "IdC"
        return f"IdC {portal} (kiro-cli)"
    if login.auth_method is AuthMethod.EXTERNAL_IDP:
        host = urllib.parse.urlsplit(login.issuer_url or login.token_endpoint or "").hostname
        return f"{host or 'external IdP'} (kiro-cli)"
    legacy = " (Amazon Q)" if login.key.startswith("codewhisperer:") else " (kiro-cli)"
    return "Builder ID" + legacy


def new_account_id(taken: set[str]) -> str:
    """Eight hex digits: short enough to type, random so ids never leak account details."""
    while True:
        candidate = secrets.token_hex(4)
        if candidate not in taken:
            return candidate


def import_snapshot(
    store: AccountStore, snapshot: KiroCliSnapshot, now: datetime, mode: Mode, automatic: bool = False
) -> ImportReport:
    """Merge `snapshot` into the store. `automatic` (the watcher) leaves `own` accounts alone
    unless they need a login; an explicit import updates every account."""
    source = str(snapshot.path.absolute())
    report = ImportReport(source=snapshot.path, skipped=list(snapshot.skipped))
    with store.transaction() as tx:
        existing = [a for a in store.accounts() if a.source == source]
        taken = store.ids()
        matched: set[str] = set()
        for login in snapshot.logins:
            account = next(
                (a for a in existing if a.source_key == login.key and a.login_key == login.login_key), None
            )
            if account is None:
                account = _new_account(login, new_account_id(taken), source, mode)
                taken.add(account.id)
                touch_updated(account, now)
                store.save(account, tx)
                report.imported.append(_imported(account, login, ADDED, login.needs_login))
                matched.add(account.id)
                continue
            matched.add(account.id)
            if automatic and account.mode is Mode.OWN and account.health is not Health.NEEDS_LOGIN:
                report.imported.append(_imported(account, login, UNCHANGED, "own mode: refreshed by kiro-tui"))
                continue
            action, note = merge_login(account, login)
            if action != UNCHANGED:
                touch_updated(account, now)
                store.save(account, tx)
            report.imported.append(_imported(account, login, action, note))
        report.missing = [a for a in existing if a.id not in matched]
    return report


def _imported(account: Account, login: KiroCliLogin, action: str, note: str | None) -> ImportedLogin:
    return ImportedLogin(account.id, account.label, account.auth_method.value, login.key, action, note)


def _new_account(login: KiroCliLogin, account_id: str, source: str, mode: Mode) -> Account:
    account = Account(
        id=account_id,
        auth_method=login.auth_method,
        access_token=login.access_token,
        expires_at=login.expires_at,
        refresh_token=login.refresh_token,
        label=default_label(login),
        source=source,
        source_key=login.key,
        login_key=login.login_key,
        mode=mode,
    )
    for name in _META_FIELDS:
        setattr(account, name, getattr(login, name))
    if login.needs_login:
        account.health, account.last_error = Health.NEEDS_LOGIN, login.needs_login
    return account


def merge_login(account: Account, login: KiroCliLogin) -> tuple[str, str | None]:
    """Bring `account` up to date with `login` in place; return (action, note).

    The token is taken only if it expires no earlier than ours. Registration and profile
    details are taken whenever kiro-cli has them. Used by re-import and by the refresh
    engine's `sync` / `follow` modes alike.
    """
    before = {name: getattr(account, name) for name in (*_TOKEN_FIELDS, *_META_FIELDS, "health", "last_error")}
    take_token = login.expires_at >= account.expires_at
    token_changed = take_token and login.refresh_token != account.refresh_token
    if take_token:
        for name in _TOKEN_FIELDS:
            setattr(account, name, getattr(login, name))
    for name in _META_FIELDS:
        value = getattr(login, name)
        if take_token or value is not None:
            setattr(account, name, value)
    if login.needs_login:
        if take_token:
            account.health, account.last_error = Health.NEEDS_LOGIN, login.needs_login
    elif token_changed or (account.health is Health.NEEDS_LOGIN and not is_dead_refresh_token(account)):
        account.health, account.last_error = Health.OK, None
        account.consecutive_failures = 0
        account.next_refresh_at = None
        account.extra.pop(DEAD_TOKEN_MARK, None)
    after = {name: getattr(account, name) for name in before}
    note = None if take_token else "kept the newer token already in kiro-tui"
    return (UPDATED if after != before else UNCHANGED), note


def mark_refresh_token_dead(account: Account) -> None:
    """Remember (by a short hash) which refresh token the service rejected, so re-importing
    that same token does not clear the needs-login flag, while a new login does."""
    if account.refresh_token:
        account.extra[DEAD_TOKEN_MARK] = fingerprint(account.refresh_token)


def is_dead_refresh_token(account: Account) -> bool:
    return bool(account.refresh_token) and account.extra.get(DEAD_TOKEN_MARK) == fingerprint(account.refresh_token)
