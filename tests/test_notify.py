"""A login that needs a person is announced once per change: on a real D-Bus session bus (our
own org.freedesktop.Notifications server records what arrives), by a command and by a webhook
on 127.0.0.1; never a token in any of them."""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kiro_tui.core.config import Settings
from kiro_tui.core.errors import StoreError
from kiro_tui.core.models import Account, AuthMethod, Health, Place, PlaceRole, PlaceState, UsageRecord
from kiro_tui.core.notify import Announcer
from kiro_tui.core.store import AccountStore
from tests.support.engine import control, seed_into_kiro_cli
from tests.support.notifications import SessionBus, WebhookServer
from tests.support.run import run_cli
from tests.support.waiting import until
from tests.support.watch import Watch

RECORDER = """
import json, os, sys
with open(sys.argv[1], "a") as out:
    out.write(json.dumps({"argv": sys.argv[2:],
                          "env": {k: v for k, v in os.environ.items() if k.startswith("KIRO_TUI_")}}) + "\\n")
"""


def write_config(isolated_dirs: Path, text: str) -> None:
    config = isolated_dirs / "config" / "kiro-tui" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("watch_interval = 0.5\nfetch_usage = false\n" + text)


def dying_login(exe: str, emulator, kiro_db, env: dict[str, str]) -> dict:
    """A kiro-cli login, imported, about to be refreshed, whose refresh token AWS has revoked."""
    seeded = seed_into_kiro_cli(emulator, kiro_db, kind="social", email="gone@example.com", expires_in=200)
    assert run_cli(exe, "import", env=env).code == 0
    control(emulator, "revoke", {"email": "gone@example.com"})
    return seeded


def secrets_of(seeded: dict) -> list[str]:
    return [seeded["token"]["access_token"], seeded["token"]["refresh_token"]]


@pytest.mark.slow


def test_a_revoked_login_under_watch_gives_one_desktop_notification(kiro_tui_exe, isolated_dirs, kiro_db,
                                                                    live_emulator, tmp_path) -> None:
    write_config(isolated_dirs, "")  # notify = ["desktop"]: the default
    env = {"KIRO_TUI_ENDPOINT_URL": live_emulator.url}
    seeded = dying_login(kiro_tui_exe, live_emulator, kiro_db, env)
    with SessionBus(tmp_path) as bus:
        env["DBUS_SESSION_BUS_ADDRESS"] = bus.address
        watch = Watch(kiro_tui_exe, env)
        try:
            watch.wait_for_line("→ NEEDS LOGIN")
            until(lambda: bus.received, "the notification on the session bus")
            watch.wait_for_line("watching", times=1)
            passes = watch.err.count("\n")
            time.sleep(2.5)  # five more passes: the account still needs a login, nothing new to say
            assert watch.proc.poll() is None and watch.err.count("\n") >= passes
        finally:
            watch.proc.terminate()
            watch.wait()
        watch = Watch(kiro_tui_exe, env)  # a restart (the service manager's) does not say it again
        try:
            watch.wait_for_line("watching")
            time.sleep(1.5)
        finally:
            watch.proc.terminate()
            watch.wait()
    (notice,) = bus.received
    assert notice["app_name"] == "kiro-tui"
    assert notice["summary"].startswith("kiro-tui: ")
    assert "log in again" in notice["body"] and "kiro-tui login" in notice["body"]
    for secret in secrets_of(seeded):
        assert secret not in json.dumps(notice)
@pytest.mark.slow


def test_command_and_webhook_each_hear_it_once(kiro_tui_exe, isolated_dirs, kiro_db, live_emulator,
                                               tmp_path) -> None:
    record = tmp_path / "commands.jsonl"
    script = tmp_path / "recorder.py"
    script.write_text(RECORDER)
    with WebhookServer() as hook:
        command = [sys.executable, str(script), str(record), "{id}", "{label}", "{status}", "{message}"]
        write_config(isolated_dirs, f'notify = ["command", "webhook"]\nnotify_command = {json.dumps(command)}\n'
                                    f'notify_webhook = "{hook.url}"\n')
        env = {"KIRO_TUI_ENDPOINT_URL": live_emulator.url}
        seeded = dying_login(kiro_tui_exe, live_emulator, kiro_db, env)
        (row,) = run_cli(kiro_tui_exe, "list", "--json").json()  # type: ignore[misc]
        watch = Watch(kiro_tui_exe, env)
        try:
            watch.wait_for_line("→ NEEDS LOGIN")
            until(lambda: hook.received and record.exists(), "the notification hook to run")
            time.sleep(2.5)
        finally:
            watch.proc.terminate()
            watch.wait()
    (ran,) = [json.loads(line) for line in record.read_text().splitlines()]
    account_id, label, status, message = ran["argv"]
    assert (account_id, status) == (row["id"], "needs-login") and label and "kiro-tui login" in message
    assert ran["env"] | {"KIRO_TUI_ENDPOINT_URL": ""} == {"KIRO_TUI_ENDPOINT_URL": "", "KIRO_TUI_ACCOUNT_ID": account_id, "KIRO_TUI_LABEL": label,
                          "KIRO_TUI_STATUS": "needs-login", "KIRO_TUI_MESSAGE": message}
    (posted,) = hook.received
    body = posted["body"]
    assert posted["content_type"] == "application/json"
    assert body["text"] == body["content"] and label in body["text"] and message in body["text"]
    assert (body["account_id"], body["label"], body["status"], body["message"]) == (account_id, label,
                                                                                   "needs-login", message)
    for secret in secrets_of(seeded):
        assert secret not in json.dumps(ran) and secret not in json.dumps(posted)
    assert "Traceback" not in watch.err


