"""Every place format: read as its tool writes it, survive whatever else is there, write back
in the tool's own shape and nothing more.

Fixtures are built the way each tool writes its files (tests/support/places.py) from logins the
emulator hands out, and a read login is refreshed against the emulator to show it is usable.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kiro_tui.core.aws.external_idp import ExternalIdpClient
from kiro_tui.core.aws.oidc import OidcClient
from kiro_tui.core.aws.social import SocialClient
from kiro_tui.core.masking import fingerprint
from kiro_tui.core.models import Account, AuthMethod, PlaceState
from kiro_tui.core.places import (
    FORMATS,
    PlaceError,
    TokenCopy,
    WriteOutcome,
    gateway_sqlite_paths,
)
from kiro_tui.core.places._files import MAX_PLACE_BYTES
from kiro_tui.core.places.base import PlaceLogin, place_signature
from kiro_tui.core.places.gateway import create_gateway_db
from kiro_tui.core.places.kiro_cli import read_kiro_cli
from kiro_tui.core.timefmt import format_timestamp, parse_timestamp
from tests.support.engine import account_from_seed, at
from tests.support.places import (
    Login,
    aiclient_record,
    cliproxy_record,
    go_marshal,
    go_rfc3339,
    js_iso,
    js_stringify,
    login_of,
    opencode_row,
    seed,
    write_aiclient,
    write_cliproxy,
    write_gateway,
    write_gateway_credentials,
    write_kiro_ide,
    write_opencode,
)
from tests.support.standins import py310_parse

JSON_KINDS = ("kiro-ide", "cliproxy", "aiclient", "gateway")
NEW_EXPIRY = datetime(2027, 3, 4, 5, 6, 7, 891234, tzinfo=UTC)
GO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")

WRITERS: dict[str, Callable[[Path, Login], Path]] = {
    "kiro-ide": lambda home, login: write_kiro_ide(home / ".aws" / "sso" / "cache", login),
    "cliproxy": lambda home, login: write_cliproxy(home / ".cli-proxy-api", login),
    "opencode": lambda home, login: write_opencode(home / "config" / "opencode" / "kiro.db", [opencode_row(login)]),
    "aiclient": lambda home, login: write_aiclient(home / "AIClient-2-API", login),
    "gateway": lambda home, login: write_gateway(home / "gateway" / "kiro-creds.json", login),
}
# Where a tool keeps too little to tell Builder ID from IdC, the login reads as Builder ID.
READS_AS = {("opencode", "idc"): AuthMethod.BUILDER_ID, ("gateway", "idc"): AuthMethod.BUILDER_ID}
KEEPS_START_URL = {"cliproxy", "aiclient"}
KEEPS_EMAIL = {"cliproxy", "opencode"}
# Timestamp precision each tool writes: JS milliseconds, Go seconds, epoch milliseconds, Python microseconds.
PRECISION = {"kiro-ide": timedelta(milliseconds=1), "aiclient": timedelta(milliseconds=1),
             "opencode": timedelta(milliseconds=1), "cliproxy": timedelta(seconds=1), "gateway": timedelta(0)}
READ_CASES = [(kind, auth) for kind in WRITERS for auth in ("social", "builder-id", "idc")] + [
    ("gateway", "external-idp")]


@pytest.fixture(autouse=True)
def home(isolated_dirs: Path) -> Path:
    isolated_dirs.mkdir(parents=True, exist_ok=True)
    return isolated_dirs


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` and its bytes: a read must leave this exactly as it was."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


async def refresh_with(login: PlaceLogin, http, endpoints):  # type: ignore[no-untyped-def]
    """Refresh a read login the way kiro-tui's refresher routes it."""
    assert login.refresh_token
    if login.auth_method is AuthMethod.SOCIAL:
        return await SocialClient(http, endpoints).refresh(login.refresh_token, "us-east-1")
    if login.auth_method is AuthMethod.EXTERNAL_IDP:
        assert login.token_endpoint and login.client_id
        return await ExternalIdpClient(http, endpoints).refresh(login.token_endpoint, login.client_id,
                                                                 login.refresh_token, login.scopes)
    assert login.client_id and login.client_secret
    return await OidcClient(http, endpoints).refresh(login.region, login.client_id, login.client_secret,
                                                     login.refresh_token)


def one_line_naming(message: str, path: Path) -> None:
    assert "\n" not in message and str(path) in message, message
    assert "Traceback" not in message


# -- reading, as each tool writes ------------------------------------------------------------

@pytest.mark.parametrize(("kind", "auth"), READ_CASES)
async def test_reads_each_format_and_auth_kind_and_the_login_refreshes(
        kind: str, auth: str, emulator, emulator_time, endpoints, http, isolated_dirs: Path) -> None:
    login = seed(emulator, auth)
    path = WRITERS[kind](isolated_dirs, login)
    before = tree(isolated_dirs)
    place = FORMATS[kind]
    now = at(emulator_time.now)

    snapshot = place.scan(path, now)

    assert snapshot.kind == kind and snapshot.skipped == [] and len(snapshot.logins) == 1
    read = snapshot.logins[0]
    assert read.auth_method is READS_AS.get((kind, auth), AuthMethod(auth))
    assert (read.access_token, read.refresh_token) == (login.access_token, login.refresh_token)
    assert timedelta(0) <= login.expires_at - read.expires_at <= PRECISION[kind]
    assert read.needs_login is None
    if auth in ("builder-id", "idc"):
        assert (read.client_id, read.client_secret, read.region) == (login.client_id, login.client_secret,
                                                                     login.region)
    if auth == "idc" and kind in KEEPS_START_URL:
        assert read.start_url == login.start_url
    if auth == "social":
        assert read.profile_arn == login.profile_arn and read.region == "us-east-1"
    assert read.email == (login.email if kind in KEEPS_EMAIL else None)
    assert read.key == (opencode_row(login)["id"] if kind == "opencode" else "")
    assert place.read_entry(path, read.key, now) == read
    assert tree(isolated_dirs) == before, "reading wrote to the place"

    refreshed = await refresh_with(read, http, endpoints)
    assert refreshed.access_token and refreshed.refresh_token != login.refresh_token


def test_social_providers_and_registrations_come_from_each_tools_own_fields(emulator, isolated_dirs: Path) -> None:
    login = seed(emulator, "social")
    ide = FORMATS["kiro-ide"].scan(WRITERS["kiro-ide"](isolated_dirs, login), datetime.now(UTC)).logins[0]
    proxy = FORMATS["cliproxy"].scan(WRITERS["cliproxy"](isolated_dirs, login), datetime.now(UTC)).logins[0]
    ai = FORMATS["aiclient"].scan(WRITERS["aiclient"](isolated_dirs, login), datetime.now(UTC)).logins[0]
    assert ide.provider == proxy.provider == ai.provider == "github"
    assert ide.client_id is None and proxy.client_secret is None


