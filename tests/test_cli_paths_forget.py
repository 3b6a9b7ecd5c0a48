"""`kiro-tui paths` and `kiro-tui forget --all`: wiping kiro-tui with nothing but the installed
command (docs/security.md), and never anything that is not kiro-tui's."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.support.kiro_cli_db import KiroCliDb
from tests.support.run import Result


def a_used_kiro_tui(run: Callable[..., Result], home: Path, tmp_path: Path) -> tuple[KiroCliDb, Path, str]:
    """kiro-cli's login imported, linked into a CLIProxyAPI folder, a config file, logs written."""
    db = KiroCliDb(home / "data" / "kiro-cli" / "data.sqlite3")  # kiro-cli's usual place
    db.put_social()
    assert run("import").code == 0
    (account,) = run("list", "--json").json()  # type: ignore[misc]
    proxy = tmp_path / "proxy"
    linked = run("link", account["id"], "--to", "cliproxy", "--path", str(proxy))
    assert linked.code == 0, linked.err
    config = home / "config" / "kiro-tui" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("bell = true\n")
    rescue = home / "data" / "kiro-tui" / "accounts.db.rescue"
    rescue.mkdir()
    (rescue / f"{account['id']}.json").write_text("{}")  # a token the store would not take, kept aside
    return db, proxy, account["id"]


def test_paths_names_every_folder_kiro_tui_keeps_and_the_copies_it_linked(cli, isolated_dirs: Path,
                                                                          tmp_path: Path) -> None:
    db, proxy, account_id = a_used_kiro_tui(cli, isolated_dirs, tmp_path)
    result = cli("paths", "--json")
    assert result.code == 0, result.err
    found = json.loads(result.out)
    assert found["config"] == str(isolated_dirs / "config" / "kiro-tui" / "config.toml")
    assert found["data"] == str(isolated_dirs / "data" / "kiro-tui")
    assert found["store"] == str(isolated_dirs / "data" / "kiro-tui" / "accounts.db")
    assert found["logs"] == str(isolated_dirs / "state" / "kiro-tui" / "log")
    assert found["kiro_cli_db"] == str(db.path)
    (link,) = found["links"]
    assert (link["account_id"], link["kind"]) == (account_id, "cliproxy") and link["path"].startswith(str(proxy))
    text = cli("paths")
    assert text.code == 0 and str(isolated_dirs / "data" / "kiro-tui") in text.out and link["path"] in text.out


def test_paths_makes_nothing(cli, isolated_dirs: Path) -> None:
    assert cli("paths").code == 0
    assert not any(isolated_dirs.rglob("kiro-tui")), list(isolated_dirs.rglob("*"))


def test_forget_all_deletes_only_what_is_kiro_tuis_after_asking(cli, isolated_dirs: Path,
                                                                 tmp_path: Path) -> None:
    db, proxy, _ = a_used_kiro_tui(cli, isolated_dirs, tmp_path)
    ours = [isolated_dirs / "data" / "kiro-tui", isolated_dirs / "state" / "kiro-tui",
            isolated_dirs / "config" / "kiro-tui"]
    assert all(path.exists() for path in ours)
    kiro_cli_before, proxy_files = db.digest(), sorted(proxy.iterdir())

    bare = cli("forget")
    assert bare.code == 2 and "needs --all" in bare.err and "`kiro-tui remove ID`" in bare.err
    unasked = cli("forget", "--all")  # no terminal to ask on
    assert unasked.code == 1 and "without confirmation; pass --yes" in unasked.err
    assert len(unasked.err.strip().splitlines()) == 1
    assert all(path.exists() for path in ours)  # nothing deleted

    done = cli("forget", "--all", "--yes")
    assert done.code == 0, done.err
    assert not any(path.exists() for path in ours), [p for p in isolated_dirs.rglob("*kiro-tui*")]
    assert "Not touched: kiro-cli's login and the 1 copy kiro-tui linked into other tools' files" in done.out
    assert db.digest() == kiro_cli_before and sorted(proxy.iterdir()) == proxy_files  # other tools' files stay
    again = cli("forget", "--all", "--yes")
    assert again.code == 0 and "Nothing to forget" in again.out
