"""Build the TUI for tests and screenshots: fixed accounts, a frozen clock, the emulator as AWS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiro_tui.core.aws.endpoints import Endpoints
from kiro_tui.core.clock import ManualClock
from kiro_tui.core.config import Settings
from kiro_tui.core.models import Account, AuthMethod, Health, Mode, Place
from kiro_tui.core.store import AccountStore, RefreshLogEntry
from kiro_tui.tui.app import KiroTuiApp, make_app
from kiro_tui.tui.screens.choice import LoadingChoiceScreen

if TYPE_CHECKING:
    from textual.strip import Strip

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
KIRO_CLI_DB = Path("/home/dev/.local/share/kiro-cli/data.sqlite3")


def sample_accounts(now: datetime = NOW) -> list[Account]:
    """One account in each state the screen must show."""
    return [
        Account(id="a1b2c3d4", auth_method=AuthMethod.SOCIAL, access_token="aoaAAAAAGalicealicealice:sig1",
                refresh_token="aorAAAAAGalicealicealice:sig2", expires_at=now + timedelta(minutes=50),
                label="GitHub (kiro-cli)", email="alice@example.com", provider="github",
                profile_arn="arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK",
                profile_name="Social_Default_Profile", source=str(KIRO_CLI_DB), source_key="kirocli:social:token",
                mode=Mode.SYNC, last_refresh_at=now - timedelta(minutes=10), created_at=now - timedelta(days=3)),
        Account(id="b2c3d4e5", auth_method=AuthMethod.BUILDER_ID, access_token="aoaAAAAAGbuilderbuilder:sig3",
                refresh_token="aorAAAAAGbuilderbuilder:sig4", expires_at=now + timedelta(minutes=6),
                label="Builder ID", email="bob@example.com", client_id="cid-builder", client_secret="secret-b",
                client_secret_expires_at=now + timedelta(days=80), scopes=["codewhisperer:completions"],
                mode=Mode.OWN, created_at=now - timedelta(days=2)),
        Account(id="c3d4e5f6", auth_method=AuthMethod.IDC, access_token="aoaAAAAAGteamteamteamtm:sig5",
                refresh_token="aorAAAAAGteamteamteamtm:sig6", expires_at=now + timedelta(minutes=45),
                label="IdC d-9067c1a2b3 (kiro-cli)", email="team@acme.example", region="eu-west-1",
                start_url="https://d-9067c1a2b3.awsapps.com/start", client_id="cid-idc", client_secret="secret-i",
                client_secret_expires_at=now + timedelta(days=60),
                profile_arn="arn:aws:codewhisperer:eu-central-1:123456789012:profile/TEAMPROD002",
                profile_name="Team Prod EU", source=str(KIRO_CLI_DB), source_key="kirocli:odic:token",
                mode=Mode.SYNC, last_refresh_at=now - timedelta(minutes=15), created_at=now - timedelta(days=1)),
        Account(id="d4e5f6a7", auth_method=AuthMethod.BUILDER_ID, access_token="aoaAAAAAGdavedavedaveda:sig7",
                refresh_token="aorAAAAAGdavedavedaveda:sig8", expires_at=now + timedelta(minutes=20),
                label="Builder ID", email="dave@example.com", client_id="cid-dave", client_secret="secret-d",
                client_secret_expires_at=now + timedelta(days=30), mode=Mode.OWN, health=Health.NEEDS_LOGIN,
                last_error="refresh token invalid: log in again (AWS SSO OIDC CreateToken(refresh): invalid_grant)",
                consecutive_failures=1, created_at=now - timedelta(hours=5)),
        Account(id="e5f6a7b8", auth_method=AuthMethod.SOCIAL, access_token="aoaAAAAAGerinerinerinr:sig9",
                refresh_token="aorAAAAAGerinerinerinr:sig0", expires_at=now - timedelta(minutes=2),
                label="Google", email="erin@example.com", provider="google", mode=Mode.OWN,
                health=Health.REFRESH_FAILING, next_refresh_at=now + timedelta(seconds=40),
                last_error="Kiro auth refresh: timed out (ReadTimeout)", consecutive_failures=3,
                last_refresh_at=now - timedelta(hours=1), created_at=now - timedelta(hours=4)),
    ]


def build_store(path: Path, accounts: list[Account] | None = None) -> AccountStore:
    """A store holding `accounts` (the samples by default, with some refresh history)."""
    store = AccountStore.open(path)
    for account in accounts if accounts is not None else sample_accounts():
        with store.transaction() as tx:
            store.save(account, tx)
            if account.source:  # imported: the place it came from, as an import records it
                store.save_place(tx, Place(account.id, "kiro-cli", account.source, account.source_key or ""))
    if accounts is None:
        with store.transaction() as tx:
            store.log_refresh(tx, RefreshLogEntry("c3d4e5f6", NOW - timedelta(minutes=75), "failed", "transient",
                                                  5000, None, "AWS SSO OIDC CreateToken(refresh): timed out"))
            store.log_refresh(tx, RefreshLogEntry("c3d4e5f6", NOW - timedelta(minutes=74), "refreshed", None,
                                                  212, 200))
            store.log_refresh(tx, RefreshLogEntry("c3d4e5f6", NOW - timedelta(minutes=15), "adopted", None,
                                                  None, None, "newer token from kiro-cli"))
    return store


class RecordingClipboard:
    def __init__(self, works: bool = True) -> None:
        self.works, self.copied = works, []

    def __call__(self, text: str) -> None:
        if not self.works:
            raise RuntimeError("no clipboard here (no xclip, no display)")
        self.copied.append(text)


def build_app(store: AccountStore, emulator_url: str = "http://127.0.0.1:9", *, clock: ManualClock | None = None,
              kiro_cli_db: Path | None = KIRO_CLI_DB, candidates: list[Path] | None = None,
              clipboard: RecordingClipboard | None = None, settings: Settings | None = None,
              **options: object) -> KiroTuiApp:
    options.setdefault("run_engine", False)
    options.setdefault("fetch_usage", False)
    app = make_app(store.path, settings or Settings(), clock or ManualClock(NOW), Endpoints(override=emulator_url),
                   kiro_cli_db, candidates, system_copy=clipboard or RecordingClipboard(), **options)
    raised: list[str] = []
    add = app._notifications.add

    def recording(notification: Any) -> Any:
        raised.append(f"{notification.title}: {notification.message}")
        return add(notification)

    app._notifications.add = recording  # type: ignore[method-assign]
    app.raised_toasts = raised  # type: ignore[attr-defined]
    return app


def toasts(app: KiroTuiApp) -> list[str]:
    """Every toast raised so far, recorded as it is raised: one on screen goes after its timeout
    in real seconds, which a test on a loaded machine can outlast."""
    raised = getattr(app, "raised_toasts", None)
    return list(raised) if raised is not None else [f"{n.title}: {n.message}" for n in app._notifications]


def cell(app: KiroTuiApp, account_id: str, column: str) -> str:
    from kiro_tui.tui.widgets.accounts_table import AccountsTable

    return str(app.screen.query_one(AccountsTable).get_cell(account_id, column))


def screen_lines(app: KiroTuiApp) -> list[list[Strip]]:
    """The screen as drawn now: a list of strips (segments with their styles) per line."""
    return app.screen._compositor.render_full_update().strips


def screen_text(app: KiroTuiApp) -> str:
    """The characters on screen now, line by line: what a person reads, styles dropped."""
    return "\n".join("".join(strip.text for strip in line) for line in screen_lines(app))


async def settle(pilot, rounds: int = 50) -> None:  # type: ignore[no-untyped-def]
    """Until the app is quiet: its workers done, every engine event delivered and handled, no
    re-read pending. Waits on what it waits for, never on the clock."""
    app = pilot.app
    await app.engine.ready()
    from textual.worker import WorkerCancelled, WorkerFailed

    def busy() -> list:  # type: ignore[type-arg]
        """Workers doing work, not those that open a dialog and wait for a person's answer."""
        return [w for w in app.workers if w.is_running and w.group not in DIALOG_FLOWS]

    def flow_starting() -> bool:
        """A dialog flow still doing its first work (e.g. listing the places) before its dialog opens."""
        return len(app.screen_stack) == 1 and any(w.is_running and w.group in DIALOG_FLOWS for w in app.workers)

    def options_coming() -> bool:
        """A picker whose options are still on their way (its flow's worker is fetching them)."""
        return isinstance(app.screen, LoadingChoiceScreen) and app.screen.waiting

    patience = 500  # a picker's options come from the network: waited for, within a bound
    for _ in range(rounds):
        while patience and options_coming():
            patience -= 1
            await pilot.pause(0.01)
        working = busy()
        try:
            if working:  # (an empty list would mean every worker to Textual)
                await app.workers.wait_for_complete(working)
        except (WorkerCancelled, WorkerFailed):  # an exclusive worker replaced by a newer one
            continue
        await app.engine.call(_nothing)  # events the engine emitted before this are posted now
        await pilot.pause()
        screen = app.accounts_screen
        if not (screen._loading or screen._dirty or screen._dirty_all or screen.table.adding) and not busy() \
                and not flow_starting() and not options_coming() and screen._message_queue.empty():
            return
    raise AssertionError("the app did not settle")


DIALOG_FLOWS = {"import", "places", "login-ui", "profile", "login"}
"""Worker groups that open a dialog and wait for its answer: they end only when the test answers."""


async def _nothing(engine) -> None:  # type: ignore[no-untyped-def]
    return None


async def watch_pass(pilot) -> None:  # type: ignore[no-untyped-def]
    """One pass of the engine's watch loop (what runs every few seconds in the real app: other
    processes' commits noticed, quota fetched, held tokens and pending places retried), then settle."""
    await pilot.app.engine.call(lambda engine: engine.watch_pass())
    await settle(pilot)
