"""Issue 10, the store and the importer under odd values: one bad account, row or login never
stops the others, two spellings of a path are one login, and errors name their real cause.

Real kiro-cli databases and stores on disk, the emulator over loopback, the installed
`kiro-tui` in subprocesses (`run_cli` fails on any traceback).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiro_tui.core.importer import new_account_id
from kiro_tui.core.store import AccountStore
from kiro_tui.core.timefmt import format_timestamp, parse_timestamp
from tests.support.engine import account_from_seed, seed_into_kiro_cli
from tests.support.kiro_cli_db import KiroCliDb
from tests.support.run import Result, run_cli
from tests.support.watch import Watch, watch_config


@pytest.fixture
def env(live_emulator) -> dict[str, str]:
    return {"KIRO_TUI_ENDPOINT_URL": live_emulator.url}


def store_file(isolated_dirs: Path) -> Path:
    return isolated_dirs / "data" / "kiro-tui" / "accounts.db"


def add_own(isolated_dirs: Path, emulator, token_endpoint: str | None = None, **spec) -> str:
    with AccountStore.open(store_file(isolated_dirs)) as store:
        account = account_from_seed(emulator.seed(**spec), new_account_id(store.ids()))
        if token_endpoint is not None:
            account.token_endpoint = token_endpoint
        store.save(account)
        return account.id


def listed(run: Callable[..., Result]) -> dict[str, dict]:
    result = run("list", "--json")
    assert result.code == 0, result.err
    return {row["id"]: row for row in json.loads(result.out)}


def leases(isolated_dirs: Path) -> list[tuple]:
    with sqlite3.connect(store_file(isolated_dirs)) as db:
        return db.execute("SELECT account_id, owner FROM leases").fetchall()


# ------------------------------------------------------------------ 5. one bad account never stops a pass

BAD_ENDPOINTS = {
    "control character": "https://login.example.com/tenant/oauth2/\x01token",
    "non-ASCII host": "https://lögin.exämple.com/tenant/oauth2/v2.0/token",
    "70,000-character path": "https://login.example.com/" + "a" * 70_000 + "/token",
}


def test_bad_token_endpoints_are_their_accounts_failures_not_the_pass(cli, isolated_dirs, live_emulator,
                                                                      env) -> None:
    healthy = [add_own(isolated_dirs, live_emulator, kind=kind, email=f"{kind}@example.com")
               for kind in ("social", "external-idp", "builder-id")]
    bad = {name: add_own(isolated_dirs, live_emulator, token_endpoint=url, kind="external-idp",
                         email=f"bad{i}@example.com")
           for i, (name, url) in enumerate(BAD_ENDPOINTS.items())}
    result = cli("refresh", "--all", "--json", env=env)
    assert "internal error" not in result.err and "closed database" not in result.err, result.err
    assert result.code == 3, (result.code, result.err)  # some need a login; nothing crashed
    by_id = {item["id"]: item for item in json.loads(result.out)}
    assert set(by_id) == set(healthy) | set(bad.values())
    for account_id in healthy:
        assert (by_id[account_id]["outcome"], by_id[account_id]["status"]) == ("refreshed", "fresh"), by_id[account_id]
    for name, account_id in bad.items():
        item = by_id[account_id]
        assert (item["outcome"], item["status"]) == ("failed", "needs-login"), (name, item)
        assert "refresh cannot work as configured" in item["message"], (name, item["message"])
        assert len(item["message"]) < 1000  # the 70,000-character URL is not echoed whole
    rows = listed(cli)
    assert not [row for row in rows.values() if row["status"] == "refreshing"]
    assert leases(isolated_dirs) == []
    for account_id in bad.values():
        assert rows[account_id]["status"] == "needs-login"
    again = cli("refresh", "--all", "--json", env=env)  # the bad ones cost no call now
    by_id = {item["id"]: item for item in json.loads(again.out)}
    assert all(by_id[a]["outcome"] == "skipped" for a in bad.values())
    assert all(by_id[a]["outcome"] == "refreshed" for a in healthy)
    assert leases(isolated_dirs) == []


# ------------------------------------------------------------------ 6. odd stored values


def put_odd_logins(emulator, db: KiroCliDb) -> dict[str, dict]:
    """Three real emulator logins in one kiro-cli database, each with an odd (but valid) time."""
    social = seed_into_kiro_cli(emulator, db, kind="social", email="year999@example.com")
    token = dict(social["token"], expires_at="0999-12-31T23:59:59Z")
    db.set_json("auth_kv", "kirocli:social:token", token)
    external = seed_into_kiro_cli(emulator, db, kind="external-idp", email="epoch@example.com")
    db.set_json("auth_kv", "kirocli:external-idp:token", dict(external["token"], expires_at=-60000000000))
    oidc = seed_into_kiro_cli(emulator, db, kind="builder-id", email="oldreg@example.com")
    db.set_json("auth_kv", "kirocli:odic:device-registration",
                dict(oidc["device_registration"], client_secret_expires_at="0999-01-01T00:00:00Z"))
    return {"social": social, "external-idp": external, "builder-id": oidc}


def test_odd_timestamps_import_list_and_refresh(cli, isolated_dirs, kiro_db: KiroCliDb, live_emulator,
                                               env) -> None:
    put_odd_logins(live_emulator, kiro_db)
    imported = cli("import", "--json", env=env)
    assert imported.code == 0, imported.err
    assert len(json.loads(imported.out)["imported"]) == 3
    table = cli("list")
    assert table.code == 0 and table.err == "", table.err
    assert len(table.out.strip().splitlines()) == 4  # a header and three accounts
    with sqlite3.connect(store_file(isolated_dirs)) as db:
        stored = dict(db.execute("SELECT auth_method, expires_at FROM accounts").fetchall())
        registration = db.execute("SELECT client_secret_expires_at FROM accounts WHERE auth_method = 'builder-id'"
                                  ).fetchone()[0]
    assert stored["social"] == "0999-12-31T23:59:59.000000Z"  # four-digit year, six fraction digits
    assert stored["external-idp"] == "0068-09-03T13:20:00.000000Z"  # -60,000,000,000 s from 1970
    assert registration == "0999-01-01T00:00:00.000000Z"
    rows = listed(cli)
    assert len(rows) == 3
    by_method = {row["auth_method"]: row for row in rows.values()}
    assert by_method["social"]["status"] == "expired"
    assert by_method["social"]["expires_at"] == "0999-12-31T23:59:59.000000Z"
    assert by_method["builder-id"]["status"] == "needs-login"
    assert by_method["builder-id"]["client_secret_expires_at"] == "0999-01-01T00:00:00.000000Z"
    due = cli("refresh", "--json", env=env)  # only what is due: the two expired ones
    assert due.code == 0, due.err
    assert sorted(item["outcome"] for item in json.loads(due.out)) == ["refreshed", "refreshed"]
    every = cli("refresh", "--all", "--json", env=env)
    assert every.code == 3, every.err  # the expired registration needs a login; nothing crashed
    outcomes = {item["id"]: item["outcome"] for item in json.loads(every.out)}
    assert sorted(outcomes.values()) == ["refreshed", "refreshed", "skipped"]
    rows = listed(cli)
    assert sorted(row["status"] for row in rows.values()) == ["fresh", "fresh", "needs-login"]


def hand_edit(isolated_dirs: Path, account_id: str, sql: str) -> None:
    with sqlite3.connect(store_file(isolated_dirs)) as db:
        db.execute(sql, (account_id,))


def test_a_hand_edited_row_is_reported_once_and_the_others_keep_working(cli, isolated_dirs, live_emulator,
                                                                       env) -> None:
    good = [add_own(isolated_dirs, live_emulator, kind="social", email=f"ok{i}@example.com") for i in range(2)]
    weird = add_own(isolated_dirs, live_emulator, kind="social", email="weird@example.com")
    broken = add_own(isolated_dirs, live_emulator, kind="builder-id", email="broken@example.com")
    hand_edit(isolated_dirs, weird, "UPDATE accounts SET health = 'weird' WHERE id = ?")
    hand_edit(isolated_dirs, broken, "UPDATE accounts SET extra = '{not json' WHERE id = ?")
    for command in (["list"], ["list", "--json"], ["refresh", "--all", "--json"]):
        result = cli(*command, env=env)
        assert "internal error" not in result.err, (command, result.err)
        for bad in (weird, broken):
            said = (result.err + result.out).count(f"account {bad} cannot be read")
            assert said == 1, (command, result.err, result.out)  # once, on stderr (in the JSON for refresh)
        if command[0] == "list":
            assert all(f"`kiro-tui remove {bad}`" in result.err for bad in (weird, broken)), result.err
        if command == ["list"]:
            assert result.code == 0 and all(a in result.out for a in good) and weird not in result.out
        elif command == ["list", "--json"]:
            assert result.code == 0 and sorted(row["id"] for row in json.loads(result.out)) == sorted(good)
        else:  # refresh --all: the unreadable rows are failures of their own, by name; the others refresh
            assert result.code == 1, result.err
            outcomes = {item["id"]: (item["outcome"], item["message"]) for item in json.loads(result.out)}
            assert {a: outcomes.pop(a)[0] for a in good} == dict.fromkeys(good, "refreshed")
            assert sorted(outcomes) == sorted([weird, broken])
            assert all(f"account {a} cannot be read" in m and f"`kiro-tui remove {a}`" in m
                       for a, (outcome, m) in outcomes.items()), outcomes
    assert "field health holds 'weird'" in cli("list").err
    removed = cli("remove", weird, "--yes")
    assert removed.code == 0 and f"Removed {weird}" in removed.out, removed.err
    assert cli("remove", broken[:5], "--yes").code == 0  # by a prefix, like any id
    after = cli("list")
    assert after.code == 0 and after.err == "", after.err
    assert sorted(listed(cli)) == sorted(good)


@settings(max_examples=400)
@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999),
                    timezones=st.just(UTC)))
def test_timestamps_round_trip_for_every_year(when: datetime) -> None:
    text = format_timestamp(when)
    assert len(text.split("-", 1)[0]) == 4  # the year has four digits, always
    assert parse_timestamp(text) == when
    assert datetime.fromisoformat(text) == when  # and the store's fast path reads it too


@pytest.mark.parametrize("year", [1, 9, 99, 999, 1000, 1969, 1970, 9999])
def test_timestamps_round_trip_at_the_edges(year: int) -> None:
    for when in (datetime(year, 1, 1, tzinfo=UTC), datetime(year, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)):
        assert parse_timestamp(format_timestamp(when)) == when


# ------------------------------------------------------------------ 7. one bad login never aborts an import

BAD_LOGINS = {
    # case: (the bad login's kind, its key, the field named, how to spoil its row)
    "expiry past datetime's end in UTC": ("social", "kirocli:social:token", "expires_at",
                                          lambda token: {**token, "expires_at": "9999-12-31T23:59:59-01:00"}),
    "400-digit epoch": ("external-idp", "kirocli:external-idp:token", "expires_at",
                        lambda token: {**token, "expires_at": 10 ** 399}),
    "lone surrogate": ("idc", "kirocli:odic:token", "start_url",
                       lambda token: {**token, "start_url": "https://d-9067c1a2b3.awsapps.com/start\udc80"}),
}


def put_with_one_bad_login(emulator, db: KiroCliDb, case: str) -> tuple[str, str, list[str]]:
    """Three logins of three kinds in one kiro-cli database; the one of `case` is spoilt."""
    bad_kind, key, field, spoil = BAD_LOGINS[case]
    good = []
    for kind in ("social", "external-idp", "idc"):
        spec = {"start_url": "https://d-9067c1a2b3.awsapps.com/start"} if kind == "idc" else {}
        seeded = seed_into_kiro_cli(emulator, db, kind=kind, email=f"{kind}@example.com", **spec)
        if kind == bad_kind:
            db.set_json("auth_kv", key, spoil(seeded["token"]))
        else:
            good.append(seeded["token_key"])
    raw = db.connect().execute("SELECT value FROM auth_kv WHERE key = ?", (key,)).fetchone()[0]
    assert "\\udc80" in raw or case != "lone surrogate"  # the JSON escape, as another program might write it
    return key, field, good


@pytest.mark.parametrize("case", list(BAD_LOGINS))
def test_one_bad_login_is_skipped_by_name_and_the_others_import(cli, isolated_dirs, kiro_db: KiroCliDb,
                                                                live_emulator, env, case: str) -> None:
    key, field, good = put_with_one_bad_login(live_emulator, kiro_db, case)
    result = cli("import", "--json", env=env)
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert sorted(item["key"] for item in report["imported"]) == sorted(good)
    (skipped,) = [s for s in report["skipped"] if s["key"] == key]
    assert field in skipped["reason"], skipped
    (warning,) = [line for line in result.err.splitlines() if key in line]
    assert warning.startswith("kiro-tui: warning: skipped") and field in warning, result.err
    assert len(listed(cli)) == 2


@pytest.mark.parametrize("case", list(BAD_LOGINS))
async def test_the_engine_watch_pass_imports_the_rest_and_carries_on(isolated_dirs, kiro_db: KiroCliDb, emulator,
                                                                     endpoints, http, case: str) -> None:
    from kiro_tui.core.clock import ManualClock
    from kiro_tui.core.config import Settings
    from kiro_tui.core.engine import Engine
    from kiro_tui.core.events import EngineProblem, ImportFailed, ImportFinished

    key, field, good = put_with_one_bad_login(emulator, kiro_db, case)
    events: list = []
    with AccountStore.open(store_file(isolated_dirs)) as store:
        engine = Engine(store, Settings(), ManualClock(datetime.now(UTC)), endpoints, kiro_db.path, http=http,
                        fetch_usage=False, on_event=events.append)
        await engine.watch_pass()
        (finished,) = [e for e in events if isinstance(e, ImportFinished)]
        assert sorted(item.key for item in finished.report.imported) == sorted(good)
        assert any(s.key == key and field in s.reason for s in finished.report.skipped)
        assert not [e for e in events if isinstance(e, ImportFailed | EngineProblem)], events
        assert sorted(a.source_key for a in store.accounts()) == sorted(good)
        await engine.watch_pass()  # and the next pass is as calm
        assert not [e for e in events if isinstance(e, ImportFailed | EngineProblem)], events


def test_watch_imports_the_rest_and_keeps_running(kiro_tui_exe, isolated_dirs, kiro_db: KiroCliDb, live_emulator,
                                                 env) -> None:
    put_with_one_bad_login(live_emulator, kiro_db, "400-digit epoch")
    watch_config(isolated_dirs)
    watch = Watch(kiro_tui_exe, env)
    try:
        watch.wait_for_line("added from kiro-cli", times=2)  # both good logins
        assert watch.proc.poll() is None, watch.err  # and it keeps watching
        watch.proc.send_signal(signal.SIGTERM)
        assert watch.wait(timeout=60) == 0, watch.err
    finally:
        watch.kill()
    assert watch.err.count("added from kiro-cli") == 2, watch.err
    assert "internal error" not in watch.err and "Traceback" not in watch.err, watch.err


# ------------------------------------------------------------------ 8. two spellings of one path are one login


def test_a_symlink_and_a_dotdot_path_to_one_database_give_one_account(cli, kiro_tui_exe, isolated_dirs, tmp_path,
                                                                     kiro_db: KiroCliDb, live_emulator) -> None:
    seed_into_kiro_cli(live_emulator, kiro_db, kind="builder-id", email="paths@example.com")
    link = tmp_path / "elsewhere" / "kiro.sqlite3"
    link.parent.mkdir()
    link.symlink_to(kiro_db.path)
    dotted = kiro_db.path.parent / ".." / kiro_db.path.parent.name / kiro_db.path.name
    for spelling in (str(link), str(dotted), None):
        result = run_cli(kiro_tui_exe, "import", *(["--db", spelling] if spelling else []))
        assert result.code == 0, result.err
    (row,) = listed(cli).values()
    assert row["source"] == str(kiro_db.path.resolve())


# ------------------------------------------------------------------ 11. errors name their real cause


class ReadOnly:
    """Make a file or folder read-only even for root: the immutable flag (chattr +i) when running
    as root, plain permissions otherwise. Always undone, so pytest can clean up."""

    def __init__(self) -> None:
        self.undo: list = []

    def __call__(self, path: Path) -> None:
        if os.geteuid() == 0:
            done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
            if done.returncode != 0:
                pytest.skip(f"cannot make {path} read-only as root here: {done.stderr.strip()} "
                            "(test_sqlite_read_only_errors_are_classified covers the classification)")
            self.undo.append(lambda: subprocess.run(["chattr", "-i", str(path)], check=True))
        else:
            mode = stat.S_IMODE(path.stat().st_mode)
            path.chmod(0o500 if path.is_dir() else 0o400)
            self.undo.append(lambda: path.chmod(mode))

    def release(self) -> None:
        while self.undo:
            self.undo.pop()()


@pytest.fixture
def read_only():
    made = ReadOnly()
    try:
        yield made
    finally:
        made.release()


def assert_names_read_only(result, *, whole_command: bool) -> None:
    text = result.err + result.out
    assert "internal error" not in text and "move it aside" not in text and "not a readable" not in text, text
    assert "not writable: read-only" in text, text
    assert result.code == 1, text
    if whole_command:
        (line,) = result.err.strip().splitlines()
        assert line.startswith("kiro-tui: error: the account store ") and line.endswith("writable by you"), line


@pytest.mark.parametrize("what", ["folder", "file"])
def test_a_read_only_store_is_named_on_refresh_and_mode(cli, isolated_dirs, kiro_db: KiroCliDb,
                                                        live_emulator, env, read_only, what: str) -> None:
    seed_into_kiro_cli(live_emulator, kiro_db, kind="social", email="ro@example.com")
    assert cli("import").code == 0
    (account_id,) = listed(cli)
    store = store_file(isolated_dirs)
    assert sorted(p.name for p in store.parent.iterdir()) == ["accounts.db"]  # closed cleanly: no -wal, no -shm
    read_only(store.parent if what == "folder" else store)
    refreshed = cli("refresh", "--all", env=env)
    # a read-only folder: the store cannot even be opened (WAL needs its side files); a read-only
    # file: it opens, and the one account's refresh fails by name
    assert_names_read_only(refreshed, whole_command=what == "folder")
    moded = cli("mode", account_id, "follow")
    assert_names_read_only(moded, whole_command=True)
    read_only.release()
    assert listed(cli)[account_id]["mode"] == "sync"  # nothing was half-written
    assert cli("mode", account_id, "follow").code == 0  # and it works once writable


def foreign_database(path: Path) -> bytes:
    """Another program's SQLite file, readable by others (0644)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE history (id INTEGER PRIMARY KEY, command TEXT)")
        db.execute("INSERT INTO history (command) VALUES ('ls -la')")
    db.close()
    path.chmod(0o644)
    return path.read_bytes()


