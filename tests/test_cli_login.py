"""`kiro-tui login` and the `--db` that comes before a command: a login and a denied one run the
installed command, the rest run it in process."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from kiro_tui.demo import IDC_PROFILES
from tests.support.engine import control, seed_into_kiro_cli
from tests.support.kiro_cli_db import KiroCliDb
from tests.support.run import InProcessCli, run_cli

IDC = "https://d-7777777777.awsapps.com/start"


def test_builder_id_login_prints_the_code_as_text_and_saves_the_account(kiro_tui_exe, cli: InProcessCli,
                                                                         approving_emulator) -> None:
    control(approving_emulator, "config", {"next_user_codes": ["QWER-TYUI"]})
    result = run_cli(kiro_tui_exe, "login", "--no-browser", env={"KIRO_TUI_ENDPOINT_URL": approving_emulator.url})
    assert result.code == 0, result.err
    assert re.search(r"^\s+QWER-TYUI\s*$", result.out, re.M)  # the code as plain text, on its own line
    assert f"{approving_emulator.url}/device" in result.out
    assert "Logged in as" in result.out and "kiro-tui keeps it fresh" in result.out
    (account,) = cli("list", "--json").json()
    assert (account["auth_method"], account["region"], account["mode"]) == ("builder-id", "us-east-1", "own")


def test_idc_login_takes_the_profile_given_and_prints_json(cli: InProcessCli, approving_emulator) -> None:
    approving_emulator.state.add_user("idc", email="pat@acme.example", region="eu-west-1", start_url=IDC,
                                      profiles=IDC_PROFILES)
    env = {"KIRO_TUI_ENDPOINT_URL": approving_emulator.url}
    two = cli("login", "--start-url", IDC, "--region", "eu-west-1", "--no-browser", env=env)
    assert two.code == 2 and "pass --profile ARN" in two.err and IDC_PROFILES[1]["arn"] in two.err  # no terminal
    (saved,) = cli("list", "--json").json()  # the approved login is saved, without a profile
    assert (saved["email"], saved["profile_arn"]) == ("pat@acme.example", None)
    assert f"{saved['id']}) is logged in and saved without a profile" in two.err
    chosen = cli("login", "--start-url", IDC, "--region", "eu-west-1", "--no-browser",
                     "--profile", IDC_PROFILES[1]["arn"], "--json", env=env)
    assert chosen.code == 0, chosen.err
    account = json.loads(chosen.out)  # only JSON on stdout; the prompts went to stderr
    assert (account["email"], account["profile_arn"], account["start_url"]) == (
        "pat@acme.example", IDC_PROFILES[1]["arn"], IDC)
    assert account["id"] == saved["id"]  # the same person's login again: that account, renewed
    assert "enter the code" in chosen.err


def test_login_errors_exit_1_and_usage_errors_exit_2(cli: InProcessCli, approving_emulator) -> None:
    env = {"KIRO_TUI_ENDPOINT_URL": approving_emulator.url}
    wrong_region = cli("login", "--start-url", "https://d-0000000000.awsapps.com/start",
                           "--region", "ap-south-1", "--no-browser", env=env)
    assert wrong_region.code == 1 and "no IAM Identity Center" in wrong_region.err
    assert len(wrong_region.err.strip().splitlines()) == 1
    bad_profile = cli("login", "--profile", "Team Dev", env=env)
    assert bad_profile.code == 2 and "--profile wants a profile ARN" in bad_profile.err
    bad_region = cli("login", "--region", "Europe", env=env)
    assert bad_region.code == 2 and "'Europe' is not an AWS region" in bad_region.err  # a flag's value: usage
    bad_url = cli("login", "--start-url", "d-1234567890.awsapps.com/start", env=env)
    assert bad_url.code == 2 and "must begin with https://" in bad_url.err


def test_denied_in_the_browser_saves_nothing(kiro_tui_exe, cli: InProcessCli, isolated_dirs: Path, live_emulator) -> None:
    env = {"KIRO_TUI_ENDPOINT_URL": live_emulator.url}
    proc = subprocess.Popen([kiro_tui_exe, "login", "--no-browser"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**__import__("os").environ, **env})
    assert proc.stdout is not None
    code = ""
    for line in proc.stdout:
        if re.match(r"^\s+[A-Z0-9]{4}-[A-Z0-9]{4}\s*$", line):
            code = line.strip()
            break
    control(live_emulator, "deny", {"user_code": code})
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and "denied in the browser" in err
    assert cli("list", "--json").json() == []


def test_db_before_the_command_is_not_overwritten(cli: InProcessCli, isolated_dirs: Path, tmp_path: Path, emulator) -> None:
    elsewhere = KiroCliDb(tmp_path / "elsewhere" / "data.sqlite3")
    seed_into_kiro_cli(emulator, elsewhere, kind="social", email="far@example.com")
    result = cli("--db", str(elsewhere.path), "import", "--json")
    assert result.code == 0, result.err
    assert result.json()["source"] == str(elsewhere.path.resolve())
    sources = cli("--db", str(elsewhere.path), "sources", "--json").json()
    assert sources[0] == {"kind": "kiro-cli", "path": str(elsewhere.path.resolve()), "found": True, "logins": 1,
                          "error": None}


def test_a_login_that_renews_a_kiro_cli_account_says_so(cli: InProcessCli, approving_emulator, kiro_db: KiroCliDb) -> None:
    env = {"KIRO_TUI_ENDPOINT_URL": approving_emulator.url}
    seed_into_kiro_cli(approving_emulator, kiro_db, kind="builder-id", email="kim@example.com", expires_in=3000)
    assert cli("import", env=env).code == 0
    (imported,) = cli("list", "--json").json()
    assert imported["mode"] == "sync"
    result = cli("login", "--no-browser", env=env)  # kim signs in: the same person
    assert result.code == 0, result.err
    assert (f"warning: this login renewed account {imported['id']} (kim@example.com), until now in sync mode: "
            "it is kiro-tui's own login now (mode own)") in result.err
    assert "link kiro-cli" not in result.err.lower()  # kiro-cli's database cannot be linked
    (renewed,) = cli("list", "--json").json()
    assert (renewed["id"], renewed["mode"]) == (imported["id"], "own")
