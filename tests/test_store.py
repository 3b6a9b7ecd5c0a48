from __future__ import annotations

import sqlite3
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kiro_tui.core.errors import StoreError
from kiro_tui.core.models import Account, AuthMethod, Health, Mode, Status
from kiro_tui.core.store import SCHEMA_VERSION, AccountStore, RefreshLogEntry

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def make_account(account_id: str = "abcd1234", **changes: object) -> Account:
    account = Account(
        id=account_id,
        auth_method=AuthMethod.IDC,
        access_token="aoaAAAAAGsecretaccess",
        refresh_token="aorAAAAAGsecretrefresh",
        expires_at=NOW + timedelta(hours=1),
        region="eu-west-1",
        start_url="https://d-1.awsapps.com/start",
        scopes=["a", "b"],
        client_id="cid",
        client_secret="csecret",
        client_secret_expires_at=NOW + timedelta(days=90),
        profile_arn="arn:aws:codewhisperer:eu-central-1:1:profile/X",
        mode=Mode.SYNC,
        created_at=NOW,
        extra={"k": [1, 2]},
    )
    for name, value in changes.items():
        setattr(account, name, value)
    return account


def test_creates_private_folder_and_file_with_wal(tmp_path: Path) -> None:
    path = tmp_path / "new" / "accounts.db"
    with AccountStore.open(path) as store:
        store.save(make_account())
        journal = store.connection.execute("PRAGMA journal_mode").fetchone()[0]
    assert journal == "wal"
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_loose_permissions_are_tightened_on_open(tmp_path: Path) -> None:
    path = tmp_path / "accounts.db"
    AccountStore.open(path).close()
    path.chmod(0o644)
    tmp_path.chmod(0o755)
    with AccountStore.open(path) as store:
        assert len(store.permission_fixes) == 2
        assert "was readable by others (mode 0644); set it to 0600" in store.permission_fixes[1]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o700
    with AccountStore.open(path) as store:
        assert store.permission_fixes == []


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    account = make_account(health=Health.REFRESH_FAILING, last_error="timeout", consecutive_failures=2)
    with AccountStore.open(tmp_path / "a.db") as store:
        store.save(account)
    with AccountStore.open(tmp_path / "a.db") as store:
        assert store.get(account.id) == account


def test_update_and_delete(tmp_path: Path) -> None:
    with AccountStore.open(tmp_path / "a.db") as store:
        store.save(make_account())
        store.update("abcd1234", health=Health.NEEDS_LOGIN, last_error="refresh token invalid")
        loaded = store.get("abcd1234")
        assert loaded is not None and loaded.status(NOW) is Status.NEEDS_LOGIN
        assert store.delete("abcd1234") is True
        assert store.get("abcd1234") is None


def test_saving_an_account_again_keeps_its_history(tmp_path: Path) -> None:
    """Re-import, adoption and a new login save the whole row: its refresh history must stay
    (a REPLACE deletes the row first, and the history went with it)."""
    with AccountStore.open(tmp_path / "a.db") as store:
        store.save(make_account())
        with store.transaction() as tx:
            store.log_refresh(tx, RefreshLogEntry("abcd1234", NOW, "refreshed"))
        store.save(make_account(access_token="aoaAAAAAGnewer:sig"))
        assert store.get("abcd1234").access_token == "aoaAAAAAGnewer:sig"  # type: ignore[union-attr]
        assert [entry.outcome for entry in store.refresh_history("abcd1234")] == ["refreshed"]
        assert store.delete("abcd1234") is True
        assert store.refresh_history("abcd1234") == []  # removing the account still takes its history


def test_failed_transaction_writes_nothing(tmp_path: Path) -> None:
    with AccountStore.open(tmp_path / "a.db") as store:
        with pytest.raises(RuntimeError), store.transaction() as tx:
            store.save(make_account("11111111"), tx)
            raise RuntimeError("crash mid-import")
        assert store.accounts() == []


