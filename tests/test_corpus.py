"""A corpus of broken and unusual kiro-cli databases, each run through the installed command
(the seed before it and the `list` after it run in process: they are not what is tested).

Every case ends in a clear message or a correct import, with the documented exit code, no
traceback, and, on error, the store exactly as it was.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.support.kiro_cli_db import (
    DEFAULT_SOCIAL_PROFILE_ARN,
    KiroCliDb,
    rfc3339,
    token,
)
from tests.support.run import InProcessCli, run_cli

SOON = datetime.now(UTC) + timedelta(hours=1)
IST = timezone(timedelta(hours=5, minutes=30))


def social(**changes: object) -> dict[str, object]:
    value: dict[str, object] = {"access_token": token("aoa"), "expires_at": rfc3339(SOON),
                                "refresh_token": token("aor"), "provider": "github",
                                "profile_arn": DEFAULT_SOCIAL_PROFILE_ARN}
    value.update(changes)
    return {k: v for k, v in value.items() if v is not ...}


@dataclass
class Case:
    name: str
    build: Callable[[Path], Path]  # makes the case under a folder; returns the --db path
    code: int  # expected exit code of `kiro-tui import --db`
    needle: str  # in stderr (errors, warnings) or stdout (imports)
    accounts: int = 0  # accounts expected in the store afterwards (besides the seed)


def db_with(folder: Path, *, auth: dict[str, object] | None = None, raw: dict[str, object] | None = None,
            state: dict[str, object] | None = None, wal: bool = False) -> KiroCliDb:
    db = KiroCliDb(folder / "data.sqlite3", wal=wal)
    for key, value in (auth or {}).items():
        db.set_json("auth_kv", key, value)
    for key, value in (raw or {}).items():
        db.set_raw("auth_kv", key, value)
    for key, value in (state or {}).items():
        db.set_json("state", key, value)
    return db


def path_of(db: KiroCliDb) -> Path:
    return db.path


def sqlite_file(folder: Path, script: str) -> Path:
    path = folder / "data.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(script)
    conn.close()
    return path


def truncated(folder: Path) -> Path:
    db = db_with(folder, auth={"kirocli:social:token": social()})
    for i in range(200):
        db.set_raw("state", f"filler{i}", "x" * 500)
    data = db.path.read_bytes()
    db.path.write_bytes(data[: len(data) // 3])
    return db.path


def write(folder: Path, data: bytes) -> Path:
    path = folder / "data.sqlite3"
    path.write_bytes(data)
    return path


def locked(folder: Path) -> Path:
    db = db_with(folder, auth={"kirocli:social:token": social()})
    return db.path  # the test holds an exclusive lock while importing


def wal_only(folder: Path) -> Path:
    db = KiroCliDb(folder / "data.sqlite3", wal=True)
    return db.path  # the test writes the login into the -wal with a writer it keeps open


def symlink_loop(folder: Path) -> Path:
    a, b = folder / "a.sqlite3", folder / "b.sqlite3"
    a.symlink_to(b)
    b.symlink_to(a)
    return a


def deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


ODIC = "kirocli:odic:token"
SOCIAL = "kirocli:social:token"

CASES = [
    Case("truncated file", truncated, 1, "damaged"),
    Case("zero bytes", lambda f: write(f, b""), 1, "is empty (0 bytes)"),
    Case("random bytes", lambda f: write(f, os.urandom(8192)), 1, "not a SQLite database"),
    Case("sqlite header then garbage", lambda f: write(f, b"SQLite format 3\x00" + os.urandom(4096)), 1, "damaged"),
    Case("another app's sqlite", lambda f: sqlite_file(f, "CREATE TABLE moz_places (id INTEGER, url TEXT);"),
         1, "no auth_kv table"),
    Case("no auth_kv table", lambda f: sqlite_file(f, "CREATE TABLE state (key TEXT PRIMARY KEY, value BLOB);"),
         1, "no auth_kv table"),
    Case("no state table", lambda f: sqlite_file(
        f, "CREATE TABLE auth_kv (key TEXT PRIMARY KEY, value TEXT);"
           f"INSERT INTO auth_kv VALUES ('{SOCIAL}', '{json.dumps(social())}');"), 0, "added", 1),
    Case("extra keys and tables", lambda f: path_of(db_with(
        f, auth={SOCIAL: social(), "kirocli:foo:token": {"x": 1}, "something-else": [1]},
        state={"telemetryClientId": "abc", "unknown.key": {"deep": True}})), 0, "added", 1),
    Case("blob values", lambda f: path_of(db_with(f, raw={SOCIAL: json.dumps(social()).encode()})), 0, "added", 1),
    Case("blob that is not utf-8", lambda f: path_of(db_with(f, raw={SOCIAL: b"\xff\xfe\x00bad"})),
         1, "binary, not UTF-8"),
    Case("json list", lambda f: path_of(db_with(f, raw={SOCIAL: "[1, 2]"})), 1, "is a JSON array"),
    Case("json number", lambda f: path_of(db_with(f, raw={SOCIAL: "42"})), 1, "is a JSON number"),
    Case("json null", lambda f: path_of(db_with(f, raw={SOCIAL: "null"})), 1, "is a JSON null"),
    Case("json string", lambda f: path_of(db_with(f, raw={SOCIAL: '"aoaAAAAAG"'})), 1, "is a JSON string"),
    Case("deeply nested json", lambda f: path_of(db_with(f, raw={SOCIAL: deep_json(100_000)})),
         1, "not JSON"),
    Case("not json", lambda f: path_of(db_with(f, raw={SOCIAL: "{access_token: nope"})), 1, "not JSON"),
    Case("missing access token", lambda f: path_of(db_with(f, auth={SOCIAL: social(access_token=...)})),
         1, "field 'access_token' is missing"),
    Case("access token wrong type", lambda f: path_of(db_with(f, auth={SOCIAL: social(access_token=123)})),
         1, "field 'access_token' is a number"),
    Case("scopes wrong type", lambda f: path_of(db_with(f, auth={ODIC: {"access_token": "a" * 30,
         "expires_at": rfc3339(SOON), "refresh_token": "r" * 30, "scopes": 5}})), 1, "'scopes' must be a list"),
    Case("nine fraction digits", lambda f: path_of(db_with(
        f, auth={SOCIAL: social(expires_at=rfc3339(SOON)[:19] + ".123456789Z")})), 0, "added", 1),
    Case("offset not Z", lambda f: path_of(db_with(
        f, auth={SOCIAL: social(expires_at=SOON.astimezone(IST).isoformat())})), 0, "added", 1),
    Case("no timezone", lambda f: path_of(db_with(f, auth={SOCIAL: social(expires_at="2030-01-01T00:00:00")})),
         1, "with a timezone"),
    Case("year 9999", lambda f: path_of(db_with(f, auth={SOCIAL: social(expires_at="9999-12-31T23:59:59Z")})),
         0, "added", 1),
    Case("expired long ago", lambda f: path_of(db_with(f, auth={SOCIAL: social(expires_at="2001-01-01T00:00:00Z")})),
         0, "added", 1),
    Case("epoch milliseconds", lambda f: path_of(db_with(
        f, auth={SOCIAL: social(expires_at=int(SOON.timestamp() * 1000))})), 0, "added", 1),
    Case("registration region differs", lambda f: _registration_mismatch(f), 0, "added", 1),
    Case("social without profile arn", lambda f: path_of(db_with(f, auth={SOCIAL: social(profile_arn=None)})),
         0, "added", 1),
    Case("legacy and new duplicates", lambda f: _legacy_and_new(f), 0, "added", 1),
    Case("oidc spelling", lambda f: _oidc_spelling(f), 0, "added", 1),
    Case("only a registration", lambda f: path_of(db_with(f, auth={
        "kirocli:odic:device-registration": {"client_id": "c", "client_secret": "s", "region": "us-east-1"}})),
         1, "no login in"),
    Case("empty kiro-cli database", lambda f: path_of(db_with(f)), 1, "no login in"),
    Case("path is a directory", lambda f: (f / "dir.sqlite3").mkdir() or f / "dir.sqlite3", 1, "is a folder"),
    Case("path does not exist", lambda f: f / "missing" / "data.sqlite3", 1, "does not exist"),
    Case("symlink loop", symlink_loop, 1, "cannot read kiro-cli database"),
    Case("locked exclusively", locked, 1, "locked by another program"),
    Case("login only in the wal", wal_only, 0, "added", 1),
]


def _registration_mismatch(folder: Path) -> Path:
    db = KiroCliDb(folder / "data.sqlite3")
    db.put_oidc(start_url="https://d-1.awsapps.com/start", region="eu-west-1", registration_region="us-east-1")
    return db.path


def _legacy_and_new(folder: Path) -> Path:
    db = KiroCliDb(folder / "data.sqlite3")
    db.put_oidc(key_prefix="codewhisperer")
    db.put_oidc(key_prefix="kirocli")
    return db.path


def _oidc_spelling(folder: Path) -> Path:
    db = KiroCliDb(folder / "data.sqlite3")
    db.set_json("auth_kv", "kirocli:oidc:token", {"access_token": "a" * 30, "expires_at": rfc3339(SOON),
                                                   "refresh_token": "r" * 30, "region": "us-east-1"})
    return db.path


def store_snapshot(isolated_dirs: Path) -> list[tuple]:
    path = isolated_dirs / "data" / "kiro-tui" / "accounts.db"
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT * FROM accounts ORDER BY id").fetchall()
    conn.close()
    return rows


def test_the_corpus_is_big_enough() -> None:
    assert len(CASES) >= 30
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_corpus_case(case: Case, kiro_tui_exe: str, cli: InProcessCli, isolated_dirs: Path, tmp_path: Path) -> None:
    seed = KiroCliDb(tmp_path / "seed" / "data.sqlite3")
    seed.put_oidc(start_url="https://d-seed.awsapps.com/start")
    assert cli("import", "--db", str(seed.path)).code == 0
    before = store_snapshot(isolated_dirs)
    folder = tmp_path / "case"
    folder.mkdir()
    db = case.build(folder)
    # Before any lock is taken: closing a descriptor of the file in this process would drop
    # the holder's POSIX locks.
    digest = db.read_bytes() if db.is_file() else None
    holders: list[sqlite3.Connection] = []
    if case.name == "locked exclusively":
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        holders.append(holder)
    if case.name == "login only in the wal":
        holder = sqlite3.connect(db)
        holder.execute("PRAGMA wal_autocheckpoint=0")
        holder.execute("INSERT INTO auth_kv (key, value) VALUES (?1, ?2)", (SOCIAL, json.dumps(social())))
        holder.commit()
        holders.append(holder)
    try:
        result = run_cli(kiro_tui_exe, "import", "--db", str(db))
    finally:
        for holder in holders:
            holder.close()
    assert result.code == case.code, (result.out, result.err)
    assert case.needle in (result.err if case.code else result.out), (result.out, result.err)
    if case.code:
        assert result.err.strip().splitlines()[-1].startswith("kiro-tui: error: ")
        assert store_snapshot(isolated_dirs) == before  # untouched on error
    else:
        assert len(store_snapshot(isolated_dirs)) == len(before) + case.accounts
    if digest is not None and case.name != "login only in the wal":
        assert db.read_bytes() == digest  # read-only, always
    listed = cli("list", "--json")
    assert listed.code == 0  # whatever was imported can be shown
