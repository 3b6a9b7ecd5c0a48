"""The interface every place format implements, and what writing one can come to."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import NamedTuple, Protocol

from kiro_tui.core.errors import KiroTuiError
from kiro_tui.core.models import DEFAULT_REGION, Account, AuthMethod, PlaceState

DEFAULT_WRITE_TIMEOUT = 2.0
"""Seconds a write into a place waits for the tool's lock before it gives up (and retries later)."""


class PlaceError(KiroTuiError):
    """A place cannot be read or written as it stands; the text names it and says what to do."""


PlaceSignature = tuple[tuple[int, int, int] | None, ...]
"""How a place file looks: (inode, mtime, size) of the file (and of a database's -wal), None
for one that is not there. While it looks the same, it holds what it held: unless its file
system keeps only whole seconds, where a rewrite in the same second looks the same
(`place_reads.to_the_second`), or within the file system clock's tick."""


def inode_mtime_size(st: os.stat_result) -> tuple[int, int, int]:
    """One file's part of a signature: inode, mtime, size."""
    return st.st_ino, st.st_mtime_ns, st.st_size


def place_signature(path: str, database: bool = False) -> PlaceSignature:
    """Cheap change detector for a place file (and a database's -wal): inode, mtime, size. A
    tool's atomic rename gives a new inode; a write in place, a new mtime or size."""
    found: list[tuple[int, int, int] | None] = []
    for candidate in (path, f"{path}-wal") if database else (path,):
        try:
            found.append(inode_mtime_size(os.stat(candidate)))
        except OSError:
            found.append(None)
    return tuple(found)


@dataclass
class PlaceLogin:
    """One login found in a place (kiro-cli's database, a tool's file), normalised for the store.
    `key` is its entry in the place: an auth_kv key, an opencode row id, "" for a whole file."""

    key: str
    auth_method: AuthMethod
    access_token: str
    expires_at: datetime
    refresh_token: str | None
    region: str = DEFAULT_REGION
    start_url: str | None = None
    scopes: list[str] | None = None
    oauth_flow: str | None = None
    provider: str | None = None
    profile_arn: str | None = None
    profile_name: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    client_secret_expires_at: datetime | None = None
    registration_key: str | None = None
    token_endpoint: str | None = None
    issuer_url: str | None = None
    email: str | None = None
    """Who it is, when the place says (CLIProxyAPI and opencode files do; kiro-cli does not)."""
    # Why this login cannot be refreshed as it stands (only a new login fixes it), if so.
    needs_login: str | None = None
    raw: dict[str, object] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class TokenCopy:
    """What kiro-tui writes into a place after a refresh: the token and nothing it does not own,
    plus what a place that lost the login's other parts needs to make them whole again (the Kiro
    IDE's registration file, the fields kiro-cli 2.12 requires); a format writes those only
    where they are missing."""

    access_token: str
    refresh_token: str
    expires_at: datetime
    profile_arn: str | None = None
    auth_method: AuthMethod | None = None
    provider: str | None = None
    start_url: str | None = None
    oauth_flow: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    client_secret_expires_at: datetime | None = None

    @classmethod
    def of(cls, account: Account) -> TokenCopy:
        """The copy of `account` every place is written from (a social login's profile ARN is
        part of its token; an OIDC login's profile is not written into its token)."""
        social = account.auth_method is AuthMethod.SOCIAL
        return cls(account.access_token, account.refresh_token or "", account.expires_at,
                   account.profile_arn if social else None, account.auth_method, account.provider,
                   account.start_url, account.oauth_flow, account.client_id, account.client_secret,
                   account.client_secret_expires_at)


class WriteOutcome(StrEnum):
    WRITTEN = "written"
    UNCHANGED = "unchanged"
    """It already held this token."""
    OTHER = "other"
    """It holds a refresh token that is not of this account's lineage: not overwritten."""
    MISSING = "missing"
    """The file, row or key is gone (the tool logged out, or the file was moved away)."""
    LOCKED = "locked"
    FAILED = "failed"
    REFUSED = "refused"
    """kiro-tui never writes this kind of place (opencode's kiro.db): not retried; the detail
    says what to link instead."""