def test_either_spelling_and_any_time_format_are_read(isolated_dirs: Path) -> None:
    """camelCase in a snake_case tool's file, epoch seconds and milliseconds, `+00:00` offsets."""
    folder = isolated_dirs / "liberal"
    folder.mkdir()
    expiry = datetime(2027, 1, 1, 12, 0, tzinfo=UTC)
    proxy = folder / "camel.json"
    proxy.write_text(json.dumps({"type": "kiro", "accessToken": "a1", "refreshToken": "r1",
                                 "expiresAt": int(expiry.timestamp()), "authMethod": "social", "provider": "Google"}))
    ide = folder / "kiro-auth-token.json"
    ide.write_text(json.dumps({"access_token": "a2", "refresh_token": "r2",
                               "expires_at": int(expiry.timestamp() * 1000),
                               "auth_method": "social", "provider": "GitHub"}))
    gateway = folder / "creds.json"
    gateway.write_text(json.dumps({"accessToken": "a3", "refreshToken": "r3", "expiresAt": "2027-01-01T12:00:00Z"}))
    now = datetime(2026, 1, 1, tzinfo=UTC)

    cases = (("cliproxy", proxy, "google"), ("kiro-ide", ide, "github"), ("gateway", gateway, None))
    for kind, path, provider in cases:
        (read,) = FORMATS[kind].scan(path, now).logins
        assert read.expires_at == expiry and read.auth_method is AuthMethod.SOCIAL and read.provider == provider


def test_of_two_spellings_of_the_token_the_newer_wins(isolated_dirs: Path) -> None:
    """kirollm's shape: fresh camelCase fields beside stale snake_case ones."""
    path = isolated_dirs / "twins.json"
    path.write_text(json.dumps({"type": "kiro", "access_token": "old-a", "refresh_token": "old-r",
                                "expires_at": "2026-01-01T00:00:00Z", "accessToken": "new-a", "refreshToken": "new-r",
                                "expiresAt": "2026-06-01T00:00:00.000Z", "auth_method": "social"}))
    (read,) = FORMATS["cliproxy"].scan(path, datetime(2025, 1, 1, tzinfo=UTC)).logins
    assert (read.access_token, read.refresh_token) == ("new-a", "new-r")


def test_a_login_that_cannot_refresh_is_marked_not_skipped(isolated_dirs: Path) -> None:
    folder = isolated_dirs / "cache"
    folder.mkdir()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    token = {"accessToken": "a", "refreshToken": "r", "expiresAt": "2026-01-01T01:00:00.000Z",
             "authMethod": "IdC", "provider": "BuilderId", "region": "us-east-1"}
    cases = {
        "no refresh token": ({**token, "refreshToken": None}, "holds no refresh token"),
        "registration missing": ({**token, "clientIdHash": "abc123"}, "abc123.json does not exist"),
        "hash that is a path": ({**token, "clientIdHash": "../../etc/passwd"}, "is not a file name"),
        "registration expired": ({**token, "clientIdHash": "old"}, "registration for"),
    }
    (folder / "old.json").write_text(json.dumps({"clientId": "c", "clientSecret": "s",
                                                 "expiresAt": "2025-12-01T00:00:00.000Z"}))
    for name, (value, needle) in cases.items():
        path = folder / "kiro-auth-token.json"
        path.write_text(json.dumps(value))
        (read,) = FORMATS["kiro-ide"].scan(path, now).logins
        assert read.needs_login and needle in read.needs_login, name


# -- finding place files --------------------------------------------------------------------

