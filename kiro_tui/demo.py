"""`kiro-tui demo`: the whole app, offline, against the emulator, leaving nothing behind.

A temporary folder holds a kiro-cli database and kiro-tui's store, seeded through the
emulator with accounts in every interesting state: fresh ones, one about to expire that only
kiro-cli may refresh (follow mode: watch it count down and expire), one with a short TTL that
refreshes while you watch, one whose refresh token is revoked so it turns NEEDS LOGIN within
seconds, one whose identity provider keeps failing (retrying with backoff), and an IAM
Identity Center account with two profiles. Login works too: the emulator approves any code after a few
seconds, or use its verification page.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kiro_tui.core.aws.endpoints import Endpoints
from kiro_tui.core.clock import Clock, SystemClock
from kiro_tui.core.config import Settings
from kiro_tui.core.importer import import_snapshot
from kiro_tui.core.models import Account, AuthMethod, Mode
from kiro_tui.core.places.gateway import CREDS_FILE_ENV
from kiro_tui.core.places.kiro_cli import read_kiro_cli
from kiro_tui.core.places.kiro_cli_format import SCHEMA, dumps
from kiro_tui.core.store import AccountStore
from kiro_tui.core.timefmt import parse_timestamp
from kiro_tui.emulator import Emulator
from kiro_tui.emulator.server import Fault

WINDOW = 600
IDC_START_URL = "https://d-9067c1a2b3.awsapps.com/start"
IDC_PROFILES = [
    {"arn": "arn:aws:codewhisperer:us-east-1:123456789012:profile/TEAMDEV0001", "name": "Team Dev"},
    {"arn": "arn:aws:codewhisperer:eu-central-1:123456789012:profile/TEAMPROD002", "name": "Team Prod EU"},
]
USAGE = {"erin@example.com": (46.0, 50.0), "team@acme.example": (1020.0, 1000.0), "carol@example.com": (31.0, 50.0)}
"""Requests used and the month's limit, per demo user: quota low, over quota, and some left."""


def account_from_seed(seeded: dict, account_id: str, mode: Mode = Mode.OWN) -> Account:
    """The account kiro-tui holds for an emulator-seeded login, as a kiro-tui login would save it."""
    token, registration = seeded["token"], seeded.get("device_registration") or {}
    return Account(
        id=account_id,
        auth_method=AuthMethod(seeded["kind"]),
        access_token=token["access_token"],
        refresh_token=token["refresh_token"],
        expires_at=parse_timestamp(token["expires_at"]),
        label=seeded["email"],
        email=seeded["email"],
        region=token.get("region") or "us-east-1",
        start_url=token.get("start_url"),
        scopes=token.get("scopes") if isinstance(token.get("scopes"), list) else None,
        client_id=registration.get("client_id") or token.get("client_id"),
        client_secret=registration.get("client_secret"),
        client_secret_expires_at=parse_timestamp(registration["client_secret_expires_at"]) if registration else None,
        token_endpoint=token.get("token_endpoint"),
        issuer_url=token.get("issuer_url"),
        provider=token.get("provider"),
        profile_arn=(seeded.get("profile") or {}).get("arn"),
        profile_name=(seeded.get("profile") or {}).get("profile_name"),
        mode=mode,
    )


def write_kiro_cli_login(db: Path, seeded: dict) -> None:
    """Put an emulator-seeded login into a kiro-cli database, as kiro-cli writes it (JSON TEXT)."""
    import sqlite3

    conn = sqlite3.connect(db)
    with conn:
        for key, value in seeded["auth_kv"].items():
            conn.execute("INSERT OR REPLACE INTO auth_kv (key, value) VALUES (?1, ?2)", (key, dumps(value)))
        for key, value in seeded["state"].items():
            conn.execute("INSERT OR REPLACE INTO state (key, value) VALUES (?1, ?2)", (key, dumps(value)))
    conn.close()


@dataclass
class Demo:
    folder: Path
    emulator: Emulator
    store: AccountStore
    kiro_cli_db: Path
    settings: Settings


