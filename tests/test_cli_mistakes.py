"""Mistakes get the same one-line answer as failures: what, where, what to do (the installed
command, as a person types it)."""

from __future__ import annotations

import pytest

from tests.test_cli_login import IDC


def error_line(result) -> str:  # type: ignore[no-untyped-def]
    """The one error line, after the command's usage line."""
    lines = result.err.strip().splitlines()
    assert result.code == 2 and "Traceback" not in result.err, result.err
    assert len([line for line in lines if "error:" in line]) == 1, result.err
    return next(line for line in lines if "error:" in line)


@pytest.mark.parametrize(("args", "usage", "says"), [
    (["import", "--form", "all"], "usage: kiro-tui import", "unrecognized arguments --form all; did you mean `--from`?"),
    (["list", "--jsn"], "usage: kiro-tui list", "did you mean `--json`?"),
    (["refresh", "--alll"], "usage: kiro-tui refresh", "did you mean `--all`?"),
    (["link", "a1", "--to", "kiro-ide", "--pth", "x"], "usage: kiro-tui link", "did you mean `--path`?"),
    (["list", "--everything"], "usage: kiro-tui list", "`kiro-tui list --help` lists what it takes"),
    (["imprt"], "usage: kiro-tui [", "invalid choice 'imprt'; did you mean `import`?"),
    (["import", "--from", "cliprxy"], "usage: kiro-tui import", "invalid choice 'cliprxy'; did you mean `cliproxy`?"),
])
def test_a_mistyped_flag_gets_that_commands_usage_and_the_nearest_flag(cli, args, usage, says) -> None:
    result = cli(*args)
    assert says in error_line(result), result.err
    assert result.err.startswith(usage), result.err


@pytest.mark.parametrize("command", ["link", "export"])
@pytest.mark.parametrize(("kind", "says"), [
    ("kiro-cli", "kiro-tui does not link or export into kiro-cli's database: import its login and use the sync "
                 "mode (`kiro-tui mode ID sync`)"),
    ("opencode", "kiro-tui never writes opencode-kiro-auth's file (the tool saves over it); link kiro-cli instead"),
])
def test_link_and_export_to_kiro_cli_or_opencode_say_why_not_and_what_instead(cli, command, kind,
                                                                              says) -> None:
    line = error_line(cli(command, "a1b2c3d4", "--to", kind))
    assert says in line and "invalid choice" not in line, line


def test_path_with_from_all_is_refused_not_ignored(cli, tmp_path) -> None:
    line = error_line(cli("import", "--from", "all", "--path", str(tmp_path)))
    assert "--path names one place, and --from all looks in every place kiro-tui knows" in line
    assert "--from KIND --path PATH" in line


def test_db_before_a_command_that_does_not_read_it_is_refused(cli, tmp_path) -> None:
    result = cli("--db", str(tmp_path / "data.sqlite3"), "list")
    line = error_line(result)
    assert result.err.startswith("usage: kiro-tui list")
    assert "--db names kiro-cli's database, which `list` does not read" in line
    assert "`import`, `sources`, `watch`" in line


def test_db_before_a_command_that_reads_it_is_used(cli, tmp_path) -> None:
    missing = tmp_path / "elsewhere" / "data.sqlite3"
    for args in (["--db", str(missing), "import"], ["import", "--db", str(missing)]):
        result = cli(*args)
        assert result.code == 1 and f"kiro-cli database {missing} does not exist" in result.err, result.err
    listed = cli("--db", str(missing), "sources", "--json").json()
    assert {"kind": "kiro-cli", "path": str(missing)}.items() <= listed[0].items()


def test_regions_are_case_insensitive(cli, approving_emulator) -> None:
    approving_emulator.state.add_user("idc", email="pat@acme.example", region="eu-west-1", start_url=IDC)
    result = cli("login", "--start-url", IDC, "--region", "EU-WEST-1", "--no-browser", "--json",
                     env={"KIRO_TUI_ENDPOINT_URL": approving_emulator.url})
    assert result.code == 0, result.err
    (account,) = cli("list", "--json").json()
    assert (account["email"], account["region"]) == ("pat@acme.example", "eu-west-1")
