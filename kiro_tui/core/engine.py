"""Everything that runs in the background, in one place: refresher, scheduler, kiro-cli watcher.

`kiro-tui watch` runs it headless; the TUI runs it as a worker. Each tick of the watcher also
retries pending write-backs and notices commits by other kiro-tui processes (PRAGMA data_version),
so an account refreshed or imported elsewhere is rescheduled here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx

from kiro_tui.core.aws.endpoints import Endpoints
from kiro_tui.core.clock import Clock
from kiro_tui.core.config import Settings
from kiro_tui.core.errors import KiroTuiError
from kiro_tui.core.importer import ImportReport
from kiro_tui.core.refresh import RefreshClients, Refresher, StatusChange
from kiro_tui.core.scheduler import RefreshScheduler
from kiro_tui.core.store import AccountStore
from kiro_tui.core.watcher import KiroCliWatcher


class Engine:
    def __init__(
        self,
        store: AccountStore,
        settings: Settings,
        clock: Clock,
        http: httpx.AsyncClient,
        endpoints: Endpoints,
        kiro_cli_db: Path | None,
        *,
        on_change: Callable[[StatusChange], None] | None = None,
        on_import: Callable[[ImportReport], None] | None = None,
        on_error: Callable[[KiroTuiError], None] | None = None,
    ) -> None:
        self.store, self.settings, self.clock = store, settings, clock
        self.clients = RefreshClients.create(http, endpoints)
        self.refresher = Refresher(store, self.clients, clock, settings, on_change=on_change)
        self.scheduler = RefreshScheduler(store, self.refresher, clock, settings)
        self._on_import = on_import
        self.watcher = (
            KiroCliWatcher(store, kiro_cli_db, clock, settings, on_import=self._imported, on_error=on_error,
                           on_tick=self._tick)
            if kiro_cli_db is not None else None
        )
        self._data_version = store.data_version()

    def _imported(self, report: ImportReport) -> None:
        self.scheduler.schedule_all()
        if self._on_import:
            self._on_import(report)

    async def _tick(self) -> None:
        await self.refresher.retry_write_backs()
        version = self.store.data_version()
        if version != self._data_version:
            self._data_version = version
            self.scheduler.schedule_all()

    async def run(self) -> None:
        tasks = [self.scheduler.run()]
        if self.watcher is not None:
            tasks.append(self.watcher.run())
        else:
            tasks.append(self._tick_forever())
        await asyncio.gather(*tasks)

    async def _tick_forever(self) -> None:
        while True:
            await self.clock.sleep(self.settings.watch_interval)
            await self._tick()
