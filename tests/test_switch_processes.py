"""Switching the Kiro IDE between two accounts, three times, with every process real (issue 23's proof).

The installed `kiro-tui watch` keeps both accounts fresh; a stand-in of the IDE
(tests/support/ide_refresher.py) polls its token file, uses the login it finds and refreshes it
as the IDE does; `kiro-tui use` switches the file from one account to the other and back, three
times. The emulator rotates strictly (a spent refresh token dies at once) and tokens live 40 s,
every time scaled in the proportion of the real ones (3,600 s): kiro-tui refreshes 15 minutes
(scaled) before expiry, as peers that keep the IDE's file do, ahead of the IDE's own 10.

While bob is in the IDE, kiro-tui is stopped, so the IDE refreshes bob by itself; ann is then
switched in while bob's rotated token is only in the IDE's file, and the last switch back to
bob finds it alive only if `use` took that token before writing.

Goal: every switch finds a live login (the IDE uses it, and it rotates there, so the account
switched away from was kept alive meanwhile), and the emulator refused no refresh and no use.
The two accounts come due half a cycle apart, so each switch waits about half a cycle. The run
waits on those conditions, never on exact speed.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kiro_tui.core.store import AccountStore
from kiro_tui.demo import account_from_seed
from tests.support.run import run_cli

ROOT = Path(__file__).resolve().parent.parent
TTL = 40
WINDOW = round(900 * TTL / 3600)  # 15 minutes, scaled: 10 s (the IDE's 10 minutes: 6.7 s)
PHASE_LIMIT = 3 * TTL  # seconds one switch may take to show its rotations, at most


def _is_refresh(request: dict) -> bool:
    return request["operation"] == "RefreshToken" or (
        request["operation"] == "CreateToken" and request["grant_type"] == "refresh_token")


def _env(home: Path, url: str) -> dict[str, str]:
    env = {**os.environ, "HOME": str(home), "KIRO_TUI_ENDPOINT_URL": url, "PYTHONPATH": str(ROOT)}
    for var, sub in (("XDG_DATA_HOME", "data"), ("XDG_CONFIG_HOME", "config"), ("XDG_STATE_HOME", "state"),
                     ("XDG_CACHE_HOME", "cache")):
        env[var] = str(home / sub)
    return env


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _events(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
@pytest.mark.slow


def test_use_switches_the_ide_three_times_and_every_switch_back_finds_a_live_login(
        kiro_tui_exe, tmp_path: Path) -> None:
    from kiro_tui.emulator import Emulator

    home = tmp_path / "home"
    ide = home / ".aws" / "sso" / "cache" / "kiro-auth-token.json"
    with Emulator(token_ttl=TTL) as emulator:  # wall clock; strict rotation (no grace) by default
        env = _env(home, emulator.url)
        config = home / "config" / "kiro-tui" / "config.toml"
        config.parent.mkdir(parents=True)
        config.write_text(f"refresh_window = {WINDOW}\nwatch_interval = 1.0\n")
        emails = {"ann": "ann@switch.example", "bob": "bob@switch.example"}
        with AccountStore.open(home / "data" / "kiro-tui" / "accounts.db") as store:
            store.save(account_from_seed(emulator.seed(kind="builder-id", email=emails["ann"], expires_in=TTL),
                                         "a1a1a1a1"))
            store.save(account_from_seed(emulator.seed(kind="social", email=emails["bob"], expires_in=TTL // 2 + 5),
                                         "b2b2b2b2"))
        assert run_cli(kiro_tui_exe, "rename", "a1a1a1a1", "ann", env=env).code == 0
        assert run_cli(kiro_tui_exe, "rename", "b2b2b2b2", "bob", env=env).code == 0
        first = run_cli(kiro_tui_exe, "use", "ann", "--in", "kiro-ide", env=env)
        assert first.code == 0, first.err

        log = tmp_path / "ide.jsonl"
        ide_proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.ide_refresher", str(ide), "--url", emulator.url, "--ttl", str(TTL),
             "--log", str(log)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        def start_watch() -> subprocess.Popen:
            return subprocess.Popen([kiro_tui_exe, "watch"], env=env, stdout=subprocess.DEVNULL,
                                    stderr=(tmp_path / "watch.err").open("a"), text=True)

        watch = start_watch()
        phases = []
        try:
            ready, _, _ = select.select([ide_proc.stdout], [], [], 30)
            assert ready and ide_proc.stdout.readline().strip() == "ready"  # type: ignore[union-attr]
            in_use, away = "ann", "bob"
            for switch in range(4):  # ann (first use), then bob, ann, bob: three switches
                if switch:
                    in_use, away = away, in_use
                    used = run_cli(kiro_tui_exe, "use", in_use, "--in", "kiro-ide", env=env)
                    assert used.code == 0, used.err
                    assert f"The login that was there, {away} " in used.out, used.out
                if switch == 1:  # kiro-tui stops: the IDE refreshes bob by itself, and ann is switched in
                    _stop(watch)  # with bob's rotated token only in the IDE's file: `use` must take it first
                elif switch == 2:
                    watch = start_watch()
                since = time.time()
                deadline = time.monotonic() + PHASE_LIMIT
                while True:
                    requests = [r for r in emulator.requests() if r["time"] >= since]
                    rotated = {who: sum(1 for r in requests if _is_refresh(r) and r["status"] == 200
                                        and r["email"] == emails[who]) for who in emails}
                    used_by_ide = [r for r in requests if r["operation"] == "GetUsageLimits" and r["status"] == 200
                                   and r["email"] == emails[in_use]]
                    # the IDE used the login it was switched to, after it rotated there
                    after_rotation = [r for r in used_by_ide if any(
                        _is_refresh(q) and q["status"] == 200 and q["email"] == emails[in_use] and q["time"] < r["time"]
                        for q in requests)]
                    if rotated[in_use] and after_rotation:
                        break
                    assert time.monotonic() < deadline, (switch, rotated, len(used_by_ide), _events(log)[-5:])
                    assert (watch.poll() is None or switch == 1) and ide_proc.poll() is None
                    time.sleep(0.5)
                phases.append((in_use, rotated))
        finally:
            _stop(ide_proc)
            _stop(watch)
        requests = emulator.requests()
        refused = [r for r in requests if _is_refresh(r) and r["status"] != 200]
        refused_uses = [r for r in requests if r["operation"] == "GetUsageLimits" and r["status"] != 200]
        events = _events(log)
        print(f"\nswitches: {phases}; refreshes {sum(1 for r in requests if _is_refresh(r))}, refused {len(refused)}; "
              f"IDE uses {sum(1 for e in events if e['event'] == 'use')}, refused {len(refused_uses)}; "
              f"IDE took a new token {sum(1 for e in events if e['event'] == 'took')} times, refreshed "
              f"{sum(1 for e in events if e['event'] == 'refresh')} times")
        assert refused == [] and refused_uses == []
        assert sum(1 for e in events if e["event"] == "refresh") >= 1  # the IDE rotated a login by itself
        total = {who: sum(1 for r in requests if _is_refresh(r) and r["status"] == 200 and r["email"] == email)
                 for who, email in emails.items()}
        assert min(total.values()) >= 2, total  # each rotated in the IDE, and was kept alive away from it
        assert not [e for e in events if e["event"] in ("refresh-failed", "bad-file", "use-failed")]
        final = run_cli(kiro_tui_exe, "refresh", "--all", "--json", env=env)
        assert final.code == 0, final.err
        assert sorted(r["outcome"] for r in final.json()) == ["refreshed", "refreshed"]
        shown = {r["id"]: r for r in run_cli(kiro_tui_exe, "list", "--json", env=env).json()}
        assert shown["b2b2b2b2"]["places"][0]["holds_account"] == "b2b2b2b2"  # the last switch: bob
        assert shown["a1a1a1a1"]["places"] == [] and shown["a1a1a1a1"]["mode"] == "own"
