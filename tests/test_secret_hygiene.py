"""No secret the emulator handed out may appear in anything kiro-tui writes or shows, unless a
person asked for it (`list --show-secrets`, copying a token)."""

from __future__ import annotations

import json
import os
import re
import signal
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from kiro_tui.core.aws.transport import make_http_client
from kiro_tui.core.clock import SystemClock
from kiro_tui.core.importer import new_account_id
from kiro_tui.core.store import AccountStore
from kiro_tui.demo import account_from_seed
from tests.support.engine import control, seed_into_kiro_cli
from tests.support.kiro_cli_db import KiroCliDb
from tests.support.run import run_cli
from tests.support.tui import build_app

ROOT = Path(__file__).resolve().parent.parent
TOKEN_SHAPED = re.compile(r"ao[ar]AAAAAG[\w\-]{8,}|eyJraWQiOiJrZXktMTU2Njk2ODEzNiIsImFsZyI6IkhTMzg0In0\.[\w\-]{8,}")


def scan(texts: dict[str, str], secrets: list[str]) -> list[str]:
    leaks = []
    for where, text in texts.items():
        for secret in secrets:
            if len(secret) >= 12 and secret in text:
                leaks.append(f"{where}: an issued secret ({secret[:4]}…)")
        for match in TOKEN_SHAPED.findall(text):
            leaks.append(f"{where}: token-shaped text {match[:8]}…")
    return leaks
@pytest.mark.slow


async def test_nothing_kiro_tui_writes_or_shows_holds_a_secret(
    kiro_tui_exe: str, isolated_dirs: Path, kiro_db: KiroCliDb, live_emulator
) -> None:
    env = {"KIRO_TUI_ENDPOINT_URL": live_emulator.url}
    seen: dict[str, str] = {}

    def cli(*args: str) -> None:
        result = run_cli(kiro_tui_exe, *args, env=env)
        seen[f"kiro-tui {' '.join(args)} (stdout)"] = result.out
        seen[f"kiro-tui {' '.join(args)} (stderr)"] = result.err

    seed_into_kiro_cli(live_emulator, kiro_db, kind="social", email="s@example.com", expires_in=120)
    seed_into_kiro_cli(live_emulator, kiro_db, kind="idc", email="i@example.com", region="eu-west-1")
    store_path = isolated_dirs / "data" / "kiro-tui" / "accounts.db"
    with AccountStore.open(store_path) as store:
        for kind, email in (("builder-id", "dead@example.com"), ("external-idp", "x@example.com")):
            store.save(account_from_seed(live_emulator.seed(kind=kind, email=email), new_account_id(store.ids())))
    control(live_emulator, "revoke", {"email": "dead@example.com"})

    cli("import")
    cli("import", "--json")
    cli("list")
    cli("list", "--json")
    cli("refresh", "--all", "--json")
    control(live_emulator, "faults", {"path": "/refreshToken", "status": 500, "count": 1})
    control(live_emulator, "faults", {"path": "/token", "kind": "malformed", "count": 1})
    cli("refresh", "--all")
    cli("list", "--json")
    cli("import", "--db", str(isolated_dirs / "nope.sqlite3"))
    ids = [row["id"] for row in json.loads(seen["kiro-tui list --json (stdout)"])]
    cli("remove", ids[0])
    cli("mode", ids[0], "own")

    config = isolated_dirs / "config" / "kiro-tui" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("watch_interval = 0.3\nrefresh_window = 3600\n")
    watch = subprocess.Popen([kiro_tui_exe, "watch"], env={**os.environ, **env}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    log_file = isolated_dirs / "state" / "kiro-tui" / "log" / "kiro-tui.log"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (log_file.exists() and "→" in log_file.read_text()):
        time.sleep(0.1)
    watch.send_signal(signal.SIGTERM)
    out, err = watch.communicate(timeout=15)
    seen["kiro-tui watch (stdout)"], seen["kiro-tui watch (stderr)"] = out, err
    assert "→" in err  # it did log state changes

    with AccountStore.open(store_path) as store:
        app = build_app(store, live_emulator.url, clock=SystemClock(), kiro_cli_db=kiro_db.path,
                        fetch_usage=True, run_engine=True)  # type: ignore[arg-type]
        async with app.run_test(size=(160, 48)) as pilot:
            for row in range(4):
                app.screen.query_one("AccountsTable").move_cursor(row=row)  # type: ignore[attr-defined]
                await pilot.pause(0.3)
                seen[f"TUI screen, row {row}"] = app.export_screenshot()
            await pilot.press("l")
            await pilot.pause(0.2)
            await pilot.press("enter")
            await pilot.pause(1.0)
            seen["TUI login screen"] = app.export_screenshot()
            await pilot.press("escape")
            await pilot.pause(0.2)

    for log in (isolated_dirs / "state" / "kiro-tui" / "log").glob("kiro-tui.log*"):
        seen[str(log)] = log.read_text()
    for svg in [*(ROOT / "screenshots").glob("*.svg"), *(ROOT / "tests" / "__snapshots__").rglob("*.svg")]:
        seen[str(svg.relative_to(ROOT))] = svg.read_text()

    secrets = list(live_emulator.state.issued_secrets)
    assert len(secrets) > 10
    assert scan(seen, secrets) == []
    # and the check can fail: asked-for secrets are found
    shown = run_cli(kiro_tui_exe, "list", "--json", "--show-secrets", env=env).out
    assert scan({"list --show-secrets": shown}, secrets)


def test_tls_verification_is_on_and_never_turned_off() -> None:
    import asyncio

    async def context_of_client() -> ssl.SSLContext:
        async with make_http_client() as client:
            return client._transport._pool._ssl_context

    context = asyncio.run(context_of_client())
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    for source in (ROOT / "kiro_tui").rglob("*.py"):
        text = source.read_text()
        assert "verify=False" not in text and "CERT_NONE" not in text, source
        assert "check_hostname = False" not in text, source
