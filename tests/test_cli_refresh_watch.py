"""`kiro-tui refresh`, `watch` and `mode` as installed commands, against a live emulator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from kiro_tui.core.importer import new_account_id
from kiro_tui.core.store import AccountStore
from tests.support.engine import account_from_seed, control, seed_into_kiro_cli
from tests.support.kiro_cli_db import KiroCliDb


@pytest.fixture
def env(live_emulator) -> dict[str, str]:
    return {"KIRO_TUI_ENDPOINT_URL": live_emulator.url}


def add_own(isolated_dirs: Path, emulator, **spec) -> str:
    with AccountStore.open(isolated_dirs / "data" / "kiro-tui" / "accounts.db") as store:
        account = account_from_seed(emulator.seed(**spec), new_account_id(store.ids()))
        store.save(account)
        return account.id


def test_refresh_exit_codes_and_json(cli, isolated_dirs, live_emulator, env) -> None:
    good = add_own(isolated_dirs, live_emulator, kind="social", email="good@example.com")
    nothing = cli("refresh", env=env)
    assert nothing.code == 0 and "Nothing is due" in nothing.out
    ok = cli("refresh", good, "--json", env=env)
    assert ok.code == 0, ok.err
    (item,) = json.loads(ok.out)
    assert (item["id"], item["outcome"], item["status"]) == (good, "refreshed", "fresh")

    dead = add_own(isolated_dirs, live_emulator, kind="builder-id", email="dead@example.com")
    control(live_emulator, "revoke", {"email": "dead@example.com"})
    result = cli("refresh", "--all", "--json", env=env)
    assert result.code == 3
    by_id = {r["id"]: r for r in json.loads(result.out)}
    assert by_id[dead]["status"] == "needs-login" and by_id[dead]["classification"] == "needs-login"
    assert by_id[good]["status"] == "fresh"
    listed = {r["id"]: r for r in json.loads(cli("list", "--json").out)}
    assert listed[dead]["status"] == "needs-login"
    assert "refresh token invalid: log in again" in listed[dead]["last_error"]
    assert listed[good]["last_refresh_at"] is not None and listed[good]["consecutive_failures"] == 0

    control(live_emulator, "faults", {"path": "/refreshToken", "status": 500, "count": 1})
    failing = cli("refresh", good, "--json", env=env)
    assert failing.code == 1
    (item,) = json.loads(failing.out)
    assert (item["status"], item["classification"]) == ("refresh-failing", "transient")
    assert item["retry_in_seconds"] is not None
    listed = {r["id"]: r for r in json.loads(cli("list", "--json").out)}
    assert listed[good]["next_refresh_at"] is not None and listed[good]["consecutive_failures"] == 1
    assert (listed[good]["refresh_successes"], listed[good]["refresh_failures"]) == (2, 1)
    assert (listed[dead]["refresh_successes"], listed[dead]["refresh_failures"]) == (0, 1)


@pytest.mark.parametrize("bundle", ["missing", "garbage"])
def test_unusable_certificates_are_named_in_one_line(cli, isolated_dirs, live_emulator, env,
                                                    tmp_path: Path, bundle: str) -> None:
    good = add_own(isolated_dirs, live_emulator, kind="social", email="good@example.com")
    path = tmp_path / "corp-ca.pem"
    if bundle == "garbage":
        path.write_text("not a certificate\n")
    for command in (["refresh", good], ["refresh", "--all"]):
        result = cli(*command, env={**env, "SSL_CERT_FILE": str(path)})
        assert result.code == 1
        (line,) = result.err.strip().splitlines()
        assert line.startswith("kiro-tui: error: cannot load the certificates to verify AWS with: "
                               f"SSL_CERT_FILE={path}: ")
        assert line.endswith("point it at a PEM bundle, or unset it")
    assert json.loads(cli("list", "--json").out)[0]["refresh_successes"] == 0  # nothing sent


def test_import_mode_from_config(cli, isolated_dirs, kiro_db: KiroCliDb) -> None:
    config = isolated_dirs / "config" / "kiro-tui" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('import_mode = "follow"\n')
    kiro_db.put_social()
    assert cli("import").code == 0
    assert [r["mode"] for r in json.loads(cli("list", "--json").out)] == ["follow"]


def test_mode_command(cli, isolated_dirs, kiro_db: KiroCliDb, live_emulator) -> None:
    seed_into_kiro_cli(live_emulator, kiro_db, kind="social", email="m@example.com")
    cli("import")
    (row,) = json.loads(cli("list", "--json").out)
    assert row["mode"] == "sync"
    changed = cli("mode", row["id"], "follow")
    assert changed.code == 0 and "sync → follow" in changed.out
    assert json.loads(cli("list", "--json").out)[0]["mode"] == "follow"
    own_id = add_own(isolated_dirs, live_emulator, kind="social", email="own@example.com")
    refused = cli("mode", own_id, "sync")
    assert refused.code == 1 and "only `own` applies" in refused.err
    bad = cli("mode", own_id, "mirror")
    assert bad.code == 2


def test_watch_refreshes_logs_changes_and_exits_cleanly(kiro_tui_exe, isolated_dirs, kiro_db, live_emulator,
                                                        env) -> None:
    seeded = seed_into_kiro_cli(live_emulator, kiro_db, kind="social", email="w@example.com", expires_in=300)
    config = isolated_dirs / "config" / "kiro-tui" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("watch_interval = 0.5\n")
    proc = subprocess.Popen([kiro_tui_exe, "watch"], env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            rows = [r for r in live_emulator.requests() if r["operation"] == "RefreshToken" and r["status"] == 200]
            if rows:
                break
            time.sleep(0.1)
        assert rows, "watch did not refresh the expiring account"
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()  # type: ignore[union-attr]
    assert "Traceback" not in err
    assert "added from kiro-cli" in err
    assert "expiring → refreshing" in err and "refreshing → fresh" in err
    written = kiro_db.get_json("auth_kv", "kirocli:social:token")
    assert written["refresh_token"] != seeded["token"]["refresh_token"]  # sync mode wrote it back
    for secret in (seeded["token"]["refresh_token"], seeded["token"]["access_token"], written["refresh_token"],
                   written["access_token"]):
        assert secret not in err
    log_text = (isolated_dirs / "state" / "kiro-tui" / "log" / "kiro-tui.log").read_text()
    assert "refreshing → fresh" in log_text and written["refresh_token"] not in log_text
