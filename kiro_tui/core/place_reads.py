"""What each place held when last read, and whose login a tool that uses one login is on.

A place file is read again only when its signature (one stat: inode, mtime, size) changed since
it was last read: what it held then (the fingerprint of the refresh token found there) is kept
in the store (`PlaceReads`). The refresher's read before a refresh, the watch pass, what
`list --json` says a place holds and whose login the IDE's file or kiro-cli's database holds all
ask it. A room of its own, with no event loop in it: a command that only reads (`list`) uses
it without loading the engine's machinery.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
from datetime import datetime
from pathlib import Path

from kiro_tui.core.errors import KiroTuiError, StoreError
from kiro_tui.core.masking import fingerprint
from kiro_tui.core.models import Place
from kiro_tui.core.places import PlaceError, place_format
from kiro_tui.core.places.base import PlaceSignature, place_signature
from kiro_tui.core.store import AccountStore

log = logging.getLogger("kiro_tui.refresh")


LOOK_AGAIN: PlaceSignature = (None, None, None)
"""Never a real signature: the place counts as changed at the next pass."""


SINGLE_LOGIN_KINDS = ("kiro-ide", "kiro-cli")
"""Places whose tool uses one login: what each holds as a whole (its entry "" in `PlaceReads`)
is the login its tool uses, by which kiro-tui tells whose login the tool is on."""


class PlaceReads:
    """What each place held when last read (the store's `place_reads`): the fingerprint of the
    refresh token found there, kept with the file's signature, so a place is read again only
    when its file changed. What a place holds (`views.holdings`), whose login it is
    (`used_prints`) and the read before a refresh (`PlaceSync.adopt_newer`) ask it; an
    import, that read and kiro-tui's own writes teach it (only while the file looks as the write
    left it: written, or found holding exactly that token under its lock)."""

    def __init__(self, store: AccountStore, wanted: bool = True) -> None:
        self.store = store
        self._kept = store.place_reads() if wanted else {}
        self._learned: dict[tuple[str, str, str], tuple[str, str | None]] = {}
        self._lock = threading.Lock()  # a refresher's place reads and writes learn from worker threads

    @staticmethod
    def signature(kind: str, path: str) -> str:
        """The file's signature as the store keeps it."""
        return repr(place_signature(path, is_database(kind)))

    def remembered(self, address: tuple[str, str, str], signature: str) -> tuple[bool, str | None]:
        """(True, the fingerprint read last time) while the file looks as it did then, on a
        file system that tells rewrites apart (`to_the_second`); else (False, None)."""
        kept = self._learned.get(address) or self._kept.get(address)
        if kept is None or kept[0] != signature or to_the_second(signature):
            return False, None
        return True, kept[1]

    def learn(self, address: tuple[str, str, str], signature: str, token_print: str | None) -> None:
        with self._lock:
            self._learned[address] = (signature, token_print)

    def save(self, tx: sqlite3.Connection | None = None) -> None:
        """Keep what was learned (a cache: a read-only store only means reading again next
        time), in the caller's transaction `tx` if given, else in one of its own."""
        with self._lock:
            learned, self._learned = self._learned, {}
            self._kept.update(learned)
        if not learned:
            return
        try:
            self.store.save_place_reads(learned, tx)
        except StoreError as exc:
            log.info("cannot remember what the places hold: %s", exc)


_STAT = re.compile(r"\((\d+), (\d+), (\d+)\)")


def to_the_second(signature: str) -> bool:
    """Whether a signature's file times are whole seconds: a file system that keeps no finer
    time (FAT, HFS+, ext4 with small inodes, some network ones) gives a tool's rewrite in the
    same second, at the same size, the same signature, so what such a place held is never
    taken on its signature: it is read. On a file system with finer times a rewrite is told
    from ours unless it lands within its clock's tick (a few milliseconds on older kernels),
    too soon for a tool to have refreshed the token kiro-tui just wrote."""
    return any(int(mtime) % 1_000_000_000 == 0 for _, mtime, _ in _STAT.findall(signature))


def is_database(kind: str) -> bool:
    """The kind's places are SQLite files (`PlaceFormat.is_database`); an unknown kind is not."""
    try:
        return place_format(kind).is_database
    except PlaceError:
        return False


# ---------------------------------------------------------------- who a tool is using


def used_prints(places: list[Place], now: datetime, reads: PlaceReads,
                looked: dict[tuple[str, str], str]) -> dict[tuple[str, str], str | None]:
    """For each single-login place file (the IDE's file, kiro-cli's database): the fingerprint
    of the login its tool uses, or None. Reads files on the caller's thread; never the store.

    A place file is read only when it changed since it was last read (`looked` holds each file's
    signature now, `reads` what it held when last read): the fingerprint of the login its tool
    uses is kept as the file's whole entry (""), as `views.holdings` keeps each entry's."""
    files = {(place.kind, place.path) for place in places if place.kind in SINGLE_LOGIN_KINDS}
    prints: dict[tuple[str, str], str | None] = {}  # several accounts' keys in one kiro-cli database: once
    for kind, path in files:
        signature, address = looked[(kind, path)], (kind, path, "")
        known, token_print = reads.remembered(address, signature)
        if not known:
            readable, token_print = used_print(kind, Path(path), now)
            if not readable:
                prints[(kind, path)] = None  # unreadable now (locked, damaged): not remembered
                continue
            reads.learn(address, signature, token_print)
        prints[(kind, path)] = token_print
    return prints


def holders(store: AccountStore, places: list[Place],
            prints: dict[tuple[str, str], str | None]) -> dict[tuple[str, str, str], str | None]:
    """For each single-login place: the id of the account whose login it holds now (by its
    refresh token's lineage, `used_prints`), or None (nobody kiro-tui knows). On the store's thread."""
    owners = store.print_owners(prints.values())
    return {place.address: owners.get(prints[(place.kind, place.path)] or "") for place in places
            if place.kind in SINGLE_LOGIN_KINDS}


def used_print(kind: str, path: Path, now: datetime) -> tuple[bool, str | None]:
    """(False, None) when the tool's file at `path` cannot be read now; else (True, the
    fingerprint of the login the tool uses (kiro-cli's first key), None when it holds none)."""
    try:
        snapshot = place_format(kind).scan(path, now)
    except KiroTuiError:
        return False, None
    used = snapshot.logins[0] if snapshot.logins else None
    return True, fingerprint(used.refresh_token) if used else None


__all__ = ["LOOK_AGAIN", "SINGLE_LOGIN_KINDS", "PlaceReads", "holders", "is_database", "to_the_second",
           "used_print", "used_prints"]
