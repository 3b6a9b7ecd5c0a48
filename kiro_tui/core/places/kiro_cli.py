"""kiro-cli's database as a place: read one key, write a refreshed token back in kiro-cli's format."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from kiro_tui.core import paths
from kiro_tui.core.errors import KiroTuiError
from kiro_tui.core.kiro_cli import KiroCliLogin, read_kiro_cli, resolved
from kiro_tui.core.kiro_cli_writeback import WriteBack, write_back_token
from kiro_tui.core.models import Account
from kiro_tui.core.places.base import Created, PlaceError, PlaceSnapshot, TokenCopy, WriteOutcome, WriteResult

_OUTCOMES = {
    WriteBack.WRITTEN: WriteOutcome.WRITTEN,
    WriteBack.UNCHANGED: WriteOutcome.UNCHANGED,
    WriteBack.CHANGED: WriteOutcome.OTHER,
    WriteBack.MISSING: WriteOutcome.MISSING,
    WriteBack.LOCKED: WriteOutcome.LOCKED,
    WriteBack.FAILED: WriteOutcome.FAILED,
}


class KiroCliPlace:
    kind = "kiro-cli"
    title = "kiro-cli"
    writable = True
    rereads_before_refresh: float | None = None

    def default_paths(self) -> list[Path]:
        return paths.kiro_cli_db_candidates()

    def discover(self, path: Path) -> list[Path]:
        return [resolved(path)] if path.is_file() else []

    def scan(self, path: Path, now: datetime) -> PlaceSnapshot:
        try:
            snapshot = read_kiro_cli(path, now)
        except KiroTuiError as exc:
            raise PlaceError(str(exc)) from exc
        return PlaceSnapshot(self.kind, snapshot.path, snapshot.logins, [(s.key, s.reason) for s in snapshot.skipped])

    def read_entry(self, path: Path, entry: str, now: datetime, busy_timeout: float = 1.0) -> KiroCliLogin | None:
        if not path.exists():
            return None
        try:
            snapshot = read_kiro_cli(path, now, busy_timeout=busy_timeout)
        except KiroTuiError as exc:
            raise PlaceError(str(exc)) from exc
        return next((login for login in snapshot.logins if login.key == entry), None)

    def write_token(self, path: Path, entry: str, copy: TokenCopy, belongs: Callable[[str | None], bool],
                    timeout: float) -> WriteResult:
        if not path.exists():
            return WriteResult(WriteOutcome.MISSING, f"kiro-cli's database {path} is not there")
        result = write_back_token(path, entry, belongs, copy.access_token, copy.refresh_token, copy.expires_at,
                                  copy.profile_arn, timeout)
        return WriteResult(_OUTCOMES[result.outcome], result.detail)

    def create(self, path: Path, account: Account) -> Created:
        raise PlaceError(f"kiro-tui does not create kiro-cli's database {path}; log in with kiro-cli, then import it")
