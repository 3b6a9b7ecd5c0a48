"""Names a person gives accounts, and the one way every command finds an account by what was typed.

A name is unique (in any case), shown instead of the email or label (`Account.name`), and
accepted wherever an id is, as are unique prefixes of ids, names and emails
(`AccountStore.resolve_raw_id` is the resolver; `resolve_account` is its front for callers
that hold an engine or a store).
"""

from __future__ import annotations

import sqlite3
from typing import Protocol

from kiro_tui.core.errors import KiroTuiError
from kiro_tui.core.models import Account
from kiro_tui.core.store import AccountStore

MAX_NAME = 40


class BadName(KiroTuiError):
    """A name that cannot be given (taken, or not typeable as one word)."""


class _HasStore(Protocol):
    store: AccountStore


def resolve_account(where: AccountStore | _HasStore, text: str) -> Account:
    """The account `text` names: its id, name or email, or a unique prefix of one of them."""
    store = where if isinstance(where, AccountStore) else where.store
    return store.resolve_id(text)


def check_name(store: AccountStore, account_id: str, name: str) -> str | None:
    """The name as it will be stored (None: no name), or a BadName saying why not."""
    name = name.strip()
    if not name:
        return None
    if len(name) > MAX_NAME:
        raise BadName(f"the name {name[:MAX_NAME]}… is longer than {MAX_NAME} characters; choose a shorter one")
    if not name.isprintable() or any(ch.isspace() for ch in name):
        raise BadName(f"the name {name!r} has spaces or control characters; use one word, e.g. work-eu")
    if name.startswith("-"):
        raise BadName(f"the name {name!r} starts with '-', which the command line reads as an option")
    folded = name.casefold()
    for other in store.accounts():
        if other.id == account_id:
            continue
        if folded in (other.id.casefold(), (other.nickname or "").casefold(), (other.email or "").casefold()):
            raise BadName(f"the name {name!r} is already account {other.id}'s ({other.name}); choose another")
    return name


def rename(store: AccountStore, account_id: str, name: str) -> Account:
    """Give the account a name ("" takes it away); returns the account as stored."""
    account = store.resolve_id(account_id)
    nickname = check_name(store, account.id, name)
    try:
        store.update(account.id, nickname=nickname)
    except sqlite3.IntegrityError:  # another process gave it to another account just now
        raise BadName(f"the name {name!r} was just given to another account; choose another") from None
    account.nickname = nickname
    return account
