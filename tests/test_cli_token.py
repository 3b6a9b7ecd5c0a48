"""`kiro-tui token`: the access token and nothing else on stdout, refreshed first through the
usual path when it expires within --min-valid; against the emulator on 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from tests.support.engine import control, seed_into_kiro_cli
from tests.support.kiro_cli_db import KiroCliDb
from tests.support.run import Result, run_cli
from tests.support.watch import Watch, refresh_request_arrives, watch_config


@pytest.fixture
def env(live_emulator) -> dict[str, str]:
    return {"KIRO_TUI_ENDPOINT_URL": live_emulator.url}


def refreshes(emulator) -> list[dict]:
    return [r for r in emulator.requests() if r["operation"] == "RefreshToken"]


def imported(run: Callable[..., Result], emulator, db: KiroCliDb, env: dict[str, str], **spec: object) -> dict:
    """A login in kiro-cli's database, imported (sync mode: kiro-cli's copy is kept fresh)."""
    seeded = seed_into_kiro_cli(emulator, db, kind="social", **spec)
    assert run("import", env=env).code == 0
    return seeded


def stored(run: Callable[..., Result]) -> dict:
    (row,) = run("list", "--json", "--show-secrets").json()  # type: ignore[misc]
    return row


def test_a_fresh_token_is_printed_without_any_call(cli, kiro_db, live_emulator, env) -> None:
    seeded = imported(cli, live_emulator, kiro_db, env, email="fresh@example.com", expires_in=3600)
    done = cli("token", env=env)
    assert done.code == 0, done.err
    assert done.out == seeded["token"]["access_token"] + "\n" and done.err == ""
    as_json = cli("token", "--json", env=env)
    assert as_json.code == 0
    row = stored(cli)
    assert as_json.json() == {"access_token": seeded["token"]["access_token"], "expires_at": row["expires_at"],
                              "profile_arn": row["profile_arn"], "region": "us-east-1", "auth_method": "social",
                              "account_id": row["id"]}
    assert refreshes(live_emulator) == []


def test_an_expiring_token_is_refreshed_once_and_written_to_its_places(cli, kiro_db, live_emulator,
                                                                       env) -> None:
    seeded = imported(cli, live_emulator, kiro_db, env, email="soon@example.com", expires_in=200)
    done = cli("token", env=env)  # 200 s left, under the default 300
    assert done.code == 0, done.err
    new = done.out.strip()
    assert new and new != seeded["token"]["access_token"] and "\n" not in new
    assert len([r for r in refreshes(live_emulator) if r["status"] == 200]) == 1
    assert stored(cli)["access_token"] == new
    assert kiro_db.get_json("auth_kv", "kirocli:social:token")["access_token"] == new  # the usual path: places
    again = cli("token", "--min-valid", "60", env=env)
    assert again.out.strip() == new and len(refreshes(live_emulator)) == 1


def test_a_dead_login_exits_3_with_nothing_on_stdout(cli, kiro_db, live_emulator, env) -> None:
    imported(cli, live_emulator, kiro_db, env, email="dead@example.com", expires_in=100)
    control(live_emulator, "revoke", {"email": "dead@example.com"})
    done = cli("token", env=env)
    assert (done.code, done.out) == (3, "")
    assert "needs a login" in done.err and "kiro-tui login" in done.err
    assert cli("token", env=env).code == 3  # known dead now: no second call
    assert len(refreshes(live_emulator)) == 1


def test_several_accounts_need_an_id(cli, isolated_dirs, kiro_db, live_emulator, env) -> None:
    imported(cli, live_emulator, kiro_db, env, email="one@example.com")
    other = KiroCliDb(isolated_dirs / "other.sqlite3")
    second = seed_into_kiro_cli(live_emulator, other, kind="social", email="two@example.com")
    assert cli("import", "--db", str(other.path), env=env).code == 0
    done = cli("token", env=env)
    assert (done.code, done.out) == (2, "")
    assert "there are 2 accounts" in done.err and "`kiro-tui token ID`" in done.err
    rows = cli("list", "--json", "--show-secrets").json()
    two = next(r["id"] for r in rows  # type: ignore[union-attr]
               if r["access_token"] == second["token"]["access_token"])
    chosen = cli("token", two[:4], env=env)
    assert chosen.code == 0 and chosen.out.strip() == second["token"]["access_token"]
    assert cli("token", "zzzz", env=env).code == 1


def test_while_watch_refreshes_the_same_account_it_waits_instead_of_refreshing_again(
        cli, kiro_tui_exe, isolated_dirs, kiro_db, live_emulator, env) -> None:
    imported(cli, live_emulator, kiro_db, env, email="both@example.com", expires_in=200)
    control(live_emulator, "faults", {"latency_ms": 2000})  # watch's refresh is under way for 2 s
    arrived = refresh_request_arrives(live_emulator)
    watch_config(isolated_dirs)
    watch = Watch(kiro_tui_exe, env)
    try:
        assert arrived.wait(30), watch.err
        result: dict = {}
        thread = threading.Thread(target=lambda: result.update(done=run_cli(kiro_tui_exe, "token", env=env)))
        thread.start()
        thread.join(40)
        done = result["done"]
        assert done.code == 0, done.err
        watch.wait_for_line("refreshing → fresh")
    finally:
        watch.proc.terminate()
        watch.wait()
    answered = [r for r in refreshes(live_emulator) if r["status"] == 200]
    assert len(answered) == 1  # watch's; the token command waited for it
    assert done.out.strip() == stored(cli)["access_token"]


async def test_under_the_lease_a_token_made_valid_meanwhile_is_not_refreshed_again(
        tmp_path, emulator, emulator_time, http, endpoints) -> None:
    """The check `token` relies on against a double refresh: made under the lease, on the row as
    re-read there (another process may have refreshed between `token`'s look and its lease)."""
    from datetime import timedelta

    from kiro_tui.core.clock import ManualClock
    from kiro_tui.core.config import Settings
    from kiro_tui.core.models import Outcome
    from kiro_tui.core.refresh import RefreshClients, Refresher
    from kiro_tui.core.store import AccountStore
    from tests.support.engine import account_from_seed, at

    with AccountStore.open(tmp_path / "accounts.db") as store:
        store.save(account_from_seed(emulator.seed(kind="social", email="x@example.com", expires_in=3600), "a1"))
        refresher = Refresher(store, RefreshClients.create(http, endpoints), ManualClock(at(emulator_time.now)),
                              Settings())
        kept = await refresher.refresh("a1", unless_valid_for=timedelta(seconds=300))
        assert (kept.outcome, kept.message) == (Outcome.SKIPPED, "still valid")
        assert refreshes(emulator) == []
        done = await refresher.refresh("a1", unless_valid_for=timedelta(hours=2))
        assert done.outcome is Outcome.REFRESHED and len(refreshes(emulator)) == 1
