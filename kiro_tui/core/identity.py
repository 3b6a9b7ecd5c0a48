"""What makes two copies one login, and which copy's token wins.

The import, the refresh's adoption of a tool's token, the login and the engine all ask the
same questions: is this the same login (`same_login`), is this the same person (`other_person`,
`email_key`), the same portal (`portal_key`), has kiro-tui already spent this token
(`is_spent`), is this copy's token the newer (`takes_over`), did the service reject it
(`is_dead_refresh_token`). The answers live here, once.
"""

from __future__ import annotations

import secrets
from collections.abc import Container
from datetime import timedelta
from typing import TYPE_CHECKING

from kiro_tui.core.masking import fingerprint
from kiro_tui.core.models import BUILDER_ID_START_URL, Account, AuthMethod, Health

if TYPE_CHECKING:
    from kiro_tui.core.places.base import PlaceLogin
    from kiro_tui.core.store import AccountStore

UPDATED, UNCHANGED = "updated", "unchanged"
DEAD_TOKEN_MARK = "dead_refresh_token"

TOKEN_FIELDS = ("access_token", "refresh_token", "expires_at")
"""Fields copied from a place's login when its token is taken."""
META_FIELDS = (
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
"""Registration and profile details: taken whenever a place has them (see `merge_login`)."""

NEWER_TOLERANCE = timedelta(minutes=2)
"""How much earlier a copy's expiry may be and still be the newer token: tools store expiries
their own way (kiro-gateway keeps one 60 s short), so a copy another tool just refreshed can
expire a little before the token kiro-tui last had."""


def new_account_id(taken: Container[str]) -> str:
    """Eight hex digits: short enough to type, random so ids never leak account details."""
    while True:
        candidate = secrets.token_hex(4)
        if candidate not in taken:
            return candidate


def email_key(email: str | None) -> str:
    """An email as compared: any case, no surrounding blanks; "" when unknown."""
    return (email or "").strip().casefold()


def other_person(email: str | None, other: str | None) -> bool:
    """Both emails are known and differ: two people, whatever else matches."""
    return bool(email_key(email)) and bool(email_key(other)) and email_key(email) != email_key(other)


def url_key(url: str | None) -> str:
    """A URL (start URL, issuer) as compared: no blanks, fragment or trailing slash, any case."""
    return (url or "").strip().split("#")[0].rstrip("/").lower()


def portal_key(start_url: str | None) -> str:
    """A start URL as compared (`url_key`); Builder ID's portal and no portal at all are the same."""
    url = url_key(start_url)
    return "" if url == BUILDER_ID_START_URL.lower() else url


def same_login(account: Account, login: PlaceLogin, same_place: bool = False) -> bool:
    """Nothing known about both contradicts them being one login. A field one side lacks (a
    tool that rewrote the value in its own shape dropped it) is no contradiction."""
    if _family(account.auth_method) != _family(login.auth_method):
        return False
    pairs = ((url_key(account.start_url), url_key(login.start_url)),
             ((account.provider or "").lower(), (login.provider or "").lower()),
             (url_key(account.issuer_url), url_key(login.issuer_url)))
    if any(ours and theirs and ours != theirs for ours, theirs in pairs):
        return False
    if other_person(account.email, login.email):
        return False
    if account.client_id and login.client_id and account.client_id != login.client_id:
        # A new registration in the same place is what logging in again there makes: it heals a
        # login that needs one; a working login beside it is another login.
        return same_place and account.health is Health.NEEDS_LOGIN
    return True


def _family(method: AuthMethod) -> str:
    return "oidc" if method in (AuthMethod.BUILDER_ID, AuthMethod.IDC) else method.value


def is_spent(store: AccountStore, account: Account, login: PlaceLogin) -> bool:
    """The place holds a refresh token kiro-tui already had and moved on from (not the current one)."""
    return (bool(login.refresh_token) and login.refresh_token != account.refresh_token
            and store.in_lineage(account.id, fingerprint(login.refresh_token)))


def takes_over(account: Account, login: PlaceLogin, spent: bool) -> bool:
    """Whether a copy of this login holds a newer token than the account. The same refresh
    token: when its access token lasts longer. One kiro-tui already spent: never. One it has
    never seen, at a place of this login: a tool rotated it, so it is newer, unless it expires
    well before ours (another branch, left behind); and always when ours is dead."""
    if not login.refresh_token or spent:
        return False
    if login.refresh_token == account.refresh_token:
        return login.expires_at >= account.expires_at
    if account.health is Health.NEEDS_LOGIN or is_dead_refresh_token(account):
        return True
    return login.expires_at >= account.expires_at - NEWER_TOLERANCE


def merge_login(account: Account, login: PlaceLogin, spent: bool = False) -> tuple[str, str | None]:
    """Bring `account` up to date with `login` in place; return (action, note).

    The token is taken when the copy holds a newer one (`takes_over`; `spent`: its refresh
    token is one kiro-tui already moved on from). Registration and profile details are taken
    whenever the place has them, unless they belong to another client. Used by re-import and
    by the refresh engine's adoption of a tool's token alike.
    """
    before = {name: getattr(account, name) for name in (*TOKEN_FIELDS, *META_FIELDS, "health", "last_error")}
    take_token = takes_over(account, login, spent)
    token_changed = take_token and login.refresh_token != account.refresh_token
    if take_token:
        for name in TOKEN_FIELDS:
            setattr(account, name, getattr(login, name))
    other_client = (not take_token and account.client_id and login.client_id
                    and login.client_id != account.client_id)
    for name in META_FIELDS:  # what the place lacks is kept from what kiro-tui knew
        value = getattr(login, name)
        if value is None or other_client:
            continue  # a copy issued to another client is another session: its details are not ours
        setattr(account, name, value)
    if login.email and not account.email:
        account.email = login.email
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


def mark_refresh_token_dead(account: Account, token_print: str | None = None) -> None:
    """Remember (by a short hash) which refresh token the service rejected, so re-importing
    that same token does not clear the needs-login flag, while a new login does. `token_print`:
    the stored token's, when the one rejected was only held in memory (the stored one is spent)."""
    dead = token_print or fingerprint(account.refresh_token)
    if dead:
        account.extra[DEAD_TOKEN_MARK] = dead


def is_dead_refresh_token(account: Account) -> bool:
    return bool(account.refresh_token) and account.extra.get(DEAD_TOKEN_MARK) == fingerprint(account.refresh_token)
