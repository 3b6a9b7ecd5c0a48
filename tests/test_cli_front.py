"""Every command reads and edits accounts through the engine's front (issue 25): the CLI's
`mode`, `remove` and `rename` are the TUI's own edits (`Engine.set_mode`, `Engine.remove`,
`Engine.rename`, which reschedule and tell), not writes of their own to the store. And the one
copy logic (core/clipboard.py) falls back honestly."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from kiro_tui import cli
from kiro_tui.core.clipboard import SYSTEM, TERMINAL, copy_text, osc52
from kiro_tui.core.engine import Engine
from kiro_tui.core.store import AccountStore


@pytest.fixture
def imported(isolated_dirs: Path, kiro_db, capsys) -> str:  # type: ignore[no-untyped-def]
    kiro_db.put_social()
    assert cli.main(["import"]) == 0
    capsys.readouterr()
    with AccountStore.open(isolated_dirs / "data" / "kiro-tui" / "accounts.db") as store:
        (account_id,) = store.ids()
    return account_id


def _spy(monkeypatch: pytest.MonkeyPatch, name: str) -> list[str]:
    """Record each account the engine says changed, while it still does what it does."""
    told: list[str] = []
    real = getattr(Engine, name)

    def recording(self: Engine, account_id: str) -> None:
        told.append(account_id)
        real(self, account_id)

    monkeypatch.setattr(Engine, name, recording)
    return told


def test_mode_and_rename_are_the_engines_edits(imported: str, isolated_dirs: Path, monkeypatch, capsys) -> None:
    told = _spy(monkeypatch, "account_changed")
    assert cli.main(["mode", imported[:4], "own"]) == 0
    assert cli.main(["rename", imported, "work"]) == 0
    out = capsys.readouterr().out
    assert f"{imported} (GitHub (kiro-cli)): mode sync → own" in out
    assert f"{imported} is now called work" in out
    assert told == [imported, imported]  # each edit rescheduled and told, as in the TUI
    with AccountStore.open(isolated_dirs / "data" / "kiro-tui" / "accounts.db") as store:
        account = store.get(imported)
    assert account is not None and account.mode.value == "own" and account.nickname == "work"


def test_remove_is_the_engines_remove(imported: str, isolated_dirs: Path, monkeypatch, capsys) -> None:
    removed: list[str] = []
    real = Engine.remove

    async def recording(self: Engine, account_id: str) -> bool:
        removed.append(account_id)
        return await real(self, account_id)

    monkeypatch.setattr(Engine, "remove", recording)
    assert cli.main(["remove", imported, "--yes"]) == 0
    assert removed == [imported]
    assert f"Removed {imported}" in capsys.readouterr().out
    with AccountStore.open(isolated_dirs / "data" / "kiro-tui" / "accounts.db") as store:
        assert store.ids() == set()


def test_an_unreadable_account_is_named_and_removed_through_the_engine(imported: str, isolated_dirs: Path,
                                                                      capsys) -> None:
    with AccountStore.open(isolated_dirs / "data" / "kiro-tui" / "accounts.db") as store:
        with store.transaction() as tx:
            tx.execute("UPDATE accounts SET expires_at = 'not a time' WHERE id = ?", (imported,))
    assert cli.main(["remove", imported, "--yes"]) == 0
    assert f"Removed {imported} (unreadable account)" in capsys.readouterr().out


def test_copy_falls_back_to_the_terminal_then_to_nothing() -> None:
    copied: list[str] = []
    sent: list[str] = []

    def no_clipboard(text: str) -> None:
        raise RuntimeError("no display")

    assert copy_text("ABCD-1234", copied.append, sent.append) == SYSTEM and copied == ["ABCD-1234"] and sent == []
    assert copy_text("ABCD-1234", no_clipboard, sent.append) == TERMINAL and sent == ["ABCD-1234"]
    assert copy_text("ABCD-1234", no_clipboard, None) is None
    assert osc52("hi") == "\x1b]52;c;aGk=\x07"


def test_login_says_how_the_code_was_copied(monkeypatch) -> None:
    from kiro_tui.cli.login import copy_for_terminal

    def no_clipboard(text: str) -> None:
        raise RuntimeError("no display")

    assert copy_for_terminal("ABCD", lambda text: None) == "The code was copied to the clipboard."
    monkeypatch.setattr(sys, "stdout", io.StringIO())  # not a terminal: nothing is sent to it
    assert copy_for_terminal("ABCD", no_clipboard) == "Copy the code from above."
    assert sys.stdout.getvalue() == ""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdout", Terminal())
    assert copy_for_terminal("ABCD", no_clipboard).startswith("The code was sent to your terminal (OSC 52)")
    assert sys.stdout.getvalue() == osc52("ABCD")