def test_resolve_id_by_prefix(tmp_path: Path) -> None:
    with AccountStore.open(tmp_path / "a.db") as store:
        store.save(make_account("abcd1234"))
        store.save(make_account("abff0000"))
        assert store.resolve_id("abc").id == "abcd1234"
        with pytest.raises(StoreError, match="matches 2 accounts"):
            store.resolve_id("ab")
        with pytest.raises(StoreError, match="no account with id 'zz'"):
            store.resolve_id("zz")
        read: list[str] = []  # a full id, as scripts give it (`kiro-tui link ID` for every account):
        store.connection.set_trace_callback(read.append)  # one row looked at, not every account's
        assert store.resolve_raw_id("abff0000") == "abff0000"
        store.connection.set_trace_callback(None)
        assert read and not any("ORDER BY id" in statement for statement in read), read
        with pytest.raises(StoreError, match="no account with id"):  # a typed byte that is not UTF-8
            store.resolve_id("ab\udcff")  # (as Python hands it over from the command line)


def test_status_is_derived_from_expiry_and_health() -> None:
    account = make_account()
    assert account.status(NOW) is Status.FRESH
    assert account.status(NOW + timedelta(minutes=55)) is Status.EXPIRING
    assert account.status(NOW + timedelta(hours=2)) is Status.EXPIRED
    account.health = Health.SUSPENDED
    assert account.status(NOW) is Status.SUSPENDED


def test_corrupt_store_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "accounts.db"
    path.write_bytes(b"garbage" * 100)
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a readable kiro-tui database.*move it aside"):
        AccountStore.open(path)
    assert path.read_bytes() == before


def test_newer_schema_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "accounts.db"
    AccountStore.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="written by a newer kiro-tui"):
        AccountStore.open(path)
    assert path.read_bytes() == before


def test_version_1_store_is_migrated_forward_keeping_rows(tmp_path: Path) -> None:
    from kiro_tui.core.store import MIGRATIONS

    path = tmp_path / "accounts.db"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0])
    conn.execute(
        "INSERT INTO accounts (id, auth_method, access_token, expires_at, region, mode, health) "
        "VALUES ('old00001', 'social', 'aoaOLD', '2026-01-01T00:00:00Z', 'us-east-1', 'sync', 'ok')"
    )
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()
    with AccountStore.open(path) as store:
        assert store.connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        account = store.get("old00001")
        assert account is not None and account.access_token == "aoaOLD" and account.sync_error is None
        assert store.refresh_history("old00001") == []


async def test_leases_exclude_other_owners_until_they_run_out(tmp_path: Path) -> None:
    with AccountStore.open(tmp_path / "a.db") as store:
        store.save(make_account())
        assert await store.acquire_lease("abcd1234", "me", NOW, 60)
        assert await store.acquire_lease("abcd1234", "me", NOW, 60)  # renewing is fine
        assert not await store.acquire_lease("abcd1234", "them", NOW + timedelta(seconds=30), 60)
        assert store.refreshing_ids(NOW) == {"abcd1234"}
        assert store.refreshing_ids(NOW, besides="them") == {"abcd1234"}  # mine, as they see it
        assert store.refreshing_ids(NOW, besides="me") == set()  # (my own, known to me)
        assert await store.acquire_lease("abcd1234", "them", NOW + timedelta(seconds=61), 60)
        assert store.refreshing_ids(NOW + timedelta(seconds=61), besides="me") == {"abcd1234"}
        store.release_lease("abcd1234", "them")
        # queued on the writer ahead of the next write: theirs is gone before mine is asked for
        assert await store.acquire_lease("abcd1234", "me", NOW + timedelta(seconds=62), 60)
        assert store.refreshing_ids(NOW + timedelta(seconds=62), besides="me") == set()
        store.release_lease("abcd1234", "me")
    with AccountStore.open(tmp_path / "a.db") as store:  # closing committed the queued release
        assert store.refreshing_ids(NOW + timedelta(seconds=62)) == set()
        store.save(make_account("efgh5678"))
        assert await store.acquire_lease("abcd1234", "me", NOW, 60)
        assert await store.acquire_lease("efgh5678", "me", NOW, 60)
        store.release_leases("me", keep=["abcd1234"])  # what a failed release left, not what is under way
        assert store.refreshing_ids(NOW) == {"abcd1234"}