def test_default_paths_follow_home_and_xdg(isolated_dirs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIRO_CREDS_FILE", "~/gw/creds.json")
    assert FORMATS["gateway"].default_paths() == [isolated_dirs / "gw" / "creds.json"]
    assert FORMATS["kiro-ide"].default_paths() == [isolated_dirs / ".aws" / "sso" / "cache" / "kiro-auth-token.json"]
    assert FORMATS["cliproxy"].default_paths() == [isolated_dirs / ".cli-proxy-api"]
    assert FORMATS["opencode"].default_paths() == [isolated_dirs / "config" / "opencode" / "kiro.db"]
    assert FORMATS["aiclient"].default_paths() == []  # its file lives wherever the user runs it


def test_cliproxy_folder_yields_kiro_files_and_ones_it_cannot_read(emulator, isolated_dirs: Path) -> None:
    folder = isolated_dirs / ".cli-proxy-api"
    good = write_cliproxy(folder, seed(emulator, "social"))
    (folder / "codex-someone.json").write_text(json.dumps({"type": "codex", "access_token": "x"}))
    (folder / "config.json").write_text(json.dumps({"port": 8317}))
    (folder / "notes.txt").write_text("not an auth file")
    broken = folder / "kiro-broken.json"
    broken.write_text('{"type": "kiro", "access_token": ')
    odd = folder / "kiro-odd.json"
    odd.write_text(json.dumps({"type": "kiro", "access_token": "a", "refresh_token": "\udc80",
                               "expires_at": "2026-01-01T00:00:00Z"}))

    found = FORMATS["cliproxy"].discover(folder)

    assert found == sorted([good, broken, odd])
    now = datetime.now(UTC)
    assert len(FORMATS["cliproxy"].scan(good, now).logins) == 1  # the others do not stop it
    with pytest.raises(PlaceError) as caught:
        FORMATS["cliproxy"].scan(broken, now)
    one_line_naming(str(caught.value), broken)
    assert FORMATS["cliproxy"].scan(odd, now).skipped == [
        ("", "field 'refresh_token' holds an unpaired surrogate (not text)")]
    with pytest.raises(PlaceError, match="not a Kiro auth file"):
        FORMATS["cliproxy"].scan(folder / "codex-someone.json", now)


def test_aiclient_folder_and_its_merge_of_every_json_beside_the_file(emulator, isolated_dirs: Path) -> None:
    root = isolated_dirs / "AIClient-2-API"
    first = write_aiclient(root, seed(emulator, "builder-id"), stamp=1)
    second = write_aiclient(root, seed(emulator, "social"), stamp=2)
    (root / "configs" / "provider_pools.json").write_text("[]")
    assert FORMATS["aiclient"].discover(root) == [first, second]
    assert FORMATS["aiclient"].discover(first) == [first]

    now = datetime.now(UTC)
    (first.parent / "region.json").write_text(json.dumps({"idcRegion": "us-west-2", "expiresAt": "1999-01-01"}))
    (read,) = FORMATS["aiclient"].scan(first, now).logins
    assert read.region == "us-west-2" and read.expires_at > now  # laid over the file, all but expiresAt

    (second.parent / "another-account.json").write_text(json.dumps({"refreshToken": "someone else's"}))
    snapshot = FORMATS["aiclient"].scan(second, now)
    assert snapshot.logins == [] and "another-account.json" in snapshot.skipped[0][1]
    assert "one account per folder" in snapshot.skipped[0][1]


def test_gateway_credentials_json_is_followed_and_its_databases_listed(emulator, isolated_dirs: Path) -> None:
    base = isolated_dirs / "gateway"
    creds = write_gateway(base / "main.json", seed(emulator, "social"))
    off = write_gateway(base / "off.json", seed(emulator, "social"))
    pool = base / "pool"
    pooled = write_gateway(pool / "a.json", seed(emulator, "builder-id"))
    (pool / "settings.json").write_text(json.dumps({"theme": "dark"}))
    db_account = account_from_seed(emulator.seed(kind="social", email="db@example.com"), "d1")
    db = create_gateway_db(base / "kiro.sqlite3", db_account).path
    dbs = base / "dbs"
    dbs.mkdir()
    in_folder = create_gateway_db(dbs, db_account).path
    (dbs / "other.sqlite3").write_bytes(b"SQLite format 3\x00" + bytes(200))
    listing = write_gateway_credentials(base / "credentials.json", [
        {"type": "json", "path": "main.json", "enabled": True},
        {"type": "json", "path": str(off), "enabled": False},
        {"type": "json", "path": "pool"},
        {"type": "refresh_token", "refresh_token": "r", "region": "us-east-1"},
        {"type": "sqlite", "path": "kiro.sqlite3"},
        {"type": "sqlite", "path": "dbs"},
        "not an entry",
    ])

    assert FORMATS["gateway"].discover(listing) == [creds, pooled]
    assert gateway_sqlite_paths(listing) == [db, in_folder]
    assert FORMATS["gateway"].discover(creds) == [creds]
    with pytest.raises(PlaceError, match="list of credentials"):
        FORMATS["gateway"].scan(listing, datetime.now(UTC))


def test_ide_and_opencode_folders_name_their_one_file(emulator, isolated_dirs: Path) -> None:
    ide = WRITERS["kiro-ide"](isolated_dirs, seed(emulator, "idc"))
    assert FORMATS["kiro-ide"].discover(ide.parent) == [ide]
    db = WRITERS["opencode"](isolated_dirs, seed(emulator, "social"))
    assert FORMATS["opencode"].discover(db.parent) == [db]
    assert FORMATS["opencode"].discover(isolated_dirs / "nowhere") == []


# -- broken and foreign files: one clean message, nothing written ----------------------------

BROKEN_FILES = {
    "not JSON": (b'{"accessToken": ', "is not valid JSON"),
    "empty": (b"", "is empty"),
    "an array": (b"[1, 2]", "holds a JSON array"),
    "a string": (b'"a token"', "holds a JSON string"),
    "not UTF-8": (b'{"accessToken": "\xff\xfe"}', "is not UTF-8"),
    "nested too deep": (b"[" * 100_000 + b"]" * 100_000, "not a token file"),
    "a 5,000-digit number": (b'{"expiresAt": ' + b"9" * 5000 + b"}", "not a token file"),
    "over 1 MB": (b'{"accessToken": "' + b"x" * MAX_PLACE_BYTES + b'"}', "larger than 1 MB"),
}


@pytest.mark.parametrize("kind", JSON_KINDS)
@pytest.mark.parametrize("case", list(BROKEN_FILES))
def test_a_broken_file_is_one_clean_message_and_stays_as_it_was(kind: str, case: str, isolated_dirs: Path) -> None:
    data, needle = BROKEN_FILES[case]
    if kind == "gateway" and case == "an array":
        needle = "list of credentials"
    path = isolated_dirs / "place" / "kiro-auth-token.json"
    path.parent.mkdir()
    path.write_bytes(data)
    place = FORMATS[kind]

    for read in (lambda: place.scan(path, datetime.now(UTC)), lambda: place.read_entry(path, "", datetime.now(UTC))):
        with pytest.raises(PlaceError) as caught:
            read()
        one_line_naming(str(caught.value), path)
        assert needle in str(caught.value)
    assert path.read_bytes() == data
    assert [p.name for p in path.parent.iterdir()] == [path.name]


FIELD_FAULTS = {  # field (snake_case), value -> what the skip reason says
    "refresh_token": ("\udc80", "holds an unpaired surrogate (not text)"),
    "access_token": (5, "is a number, expected a string"),
    "expires_at": (True, "expected an RFC 3339 timestamp"),
}
RECORDS: dict[str, Callable[[Login], dict[str, object]]] = {
    "kiro-ide": lambda login: {"accessToken": login.access_token, "refreshToken": login.refresh_token,
                               "profileArn": login.profile_arn, "expiresAt": js_iso(login.expires_at),
                               "authMethod": "social", "provider": "Github"},
    "cliproxy": cliproxy_record,
    "aiclient": aiclient_record,
    "gateway": lambda login: {"refreshToken": login.refresh_token, "accessToken": login.access_token,
                              "expiresAt": login.expires_at.isoformat()},
}


@pytest.mark.parametrize("kind", JSON_KINDS)
@pytest.mark.parametrize("field", list(FIELD_FAULTS))
def test_a_field_that_cannot_be_used_skips_the_login_naming_it(kind: str, field: str, emulator,
                                                               isolated_dirs: Path) -> None:
    value, reason = FIELD_FAULTS[field]
    record = RECORDS[kind](seed(emulator, "social"))
    name = field if kind == "cliproxy" else re.sub(r"_(\w)", lambda m: m[1].upper(), field)
    record[name] = value
    path = isolated_dirs / "place.json"
    path.write_text(json.dumps(record))  # ensure_ascii: the surrogate is the escape "\udc80"
    data = path.read_bytes()

    snapshot = FORMATS[kind].scan(path, datetime.now(UTC))

    assert snapshot.logins == [] and len(snapshot.skipped) == 1
    assert f"field {name!r}" in snapshot.skipped[0][1] and reason in snapshot.skipped[0][1]
    with pytest.raises(PlaceError, match=re.escape(f"field {name!r}")):
        FORMATS[kind].read_entry(path, "", datetime.now(UTC))
    assert path.read_bytes() == data


def _loop(path: Path) -> None:
    os.symlink(path.with_name("b"), path)
    os.symlink(path, path.with_name("b"))


@pytest.mark.parametrize("kind", [*JSON_KINDS, "opencode"])
@pytest.mark.parametrize(("case", "make", "needle"), [
    ("a symbolic link loop", _loop, "loops"),
    ("a folder", lambda path: path.mkdir(), "is a folder"),
    ("a pipe", lambda path: os.mkfifo(path), "not a regular file"),
    ("a link to nothing", lambda path: os.symlink(path.with_name("gone"), path), "which does not exist"),
])
def test_what_is_not_a_file_is_named_without_hanging(kind: str, case: str, make: Callable[[Path], None],
                                                      needle: str, isolated_dirs: Path) -> None:
    path = isolated_dirs / "place" / "kiro.db"
    path.parent.mkdir()
    make(path)
    with pytest.raises(PlaceError) as caught:
        FORMATS[kind].scan(path, datetime.now(UTC))
    one_line_naming(str(caught.value), path)
    assert needle in str(caught.value)
    if case == "a link to nothing":
        assert FORMATS[kind].read_entry(path, "", datetime.now(UTC)) is None  # not there, not broken


@pytest.mark.parametrize("kind", [*JSON_KINDS, "opencode"])
def test_permission_denied_says_whose_file_it_is(kind: str, emulator, isolated_dirs: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = WRITERS[kind](isolated_dirs, seed(emulator, "social"))
    real_open = os.open

    def refusing_open(target, *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(target) == path:  # the tests run as root, who may read anything: deny it here
            raise PermissionError(errno.EACCES, "Permission denied", str(target))
        return real_open(target, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing_open)
    with pytest.raises(PlaceError) as caught:
        FORMATS[kind].scan(path, datetime.now(UTC))
    one_line_naming(str(caught.value), path)
    assert "permission denied; run kiro-tui as the user who owns it" in str(caught.value)


# -- opencode's database --------------------------------------------------------------------

def test_opencode_bad_rows_are_skipped_by_id_and_the_others_read(emulator, isolated_dirs: Path) -> None:
    good = opencode_row(seed(emulator, "social"))
    bad_bytes = {**opencode_row(seed(emulator, "builder-id")), "id": "bad-bytes"}
    bad_time = {**opencode_row(seed(emulator, "idc")), "id": "bad-time", "expires_at": "soon"}
    placeholder = {**good, "id": "placeholder", "refresh_token": "r-p",
                   "email": "idc-placeholder+0123456789abcdef@awsapps.local"}
    path = write_opencode(isolated_dirs / "kiro.db", [good, bad_bytes, bad_time, placeholder])
    conn = sqlite3.connect(path)
    conn.execute("UPDATE accounts SET refresh_token = CAST(x'61ff62' AS TEXT) WHERE id = 'bad-bytes'")
    conn.commit()
    conn.close()
    before = tree(isolated_dirs)

    snapshot = FORMATS["opencode"].scan(path, datetime.now(UTC))

    assert [login.key for login in snapshot.logins] == [good["id"], "placeholder"]
    assert snapshot.logins[1].email is None  # opencode's stand-in address is nobody's
    assert dict(snapshot.skipped) == {
        "bad-bytes": "field 'refresh_token' holds an unpaired surrogate (not text)",
        "bad-time": "field 'expires_at': 'soon' is not an RFC 3339 timestamp with a timezone "
                    "(like 2026-01-24T02:29:46.233105Z)",
    }
    with pytest.raises(PlaceError, match="account bad-bytes: field 'refresh_token'"):
        FORMATS["opencode"].read_entry(path, "bad-bytes", datetime.now(UTC))
    assert FORMATS["opencode"].read_entry(path, "no-such-row", datetime.now(UTC)) is None
    assert tree(isolated_dirs) == before  # no -wal or -shm left beside a closed database


@pytest.mark.parametrize(("case", "build", "needle"), [
    ("not SQLite", lambda path: path.write_bytes(b"hello, opencode" * 20), "is not a SQLite database"),
    ("empty", lambda path: path.write_bytes(b""), "is empty"),
    ("no accounts table", lambda path: sqlite3.connect(path).executescript("CREATE TABLE t (x);").close(),
     "no accounts table"),
    ("damaged", lambda path: path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000), "is damaged"),
])
def test_opencode_database_that_is_not_one(case: str, build: Callable[[Path], None], needle: str,
                                           isolated_dirs: Path) -> None:
    path = isolated_dirs / "kiro.db"
    build(path)
    data = path.read_bytes()
    with pytest.raises(PlaceError) as caught:
        FORMATS["opencode"].scan(path, datetime.now(UTC))
    one_line_naming(str(caught.value), path)
    assert needle in str(caught.value)
    assert path.read_bytes() == data


def test_opencode_rows_only_in_the_wal_are_seen_while_opencode_runs(emulator, isolated_dirs: Path) -> None:
    path = write_opencode(isolated_dirs / "kiro.db", [opencode_row(seed(emulator, "social"))])
    later = opencode_row(seed(emulator, "builder-id"))
    writer = sqlite3.connect(path)
    try:
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute(f"INSERT INTO accounts ({', '.join(later)}) VALUES ({', '.join('?' * len(later))})",
                       tuple(later.values()))
        writer.commit()
        assert Path(f"{path}-wal").stat().st_size > 0
        data = path.read_bytes()
        snapshot = FORMATS["opencode"].scan(path, datetime.now(UTC))
        assert later["id"] in [login.key for login in snapshot.logins]
        assert path.read_bytes() == data
    finally:
        writer.close()


def test_opencode_locked_by_a_writer_is_a_clean_message(emulator, isolated_dirs: Path) -> None:
    path = isolated_dirs / "kiro.db"
    conn = sqlite3.connect(path)
    conn.executescript("CREATE TABLE accounts (id TEXT PRIMARY KEY);")  # rollback journal: a writer blocks readers
    conn.close()
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(PlaceError, match="stayed locked by another program"):
            FORMATS["opencode"].read_entry(path, "x", datetime.now(UTC), busy_timeout=0.05)
    finally:
        holder.close()


def test_opencode_is_never_written(emulator, isolated_dirs: Path) -> None:
    login = seed(emulator, "social")
    path = WRITERS["opencode"](isolated_dirs, login)
    before = tree(isolated_dirs)
    result = FORMATS["opencode"].write_token(path, str(opencode_row(login)["id"]),
                                             TokenCopy("a", "r", NEW_EXPIRY), lambda _: True, 1.0)
    assert result.outcome is WriteOutcome.REFUSED and result.state is PlaceState.ERROR
    assert "link this account to kiro-cli" in result.detail and not FORMATS["opencode"].writable
    with pytest.raises(PlaceError, match="never writes opencode's kiro.db"):
        FORMATS["opencode"].create(isolated_dirs / "new.db", account_from_seed(emulator.seed(kind="social"), "x"))
    assert tree(isolated_dirs) == before


# -- writing back: the tool's own shape, nothing else changed -------------------------------

def spent(login: Login) -> Callable[[str | None], bool]:
    """The lineage test the refresher passes: the token the place holds is this account's."""
    return lambda held: held == fingerprint(login.refresh_token)


def new_copy(profile_arn: str | None = None) -> TokenCopy:
    return TokenCopy("aoa-new-access", "aor-new-refresh", NEW_EXPIRY, profile_arn)


def test_ide_write_changes_only_the_owned_values(emulator, isolated_dirs: Path) -> None:
    login = seed(emulator, "social")
    path = isolated_dirs / "kiro-auth-token.json"
    template = ('{\n  "accessToken": "%s",\n  "refreshToken": "%s",\n  "profileArn": "%s",\n'
                '  "expiresAt": "%s",\n  "authMethod": "social",\n  "provider": "Github",\n'
                '  "ideVersion": "0.2.13 \\u00e9 ü",\n  "nested": {"accessToken": "not ours"},\n  "n": 1.50\n}')
    path.write_text(template % (login.access_token, login.refresh_token, login.profile_arn, js_iso(login.expires_at)))
    path.chmod(0o640)
    arn = "arn:aws:codewhisperer:us-east-1:111122223333:profile/NEWPROFILE"

    result = FORMATS["kiro-ide"].write_token(path, "", new_copy(arn), spent(login), 1.0)

    assert result.outcome is WriteOutcome.WRITTEN
    assert path.read_text() == template % ("aoa-new-access", "aor-new-refresh", arn, "2027-03-04T05:06:07.891Z")
    assert path.stat().st_mode & 0o777 == 0o600 and not path.is_symlink()  # a token file is private after a write
    assert "was mode 0640" in result.detail
    assert [p.name for p in isolated_dirs.iterdir() if p.is_file()] == [path.name]  # no temporary file left


def test_cliproxy_write_keeps_go_shape_and_sets_last_refresh(emulator, isolated_dirs: Path) -> None:
    login = seed(emulator, "builder-id")
    path = write_cliproxy(isolated_dirs, login, label="work", disabled=False, metadata={"z": [1, 2]})
    record = json.loads(path.read_text())
    started = datetime.now(UTC).replace(microsecond=0)

    result = FORMATS["cliproxy"].write_token(path, "", new_copy(), spent(login), 1.0)

    written = json.loads(path.read_text())
    assert result.outcome is WriteOutcome.WRITTEN and GO_TIME.match(written["last_refresh"])
    assert started <= parse_timestamp(written["last_refresh"]) <= datetime.now(UTC)
    record.update(access_token="aoa-new-access", refresh_token="aor-new-refresh", expires_at="2027-03-04T05:06:07Z",
                  last_refresh=written["last_refresh"])
    assert path.read_text() == go_marshal(record)  # byte for byte: compact, sorted, unknown fields kept
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_missing_owned_field_is_added_in_the_files_own_spacing(emulator, isolated_dirs: Path) -> None:
    login = seed(emulator, "social")
    record = aiclient_record(login)
    del record["profileArn"]
    path = write_aiclient(isolated_dirs, login)
    path.write_text(js_stringify(record, 2))
    arn = "arn:aws:codewhisperer:us-east-1:111122223333:profile/NEWPROFILE"

    assert FORMATS["aiclient"].write_token(path, "", new_copy(arn), spent(login), 1.0).outcome is WriteOutcome.WRITTEN

    record.update(accessToken="aoa-new-access", refreshToken="aor-new-refresh", expiresAt="2027-03-04T05:06:07.891Z",
                  profileArn=arn)
    assert path.read_text() == js_stringify(record, 2)

    compact = isolated_dirs / "compact.json"
    compact.write_text(go_marshal({k: v for k, v in cliproxy_record(login).items() if k != "last_refresh"}))
    FORMATS["cliproxy"].write_token(compact, "", new_copy(), spent(login), 1.0)
    assert re.search(r'"type":"kiro","last_refresh":"[^"]+Z"}$', compact.read_text())


def test_gateway_write_uses_pythons_isoformat(emulator, isolated_dirs: Path) -> None:
    login = seed(emulator, "idc")
    path = WRITERS["gateway"](isolated_dirs, login)
    record = json.loads(path.read_text())
    assert FORMATS["gateway"].write_token(path, "", new_copy(), spent(login), 1.0).outcome is WriteOutcome.WRITTEN
    record.update(accessToken="aoa-new-access", refreshToken="aor-new-refresh",
                  expiresAt="2027-03-04T05:06:07.891234+00:00")
    assert path.read_text() == json.dumps(record, indent=2)


def test_both_spellings_of_an_owned_field_are_written(isolated_dirs: Path) -> None:
    path = isolated_dirs / "twins.json"
    old = {"access_token": "a", "refresh_token": "r", "expires_at": "2026-01-01T00:00:00Z"}
    path.write_text(json.dumps({"type": "kiro", **old, "accessToken": "a", "refreshToken": "r",
                                "expiresAt": "2026-01-01T00:00:00Z"}))
    FORMATS["cliproxy"].write_token(path, "", new_copy(), lambda held: held == fingerprint("r"), 1.0)
    written = json.loads(path.read_text())
    assert written["refresh_token"] == written["refreshToken"] == "aor-new-refresh"
    assert written["expires_at"] == written["expiresAt"] == "2027-03-04T05:06:07Z"


@pytest.mark.parametrize("kind", ["aiclient", "kiro-ide"])
def test_a_byte_order_mark_and_a_repeated_key_survive_a_write(kind: str, isolated_dirs: Path) -> None:
    """Every byte is kept, but the Kiro IDE loses a byte order mark: its parser chokes on one
    (kirodotdev/Kiro#10654), so a file with one is a file the IDE cannot read."""
    path = isolated_dirs / "kiro-auth-token.json"
    original = ('\ufeff{ "accessToken" : "a", "refreshToken":"r", "expiresAt":"2026-01-01T00:00:00.000Z", '
                '"accessToken": "a" }')
    path.write_text(original)
    FORMATS[kind].write_token(path, "", new_copy(), lambda held: held == fingerprint("r"), 1.0)
    expected = original.replace('"a"', '"aoa-new-access"').replace('"r"', '"aor-new-refresh"').replace(
        "2026-01-01T00:00:00.000Z", "2027-03-04T05:06:07.891Z")
    assert path.read_bytes() == (expected.removeprefix("\ufeff") if kind == "kiro-ide" else expected).encode()


def test_the_ide_file_is_never_written_through_a_symbolic_link(emulator, isolated_dirs: Path) -> None:
    login = seed(emulator, "social")
    real = WRITERS["kiro-ide"](isolated_dirs, login)
    link = real.with_name("linked.json")
    real.rename(link)
    real.symlink_to(link)
    data = link.read_bytes()

    result = FORMATS["kiro-ide"].write_token(real, "", new_copy(), spent(login), 1.0)

    assert result.outcome is WriteOutcome.FAILED
    assert "symbolic link" in result.detail and "regular file" in result.detail
    assert real.is_symlink() and link.read_bytes() == data


def test_no_token_is_written_through_a_link_of_any_tool(emulator, isolated_dirs: Path) -> None:
    login = seed(emulator, "social")
    target = WRITERS["cliproxy"](isolated_dirs, login)
    data = target.read_bytes()
    link = isolated_dirs / "kiro-link.json"
    link.symlink_to(target)
    result = FORMATS["cliproxy"].write_token(link, "", new_copy(), spent(login), 1.0)
    assert result.outcome is WriteOutcome.REFUSED and "symbolic link" in result.detail
    assert link.is_symlink() and target.read_bytes() == data


@pytest.mark.parametrize("kind", JSON_KINDS)
def test_compare_and_swap(kind: str, emulator, isolated_dirs: Path) -> None:
    login = seed(emulator, "social")
    path = WRITERS[kind](isolated_dirs, login)
    data = path.read_bytes()
    place = FORMATS[kind]

    same = TokenCopy(login.access_token, login.refresh_token, login.expires_at - timedelta(seconds=5))
    assert place.write_token(path, "", same, spent(login), 1.0).outcome is WriteOutcome.UNCHANGED
    other = place.write_token(path, "", new_copy(), lambda held: False, 1.0)
    assert other.outcome is WriteOutcome.OTHER and other.state is PlaceState.ERROR and str(path) in other.detail
    assert path.read_bytes() == data

    with path.open("rb") as held_open:  # another kiro-tui process is writing it
        fcntl.flock(held_open, fcntl.LOCK_EX)
        locked = place.write_token(path, "", new_copy(), spent(login), 0.0)
    assert locked.outcome is WriteOutcome.LOCKED and locked.state is PlaceState.PENDING
    assert path.read_bytes() == data

    newer = replace(same, access_token="aoa-after-social-refresh", expires_at=NEW_EXPIRY)
    assert place.write_token(path, "", newer, lambda held: False, 1.0).outcome is WriteOutcome.WRITTEN
    reread = place.read_entry(path, "", datetime.now(UTC))
    assert reread is not None and reread.access_token == "aoa-after-social-refresh"

    path.unlink()
    missing = place.write_token(path, "", new_copy(), spent(login), 1.0)
    assert missing.outcome is WriteOutcome.MISSING and missing.state is PlaceState.PENDING
    assert not path.exists()


def test_a_broken_file_is_not_written(isolated_dirs: Path) -> None:
    path = isolated_dirs / "kiro-auth-token.json"
    path.write_text("{not json")
    result = FORMATS["kiro-ide"].write_token(path, "", new_copy(), lambda held: True, 1.0)
    assert result.outcome is WriteOutcome.FAILED and "is not valid JSON" in result.detail
    assert path.read_text() == "{not json"


# -- creating a place for a link -------------------------------------------------------------

CREATE_CASES = [(kind, auth) for kind in JSON_KINDS for auth in ("social", "builder-id", "idc")] + [
    ("gateway", "external-idp")]


@pytest.mark.parametrize(("kind", "auth"), CREATE_CASES)
def test_created_file_is_private_in_the_tools_shape_and_reads_back(kind: str, auth: str, emulator,
                                                                   isolated_dirs: Path) -> None:
    account = account_from_seed(seed_raw(emulator, auth), "acc12345")
    folder = isolated_dirs / "links"
    place = FORMATS[kind]

    created = place.create(folder, account)

    assert created.entry == "" and created.path.stat().st_mode & 0o777 == 0o600
    text = created.path.read_text()
    data = json.loads(text)
    if kind == "cliproxy":
        assert text == go_marshal(data) and data["type"] == "kiro" and GO_TIME.match(data["expires_at"])
        assert created.path.name.startswith(f"kiro-{account.auth_method.value}-")
    elif kind == "gateway":
        assert text == json.dumps(data, indent=2) and data["expiresAt"].endswith("+00:00")
    else:
        assert text == js_stringify(data, 2) and data["expiresAt"] == js_iso(account.expires_at)
    if kind == "aiclient":
        assert re.fullmatch(r"configs/kiro/(\d+_kiro-auth-token)/\1\.json",
                            str(created.path.relative_to(folder)))
    if kind == "kiro-ide" and auth != "social":
        registration = json.loads((folder / f"{data['clientIdHash']}.json").read_text())
        assert registration["clientId"] == account.client_id
    (read,) = place.scan(created.path, datetime.now(UTC)).logins
    assert (read.access_token, read.refresh_token, read.client_id) == (
        account.access_token, account.refresh_token, account.client_id if auth != "social" else None)
    assert read.auth_method is READS_AS.get((kind, auth), account.auth_method) and read.needs_login is None


def seed_raw(emulator, auth: str) -> dict:  # type: ignore[no-untyped-def]
    if auth == "idc":
        return emulator.seed(kind="idc", email="team@acme.example", region="eu-west-1",
                             profiles=[{"arn": "arn:aws:codewhisperer:eu-central-1:123456789012:profile/P1",
                                        "name": "Team"}])
    return emulator.seed(kind=auth, email=f"{auth}@example.com")


def test_create_never_overwrites_and_refuses_what_the_tool_cannot_refresh(emulator, isolated_dirs: Path) -> None:
    account = account_from_seed(emulator.seed(kind="social"), "acc1")
    existing = isolated_dirs / "kiro-auth-token.json"
    existing.write_text("{}")
    with pytest.raises(PlaceError, match="already exists"):
        FORMATS["kiro-ide"].create(existing, account)
    assert existing.read_text() == "{}"

    external = account_from_seed(emulator.seed(kind="external-idp"), "acc2")
    with pytest.raises(PlaceError, match="cannot refresh external logins"):
        FORMATS["cliproxy"].create(isolated_dirs, external)

    shared = isolated_dirs / "shared"
    shared.mkdir()
    (shared / "other_kiro-auth-token.json").write_text("{}")
    with pytest.raises(PlaceError, match="each account needs a folder of its own"):
        FORMATS["aiclient"].create(shared / "mine_kiro-auth-token.json", account)

    no_token = Account(id="acc3", auth_method=AuthMethod.SOCIAL, access_token="a", expires_at=NEW_EXPIRY)
    with pytest.raises(PlaceError, match="no refresh token"):
        FORMATS["gateway"].create(isolated_dirs / "g.json", no_token)


@pytest.mark.parametrize("auth", ["social", "builder-id", "idc", "external-idp"])
def test_gateway_db_is_a_kiro_cli_database_with_times_python_3_10_reads(auth: str, emulator,
                                                                        isolated_dirs: Path) -> None:
    account = account_from_seed(seed_raw(emulator, auth), "acc12345")
    account.expires_at = account.expires_at.replace(microsecond=123456)

    created = FORMATS["gateway-db"].create(isolated_dirs, account)

    assert created.path.name == "kiro-gateway.sqlite3" and created.path.stat().st_mode & 0o777 == 0o600
    snapshot = read_kiro_cli(created.path, at(1_800_000_000))
    (login,) = snapshot.logins
    assert login.key == created.entry and login.refresh_token == account.refresh_token
    assert login.auth_method is account.auth_method and login.needs_login is None
    assert login.expires_at == account.expires_at
    if auth in ("builder-id", "idc"):
        assert (login.client_id, login.region) == (account.client_id, account.region)

    copy = TokenCopy("aoa-new", "aor-new", NEW_EXPIRY, account.profile_arn if auth == "social" else None)
    belongs = lambda held: held == fingerprint(account.refresh_token)  # noqa: E731
    assert FORMATS["gateway-db"].write_token(created.path, created.entry, copy, belongs, 1.0).outcome \
        is WriteOutcome.WRITTEN
    conn = sqlite3.connect(created.path)
    (value,) = conn.execute("SELECT value FROM auth_kv WHERE key = ?", (created.entry,)).fetchone()
    conn.close()
    written = json.loads(value)["expires_at"]
    assert written == "2027-03-04T05:06:07.891234Z" and py310_parse(written) == NEW_EXPIRY.timestamp()
    assert FORMATS["gateway-db"].write_token(created.path, created.entry, new_copy(), lambda _: False, 1.0).outcome \
        is WriteOutcome.OTHER
    with pytest.raises(PlaceError, match="already exists"):
        create_gateway_db(created.path, account)


def test_a_database_write_tells_its_signature_only_while_no_one_else_can_commit(emulator, isolated_dirs: Path) -> None:
    """A database's write says how it left the file (stat-ed under its write lock, the row read
    back the same), so the read before the next refresh can skip it; when another program holds
    the lock right after the commit, it says nothing rather than a signature that may be theirs."""
    account = account_from_seed(seed_raw(emulator, "social"), "acc12345")
    created = FORMATS["gateway-db"].create(isolated_dirs, account)
    copy = TokenCopy("aoa-new", "aor-new", NEW_EXPIRY, account.profile_arn)
    result = FORMATS["gateway-db"].write_token(created.path, created.entry, copy,
                                               lambda held: held == fingerprint(account.refresh_token), 1.0)
    assert result.outcome is WriteOutcome.WRITTEN
    assert result.written is not None and result.written == place_signature(str(created.path), database=True)
    again = FORMATS["gateway-db"].write_token(created.path, created.entry, copy, lambda _: False, 1.0)
    assert again.outcome is WriteOutcome.UNCHANGED and again.written == result.written

    other = sqlite3.connect(created.path, isolation_level=None)
    real_commit = sqlite3.Connection.execute
    newer = TokenCopy("aoa-newer", "aor-newer", NEW_EXPIRY, account.profile_arn)

    class LockedAfterCommit(sqlite3.Connection):  # another program takes the lock as the commit ends
        def execute(self, sql: str, *args: object) -> sqlite3.Cursor:  # type: ignore[override]
            cursor = real_commit(self, sql, *args)
            if sql == "COMMIT":
                other.execute("BEGIN IMMEDIATE")
            return cursor

    real_connect = sqlite3.connect
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sqlite3, "connect", lambda *a, **k: real_connect(*a, **k, factory=LockedAfterCommit))
        locked = FORMATS["gateway-db"].write_token(created.path, created.entry, newer,
                                                   lambda held: held == fingerprint("aor-new"), 1.0)
    other.execute("ROLLBACK")
    assert locked.outcome is WriteOutcome.WRITTEN and locked.written is None

    class RewrittenAfterCommit(sqlite3.Connection):  # its tool rewrites the row as the commit ends
        def execute(self, sql: str, *args: object) -> sqlite3.Cursor:  # type: ignore[override]
            cursor = real_commit(self, sql, *args)
            if sql == "COMMIT":
                other.execute("UPDATE auth_kv SET value = replace(value, 'aor-newest', 'aor-tools') WHERE key = ?",
                              (created.entry,))
            return cursor

    newest = TokenCopy("aoa-newest", "aor-newest", NEW_EXPIRY, account.profile_arn)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sqlite3, "connect", lambda *a, **k: real_connect(*a, **k, factory=RewrittenAfterCommit))
        rewritten = FORMATS["gateway-db"].write_token(created.path, created.entry, newest,
                                                      lambda held: held == fingerprint("aor-newer"), 1.0)
    other.close()
    assert rewritten.outcome is WriteOutcome.WRITTEN and rewritten.written is None  # not the row it wrote

    later = TokenCopy("aoa-later", "aor-tools", NEW_EXPIRY + timedelta(hours=1), account.profile_arn)
    conn = sqlite3.connect(created.path)
    with conn:
        conn.execute("UPDATE auth_kv SET value = json_set(value, '$.access_token', 'aoa-later', '$.expires_at', ?) "
                     "WHERE key = ?", (format_timestamp(later.expires_at), created.entry))
    conn.close()
    assert FORMATS["gateway-db"].write_token(created.path, created.entry, later, lambda _: False, 1.0).written \
        == place_signature(str(created.path), database=True)  # holds exactly this: told
    older = TokenCopy("aoa-new", "aor-tools", NEW_EXPIRY, account.profile_arn)  # its tool's access token is newer
    unchanged = FORMATS["gateway-db"].write_token(created.path, created.entry, older, lambda _: False, 1.0)
    assert unchanged.outcome is WriteOutcome.UNCHANGED and unchanged.written is None


