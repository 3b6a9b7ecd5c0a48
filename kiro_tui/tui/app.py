"""The Textual app and its one factory, `make_app`, used by the CLI, the demo, tests and screenshots."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import httpx
from textual.app import App

from kiro_tui.core.aws.codewhisperer import QClient
from kiro_tui.core.aws.endpoints import Endpoints
from kiro_tui.core.aws.oidc import OidcClient
from kiro_tui.core.aws.transport import make_http_client
from kiro_tui.core.clock import Clock
from kiro_tui.core.config import Settings
from kiro_tui.core.engine import Engine
from kiro_tui.core.errors import KiroCliError, KiroTuiError
from kiro_tui.core.importer import ImportReport
from kiro_tui.core.kiro_cli import find_kiro_cli_db
from kiro_tui.core.login import LoginFlow
from kiro_tui.core.refresh import StatusChange
from kiro_tui.core.store import AccountStore
from kiro_tui.tui.clipboard import pyperclip_copy
from kiro_tui.tui.messages import AccountStatusChanged, ImportFailed, ImportFinished
from kiro_tui.tui.screens.accounts import AccountsScreen


class KiroTuiApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "kiro-tui"

    def __init__(
        self,
        store: AccountStore,
        settings: Settings,
        clock: Clock,
        endpoints: Endpoints,
        kiro_cli_db: Path | None,
        kiro_cli_candidates: list[Path],
        *,
        run_engine: bool = True,
        fetch_usage: bool = True,
        system_copy: Callable[[str], None] | None = pyperclip_copy,
    ) -> None:
        super().__init__()
        self.store, self.settings, self.clock, self.endpoints = store, settings, clock, endpoints
        self.kiro_cli_db, self.kiro_cli_candidates = kiro_cli_db, kiro_cli_candidates
        self.run_engine, self.fetch_usage, self.system_copy = run_engine, fetch_usage, system_copy
        self._http: asyncio.Future[httpx.AsyncClient] | None = None
        self.engine: Engine | None = None
        self._engine_built = asyncio.Event()
        self._engine_error: KiroTuiError | None = None
        self.last_import_at: datetime | None = None
        self.accounts_screen = AccountsScreen()

    def get_default_screen(self) -> AccountsScreen:
        """The accounts screen is the app's base screen (no throwaway default screen under it)."""
        return self.accounts_screen

    def on_mount(self) -> None:
        self.run_worker(self.run_engine_for_session(), group="engine", exit_on_error=False,
                        description="refresh scheduler and kiro-cli watcher")

    async def run_engine_for_session(self) -> None:
        """Build the engine; run it for the session unless told not to (tests, snapshots)."""
        try:
            http = await self.http_client()
        except KiroTuiError as exc:  # e.g. SSL_CERT_FILE names a missing file: say so, keep showing accounts
            self._engine_error = exc
            self._engine_built.set()
            self.notify(f"{exc}. Accounts are shown, but nothing is refreshed.", title="Cannot reach AWS",
                        severity="error", timeout=60, markup=False)
            return
        self.engine = Engine(
            self.store, self.settings, self.clock, http, self.endpoints, self.kiro_cli_db,
            on_change=self._status_changed, on_import=self._auto_imported, on_error=self._auto_import_failed,
        )
        self._engine_built.set()
        if self.run_engine:
            await self.engine.run()

    async def built_engine(self) -> Engine:
        """The engine, once built (at most a few milliseconds after the first frame)."""
        await self._engine_built.wait()
        if self.engine is None:
            assert self._engine_error is not None
            raise self._engine_error
        return self.engine

    async def http_client(self) -> httpx.AsyncClient:
        """The session's one HTTP client. Building it reads the CA bundle from disk, so that
        runs in a thread: neither the first frame nor a keypress waits for it."""
        if self._http is None:
            self._http = asyncio.ensure_future(asyncio.to_thread(make_http_client))
        return await asyncio.shield(self._http)  # a cancelled caller must not cancel it for everyone

    async def on_unmount(self) -> None:
        if self._http is None:
            return
        try:
            client = await self._http  # never cancelled: shielded from its callers
        except KiroTuiError:
            return  # there never was a client
        await client.aclose()

    # ------------------------------------------------------------------ services for screens

    async def login_flow(self) -> LoginFlow:
        http = await self.http_client()
        return LoginFlow(OidcClient(http, self.endpoints), QClient(http, self.endpoints), self.clock)

    async def q_client(self) -> QClient:
        return QClient(await self.http_client(), self.endpoints)

    def find_kiro_cli_db(self) -> Path | None:
        """kiro-cli's database among the candidates (remembered once found), or None."""
        try:
            found = find_kiro_cli_db(self.kiro_cli_candidates)
        except KiroCliError:
            return None
        if self.kiro_cli_db is None:
            self.kiro_cli_db = found
        return found

    # ------------------------------------------------------------------ engine callbacks

    def _status_changed(self, change: StatusChange) -> None:
        self.accounts_screen.post_message(AccountStatusChanged(change))

    def _auto_imported(self, report: ImportReport) -> None:
        self.accounts_screen.post_message(ImportFinished(report, automatic=True))

    def _auto_import_failed(self, error: KiroTuiError) -> None:
        self.accounts_screen.post_message(ImportFailed(str(error), automatic=True))


def make_app(
    store: AccountStore,
    settings: Settings,
    clock: Clock,
    endpoints: Endpoints,
    kiro_cli_db: Path | None,
    kiro_cli_candidates: list[Path] | None = None,
    **options: object,
) -> KiroTuiApp:
    """The one way to build the app: the CLI, `kiro-tui demo`, the tests and the screenshot script."""
    candidates = kiro_cli_candidates if kiro_cli_candidates is not None else ([kiro_cli_db] if kiro_cli_db else [])
    return KiroTuiApp(store, settings, clock, endpoints, kiro_cli_db, candidates, **options)  # type: ignore[arg-type]
