"""What the engine hands a presenter to show: accounts with what is known around them, and what
each place holds compared with its account.

A room of its own because it only reads (the store, the places' files, the refresher's held
tokens): nothing here changes what the engine or its watch pass knows (holdings keeps only a
cache of what it read), so a presenter may ask as often as it likes. No event loop either: the
engine's front asks these for its presenters, and `list`, which only reads, asks them with no
engine at all (printing a thousand accounts need not load the engine's machinery).
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from kiro_tui.core.errors import KiroTuiError
from kiro_tui.core.identity import same_login, takes_over
from kiro_tui.core.masking import fingerprint
from kiro_tui.core.models import Account, AccountView, Place
from kiro_tui.core.place_reads import PlaceReads, holders, used_prints
from kiro_tui.core.places import place_format
from kiro_tui.core.places.base import PlaceLogin
from kiro_tui.core.store import AccountStore, UnreadableRow

if TYPE_CHECKING:
    from kiro_tui.core.held import HeldToken


@dataclass
class Views:
    """What to show: the accounts asked for, and rows that could not be read."""

    views: list[AccountView]
    unreadable: list[UnreadableRow] = field(default_factory=list)

    def __repr__(self) -> str:
        # Short: asyncio.run on Python 3.11 formats its main task's repr, result included, when
        # it restores the SIGINT handler; the full dataclass repr cost `list` 40 ms at 1,000.
        return f"Views({len(self.views)} accounts, {len(self.unreadable)} unreadable)"


def read_views(store: AccountStore, now: datetime, ids: list[str] | frozenset[str] | None = None,
               in_flight: AbstractSet[str] = frozenset(),
               held: Mapping[str, HeldToken] | None = None, owner: str | None = None) -> Views:
    """The accounts (all, or these) with what is known around them, for presenting: refreshing
    when another process holds its lease or it is `in_flight` here (the process whose leases
    are `owner`'s: its own leases are not read); a token `held` in memory (the store would not
    take it) is shown as the live one."""
    accounts, unreadable = store.read_accounts(ids)
    refreshing = store.refreshing_ids(now, besides=owner) | in_flight
    usage = store.usage(a.id for a in accounts)
    places: dict[str, list] = {}
    for place in store.places(None if ids is None else [a.id for a in accounts]):
        places.setdefault(place.account_id, []).append(place)
    held = held or {}
    views = []
    for account in accounts:
        token = held.get(account.id)
        if token is not None:
            account.access_token, account.refresh_token, account.expires_at = (
                token.access_token, token.refresh_token, token.expires_at)
        views.append(AccountView(account, account.id in refreshing, usage.get(account.id),
                                 places.get(account.id, []), token.shown if token else None))
    return Views(views, unreadable)


Address = tuple[str, str, str]


@dataclass
class Holdings:
    """What each place holds: `states`, compared with its account (`current`, `older`, `newer`,
    `other`, `missing`); `holders`, for each single-login place (the IDE's file, kiro-cli's
    database), the id of the account whose login the tool there uses now (None: nobody's)."""

    states: dict[Address, str]
    holders: dict[Address, str | None]


def holdings(store: AccountStore, views: list[AccountView], now: datetime) -> Holdings:
    """What each place holds compared with its account: `current` (the same token), `older`
    (one of its lineage: behind), `newer` (a tool there refreshed by itself), `other` (not this
    login's token), or `missing` (not there, or unreadable); and whose login each single-login
    place holds.

    A place is read only when its file changed since it was last read (one stat of each file
    tells, shared by both answers): the fingerprint of the token found there is kept in the
    store with the file's signature. Reads the files on the caller's thread."""
    places = [(view.account, place) for view in views for place in view.places]
    files = {(place.kind, place.path) for _, place in places}
    looked = {file: PlaceReads.signature(*file) for file in files}
    reads = PlaceReads(store, wanted=bool(places))
    states: dict[Address, str] = {}
    for account, place in places:
        signature = looked[(place.kind, place.path)]
        login: PlaceLogin | None = None
        known, token_print = reads.remembered(place.address, signature)
        if not known:
            try:
                login = _read_place(place, now)
            except KiroTuiError:
                states[place.address] = "missing"  # unreadable now (locked, damaged): not remembered
                continue
            token_print = fingerprint(login.refresh_token) if login else None
            reads.learn(place.address, signature, token_print)
        if token_print is None:
            states[place.address] = "missing"
        elif token_print == fingerprint(account.refresh_token):
            states[place.address] = "current"
        elif store.in_lineage(account.id, token_print):
            states[place.address] = "older"
        else:  # newer or another login's: the login itself tells (rare: read it)
            try:
                login = login or _read_place(place, now)
            except KiroTuiError:
                login = None
            states[place.address] = _compare(store, account, login)
    every = [place for _, place in places]
    found_holders = holders(store, every, used_prints(every, now, reads, looked))
    reads.save()
    return Holdings(states, found_holders)


def _read_place(place: Place, now: datetime) -> PlaceLogin | None:
    return place_format(place.kind).read_entry(Path(place.path), place.entry, now)


def _compare(store: AccountStore, account: Account, login: PlaceLogin | None) -> str:
    if login is None or not login.refresh_token:
        return "missing"
    token_print = fingerprint(login.refresh_token)
    if token_print == fingerprint(account.refresh_token):
        return "current"
    if store.in_lineage(account.id, token_print):
        return "older"
    # The refresher's own rule (PlaceSync.adopt_newer): a copy it will adopt at its
    # next pass is "newer" now, not "other", which reads as an error before the adoption.
    if same_login(account, login) and takes_over(account, login, spent=False):
        return "newer"
    return "other"