# -- after a refresh through kiro-tui: still the tool's own file, byte for byte ---------------
#
# The tests above call write_token directly. These take the path a person's setup takes: the
# tool wrote its file (with fields kiro-tui does not know, and a mode of the user's choosing),
# the account is linked to it (or imported from it, for kiro-cli), the engine refreshes it
# against the emulator at a moment with a fraction of a second, and the file must be exactly
# what the tool itself would have written with the new token: its serialiser, its key order,
# its timestamp format and precision, every unknown field, the mode, no temporary file left.

SERIALISE: dict[str, Callable[[dict[str, object]], str]] = {
    "kiro-ide": lambda record: js_stringify(record, 2),
    "cliproxy": go_marshal,
    "aiclient": lambda record: js_stringify(record, 2),
    "gateway": lambda record: json.dumps(record, indent=2),
}
UNKNOWN_FIELDS: dict[str, dict[str, object]] = {  # what the tools (or their users) add
    "kiro-ide": {"ideVersion": "0.2.13 é ü", "nested": {"accessToken": "not ours"}, "n": 1.5},
    "cliproxy": {"label": "work", "disabled": False, "metadata": {"z": [1, 2]}, "proxy_url": ""},
    "aiclient": {"uuid": "7f0c5e2a-uuid", "usageCount": 3, "notes": "émoji ✓"},
    "gateway": {"apiRegion": "us-east-1", "note": "ünïcode", "weights": [0.5, 1]},
}
OWNED_NAMES = {  # (access, refresh, expiry, profile ARN) as each tool spells them
    "kiro-ide": ("accessToken", "refreshToken", "expiresAt", "profileArn"),
    "cliproxy": ("access_token", "refresh_token", "expires_at", "profile_arn"),
    "aiclient": ("accessToken", "refreshToken", "expiresAt", "profileArn"),
    "gateway": ("accessToken", "refreshToken", "expiresAt", "profileArn"),
}
TOOL_TIME: dict[str, Callable[[datetime], str]] = {  # written independently: tests/support/places.py
    "kiro-ide": js_iso, "aiclient": js_iso, "cliproxy": go_rfc3339,
    "gateway": lambda when: when.astimezone(UTC).isoformat(),
}
FRACTION = 1234.567891  # the refresh happens at .567891 s past a second: every format must cut it its way


