"""Runners: every `watch` (and the TUI's engine) records itself in the store while it runs;
`service status --json` and the TUI's summary line say who keeps the accounts fresh."""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest

from kiro_tui.core import runners
from kiro_tui.core.clock import SystemClock
from kiro_tui.core.store import AccountStore
from tests.support.run import run_cli
from tests.support.watch import Watch, watch_config


def store_path(isolated_dirs: Path) -> Path:
    return isolated_dirs / "data" / "kiro-tui" / "accounts.db"


def status(exe: str) -> dict:
    done = run_cli(exe, "service", "status", "--json", env={"PATH": "/nonexistent"})
    assert done.code == 0, done.err
    return done.json()  # type: ignore[return-value]


def wait_for(predicate, timeout: float = 30):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("never happened")


@pytest.mark.parametrize(("env", "started_by"), [({}, "hand"), ({"INVOCATION_ID": "0123abcd"}, "systemd")])
def test_a_running_watch_is_seen_and_is_not_alive_after_kill_9(kiro_tui_exe, isolated_dirs, env,
                                                              started_by) -> None:
    watch_config(isolated_dirs)
    watch = Watch(kiro_tui_exe, {"KIRO_TUI_ENDPOINT_URL": "http://127.0.0.1:9", **env})
    try:
        watch.wait_for_line("watching 0 accounts")
        (runner,) = wait_for(lambda: [r for r in status(kiro_tui_exe)["runners"] if r["last_pass_at"]])
        assert runner["pid"] == watch.proc.pid and runner["kind"] == "watch"
        assert runner["started_by"] == started_by and runner["alive"] is True
        assert runner["host"] == runners.host_name() and runner["started_at"]
    finally:
        watch.proc.send_signal(signal.SIGKILL)
        watch.wait()
    (dead,) = status(kiro_tui_exe)["runners"]  # left behind by kill -9: shown, and not alive
    assert dead["pid"] == watch.proc.pid and dead["alive"] is False


def test_a_clean_exit_removes_the_runner(kiro_tui_exe, isolated_dirs) -> None:
    watch_config(isolated_dirs)
    watch = Watch(kiro_tui_exe, {"KIRO_TUI_ENDPOINT_URL": "http://127.0.0.1:9"})
    try:
        watch.wait_for_line("watching 0 accounts")
        wait_for(lambda: status(kiro_tui_exe)["runners"])
        watch.proc.send_signal(signal.SIGTERM)
        assert watch.wait() == 0
    finally:
        watch.kill()
    assert status(kiro_tui_exe)["runners"] == []


def test_a_runner_whose_last_pass_is_old_is_not_alive(isolated_dirs) -> None:
    clock = SystemClock()
    with AccountStore.open(store_path(isolated_dirs)) as store:
        runner = runners.register(store, runners.WATCH, clock.now() - timedelta(seconds=100), 3.0)
        runners.record_pass(store, runner, clock.now() - timedelta(seconds=61))
        (found,) = runners.runners(store)
    assert found.pid == os.getpid() and found.interval == runners.HEARTBEAT
    assert not found.alive(clock.now())  # this very process, but its passes stopped: hung
    assert found.alive(clock.now() - timedelta(seconds=2))
    assert runners.describe_keepers([found], clock.now()) == \
        "when closed, nothing refreshes: `kiro-tui service install`"
    assert runners.describe_keepers([found], clock.now() - timedelta(seconds=2)) == \
        f"kept fresh by watch pid {os.getpid()} (started by hand)"


def test_how_a_process_was_started() -> None:
    assert runners.started_by("watch", {"INVOCATION_ID": "x"}) == "systemd"
    assert runners.started_by("watch", {"XPC_SERVICE_NAME": "io.github.kiro-tui.watch"}) == "launchd"
    assert runners.started_by("watch", {"XPC_SERVICE_NAME": "application.com.apple.Terminal.123"}) == "hand"
    assert runners.started_by("watch", {}) == "hand"
    assert runners.started_by("tui", {"INVOCATION_ID": "x"}) == "hand"  # a terminal under systemd: a person


async def test_the_tui_says_which_watch_keeps_the_accounts_fresh(kiro_tui_exe, isolated_dirs) -> None:
    from datetime import UTC, datetime

    from kiro_tui.core.clock import ManualClock
    from tests.support.tui import build_app, build_store, sample_accounts, settle, watch_pass

    now = datetime.now(UTC)
    store = build_store(store_path(isolated_dirs), sample_accounts(now)[:1])
    watch_config(isolated_dirs)
    watch = Watch(kiro_tui_exe, {"KIRO_TUI_ENDPOINT_URL": "http://127.0.0.1:9"})
    try:
        watch.wait_for_line("watching 1 account")
        app = build_app(store, run_engine=True, clock=ManualClock(now))

        def summary() -> str:
            return str(app.screen.query_one("#summary").render())

        async with app.run_test(size=(200, 30)) as pilot:
            await settle(pilot)
            await watch_pass(pilot)
            assert f"kept fresh by watch pid {watch.proc.pid} (started by hand)" in summary()
            own = [r for r in status(kiro_tui_exe)["runners"] if r["kind"] == "tui"]
            assert [r["pid"] for r in own] == [os.getpid()]  # the TUI's engine is a runner too

            watch.proc.send_signal(signal.SIGKILL)
            watch.wait()
            await watch_pass(pilot)
            assert "when closed, nothing refreshes: `kiro-tui service install`" in summary()
        assert [r for r in status(kiro_tui_exe)["runners"] if r["kind"] == "tui"] == []  # closed cleanly
    finally:
        watch.kill()
        store.close()


def test_a_new_runner_clears_the_rows_dead_processes_left_behind(isolated_dirs) -> None:
    import subprocess
    import sys

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    clock = SystemClock()
    with AccountStore.open(store_path(isolated_dirs)) as store:
        with store.transaction() as tx:
            tx.execute("INSERT INTO runners VALUES ('x', ?, ?, 'watch', 'hand', ?, NULL, 30)",
                       (gone.pid, runners.host_name(), "2026-12-01T00:00:00Z"))
            tx.execute("INSERT INTO runners VALUES ('y', 1, 'elsewhere', 'watch', 'systemd', ?, NULL, 30)",
                       ("2026-12-01T00:00:00Z",))
        runners.register(store, runners.TUI, clock.now(), 3.0)
        found = {(r.host, r.pid) for r in runners.runners(store)}
    assert found == {("elsewhere", 1), (runners.host_name(), os.getpid())}  # another host's: not ours to judge
