"""Notice kiro-cli's database changing and re-import, cheaply.

Every `watch_interval` seconds compare (mtime, size) of data.sqlite3 and its -wal; only when
they change is the database read (in a thread) and merged. Automatic re-imports leave `own`
accounts alone unless they need a login, so an account that refreshes independently is not
overwritten, while one that needs a login heals as soon as kiro-cli logs in again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from kiro_tui.core.clock import Clock
from kiro_tui.core.config import Settings
from kiro_tui.core.errors import KiroTuiError
from kiro_tui.core.importer import ImportReport, import_snapshot
from kiro_tui.core.kiro_cli import file_signature, read_kiro_cli
from kiro_tui.core.store import AccountStore

log = logging.getLogger("kiro_tui.watcher")


class KiroCliWatcher:
    def __init__(
        self,
        store: AccountStore,
        db_path: Path,
        clock: Clock,
        settings: Settings,
        on_import: Callable[[ImportReport], None] | None = None,
        on_error: Callable[[KiroTuiError], None] | None = None,
        on_tick: Callable[[], object] | None = None,
    ) -> None:
        self.store, self.db_path, self.clock, self.settings = store, db_path, clock, settings
        self.on_import, self.on_error, self.on_tick = on_import, on_error, on_tick
        self._signature: tuple[tuple[int, int], ...] | None = None
        self.last_error: KiroTuiError | None = None

    async def check(self) -> ImportReport | None:
        """Re-import if the database changed since the last check."""
        signature = file_signature(self.db_path)
        if signature == self._signature:
            return None
        self._signature = signature
        if signature[0][1] < 0:  # no database (yet)
            return None
        now = self.clock.now()
        try:
            snapshot = await asyncio.to_thread(read_kiro_cli, self.db_path, now)
            report = import_snapshot(self.store, snapshot, now, self.settings.default_import_mode, automatic=True)
        except KiroTuiError as exc:
            self.last_error = exc
            log.warning("re-import from kiro-cli failed: %s", exc)
            if self.on_error:
                self.on_error(exc)
            return None
        self.last_error = None
        if self.on_import:
            self.on_import(report)
        return report

    async def run(self) -> None:
        while True:
            await self.check()
            if self.on_tick is not None:
                result = self.on_tick()
                if asyncio.iscoroutine(result):
                    await result
            await self.clock.sleep(self.settings.watch_interval)