def test_unlink_marks_in_the_old_preference_move_into_their_table(tmp_path: Path) -> None:
    """A store from before the `unlinked` table keeps its marks: the migration carries every
    readable one (surrogates in a path made storable, as places store them) and drops the blob."""
    import json

    from kiro_tui.core.store import MIGRATIONS
    from kiro_tui.core.store.schema import split_sql

    path = tmp_path / "accounts.db"
    conn = sqlite3.connect(path)
    for step in MIGRATIONS[:-1]:
        if callable(step):
            step(conn)
        else:
            for statement in split_sql(step):
                conn.execute(statement)
    marks = {
        "cliproxy\t/home/me/.cli-proxy-api/kiro-a.json\t": {
            "account": "abcd1234", "at": "2026-02-01T10:00:00Z", "why": "unlink", "client_id": None},
        "kiro-cli\t/home/me/data.sqlite3\tkirocli:odic:token": {
            "account": "ef015678", "at": "2026-02-02T11:30:00.5+01:00", "why": "login", "client_id": "cid-1"},
        "kiro-ide\t/home/\udc80me/kiro-auth-token.json\t": {"account": "abcd1234", "at": "2026-02-03T00:00:00Z"},
        "cliproxy\t/broken.json\t": {"account": "abcd1234", "at": "not a time"},
    }
    conn.execute("INSERT INTO preferences (key, value) VALUES ('unlinked_places', ?)", (json.dumps(marks),))
    conn.execute("INSERT INTO preferences (key, value) VALUES ('last_start_url', '\"https://x\"')")
    conn.execute(f"PRAGMA user_version={len(MIGRATIONS) - 1}")
    conn.commit()
    conn.close()
    with AccountStore.open(path) as store:
        cliproxy = store.unlinked("cliproxy", "/home/me/.cli-proxy-api/kiro-a.json")
        assert cliproxy is not None and cliproxy == ("abcd1234", datetime(2026, 2, 1, 10, tzinfo=UTC), "unlink", None)
        relogin = store.unlinked("kiro-cli", "/home/me/data.sqlite3", "kirocli:odic:token")
        assert relogin is not None and (relogin.why, relogin.client_id) == ("login", "cid-1")
        assert relogin.at == datetime(2026, 2, 2, 10, 30, 0, 500000, tzinfo=UTC)
        ide = store.unlinked("kiro-ide", "/home/\udc80me/kiro-auth-token.json")
        assert ide is not None and ide.why == "unlink"  # no why then meant a person's unlink
        assert store.unlinked("cliproxy", "/broken.json") is None  # unreadable then, unreadable now
        assert store.connection.execute("SELECT COUNT(*) FROM unlinked").fetchone()[0] == 3
        assert store.preference("unlinked_places") is None
        assert store.preference("last_start_url") == "https://x"


def test_an_unlink_mark_is_kept_and_forgotten_by_its_place(tmp_path: Path) -> None:
    from kiro_tui.core.models import Place, PlaceRole

    with AccountStore.open(tmp_path / "a.db") as store:
        place = Place("abcd1234", "cliproxy", "/p/\udc80kiro.json", "", PlaceRole.LINK)
        store.mark_unlinked(place, NOW, client_id="cid")
        assert store.unlinked("cliproxy", "/p/\udc80kiro.json") == ("abcd1234", NOW, "unlink", "cid")
        assert store.unlinked("cliproxy", "/p/\udc80kiro.json", "other") is None
        store.mark_unlinked(place, None, unlinked=False)
        assert store.unlinked("cliproxy", "/p/\udc80kiro.json") is None
