"""`sources` and `import --from all` look wherever a tool's files can be known: the files kiro-
gateway's variables name, every place kiro-tui linked or exported to; and they say plainly which
tools they cannot find by themselves (AIClient-2-API lives in its own folder)."""

from __future__ import annotations

from pathlib import Path

from tests.support.engine import seed_into_kiro_cli
from tests.support.kiro_cli_db import KiroCliDb
from tests.support.places import seed, write_cliproxy, write_gateway, write_gateway_credentials


def by_kind(sources: list[dict]) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for source in sources:
        found.setdefault(source["kind"], []).append(source)
    return found


def test_tools_it_cannot_find_by_itself_are_named_with_what_to_do(cli, isolated_dirs: Path,
                                                                   emulator, monkeypatch) -> None:
    for variable in ("KIRO_CREDS_FILE", "ACCOUNTS_CONFIG_FILE", "KIRO_CLI_DB_FILE"):
        monkeypatch.delenv(variable, raising=False)
    sources = by_kind(cli("sources", "--json").json())  # type: ignore[arg-type]
    for kind, says in (("aiclient", "`kiro-tui import --from aiclient --path FOLDER`"),
                       ("gateway", "KIRO_CREDS_FILE or ACCOUNTS_CONFIG_FILE says, and neither is set here"),
                       ("gateway-db", "KIRO_CLI_DB_FILE says, and it is not set here")):
        (source,) = sources[kind]
        assert source["path"] is None and source["found"] is False and says in source["error"], source
    text = cli("sources")
    assert "AIClient-2-API keeps its files under its own folder (configs/kiro/)" in text.out

    write_cliproxy(isolated_dirs / ".cli-proxy-api", seed(emulator, "social"))
    imported = cli("import", "--from", "all")
    assert imported.code == 0, imported.err
    not_looked = [line for line in imported.err.splitlines() if "not looked at:" in line]
    assert len(not_looked) == 3 and "AIClient-2-API" in not_looked[0], imported.err


def test_the_files_kiro_gateways_variables_name_are_looked_at_and_imported(cli, isolated_dirs: Path,
                                                                           emulator, monkeypatch) -> None:
    creds = write_gateway(isolated_dirs / "gw" / "creds.json", seed(emulator, "social"))
    pooled = write_gateway(isolated_dirs / "gw" / "pool" / "one.json", seed(emulator, "builder-id"))
    accounts = write_gateway_credentials(isolated_dirs / "gw" / "credentials.json",
                                         [{"type": "json", "path": str(pooled), "enabled": True}])
    database = KiroCliDb(isolated_dirs / "gw" / "kiro-gateway.sqlite3")
    seed_into_kiro_cli(emulator, database, kind="idc", email="gw-db@example.com")
    monkeypatch.setenv("KIRO_CREDS_FILE", str(creds))
    monkeypatch.setenv("ACCOUNTS_CONFIG_FILE", str(accounts))
    monkeypatch.setenv("KIRO_CLI_DB_FILE", str(database.path))

    sources = by_kind(cli("sources", "--json").json())  # type: ignore[arg-type]
    assert {(s["path"], s["logins"]) for s in sources["gateway"]} == {(str(creds), 1), (str(accounts), 1)}
    assert [(s["path"], s["logins"]) for s in sources["gateway-db"]] == [(str(database.path), 1)]
    result = cli("import", "--from", "all", "--json")
    assert result.code == 0, result.err
    report = result.json()
    assert sorted(i["kind"] for i in report["imported"]) == ["gateway", "gateway", "gateway-db"]
    assert [c["kind"] for c in report["cannot_find"]] == ["aiclient"]


def test_kiro_clis_own_database_named_for_the_gateway_is_read_once_as_kiro_cli(cli, isolated_dirs: Path,
                                                                               emulator, monkeypatch) -> None:
    db = KiroCliDb(isolated_dirs / "data" / "kiro-cli" / "data.sqlite3")
    seed_into_kiro_cli(emulator, db, kind="social", email="shared@example.com")
    monkeypatch.setenv("KIRO_CLI_DB_FILE", str(db.path))  # the gateway shares kiro-cli's login
    sources = cli("sources", "--json").json()
    assert [s["kind"] for s in sources if s["path"] == str(db.path)] == ["kiro-cli"]
    assert "gateway-db" not in {s["kind"] for s in sources}  # neither looked at twice nor "cannot find"


def test_places_kiro_tui_linked_or_exported_to_are_looked_at(cli, isolated_dirs: Path, emulator,
                                                             monkeypatch) -> None:
    for variable in ("KIRO_CREDS_FILE", "ACCOUNTS_CONFIG_FILE", "KIRO_CLI_DB_FILE"):
        monkeypatch.delenv(variable, raising=False)
    write_cliproxy(isolated_dirs / ".cli-proxy-api", seed(emulator, "social"))
    assert cli("import", "--from", "cliproxy").code == 0
    (account,) = cli("list", "--json").json()  # type: ignore[misc]
    assert cli("link", account["id"], "--to", "aiclient", "--path",
                   str(isolated_dirs / "a2a")).code == 0
    exported = cli("export", account["id"], "--to", "gateway", "--path",
                       str(isolated_dirs / "gw" / "handed-over.json"))
    assert exported.code == 0, exported.err

    sources = by_kind(cli("sources", "--json").json())  # type: ignore[arg-type]
    (linked,) = sources["aiclient"]
    assert linked["path"].startswith(str(isolated_dirs / "a2a")) and linked["logins"] == 1
    (handed,) = sources["gateway"]
    assert (handed["path"], handed["logins"]) == (str(isolated_dirs / "gw" / "handed-over.json"), 1)
    result = cli("import", "--from", "all", "--json")
    assert result.code == 0, result.err
    assert {i["kind"] for i in result.json()["imported"]} == {"cliproxy", "aiclient", "gateway"}
    assert len(cli("list", "--json").json()) == 1  # one credential, one account
