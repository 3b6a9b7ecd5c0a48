"""The refresh rig: a real store, a refresher on it and a kiro-cli database, against the
emulator over loopback with a clock the test moves (the `rig` fixture in tests/conftest.py)."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx

from kiro_tui.core.clock import ManualClock
from kiro_tui.core.config import Settings
from kiro_tui.core.importer import import_snapshot, new_account_id
from kiro_tui.core.models import Mode
from kiro_tui.core.places.kiro_cli import read_kiro_cli
from kiro_tui.core.refresh import RefreshClients, Refresher
from kiro_tui.core.store import AccountStore
from tests.support.engine import account_from_seed, seed_into_kiro_cli
from tests.support.kiro_cli_db import KiroCliDb


class Rig:
    """A store, a refresher on it (its status changes kept in `changes`) and a kiro-cli database."""

    def __init__(self, tmp_path: Path, store: AccountStore, http: httpx.AsyncClient, endpoints, clock: ManualClock,
                 emulator) -> None:
        self.tmp_path, self.store, self.http, self.endpoints = tmp_path, store, http, endpoints
        self.clock, self.emulator = clock, emulator
        self.db = KiroCliDb(tmp_path / "kiro-cli" / "data.sqlite3")
        self.changes: list = []
        self.refresher = self.new_refresher(on_change=self.changes.append)

    def new_refresher(self, store: AccountStore | None = None, http: httpx.AsyncClient | None = None,
                      on_change: Callable | None = None, settings: Settings | None = None) -> Refresher:
        """Another refresher on the same service, as another process would have (jitter seeded)."""
        return Refresher(store or self.store, RefreshClients.create(http or self.http, self.endpoints), self.clock,
                         settings or Settings(), rng=random.Random(7), on_change=on_change)

    def import_all(self, mode: Mode = Mode.SYNC) -> list[str]:
        report = import_snapshot(self.store, read_kiro_cli(self.db.path, self.clock.now()), self.clock.now(), mode)
        return [item.id for item in report.imported]

    def add(self, mode: Mode = Mode.SYNC, **spec: object) -> tuple[str, dict]:
        """A login seeded in the emulator, written into kiro-cli's database and imported from there."""
        seeded = seed_into_kiro_cli(self.emulator, self.db, **spec)
        report = import_snapshot(self.store, read_kiro_cli(self.db.path, self.clock.now()), self.clock.now(), mode)
        account_id = next(item.id for item in report.imported if item.key == seeded["token_key"])
        return account_id, seeded

    def add_own(self, **spec: object) -> tuple[str, dict]:
        """An account as a kiro-tui login would store it: mode own, not in kiro-cli's database."""
        seeded = self.emulator.seed(**spec)
        account = account_from_seed(seeded, new_account_id(self.store.ids()))
        self.store.save(account)
        return account.id, seeded

    def make_due(self, account_id: str) -> None:
        account = self.store.get(account_id)
        assert account is not None
        self.clock.set(account.expires_at - timedelta(minutes=5))

    def refresh_calls(self) -> list[dict]:
        return [r for r in self.emulator.requests()
                if r["operation"] in ("RefreshToken", "CreateToken") or str(r["path"]).endswith("/token")]