@dataclass(frozen=True)
class WriteResult:
    outcome: WriteOutcome
    detail: str = ""
    written: PlaceSignature | None = None
    """The place's signature as kiro-tui left it: a file's as written, taken before it was
    renamed into place; a database's taken under its write lock, after the commit, with the row
    read back the same; or, found holding exactly the token it would write (UNCHANGED), as read
    under its lock. While the place looks so, it holds that token. None when that cannot be
    told (a database whose lock another program held), and for a place found holding a newer
    access token of it."""

    @property
    def state(self) -> PlaceState:
        """Where this leaves the place: in sync, pending (retried every pass) or in error."""
        if self.outcome in (WriteOutcome.WRITTEN, WriteOutcome.UNCHANGED):
            return PlaceState.IN_SYNC
        if self.outcome in (WriteOutcome.OTHER, WriteOutcome.REFUSED):
            return PlaceState.ERROR
        return PlaceState.PENDING


class Created(NamedTuple):
    """Where `create` put a new place: the file, and the login's entry in it ("" for a file
    that holds one login)."""

    path: Path
    entry: str


@dataclass
class PlaceSnapshot:
    """Every login found at one place path (a file, a database). `entry` of each login tells
    them apart inside the place ("" for a file that holds one login)."""

    kind: str
    path: Path
    logins: list[PlaceLogin]
    skipped: list[tuple[str, str]]
    """(entry, reason) for each login that could not be read: named, the others still import."""


class PlaceFormat(Protocol):
    kind: str
    title: str
    writable: bool
    """False: kiro-tui only reads this kind (opencode's kiro.db); linking or exporting to it is refused."""
    is_database: bool
    """The place is an SQLite file: a tool's commit may land in its -wal file only, so a look
    for changes stats that too, and a copy of it is taken with SQLite's backup."""
    rereads_before_refresh: float | None
    """Seconds before expiry at which the tool re-reads its file and refreshes if it is still
    old (kiro-gateway's SQLite mode: 600), or None. A linked account is then refreshed a minute
    before that, so the tool always finds kiro-tui's new token and never spends the old one."""
    finding: str
    """How to point kiro-tui at this tool's files when `default_paths` is empty (nothing tells
    where the tool keeps them); "" when it always knows where to look."""

    def default_paths(self) -> list[Path]:
        """Where this tool keeps its logins when configured as usual (files, or folders to scan)."""
        ...

    def discover(self, path: Path) -> list[Path]:
        """The place files at `path`: itself if a file, the matching files if a folder."""
        ...

    def scan(self, path: Path, now: datetime) -> PlaceSnapshot:
        """Every login in one place file. Raises PlaceError (one clean line) when it cannot be read."""
        ...

    def read_entry(self, path: Path, entry: str, now: datetime, busy_timeout: float = 1.0) -> PlaceLogin | None:
        """The login at `entry` of the place, None if the place or entry is not there.
        Raises PlaceError when the place is there but cannot be read."""
        ...

    def write_token(self, path: Path, entry: str, copy: TokenCopy, belongs: Callable[[str | None], bool],
                    timeout: float) -> WriteResult:
        """Compare-and-swap: write `copy` only while the place holds a refresh token for which
        `belongs(fingerprint)` is true (this account's current or a spent one). Every field the
        tool wrote that kiro-tui does not own is kept as it was."""
        ...

    def create(self, path: Path, account: Account) -> Created:
        """A new place for `account` at `path` (a file, or a folder to put one in), in the
        tool's own shape, mode 0600; never over an existing file. Raises PlaceError."""
        ...

    def caveat(self, account: Account) -> str | None:
        """What the tool cannot do with this login by itself, for a person linking or exporting
        it there (one line, what to do instead), if anything."""
        ...

    def replace_login(self, path: Path, account: Account, held: frozenset[str]) -> Created:
        """`kiro-tui use`: `account`'s whole login (token, client registration, profile, in the
        tool's own shape, by the same writer as `create`) in place of what the place holds, so
        the tool uses it. Only while the place still holds the refresh tokens `held` (by
        fingerprint; empty: nothing there), else PlaceChanged and nothing is written."""
        ...


class PlaceChanged(PlaceError):
    """The place changed between looking at it and replacing its login (its tool wrote it)."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"{path} changed while kiro-tui was replacing its login (its tool wrote it); "
                         "nothing was written: run the command again")
