"""opencode-kiro-auth's database as a place: read, never written.

`$XDG_CONFIG_HOME/opencode/kiro.db` (`~/.config` when unset, also on macOS; `%APPDATA%` on
Windows), table `accounts`: one row per login, the entry is its `id`; `expires_at` is epoch
milliseconds, `auth_method` is `desktop` (social) or `idc` (any OIDC login: opencode keeps no
start URL, so it reads as Builder ID). It is opened read-only, sees rows still in the WAL, and
waits out opencode's writes.

kiro-tui never writes it: the running plugin saves its in-memory rows over the file, so an
outside write is lost. The plugin re-imports kiro-cli's database on start and whenever a
refresh fails, so an opencode account is kept fresh by linking kiro-cli.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import platformdirs

from kiro_tui.core.models import Account, AuthMethod
from kiro_tui.core.places._fields import (
    BadField,
    Fields,
    build_login,
    client_of,
    is_text,
    oidc_method,
    words,
)
from kiro_tui.core.places._files import PlaceMissing, absolute, is_folder, is_present
from kiro_tui.core.places._sqlite import DEFAULT_BUSY_TIMEOUT, open_read_only, tables
from kiro_tui.core.places.base import (
    Created,
    PlaceError,
    PlaceLogin,
    PlaceSnapshot,
    TokenCopy,
    WriteOutcome,
    WriteResult,
)

DB_NAME = "kiro.db"
MAX_ROWS = 1000
_PLACEHOLDER_EMAIL = re.compile(r"-placeholder\+[0-9a-f]*@awsapps\.local$")
NEVER_WRITTEN = ("kiro-tui never writes opencode's kiro.db: opencode-kiro-auth saves its own copy over it. "
                 "It re-imports kiro-cli's database on start and when a refresh fails, so link this account "
                 "to kiro-cli (sync mode) to keep opencode fresh")


def opencode_folder() -> Path:
    """Where opencode keeps its configuration: XDG (or ~/.config) everywhere but Windows."""
    if sys.platform == "darwin":  # opencode follows XDG on macOS too, not ~/Library
        return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "opencode"
    return Path(platformdirs.user_config_dir("opencode", appauthor=False, roaming=True))


class OpencodePlace:
    kind = "opencode"
    title = "opencode-kiro-auth"
    what = "opencode-kiro-auth database"
    writable = False
    is_database = True
    rereads_before_refresh: float | None = None
    finding = ""

    def default_paths(self) -> list[Path]:
        return [opencode_folder() / DB_NAME]

    def discover(self, path: Path) -> list[Path]:
        path = absolute(path)
        if is_folder(path):
            path = path / DB_NAME
        return [path] if is_present(path) else []

    def scan(self, path: Path, now: datetime) -> PlaceSnapshot:
        path = absolute(path)
        rows = self._rows(path, DEFAULT_BUSY_TIMEOUT, "", ())
        snapshot = PlaceSnapshot(self.kind, path, [], [])
        if len(rows) > MAX_ROWS:
            snapshot.skipped.append(("", f"more than {MAX_ROWS} accounts in {path}; only the first {MAX_ROWS} read"))
        for row in rows[:MAX_ROWS]:
            entry = _entry(row)
            try:
                snapshot.logins.append(self._parse(row, entry, path, now))
            except BadField as exc:
                snapshot.skipped.append((entry, str(exc)))
        return snapshot

    def read_entry(self, path: Path, entry: str, now: datetime, busy_timeout: float = 1.0) -> PlaceLogin | None:
        path = absolute(path)
        try:
            rows = self._rows(path, busy_timeout, " WHERE id = ?1", (entry,))
        except PlaceMissing:
            return None
        if not rows:
            return None
        try:
            return self._parse(rows[0], entry, path, now)
        except BadField as exc:
            raise PlaceError(f"{self.what} {path}, account {entry}: {exc}") from exc

    def write_token(self, path: Path, entry: str, copy: TokenCopy, belongs: Callable[[str | None], bool],
                    timeout: float) -> WriteResult:
        return WriteResult(WriteOutcome.REFUSED, NEVER_WRITTEN)

    def create(self, path: Path, account: Account) -> Created:
        raise PlaceError(NEVER_WRITTEN)

    def caveat(self, account: Account) -> str | None:
        return None

    def replace_login(self, path: Path, account: Account, held: frozenset[str]) -> Created:
        raise PlaceError(NEVER_WRITTEN)

    def _rows(self, path: Path, busy_timeout: float, where: str, args: tuple[str, ...]) -> list[dict[str, object]]:
        with open_read_only(path, self.what, busy_timeout) as conn:
            if "accounts" not in tables(conn):
                raise PlaceError(f"{path} is a SQLite database but not opencode-kiro-auth's (no accounts table); "
                                 "check the path")
            cursor = conn.execute(f"SELECT * FROM accounts{where} LIMIT {MAX_ROWS + 1}", args)
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def _parse(self, row: dict[str, object], entry: str, path: Path, now: datetime) -> PlaceLogin:
        fields = Fields(row, "snake")
        fields.text("id", required=True)  # an id that is not text skips the row, named
        email = fields.text("email")
        if email and _PLACEHOLDER_EMAIL.search(email):
            email = None  # opencode's stand-in for an unknown address
        social = words(fields.text("auth_method")) in ("desktop", "social")
        method = AuthMethod.SOCIAL if social else oidc_method(None, says_idc=False)
        return build_login(fields, method, f"{self.what} {path}, account {entry}", now, key=entry,
                           region=fields.text("region"), email=email, client=client_of(fields))


def _entry(row: dict[str, object]) -> str:
    """The row's id as text that can be shown (a broken one is escaped, and its login skipped)."""
    value = row.get("id")
    text = value if isinstance(value, str) else repr(value)
    return text if is_text(text) else text.encode("utf-8", "backslashreplace").decode("ascii", "replace")

