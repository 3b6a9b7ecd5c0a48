"""Import semantics, against real kiro-cli-shaped databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kiro_tui.core.importer import (
    ADDED,
    UNCHANGED,
    UPDATED,
    import_snapshot,
    mark_refresh_token_dead,
)
from kiro_tui.core.models import Health, Mode
from kiro_tui.core.places.kiro_cli import read_kiro_cli
from kiro_tui.core.store import AccountStore
from tests.support.kiro_cli_db import KiroCliDb

NOW = datetime.now(UTC)


@pytest.fixture
def store(tmp_path: Path):
    with AccountStore.open(tmp_path / "store" / "accounts.db") as store:
        yield store


def run_import(store: AccountStore, db: KiroCliDb, mode: Mode = Mode.SYNC):
    return import_snapshot(store, read_kiro_cli(db.path, NOW), NOW, mode)


def test_first_import_adds_every_login_with_the_default_mode(store, kiro_db: KiroCliDb) -> None:
    kiro_db.put_oidc(start_url="https://d-1.awsapps.com/start")
    kiro_db.put_social()
    before = kiro_db.digest()
    report = run_import(store, kiro_db, Mode.FOLLOW)
    assert [item.action for item in report.imported] == [ADDED, ADDED]
    assert {a.mode for a in store.accounts()} == {Mode.FOLLOW}
    assert kiro_db.digest() == before


def test_reimport_updates_in_place_without_duplicates(store, kiro_db: KiroCliDb) -> None:
    kiro_db.put_oidc()
    first = run_import(store, kiro_db)
    again = run_import(store, kiro_db)
    assert [i.action for i in again.imported] == [UNCHANGED]
    fresh = kiro_db.put_oidc(expires_at=NOW + timedelta(hours=2))
    third = run_import(store, kiro_db)
    assert [i.action for i in third.imported] == [UPDATED]
    (account,) = store.accounts()
    assert account.id == first.imported[0].id
    assert account.access_token == fresh["access_token"]


def test_never_replaces_a_newer_token_with_an_older_one(store, kiro_db: KiroCliDb) -> None:
    kiro_db.put_social()
    run_import(store, kiro_db)
    (account,) = store.accounts()
    store.update(account.id, access_token="aoaNEWER", expires_at=NOW + timedelta(hours=5))
    report = run_import(store, kiro_db)
    assert report.imported[0].note == "kept the newer token already in kiro-tui"
    assert store.get(account.id).access_token == "aoaNEWER"  # type: ignore[union-attr]


def test_accounts_gone_from_kiro_cli_are_kept_and_reported(store, kiro_db: KiroCliDb) -> None:
    kiro_db.put_social()
    kiro_db.put_oidc()
    run_import(store, kiro_db)
    kiro_db.delete("auth_kv", "kirocli:social:token")
    report = run_import(store, kiro_db)
    assert [a.source_key for a in report.missing] == ["kirocli:social:token"]
    assert len(store.accounts()) == 2


def test_a_different_login_in_the_same_key_is_a_new_account(store, kiro_db: KiroCliDb) -> None:
    kiro_db.put_oidc(start_url="https://d-1.awsapps.com/start")
    run_import(store, kiro_db)
    kiro_db.put_oidc(start_url="https://d-2.awsapps.com/start")
    report = run_import(store, kiro_db)
    assert [i.action for i in report.imported] == [ADDED]
    assert len(report.missing) == 1
    assert len(store.accounts()) == 2


def test_needs_login_from_a_dead_token_heals_only_with_a_new_login(store, kiro_db: KiroCliDb) -> None:
    kiro_db.put_oidc()
    run_import(store, kiro_db)
    (account,) = store.accounts()
    account.health, account.last_error = Health.NEEDS_LOGIN, "refresh token invalid: log in again"
    mark_refresh_token_dead(account)
    store.save(account)
    run_import(store, kiro_db)
    assert store.get(account.id).health is Health.NEEDS_LOGIN  # type: ignore[union-attr]
    kiro_db.put_oidc(expires_at=NOW + timedelta(hours=2))  # kiro-cli logged in again
    run_import(store, kiro_db)
    healed = store.get(account.id)
    assert healed is not None and healed.health is Health.OK and healed.last_error is None


def test_registration_problem_heals_when_kiro_cli_fixes_it(store, kiro_db: KiroCliDb) -> None:
    written = kiro_db.put_oidc(registration_expires_at=NOW - timedelta(days=1))
    run_import(store, kiro_db)
    assert store.accounts()[0].health is Health.NEEDS_LOGIN
    kiro_db.put_oidc(access_token=str(written["access_token"]), refresh_token=str(written["refresh_token"]),
                     expires_at=NOW + timedelta(hours=1))
    run_import(store, kiro_db)
    assert store.accounts()[0].health is Health.OK


def test_a_newer_token_keeps_the_client_it_was_issued_to(store, kiro_db: KiroCliDb) -> None:
    """kiro-tui holds a newer token (a login made in kiro-tui) than kiro-cli's: kiro-cli's other
    registration must not be copied onto it, or the next refresh would fail."""
    kiro_db.put_oidc()
    run_import(store, kiro_db)
    (account,) = store.accounts()
    # Logged in again in kiro-tui as the same person: a new client and token renew the account,
    # while kiro-cli still holds the login it had (of this account's lineage).
    store.update(account.id, access_token="aoaNEWER", refresh_token="aorNEWER", client_id="cid-kiro-tui",
                 client_secret="secret-kiro-tui", expires_at=NOW + timedelta(hours=5))
    run_import(store, kiro_db)
    kept = store.get(account.id)
    assert kept is not None and (kept.access_token, kept.client_id, kept.client_secret) == (
        "aoaNEWER", "cid-kiro-tui", "secret-kiro-tui")