@pytest.fixture
async def engine(isolated_dirs: Path, emulator, emulator_time, http, endpoints):
    from kiro_tui.core.clock import ManualClock
    from kiro_tui.core.config import Settings
    from kiro_tui.core.engine import Engine
    from kiro_tui.core.store import AccountStore

    kiro_cli_db = isolated_dirs / "data" / "kiro-cli" / "data.sqlite3"
    with AccountStore.open(isolated_dirs / "store" / "accounts.db") as store:
        yield Engine(store, Settings(), ManualClock(at(emulator_time.now)), endpoints, kiro_cli_db, http=http,
                     fetch_usage=False)


async def refresh_through_kiro_tui(engine, emulator_time, account_id: str) -> Account:  # type: ignore[no-untyped-def]
    from kiro_tui.core.models import Outcome

    emulator_time.advance(FRACTION)
    engine.clock.advance(FRACTION)
    (result,) = await engine.refresh_now([account_id])
    assert result.outcome is Outcome.REFRESHED, result.message
    account = engine.store.get(account_id)
    assert account.expires_at.microsecond == 567891  # the new expiry has a fraction to format
    (place,) = [p for p in engine.store.places(account_id)]
    assert place.state is PlaceState.IN_SYNC, place.detail
    return account


@pytest.mark.parametrize("auth", ["social", "builder-id"])
@pytest.mark.parametrize("kind", JSON_KINDS)
async def test_after_a_refresh_through_kiro_tui_the_file_is_the_tools_own(kind: str, auth: str, engine, emulator,
                                                                          emulator_time, isolated_dirs: Path) -> None:
    seeded = seed_raw(emulator, auth)
    login = login_of(seeded)
    path = WRITERS[kind](isolated_dirs, login)
    record = {**json.loads(path.read_text()), **UNKNOWN_FIELDS[kind]}
    path.write_text(SERIALISE[kind](record))
    path.chmod(0o640)  # the user's choice: kept
    neighbour = path.parent / "other-provider.json"  # the proxy's folder holds other providers' files
    if kind == "cliproxy":
        neighbour.write_text(go_marshal({"type": "codex", "access_token": "x"}))
    others = {p.name: p.read_bytes() for p in path.parent.iterdir() if p != path}
    account = account_from_seed(seeded, "acc0byte")
    engine.store.save(account)
    linked = await engine.link(account.id, kind, path)
    assert linked.state is PlaceState.IN_SYNC and path.read_text() == SERIALISE[kind](record)  # nothing to write yet
    started = datetime.now(UTC).replace(microsecond=0)

    account = await refresh_through_kiro_tui(engine, emulator_time, account.id)

    access, refresh, expiry, arn = OWNED_NAMES[kind]
    expected = dict(record)
    expected.update({access: account.access_token, refresh: account.refresh_token,
                     expiry: TOOL_TIME[kind](account.expires_at)})
    if auth == "social":
        expected[arn] = account.profile_arn
    written = json.loads(path.read_text())
    if kind == "cliproxy":  # the moment of writing, Go's RFC 3339
        assert GO_TIME.match(written["last_refresh"]), written["last_refresh"]
        assert started <= parse_timestamp(written["last_refresh"]) <= datetime.now(UTC)
        expected["last_refresh"] = written["last_refresh"]
    assert path.read_text() == SERIALISE[kind](expected)  # byte for byte: shape, order, unknown fields
    assert written[refresh] != login.refresh_token
    if kind in ("kiro-ide", "aiclient"):
        assert written[expiry].endswith(".567Z")  # toISOString(): milliseconds, truncated
    elif kind == "cliproxy":
        assert GO_TIME.match(written[expiry])  # whole seconds
    else:
        assert written[expiry].endswith(".567891+00:00")  # isoformat(): six digits and an offset
    assert path.stat().st_mode & 0o777 == 0o600 and path.is_file() and not path.is_symlink()
    assert {p.name: p.read_bytes() for p in path.parent.iterdir() if p != path} == others  # no temp file left
    assert FORMATS[kind].read_entry(path, "", datetime.now(UTC)).refresh_token == account.refresh_token