@pytest.mark.parametrize("how", ["at the store path", "through a symbolic link"])
def test_a_foreign_database_is_refused_untouched(cli, isolated_dirs, tmp_path, kiro_db: KiroCliDb,
                                                 live_emulator, env, how: str) -> None:
    seed_into_kiro_cli(live_emulator, kiro_db, kind="social", email="foreign@example.com")
    store = store_file(isolated_dirs)
    target = store if how == "at the store path" else tmp_path / "other-program" / "history.db"
    original = foreign_database(target)
    if target != store:
        store.parent.mkdir(parents=True, exist_ok=True)
        store.symlink_to(target)
    for command in (["list"], ["import"], ["refresh", "--all"], ["list", "--json"]):
        result = cli(*command, env=env)
        assert result.code == 1, (command, result.out, result.err)
        (line,) = result.err.strip().splitlines()
        assert "another program's SQLite database (tables: history)" in line and "internal error" not in line, line
    assert target.read_bytes() == original
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # refused, so never chmod-ed either
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]  # no -wal, -shm or journal left
    with sqlite3.connect(target) as db:
        assert [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["history"]
    db.close()


def test_sqlite_read_only_errors_are_classified(tmp_path: Path) -> None:
    """SQLite's own read-only error (a `mode=ro` connection) is named as such by the store's
    transaction, whatever the file's permissions say (the tests run as root)."""
    from kiro_tui.core.errors import StoreWriteError
    from kiro_tui.core.store import describe_sqlite_error

    path = tmp_path / "store" / "accounts.db"
    AccountStore.open(path).close()
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    with pytest.raises(sqlite3.OperationalError) as raw:
        connection.execute("INSERT INTO preferences (key, value) VALUES ('k', 'v')")
    assert describe_sqlite_error(raw.value) == "read-only"
    store = AccountStore(path, connection)
    with pytest.raises(StoreWriteError) as refused:
        store.set_preference("k", "v")
    assert refused.value.reason == "read-only"  # type: ignore[attr-defined]
    assert str(refused.value) == (f"the account store {path} is not writable: read-only; "
                                  f"make {path} and its folder writable by you")
    assert store.writable() is False
    store.close()
