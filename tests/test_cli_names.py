"""Names, `show`, `use` and shell completion from the command line (issue 23)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kiro_tui.core.store import AccountStore
from kiro_tui.demo import account_from_seed
from tests.support.places import seed, write_kiro_ide
from tests.support.run import run_cli


def store_path(home: Path) -> Path:
    return home / "data" / "kiro-tui" / "accounts.db"


def two_accounts(home: Path, emulator) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    with AccountStore.open(store_path(home)) as store:
        store.save(account_from_seed(emulator.seed(kind="social", email="ann@work.example"), "a1b2c3d4"))
        store.save(account_from_seed(emulator.seed(kind="builder-id", email="bob@home.example"), "a1ffee00"))
    return "a1b2c3d4", "a1ffee00"


def test_a_name_is_shown_and_accepted_wherever_an_id_is(cli, isolated_dirs: Path, live_emulator) -> None:
    ann, bob = two_accounts(isolated_dirs, live_emulator)
    env = {"KIRO_TUI_ENDPOINT_URL": live_emulator.url}
    renamed = cli("rename", ann, "work")
    assert renamed.code == 0 and f"{ann} is now called work (it was shown as ann@work.example)" in renamed.out
    listing = cli("list")
    assert "work" in listing.out and "ann@work.example" not in listing.out  # the name instead of the email
    (row,) = [r for r in cli("list", "--json").json() if r["id"] == ann]
    assert (row["name"], row["nickname"], row["email"]) == ("work", "work", "ann@work.example")
    # the name, a prefix of it (any case), and a unique prefix of an email all resolve
    for typed, expected in (("work", ann), ("WO", ann), ("bob@", bob), ("ann@work.example", ann)):
        shown = cli("show", typed, "--json")
        assert shown.code == 0 and shown.json()["id"] == expected, (typed, shown.err)
    refreshed = cli("refresh", "work", env=env)
    assert refreshed.code == 0 and refreshed.out.startswith("refreshed  " + ann), refreshed.out
    # ambiguous, taken, and not a word: one line each, saying what to do
    ambiguous = cli("show", "a1")
    assert ambiguous.code == 1 and "'a1' matches 2 accounts" in ambiguous.err and "type more" in ambiguous.err
    taken = cli("rename", bob, "WORK")
    assert taken.code == 1 and "already account a1b2c3d4's (work); choose another" in taken.err
    spaced = cli("rename", bob, "my laptop")
    assert spaced.code == 1 and "use one word" in spaced.err and len(spaced.err.splitlines()) == 1
    assert cli("rename", "work", "").out.strip() == f"{ann} has no name now; it is shown as " \
                                                                       "ann@work.example."


def test_show_says_what_each_place_holds_and_what_to_do(cli, isolated_dirs: Path, live_emulator) -> None:
    from kiro_tui.core.models import Health

    ann, bob = two_accounts(isolated_dirs, live_emulator)
    assert cli("use", ann, "--in", "kiro-ide").code == 0
    text = cli("show", ann).out
    ide = isolated_dirs / ".aws" / "sso" / "cache" / "kiro-auth-token.json"
    assert f"kiro-ide    link   in-sync  {ide} — holds current, the tool uses this account" in text, text
    assert "to do\n  nothing: all is well" in text
    with AccountStore.open(store_path(isolated_dirs)) as store:
        store.update(bob, health=Health.NEEDS_LOGIN, last_error="the refresh token was revoked")
    shown = cli("show", bob, "--json").json()
    assert shown["advice"][0].startswith("its login is dead (the refresh token was revoked): log in again")
    assert shown["places"] == [] and shown["refresh_token"] != "" and "history" in shown
    secret = cli("list", "--json", "--show-secrets").json()[0]["refresh_token"]
    assert secret not in cli("show", ann).out  # masked, like list
    # an error about places points at show
    unlinked = cli("unlink", bob, "cliproxy")
    assert unlinked.code == 1 and f"`kiro-tui show {bob}` shows its places" in unlinked.err


def test_use_keeps_the_login_that_was_there_and_list_says_whose_login_the_ide_holds(
        cli, isolated_dirs: Path, live_emulator) -> None:
    cache = isolated_dirs / ".aws" / "sso" / "cache"
    stranger = seed(live_emulator, "social")
    write_kiro_ide(cache, stranger)
    ann, _ = two_accounts(isolated_dirs, live_emulator)
    used = cli("use", "ann", "--in", "kiro-ide", "--json")
    assert used.code == 0, used.err
    result = used.json()
    (previous,) = result["previous"]
    assert previous["action"] == "imported" and result["copies"]
    rows = {r["id"]: r for r in cli("list", "--json").json()}
    (place,) = rows[ann]["places"]
    assert (place["kind"], place["role"], place["holds_account"]) == ("kiro-ide", "link", ann)
    assert rows[previous["id"]]["mode"] == "own" and rows[previous["id"]]["places"] == []
    text = cli("use", previous["id"], "--in", "kiro-ide")
    assert text.code == 0 and "is now the login in" in text.out and "picks it up by itself" in text.out
    assert f"`kiro-tui use {ann} --in kiro-ide` switches back" in text.out
    (place,) = {r["id"]: r for r in cli("list", "--json").json()}[previous["id"]]["places"]
    assert place["holds_account"] == previous["id"]
    refused = cli("use", ann, "--in", "opencode")
    assert refused.code == 2 and "invalid choice" in refused.err


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_bash_completion_completes_commands_flags_kinds_and_accounts(kiro_tui_exe, isolated_dirs: Path,
                                                                        live_emulator) -> None:
    ann, bob = two_accounts(isolated_dirs, live_emulator)
    assert run_cli(kiro_tui_exe, "rename", bob, "home-laptop").code == 0
    script = isolated_dirs / "kiro-tui.bash"
    script.write_text(run_cli(kiro_tui_exe, "completion", "bash").out)
    bindir = Path(kiro_tui_exe).parent

    def complete(*words: str) -> list[str]:
        line = " ".join(("kiro-tui", *words))
        program = (f"source {script}; COMP_WORDS=(kiro-tui {' '.join(repr(w) for w in words)}); "
                   f"COMP_CWORD={len(words)}; COMP_LINE={line!r}; _kiro_tui; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
        done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30,
                              env={**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"})
        assert done.returncode == 0, done.stderr
        return sorted(filter(None, done.stdout.splitlines()))

    assert {"use", "rename", "show", "completion", "link"} <= set(complete(""))
    assert complete("re") == ["refresh", "remove", "rename"]
    assert complete("use", "--") == ["--db", "--in", "--json", "--path"]
    assert complete("use", "x", "--in", "") == sorted(["kiro-cli", "kiro-ide", "cliproxy", "aiclient", "gateway",
                                                        "gateway-db"])
    assert complete("link", "x", "--to", "kiro") == ["kiro-ide"]
    assert complete("use", "") == sorted([ann, bob, "home-laptop"])
    assert complete("show", "home") == ["home-laptop"]
    assert complete("--db", "/tmp/x.db", "show", "a1b") == [ann]  # a flag's value is not the command
    assert complete("refresh", ann, "") == sorted([ann, bob, "home-laptop"])  # several ids
    assert complete("mode", ann, "") == ["follow", "own", "sync"]
    assert complete("completion", "") == ["bash", "fish", "zsh"]


def test_zsh_and_fish_scripts_name_the_same_commands(kiro_tui_exe) -> None:
    zsh = run_cli(kiro_tui_exe, "completion", "zsh").out
    assert zsh.startswith("autoload -U +X bashcompinit && bashcompinit") and "complete -F _kiro_tui kiro-tui" in zsh
    fish = run_cli(kiro_tui_exe, "completion", "fish").out
    assert "complete -c kiro-tui -n '__fish_seen_subcommand_from use' -l in -x -a 'kiro-cli kiro-ide" in fish
    assert "-a '(kiro-tui __complete accounts)'" in fish
    if shutil.which("fish"):
        done = subprocess.run(["fish", "--no-execute", "-c", fish], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr


def test_use_in_kiro_cli_finds_its_database_and_makes_it_the_accounts_sync_place(
        cli, isolated_dirs: Path, live_emulator, kiro_db) -> None:
    from tests.support.engine import seed_into_kiro_cli

    seed_into_kiro_cli(live_emulator, kiro_db, kind="social", email="cli@example.com")
    ann, _ = two_accounts(isolated_dirs, live_emulator)
    used = cli("use", ann, "--in", "kiro-cli")
    assert used.code == 0 and "kiro-cli uses it from its next start" in used.out, used.err
    assert "imported (kiro-tui had not seen it)" in used.out
    rows = {r["id"]: r for r in cli("list", "--json").json()}
    (place,) = rows[ann]["places"]
    assert (rows[ann]["mode"], place["kind"], place["role"], place["holds_account"]) == (
        "sync", "kiro-cli", "source", ann)
    assert len(rows) == 3  # kiro-cli's own login was imported, not lost