# ---------------------------------------------------------------- in process: the rules


NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def account(account_id: str, **fields: object) -> Account:
    return Account(id=account_id, auth_method=AuthMethod.SOCIAL, access_token=f"aoaSECRET{account_id}",
                   refresh_token=f"aorSECRET{account_id}", expires_at=NOW + timedelta(hours=1),
                   label=f"{account_id}@example.com", **fields)  # type: ignore[arg-type]


async def test_once_per_change_and_again_only_after_healthy(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO, "kiro_tui")
    store = AccountStore.open(tmp_path / "accounts.db")
    store.save(account("a1"))
    store.save(account("b2"))
    settings = Settings(notify=("desktop", "command", "webhook"), notify_command=("false",),
                        notify_webhook="http://127.0.0.1:9/closed")
    announcer = Announcer(store, settings, None, lambda: NOW)
    other = Announcer(store, settings, None, lambda: NOW)  # a second runner on the same store
    assert await announcer.check() == []

    store.update("a1", health=Health.NEEDS_LOGIN)
    (first,) = await announcer.check()
    assert (first.account_id, first.status) == ("a1", "needs-login")
    assert await announcer.check() == [] and await other.check() == []  # said once, by one runner

    store.save_usage("b2", UsageRecord(used=51.0, limit=50.0, fetched_at=NOW))
    with store.transaction() as tx:
        store.save_place(tx, Place("b2", "cliproxy", "/tmp/kiro-b2.json", "", PlaceRole.LINK, PlaceState.ERROR,
                                   "not writable: permission denied"))
    said = {n.status: n for n in await other.check()}
    assert set(said) == {"over-quota", "place-error"}
    assert "CLIProxyAPI" in said["place-error"].message and "/tmp/kiro-b2.json" in said["place-error"].message
    assert await announcer.check() == []

    store.update("a1", health=Health.OK)  # logged in again: healthy
    assert await announcer.check() == []
    store.update("a1", health=Health.NEEDS_LOGIN)
    (again,) = await announcer.check()
    assert again.account_id == "a1"

    # every channel failed (no bus, `false`, nothing on port 9): logged, the checks went on
    text = caplog.text
    assert text.count("no desktop notifications") == 2  # once for each of the two runners
    assert "notification by command failed: RuntimeError: notify_command 'false' exited 1" in text
    assert "notification by webhook failed" in text
    assert "SECRET" not in text
    store.close()


async def test_a_pass_with_nothing_committed_scans_nothing(tmp_path: Path) -> None:
    """At rest, a pass asks the store one version and reads no account, usage or place: the
    three scans cost 7 ms a pass at 10,000 accounts. Any commit (here or elsewhere) looks again."""
    store = AccountStore.open(tmp_path / "accounts.db")
    store.save(account("a1"))
    announcer = Announcer(store, Settings(notify=()), None, lambda: NOW)
    assert await announcer.check() == []
    statements: list[str] = []
    store.connection.set_trace_callback(statements.append)
    assert await announcer.check() == []
    assert statements == ["PRAGMA data_version"]
    other = AccountStore.open(tmp_path / "accounts.db")  # another process's commit
    other.update("a1", health=Health.NEEDS_LOGIN)
    (said,) = await announcer.check()
    assert (said.account_id, said.status) == ("a1", "needs-login")
    other.close()
    store.close()


async def test_a_notice_that_could_not_be_recorded_is_tried_again(tmp_path: Path, monkeypatch) -> None:
    """The store refused the record of a notice (locked, full): the condition is not taken as
    announced; the next pass announces it."""
    store = AccountStore.open(tmp_path / "accounts.db")
    store.save(account("a1", health=Health.NEEDS_LOGIN))
    announcer = Announcer(store, Settings(notify=()), None, lambda: NOW)
    real = store.transaction

    def refused(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        raise StoreError("database is locked")

    monkeypatch.setattr(store, "transaction", refused)
    assert await announcer.check() == []
    monkeypatch.setattr(store, "transaction", real)
    (said,) = await announcer.check()
    assert (said.account_id, said.status) == ("a1", "needs-login")
    store.close()


# ---------------------------------------------------------------- config.toml


def test_notify_keys_are_read_and_checked(tmp_path: Path) -> None:
    from kiro_tui.core.config import load_settings
    from kiro_tui.core.errors import ConfigError

    path = tmp_path / "config.toml"
    path.write_text('notify = ["command", "webhook"]\nnotify_command = ["notify-send", "{label}"]\n'
                    'notify_webhook = "http://127.0.0.1:8080/hook"\n')
    settings = load_settings(path)
    assert (settings.notify, settings.notify_command, settings.notify_webhook) == (
        ("command", "webhook"), ("notify-send", "{label}"), "http://127.0.0.1:8080/hook")
    assert load_settings(tmp_path / "none.toml").notify == ("desktop",)
    for text, needle in (
        ('notify = ["email"]', "notify must be a list of desktop, command, webhook"),
        ('notify = "desktop"', "notify must be a list of desktop, command, webhook"),
        ('notify_command = "notify-send hi"', "notify_command must be a list of words"),
        ('notify_webhook = "http://hooks.example.com/x"', "notify_webhook must be an https:// URL"),
        ('notify_webhook = "ftp://127.0.0.1/x"', "notify_webhook must be an https:// URL"),
        ('notify = ["command"]', 'notify names "command" but notify_command is not set'),
    ):
        path.write_text(text + "\n")
        with pytest.raises(ConfigError) as info:
            load_settings(path)
        assert needle in str(info.value) and str(path) in str(info.value)