def seed_demo(emulator: Emulator, folder: Path, store: AccountStore, now: datetime) -> Path:
    """Fill a kiro-cli database and the store with the demo's accounts; return the database path."""
    import sqlite3

    db = folder / "kiro-cli" / "data.sqlite3"
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db)
    conn.executescript(SCHEMA)
    conn.close()
    # In kiro-cli: a GitHub login about to expire, an Identity Center login with two profiles.
    write_kiro_cli_login(db, emulator.seed(kind="social", email="alice@example.com", expires_in=40))
    write_kiro_cli_login(db, emulator.seed(kind="idc", email="team@acme.example", region="eu-west-1",
                                           start_url=IDC_START_URL, profiles=IDC_PROFILES, expires_in=45 * 60))
    report = import_snapshot(store, read_kiro_cli(db, now), now, Mode.SYNC)
    social = next(i.id for i in report.imported if i.auth_method == "social")
    store.update(social, mode=Mode.FOLLOW)  # stays "expiring": only kiro-cli may refresh it
    # Logged in through kiro-tui: one about to die, a fresh one, one that refreshes while you watch.
    # Dave is the emulator's first Builder ID user, so a demo login (auto-approved) signs in as
    # him: logging in again, from `l` or from enter on his row, brings his account back.
    doomed = emulator.seed(kind="builder-id", email="dave@example.com", expires_in=WINDOW + 8)
    store.save(account_from_seed(doomed, "d4fe9913"))
    emulator.state.revoke(email="dave@example.com")
    store.save(account_from_seed(emulator.seed(kind="builder-id", email="erin@example.com",
                                               expires_in=55 * 60), "e7a1c0d4"))
    store.save(account_from_seed(emulator.seed(kind="social", email="carol@example.com",
                                               expires_in=WINDOW + 20), "c4r01b22"))
    flaky = emulator.seed(kind="external-idp", email="frank@contoso.example", expires_in=WINDOW + 3)
    store.save(account_from_seed(flaky, "f7a3b2e1"))
    token = flaky["token"]
    assert isinstance(token, dict)  # the seeded rows' shape: kiro_cli_shapes.kiro_cli_rows
    token_path = urllib.parse.urlsplit(str(token["token_endpoint"])).path
    emulator.app.faults.append(Fault(path=token_path, count=1_000_000, status=503))
    for email, (used, limit) in USAGE.items():  # so the Usage column shows quota low and over quota
        emulator.state.users[email].usage, emulator.state.users[email].limit = used, limit
    return db


@contextmanager
def demo_environment(approve_after: float = 5.0, clock: Clock | None = None) -> Iterator[Demo]:
    """The emulator, a temporary folder and a seeded store; all gone on exit."""
    clock = clock or SystemClock()
    with tempfile.TemporaryDirectory(prefix="kiro-tui-demo-") as tmp, \
            Emulator(token_ttl=3600, approve_after=approve_after) as emulator:
        folder = Path(tmp)
        store = AccountStore.open(folder / "kiro-tui" / "accounts.db")
        try:
            db = seed_demo(emulator, folder, store, clock.now() if clock else datetime.now(UTC))
            # made-up accounts: nothing for your real desktop (notify=())
            settings = Settings(refresh_window=WINDOW, watch_interval=2.0, notify=())
            yield Demo(folder, emulator, store, db, settings)
        finally:
            store.close()


def run_demo(approve_after: float = 5.0) -> int:
    from kiro_tui.tui.app import run_app

    with demo_environment(approve_after) as demo:
        keep_places_inside(demo.folder)
        return run_app(demo.store.path, demo.settings, SystemClock(), Endpoints(override=demo.emulator.url),
                       demo.kiro_cli_db, [demo.kiro_cli_db], on_exit=lambda: start_watchdog(demo.folder),
                       on_stuck=lambda code: _hard_exit(demo.folder, 0))


PLACE_ENVIRONMENT = ("HOME", "USERPROFILE", "APPDATA", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME")
"""What every place's usual path (and kiro-tui's own log) is found from."""


def keep_places_inside(folder: Path) -> None:
    """The demo's process sees a home of its own inside the demo folder, so that `i` offers only
    the demo's logins and `x` proposes files there: a demo must never read or write the Kiro
    IDE's cache or another tool's files of the person trying it."""
    home = folder / "home"
    home.mkdir(mode=0o700, exist_ok=True)
    real_xauthority = Path.home() / ".Xauthority"  # the clipboard (xclip) still reaches the display
    if "XAUTHORITY" not in os.environ and real_xauthority.is_file():
        os.environ["XAUTHORITY"] = str(real_xauthority)
    for name in PLACE_ENVIRONMENT:
        os.environ[name] = str(home if name in ("HOME", "USERPROFILE") else home / name.lower())
    os.environ.pop(CREDS_FILE_ENV, None)  # kiro-gateway's file, if this shell names one


def start_watchdog(folder: Path, seconds: float = 25.0) -> None:
    """Once the app has quit and its refreshes are finished, the emulator and the folder go;
    if that hangs, the watchdog removes the folder and ends the process anyway."""
    timer = threading.Timer(seconds, _hard_exit, args=(folder, 0))
    timer.daemon = True
    timer.start()


def _hard_exit(folder: Path, signum: int) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    os._exit(128 + signum if signum else 1)
