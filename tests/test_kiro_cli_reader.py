"""The reader against real kiro-cli-shaped SQLite files."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kiro_tui.core.errors import KiroCliError
from kiro_tui.core.models import AuthMethod
from kiro_tui.core.places.kiro_cli import find_kiro_cli_db, read_kiro_cli
from tests.support.kiro_cli_db import DEFAULT_SOCIAL_PROFILE_ARN, KiroCliDb

NOW = datetime.now(UTC)
IDC_URL = "https://d-1234567890.awsapps.com/start"


def only_login(db: KiroCliDb):
    snapshot = read_kiro_cli(db.path, NOW)
    assert len(snapshot.logins) == 1, snapshot
    return snapshot.logins[0]


def test_builder_id_device_code_login(kiro_db: KiroCliDb) -> None:
    written = kiro_db.put_oidc(start_url=None)
    login = only_login(kiro_db)
    assert login.auth_method is AuthMethod.BUILDER_ID
    assert login.key == "kirocli:odic:token"
    assert login.access_token == written["access_token"]
    assert login.refresh_token == written["refresh_token"]
    assert login.client_id and login.client_secret
    assert login.needs_login is None
    assert login.scopes == ["codewhisperer:completions", "codewhisperer:analysis", "codewhisperer:conversations"]


def test_builder_id_pkce_login_stores_the_portal_url(kiro_db: KiroCliDb) -> None:
    kiro_db.put_oidc(start_url="https://view.awsapps.com/start", oauth_flow="Pkce")
    login = only_login(kiro_db)
    assert login.auth_method is AuthMethod.BUILDER_ID
    assert login.oauth_flow == "Pkce"


def test_identity_center_login_with_profile_from_state(kiro_db: KiroCliDb) -> None:
    kiro_db.put_oidc(start_url=IDC_URL, region="eu-west-1")
    arn = "arn:aws:codewhisperer:eu-central-1:123456789012:profile/ABCDEFGHIJKL"
    kiro_db.put_profile(arn, "Team")
    snapshot = read_kiro_cli(kiro_db.path, NOW)
    (login,) = snapshot.logins
    assert login.auth_method is AuthMethod.IDC
    assert (login.region, login.start_url) == ("eu-west-1", IDC_URL)
    assert (login.profile_arn, login.profile_name) == (arn, "Team")
    assert (snapshot.idc_start_url, snapshot.idc_region) == (IDC_URL, "eu-west-1")


def test_social_login(kiro_db: KiroCliDb) -> None:
    written = kiro_db.put_social("google")
    login = only_login(kiro_db)
    assert login.auth_method is AuthMethod.SOCIAL
    assert login.provider == "google"
    assert login.profile_arn == DEFAULT_SOCIAL_PROFILE_ARN
    assert login.profile_name == "Social_Default_Profile"
    assert login.region == "us-east-1"
    assert login.refresh_token == written["refresh_token"]


def test_social_provider_aliases_are_normalised(kiro_db: KiroCliDb) -> None:
    kiro_db.put_social("GitHub")
    assert only_login(kiro_db).provider == "github"


def test_external_idp_login(kiro_db: KiroCliDb) -> None:
    written = kiro_db.put_external_idp()
    login = only_login(kiro_db)
    assert login.auth_method is AuthMethod.EXTERNAL_IDP
    assert login.token_endpoint == written["token_endpoint"]
    assert login.client_id == written["client_id"]
    assert login.issuer_url == written["issuer_url"]


def test_legacy_amazon_q_key(kiro_db: KiroCliDb) -> None:
    kiro_db.put_oidc(key_prefix="codewhisperer")
    login = only_login(kiro_db)
    assert login.key == "codewhisperer:odic:token"
    assert login.auth_method is AuthMethod.BUILDER_ID
    assert login.client_id


def test_every_kind_together_and_new_keys_win_over_legacy(kiro_db: KiroCliDb) -> None:
    kiro_db.put_oidc(key_prefix="codewhisperer")
    kiro_db.put_oidc(start_url=IDC_URL)
    kiro_db.put_social()
    kiro_db.put_external_idp()
    snapshot = read_kiro_cli(kiro_db.path, NOW)
    assert [lg.key for lg in snapshot.logins] == [
        "kirocli:external-idp:token",
        "kirocli:odic:token",
        "kirocli:social:token",
    ]
    assert [(s.key, "superseded by kirocli:odic:token" in s.reason) for s in snapshot.skipped] == [
        ("codewhisperer:odic:token", True)
    ]


def test_registration_in_another_region_means_login_again(kiro_db: KiroCliDb) -> None:
    kiro_db.put_oidc(start_url=IDC_URL, region="eu-west-1", registration_region="us-east-1")
    login = only_login(kiro_db)
    assert login.client_id is None
    assert "region us-east-1 but the token is for eu-west-1" in (login.needs_login or "")


def test_expired_registration_means_login_again(kiro_db: KiroCliDb) -> None:
    kiro_db.put_oidc(registration_expires_at=NOW - timedelta(days=1))
    assert "registration has expired" in (only_login(kiro_db).needs_login or "")


def test_missing_registration_means_login_again(kiro_db: KiroCliDb) -> None:
    kiro_db.put_oidc(with_registration=False)
    assert "no OIDC client registration" in (only_login(kiro_db).needs_login or "")


def test_blob_values_are_decoded(kiro_db: KiroCliDb) -> None:
    value = kiro_db.put_social()
    import json

    kiro_db.set_raw("auth_kv", "kirocli:social:token", json.dumps(value).encode())
    assert only_login(kiro_db).access_token == value["access_token"]


def test_sees_rows_that_are_only_in_the_wal_while_a_writer_is_open(isolated_dirs: Path) -> None:
    db = KiroCliDb(isolated_dirs / "wal" / "data.sqlite3", wal=True)
    writer = sqlite3.connect(db.path)
    try:
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute(
            "INSERT INTO auth_kv (key, value) VALUES (?1, ?2)",
            ("kirocli:social:token", '{"access_token":"aoaWAL","expires_at":"2030-01-01T00:00:00Z",'
             '"refresh_token":"aorWAL","provider":"github","profile_arn":"' + DEFAULT_SOCIAL_PROFILE_ARN + '"}'),
        )
        writer.commit()
        writer.execute("BEGIN IMMEDIATE")  # an open write transaction, as kiro-cli mid-write
        writer.execute("INSERT INTO state (key, value) VALUES ('uncommitted', 'x')")
        assert Path(str(db.path) + "-wal").stat().st_size > 0
        before = db.digest()
        login = only_login(db)
        assert login.access_token == "aoaWAL"
        assert db.digest() == before
    finally:
        writer.rollback()
        writer.close()


# ------------------------------------------------------------------ bad input


def test_missing_database_lists_every_path_tried(tmp_path: Path) -> None:
    candidates = [tmp_path / "kiro-cli" / "data.sqlite3", tmp_path / "amazon-q" / "data.sqlite3"]
    with pytest.raises(KiroCliError) as info:
        find_kiro_cli_db(candidates)
    message = str(info.value)
    assert all(str(c) in message for c in candidates)
    assert "kiro-cli login" in message and "--db" in message


def test_falls_back_to_amazon_q_database(tmp_path: Path) -> None:
    legacy = KiroCliDb(tmp_path / "amazon-q" / "data.sqlite3")
    assert find_kiro_cli_db([tmp_path / "kiro-cli" / "data.sqlite3", legacy.path]) == legacy.path


@pytest.mark.parametrize(
    ("content", "needle"),
    [(b"", r"is empty \(0 bytes\)"), (b"hello, this is text\n" * 10, "not a SQLite database")],
)
def test_not_a_sqlite_file(tmp_path: Path, content: bytes, needle: str) -> None:
    path = tmp_path / "data.sqlite3"
    path.write_bytes(content)
    with pytest.raises(KiroCliError, match=needle):
        read_kiro_cli(path, NOW)


def test_truncated_database(kiro_db: KiroCliDb) -> None:
    kiro_db.put_social()
    data = kiro_db.path.read_bytes()
    kiro_db.path.write_bytes(data[: len(data) // 2 + 100])
    with pytest.raises(KiroCliError, match="damaged|not kiro-cli's database"):
        read_kiro_cli(kiro_db.path, NOW)


def test_sqlite_file_without_auth_kv(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(KiroCliError, match="no auth_kv table"):
        read_kiro_cli(path, NOW)


def test_path_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(KiroCliError, match="is a folder"):
        read_kiro_cli(tmp_path, NOW)


def test_empty_kiro_cli_database_has_no_logins(kiro_db: KiroCliDb) -> None:
    snapshot = read_kiro_cli(kiro_db.path, NOW)
    assert snapshot.logins == [] and snapshot.skipped == []


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("not json", "value is not JSON"),
        ("[1, 2]", "is a JSON array, expected an object"),
        ('{"expires_at": "2030-01-01T00:00:00Z"}', "field 'access_token' is missing"),
        ('{"access_token": "a"}', "field 'expires_at' is missing"),
        ('{"access_token": 5, "expires_at": "2030-01-01T00:00:00Z"}', "field 'access_token' is a number"),
        ('{"access_token": "a", "expires_at": "next tuesday"}', "field 'expires_at'"),
    ],
)
def test_bad_value_names_key_and_field_and_others_still_import(
    kiro_db: KiroCliDb, value: str, needle: str
) -> None:
    kiro_db.put_social()
    kiro_db.set_raw("auth_kv", "kirocli:odic:token", value)
    snapshot = read_kiro_cli(kiro_db.path, NOW)
    assert [lg.key for lg in snapshot.logins] == ["kirocli:social:token"]
    (skipped,) = snapshot.skipped
    assert skipped.key == "kirocli:odic:token"
    assert needle in skipped.reason


def test_locked_database_times_out_with_a_clear_message(isolated_dirs: Path) -> None:
    db = KiroCliDb(isolated_dirs / "locked" / "data.sqlite3")
    db.put_social()
    holder = sqlite3.connect(db.path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(KiroCliError, match="locked by another program"):
            read_kiro_cli(db.path, NOW, busy_timeout=0.2)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_permission_denied(kiro_db: KiroCliDb, monkeypatch: pytest.MonkeyPatch) -> None:
    kiro_db.put_social()
    if os.geteuid() == 0:
        # root reads any file whatever its mode, so make the OS answer as it would for a user.
        real_open = Path.open

        def denied(self: Path, *args, **kwargs):  # type: ignore[no-untyped-def]
            if self == kiro_db.path:
                raise PermissionError(13, "Permission denied", str(self))
            return real_open(self, *args, **kwargs)

        monkeypatch.setattr(Path, "open", denied)
    else:
        kiro_db.path.chmod(0)
    with pytest.raises(KiroCliError, match="permission denied"):
        read_kiro_cli(kiro_db.path, NOW)


def test_reading_a_closed_wal_database_leaves_no_file_beside_it(tmp_path: Path) -> None:
    """kiro-cli's reader opens through the shared read-only opener: a WAL database no one has
    open (no -wal) is read as it stands, and no empty -wal or -shm is left for kiro-cli to find."""
    db = KiroCliDb(tmp_path / "data.sqlite3", wal=True)
    written = db.put_oidc(start_url=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.sqlite3"]
    assert only_login(db).refresh_token == written["refresh_token"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.sqlite3"]


def test_a_text_value_that_is_not_utf8_skips_that_login_only(kiro_db: KiroCliDb) -> None:
    """A TEXT row with bytes that are not UTF-8 no longer fails the whole query: the shared
    opener's text reader hands it over, and the field reader names the bad field."""
    kiro_db.put_oidc(start_url=None)
    kept = kiro_db.put_social()
    conn = kiro_db.connect()
    conn.execute("UPDATE auth_kv SET value = CAST(? AS TEXT) WHERE key = 'kirocli:odic:token'",
                 (b'{"access_token":"aoa\xff","refresh_token":"aor"}',))
    conn.commit()
    conn.close()
    snapshot = read_kiro_cli(kiro_db.path, NOW)
    assert [login.refresh_token for login in snapshot.logins] == [kept["refresh_token"]]
    assert [(s.key, s.reason) for s in snapshot.skipped] == [
        ("kirocli:odic:token", "kirocli:odic:token: field 'access_token' holds an unpaired surrogate (not text)")]


def test_a_row_another_tool_rewrote_in_camel_case_reads_as_every_place_does(kiro_db: KiroCliDb) -> None:
    """kiro-cli's rows go through the shared field reader: a row some tool rewrote in camelCase,
    with its expiry in epoch milliseconds as text, still reads whole (start URL included)."""
    kiro_db.put_oidc(start_url=IDC_URL)
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    kiro_db.set_json("auth_kv", "kirocli:odic:token", {
        "accessToken": "aoa-camel", "refreshToken": "aor-camel",
        "expiresAt": str(int(expires.timestamp() * 1000)), "startUrl": IDC_URL, "region": "us-east-1",
    })
    login = only_login(kiro_db)
    assert (login.access_token, login.refresh_token, login.expires_at) == ("aoa-camel", "aor-camel", expires)
    assert login.start_url == IDC_URL and login.auth_method is AuthMethod.IDC
