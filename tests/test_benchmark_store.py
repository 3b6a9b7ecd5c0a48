"""The benchmarks' store builder gives what `kiro-tui import` gives: the same accounts, in the
same places. (A benchmark measured on rows no import would make measures something else.)"""

from __future__ import annotations

from dataclasses import fields as dataclass_fields
from pathlib import Path

from benchmarks.harness import IMPORT_KINDS, build_imported_store, offline_logins
from kiro_tui.core import paths
from kiro_tui.core.models import Account
from kiro_tui.core.store import AccountStore
from tests.support.run import run_cli

IGNORED = {"id", "created_at", "updated_at"}  # new ids are random; the times are the import's own


def rows_by_place(store_path: Path) -> dict[tuple[str, str, str], tuple[tuple[str, object], ...]]:
    """Each place's (kind, path, entry) -> its role and state and its account's stored fields."""
    with AccountStore.open(store_path) as store:
        accounts = {a.id: a for a in store.accounts()}
        assert not store.unreadable
        found = {}
        for place in store.places():
            account = {f.name: getattr(accounts[place.account_id], f.name) for f in dataclass_fields(Account)}
            fields = tuple(sorted((k, v) for k, v in account.items() if k not in IGNORED))
            found[place.address] = ((("role", place.role.value), ("state", place.state.value),
                                     ("detail", place.detail)) + fields)
        assert len(found) == len(accounts)  # one place an account, each its own
        return found


def test_a_built_store_equals_importing_the_same_files_with_the_command(tmp_path: Path, kiro_tui_exe: str) -> None:
    logins = offline_logins(12, prefix="same")
    built_path = tmp_path / "built" / "accounts.db"
    built_path.parent.mkdir()
    targets = build_imported_store(built_path, logins, places=tmp_path / "places")
    built = rows_by_place(built_path)

    for kind, path in targets:  # the same files, imported as a person would: one command a place
        args = ["import", "--db", str(path)] if kind == "kiro-cli" else ["import", "--from", kind, "--path", str(path)]
        result = run_cli(kiro_tui_exe, *args)
        assert result.code == 0, result.err
    imported = rows_by_place(paths.store_file())

    assert len(imported) == 12
    assert {kind for kind, _, _ in imported} == set(IMPORT_KINDS)
    assert built == imported


def test_every_account_built_has_its_own_place_file(tmp_path: Path) -> None:
    store_path = tmp_path / "accounts.db"
    build_imported_store(store_path, 8)
    folder = tmp_path / "places"
    with AccountStore.open(store_path) as store:
        places = store.places()
        assert len(store.accounts()) == 8
    assert len({p.account_id for p in places}) == 8
    assert all(Path(p.path).is_file() and Path(p.path).is_relative_to(folder) for p in places)