def _rows(path: Path) -> dict[tuple[str, str], object]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        found = {}
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            for row in conn.execute(f"SELECT * FROM {table}").fetchall():
                found[(table, json.dumps(row[0]))] = row
        return found
    finally:
        conn.close()


@pytest.mark.parametrize("auth", ["social", "builder-id"])
@pytest.mark.parametrize("kind", ["kiro-cli", "gateway-db"])
async def test_after_a_refresh_through_kiro_tui_the_database_is_the_tools_own(kind: str, auth: str, engine, emulator,
                                                                              emulator_time,
                                                                              isolated_dirs: Path) -> None:
    """kiro-cli (a source in sync mode) and gateway-db (a link): one row changes, and in it only
    the token fields, in kiro-cli's serde shape (compact JSON bound as TEXT, RFC 3339 `Z`, the
    fraction at six digits, which the gateway's Python 3.10 reads); every other field and row
    stays, the file keeps its mode."""
    from kiro_tui.core.places import kiro_cli_format as fmt
    from tests.support.kiro_cli_db import KiroCliDb

    seeded = seed_raw(emulator, auth)
    key = seeded["token_key"]
    if kind == "kiro-cli":
        db = KiroCliDb(isolated_dirs / "data" / "kiro-cli" / "data.sqlite3")
        for table in ("auth_kv", "state"):
            for name, value in seeded[table].items():
                db.set_json(table, name, value)
        db.set_json("auth_kv", key, {**seeded["token"], "experimental_field": {"kept": [1, "two"]}})
        db.set_json("state", "chat.defaultModel", "claude-x")  # kiro-cli's own settings live here too
        path = db.path
        path.chmod(0o640)
        (item,) = (await engine.import_now()).imported
        account_id = item.id
    else:
        account = account_from_seed(seeded, "acc0gwdb")
        engine.store.save(account)
        path = Path((await engine.link(account.id, kind, isolated_dirs / "gateway")).path)
        account_id = account.id
    rows_before = _rows(path)
    files_before = sorted(p.name for p in path.parent.iterdir())
    mode_before = path.stat().st_mode & 0o777
    value_before = json.loads(rows_before[("auth_kv", json.dumps(key))][1])

    account = await refresh_through_kiro_tui(engine, emulator_time, account_id)

    rows_after = _rows(path)
    (raw,) = [row[1] for name, row in rows_after.items() if name == ("auth_kv", json.dumps(key))]
    assert isinstance(raw, str)  # bound as TEXT: kiro-cli's rusqlite reads only TEXT
    expected = {**value_before, "access_token": account.access_token, "refresh_token": account.refresh_token,
                "expires_at": format_timestamp(account.expires_at)}
    assert raw == fmt.dumps(expected)  # serde's compact JSON, same fields in the same order
    # Six fraction digits and Z: what kiro-cli's time crate and Python 3.10 (Z replaced) both read.
    assert expected["expires_at"].endswith(".567891Z")
    assert py310_parse(expected["expires_at"]) == account.expires_at.timestamp()
    assert {k: v for k, v in rows_after.items() if k != ("auth_kv", json.dumps(key))} == {
        k: v for k, v in rows_before.items() if k != ("auth_kv", json.dumps(key))}
    assert path.stat().st_mode & 0o777 == mode_before == (0o640 if kind == "kiro-cli" else 0o600)
    assert sorted(p.name for p in path.parent.iterdir()) == files_before  # no journal or temp file left
