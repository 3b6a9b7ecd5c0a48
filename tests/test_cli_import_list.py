"""`kiro-tui import` / `list` / `remove`, run as the installed command in a subprocess."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kiro_tui.core.masking import mask
from kiro_tui.core.store import AccountStore
from tests.support.kiro_cli_db import DEFAULT_SOCIAL_PROFILE_ARN, KiroCliDb
from tests.support.run import Result, run_cli, run_on_terminal

IDC_URL = "https://d-9999999999.awsapps.com/start"


def listed(run: Callable[..., Result], *extra: str) -> dict[str, dict]:
    result = run("list", "--json", *extra)
    assert result.code == 0, result.err
    return {row["source_key"]: row for row in result.json()}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("put", "key", "method"),
    [
        (lambda db: db.put_oidc(start_url=None), "kirocli:odic:token", "builder-id"),
        (lambda db: db.put_oidc(start_url=IDC_URL, region="eu-west-1"), "kirocli:odic:token", "idc"),
        (lambda db: db.put_social("google"), "kirocli:social:token", "social"),
        (lambda db: db.put_external_idp(), "kirocli:external-idp:token", "external-idp"),
        (lambda db: db.put_oidc(key_prefix="codewhisperer"), "codewhisperer:odic:token", "builder-id"),
    ],
)
def test_import_then_list_json_for_every_kind(cli, tmp_path: Path, put, key, method) -> None:
    db = KiroCliDb(tmp_path / "somewhere" / "data.sqlite3")
    written = put(db)
    before = db.digest()
    result = cli("import", "--db", str(db.path))
    assert result.code == 0, result.err
    assert result.out.startswith("added")
    assert db.digest() == before

    row = listed(cli)[key]
    assert row["auth_method"] == method
    assert row["email"] is None
    assert row["mode"] == "sync"
    assert row["status"] == "fresh"
    assert 3000 < row["expires_in_seconds"] <= 3600
    assert row["expires_at"].endswith("Z")
    assert row["source"] == str(db.path)
    assert row["access_token"] == mask(written["access_token"]) != written["access_token"]
    assert row["refresh_token"] == mask(written["refresh_token"])
    for field in ("id", "label", "provider", "region", "start_url", "profile_arn", "last_refresh_at", "last_error"):
        assert field in row
    secrets_row = listed(cli, "--show-secrets")[key]
    assert secrets_row["access_token"] == written["access_token"]


def test_json_is_indented_on_a_terminal_and_one_line_into_a_pipe(kiro_tui_exe: str, kiro_db: KiroCliDb) -> None:
    kiro_db.put_social("google")
    kiro_db.put_oidc(start_url=IDC_URL, region="eu-west-1")
    assert run_cli(kiro_tui_exe, "import", "--db", str(kiro_db.path)).code == 0
    piped = run_cli(kiro_tui_exe, "list", "--json")
    shown = run_on_terminal(kiro_tui_exe, "list", "--json")
    assert piped.code == 0 and piped.out.count("\n") == 1, piped.out  # one line for a program
    assert shown.startswith("[\n  {\n    \"id\": ") and shown.count("\n") > 40, shown  # indented for a person
    # The same rows, but for the seconds left, which the clock moves between the two runs.
    rows = [[{k: v for k, v in row.items() if k != "expires_in_seconds"} for row in json.loads(text)]
            for text in (shown, piped.out)]
    assert rows[0] == rows[1] and len(rows[0]) == 2


def test_default_path_all_kinds_and_json_import(cli, kiro_db: KiroCliDb) -> None:
    kiro_db.put_oidc(start_url=IDC_URL)
    kiro_db.put_social()
    kiro_db.put_external_idp()
    kiro_db.put_oidc(key_prefix="codewhisperer")
    result = cli("import", "--json")
    assert result.code == 0, result.err
    report = result.json()
    assert [i["action"] for i in report["imported"]] == ["added"] * 3
    assert report["skipped"] == [
        {"key": "codewhisperer:odic:token", "reason": "superseded by kirocli:odic:token (same kind of login)",
         "path": str(kiro_db.path)}
    ]
    rows = listed(cli)
    assert set(rows) == {"kirocli:odic:token", "kirocli:social:token", "kirocli:external-idp:token"}
    assert rows["kirocli:social:token"]["profile_arn"] == DEFAULT_SOCIAL_PROFILE_ARN
    again = cli("import", "--json").json()
    assert [i["action"] for i in again["imported"]] == ["unchanged"] * 3  # type: ignore[index]


def test_human_list_shows_countdown_and_no_secret(cli, kiro_db: KiroCliDb) -> None:
    written = kiro_db.put_social(expires_at=datetime.now(UTC) + timedelta(minutes=5))
    cli("import")
    result = cli("list")
    assert "GitHub (kiro-cli)" in result.out
    assert "in 4 minutes" in result.out or "in 5 minutes" in result.out
    assert "expiring" in result.out
    assert written["access_token"] not in result.out and written["refresh_token"] not in result.out


def test_human_list_never_sends_control_characters_to_the_terminal(cli, isolated_dirs: Path) -> None:
    """Emails and profile names come from AWS: an escape sequence in one must not reach the terminal."""
    from kiro_tui.core.models import Account, AuthMethod
    from kiro_tui.core.store import AccountStore

    assert cli("list").code == 0  # creates the store
    with AccountStore.open(isolated_dirs / "data" / "kiro-tui" / "accounts.db") as store:
        store.save(Account(id="e5c0e5c0", auth_method=AuthMethod.SOCIAL, access_token="aoaAAAAAGx:sig",
                           refresh_token="aorAAAAAGx:sig", expires_at=datetime.now(UTC) + timedelta(hours=1),
                           email="eve\x1b]0;pwned\x07\x1b[2J@example.com", profile_name="Prod\rEU"))
    result = cli("list")
    assert result.code == 0
    assert not any(ch in result.out for ch in "\x1b\x07\r")
    assert "eve?]0;pwned??[2J@example.com" in result.out and "Prod?EU" in result.out


def test_expired_token_lists_negative_seconds(cli, kiro_db: KiroCliDb) -> None:
    kiro_db.put_social(expires_at=datetime.now(UTC) - timedelta(minutes=3))
    cli("import")
    (row,) = cli("list", "--json").json()  # type: ignore[misc]
    assert row["status"] == "expired"
    assert row["expires_in_seconds"] < -170


def test_partial_import_warns_about_the_bad_key(cli, kiro_db: KiroCliDb) -> None:
    kiro_db.put_social()
    kiro_db.set_raw("auth_kv", "kirocli:odic:token", '{"access_token": "x"}')
    result = cli("import")
    assert result.code == 0
    assert "kiro-tui: warning: skipped kirocli:odic:token" in result.err
    assert "field 'expires_at' is missing" in result.err


def store_rows(isolated_dirs: Path) -> list[tuple]:
    path = isolated_dirs / "data" / "kiro-tui" / "accounts.db"
    if not path.exists():
        return []
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT * FROM accounts ORDER BY id").fetchall()
    conn.close()
    return rows


@pytest.mark.parametrize(
    ("setup", "needle"),
    [
        (lambda d: None, "no kiro-cli database found (tried "),
        (lambda d: (d / "data" / "kiro-cli").mkdir(parents=True) or
         (d / "data" / "kiro-cli" / "data.sqlite3").write_bytes(b"\x00" * 5000), "not a SQLite database"),
        (lambda d: KiroCliDb(d / "data" / "kiro-cli" / "data.sqlite3"), "no login in"),
        (lambda d: KiroCliDb(d / "data" / "kiro-cli" / "data.sqlite3").set_raw(
            "auth_kv", "kirocli:social:token", "{oops"), "no usable login in"),
    ],
)
def test_errors_are_one_line_and_leave_the_store_alone(
    cli, isolated_dirs: Path, setup, needle: str
) -> None:
    seed = KiroCliDb(isolated_dirs / "seed.sqlite3")
    seed.put_social()
    assert cli("import", "--db", str(seed.path)).code == 0
    before = store_rows(isolated_dirs)
    setup(isolated_dirs)
    result = cli("import")
    assert result.code == 1
    assert needle in result.err
    assert result.err.strip().splitlines()[-1].startswith("kiro-tui: error: ")
    assert store_rows(isolated_dirs) == before


def test_corrupt_store_is_reported_with_a_backup_hint(cli, isolated_dirs: Path) -> None:
    store = isolated_dirs / "data" / "kiro-tui" / "accounts.db"
    store.parent.mkdir(parents=True)
    store.write_bytes(b"this is not sqlite" * 200)
    result = cli("list")
    assert result.code == 1
    assert "move it aside" in result.err and str(store) in result.err
    assert store.read_bytes() == b"this is not sqlite" * 200


def test_bad_config_names_the_key(cli, isolated_dirs: Path) -> None:
    config = isolated_dirs / "config" / "kiro-tui" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("refresh_window = -5\n")
    result = cli("list")
    assert result.code == 1
    assert "refresh_window must be between 0 and 86400" in result.err


def test_remove_asks_and_yes_skips_the_question(cli, kiro_db: KiroCliDb) -> None:
    kiro_db.put_social()
    kiro_db.put_oidc()
    cli("import")
    ids = [row["id"] for row in cli("list", "--json").json()]  # type: ignore[union-attr]
    refused = cli("remove", ids[0])
    assert refused.code == 1 and "pass --yes" in refused.err
    removed = cli("remove", ids[0][:6], "--yes")
    assert removed.code == 0 and ids[0] in removed.out
    remaining = [row["id"] for row in cli("list", "--json").json()]  # type: ignore[union-attr]
    assert remaining == ids[1:]
    unknown = cli("remove", "zzzz", "--yes")
    assert unknown.code == 1 and "no account with id 'zzzz'" in unknown.err
    assert kiro_db.get_json("auth_kv", "kirocli:social:token") is not None


def test_help_lists_commands_and_module_entry_point(kiro_tui_exe: str) -> None:
    import subprocess
    import sys

    result = run_cli(kiro_tui_exe, "--help")
    for command in ("import", "list", "remove"):
        assert command in result.out
    module = subprocess.run([sys.executable, "-m", "kiro_tui", "--help"], capture_output=True, text=True)
    assert module.returncode == 0 and "import" in module.stdout


def test_loose_store_permissions_are_fixed_with_a_warning(cli, isolated_dirs: Path) -> None:
    assert cli("list").code == 0
    store = isolated_dirs / "data" / "kiro-tui" / "accounts.db"
    store.chmod(0o644)
    result = cli("list")
    assert result.code == 0
    assert f"kiro-tui: warning: {store} was readable by others (mode 0644); set it to 0600" in result.err
    assert oct(store.stat().st_mode & 0o777) == "0o600"


def test_a_bug_is_one_line_on_stderr_and_a_traceback_in_the_log(isolated_dirs: Path, monkeypatch, capsys) -> None:
    from kiro_tui import cli
    from kiro_tui.cli import accounts

    def broken(args):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom with aoaAAAAAGabcdefghijklmnopqrstuvwxyz0123456789")

    monkeypatch.setattr(accounts, "cmd_list", broken)  # the parser registers it from there
    code = cli.main(["list"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("kiro-tui: internal error: RuntimeError: boom with aoaA…; details in ")
    assert "Traceback" not in err and "abcdefghijklmnop" not in err
    log_text = (isolated_dirs / "state" / "kiro-tui" / "log" / "kiro-tui.log").read_text()
    assert "Traceback" in log_text and "unexpected error in `kiro-tui list`" in log_text
    assert "abcdefghijklmnop" not in log_text  # the log masks token-shaped text too
    assert "/kiro_tui/cli/__init__.py" in log_text  # while file paths stay readable


def test_remove_says_what_it_leaves_untouched(cli, isolated_dirs: Path, kiro_db) -> None:
    kiro_db.put_social()
    imported = cli("import", "--json").json()["imported"][0]["id"]
    with AccountStore.open(isolated_dirs / "data" / "kiro-tui" / "accounts.db") as store:
        own = replace(store.get(imported), id="0123abcd", refresh_token="aorOWNLOGIN", source=None, source_key=None,
                      label="own login")
        store.save(own)
    piped = cli("remove", imported, input_text="y\n")  # no terminal: never a silent yes
    assert piped.code == 1 and "pass --yes" in piped.err
    first = cli("remove", imported, "--yes")
    assert first.code == 0 and "The copies in kiro-cli are untouched" in first.out, first.out
    second = cli("remove", "0123abcd", "--yes")
    assert second.code == 0 and "kiro-tui's own login" in second.out and "kiro-cli" not in second.out, second.out


def test_list_says_when_each_account_is_refreshed_next(cli, isolated_dirs: Path, kiro_db) -> None:
    kiro_db.put_social()
    cli("import")
    (listed,) = cli("list", "--json").json()
    expires = datetime.fromisoformat(listed["expires_at"].replace("Z", "+00:00"))
    assert datetime.fromisoformat(listed["next_refresh_at"].replace("Z", "+00:00")) == expires - timedelta(minutes=10)
    assert cli("mode", listed["id"], "follow").code == 0
    (followed,) = cli("list", "--json").json()
    assert followed["next_refresh_at"] is None  # kiro-cli refreshes it, never kiro-tui


def test_list_loads_neither_the_engine_nor_an_event_loop(cli, kiro_db: KiroCliDb) -> None:
    """`list` only reads: the engine's machinery (asyncio, the watch, place writing, `use`) was a
    fifth of its run at 1,000 accounts (benchmarks/list_json.py). What a place holds is still said."""
    import os
    import subprocess
    import sys

    kiro_db.put_social()
    assert cli("import").code == 0
    looked_for = ("asyncio", "kiro_tui.core.engine", "kiro_tui.core.place_sync", "kiro_tui.core.switch",
                  "kiro_tui.core.importer", "kiro_tui.core.service")
    code = ("import sys\nfrom kiro_tui.cli import main\ncode = main(['list', '--json'])\n"
            f"print(sorted(m for m in {looked_for!r} if m in sys.modules), file=sys.stderr)\nsys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code], env=dict(os.environ), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(done.stdout)
    assert [place["holds"] for place in row["places"]] == ["current"]
    assert done.stderr.strip().splitlines()[-1] == "[]"  # (a warning before it would not matter)
