"""The accounts screen with many accounts does per keystroke and per second only what changed:
the text a filter looks in is kept per account (and built again when the account changes), and
a cleared filter brings the rows back a screenful first, the cursor on the row it was on."""

from __future__ import annotations

import contextlib
import threading
from datetime import timedelta
from pathlib import Path

from textual.widgets import Input
from textual.worker import WorkerFailed

from kiro_tui.core.events import AccountsChanged
from kiro_tui.core.models import Account, AuthMethod, Mode
from kiro_tui.core.store import AccountStore
from kiro_tui.tui.screens import accounts as accounts_screen
from kiro_tui.tui.widgets.accounts_table import FIRST_ROWS, AccountsTable
from tests.support.tui import NOW, build_app, build_store, settle, watch_pass

SIZE = (160, 40)
COUNT = 300


def many(count: int = COUNT) -> list[Account]:
    return [Account(id=f"{i:08x}", auth_method=AuthMethod.SOCIAL, access_token=f"aoaAAAAAG{i}:sig",
                    refresh_token=f"aorAAAAAG{i}:sig", expires_at=NOW + timedelta(minutes=30 + i % 40),
                    label=f"user{i:03d}@example.com", mode=Mode.OWN) for i in range(count)]


def rows(app) -> list[str]:  # type: ignore[no-untyped-def]
    grid = app.screen.query_one(AccountsTable)
    return [str(row.key.value) for row in grid.ordered_rows]


async def test_a_renamed_account_is_found_by_the_filter_it_now_matches(tmp_path: Path) -> None:
    with build_store(tmp_path / "accounts.db", many(20)) as store:
        app = build_app(store)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("slash", *"zebra")
            await pilot.pause()
            assert rows(app) == []
            with AccountStore.open(store.path) as other:  # another kiro-tui renames it
                other.update("00000007", label="zebra@example.com")
            await watch_pass(pilot)
            assert rows(app) == ["00000007"]
            with AccountStore.open(store.path) as other:  # and back: no longer found
                other.update("00000007", label="user007@example.com")
            await watch_pass(pilot)
            assert rows(app) == []


async def test_clearing_a_filter_adds_a_screenful_first_and_keeps_the_cursor(tmp_path: Path) -> None:
    with build_store(tmp_path / "accounts.db", many()) as store:
        app = build_app(store)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("slash", *"user25")  # user250…user259, deep in the list
            await pilot.pause()
            grid = app.screen.query_one(AccountsTable)
            assert len(rows(app)) == 10
            await pilot.press("enter")
            grid.move_cursor(row=grid.get_row_index("000000fd"))  # user253
            await pilot.pause()

            await app.screen.action_clear_filter()  # type: ignore[attr-defined]
            assert grid.row_count == FIRST_ROWS  # the first screenful only, before the next frame
            await settle(pilot)

            assert len(rows(app)) == COUNT and rows(app) == sorted(rows(app), key=lambda i: int(i, 16))
            assert grid.selected_id == "000000fd"
            assert not app.screen.query("#filter") or not app.screen.query_one("#filter", Input).value


async def test_a_burst_of_changes_is_one_message_and_every_change_is_shown(tmp_path: Path, monkeypatch) -> None:
    """While a re-read is under way, the engine's changes wait for it to take them: no message
    per change (one per refresh was four wake-ups of the UI each in a burst), and none is lost."""
    with build_store(tmp_path / "accounts.db", many(20)) as store:
        app = build_app(store)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.accounts_screen
            told = []
            post = screen.post_message
            monkeypatch.setattr(screen, "post_message",
                                lambda message: told.append(type(message).__name__) or post(message))
            renamed = [f"{i:08x}" for i in range(10)]
            with AccountStore.open(store.path) as other:  # another writer changes them, one by one
                for account_id in renamed:
                    other.update(account_id, label=f"renamed{account_id}@example.com")
            monkeypatch.setattr(accounts_screen, "REPAINT_GAP", 0.05)  # (the gap between two re-reads in a burst)
            gate = threading.Event()
            app.engine.call_soon(lambda engine: gate.wait(10))  # the engine busy: the first re-read waits
            for account_id in renamed:  # as the engine tells of each, from its thread
                app._engine_event(AccountsChanged(frozenset({account_id})))
                await pilot.pause()
            gate.set()
            await settle(pilot)
            assert told.count("AccountsUpdated") == 2  # the first; one more, taken by the re-read under way
            shown = {str(app.screen.query_one(AccountsTable).get_row(account_id)[0]) for account_id in renamed}
            assert shown == {f"renamed{account_id}@example.com" for account_id in renamed}


async def test_after_a_re_read_that_failed_the_screen_still_hears_of_changes(tmp_path: Path, monkeypatch) -> None:
    """A re-read ends early (a bug while painting) after a change was told to it: the screen
    keeps that change and the app tells it of the next one (it would otherwise wait for a take
    that never comes, and show no change again)."""
    with build_store(tmp_path / "accounts.db", many(20)) as store:
        app = build_app(store)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.accounts_screen
            monkeypatch.setattr(accounts_screen, "REPAINT_GAP", 0.05)
            painted = screen.apply
            failed: list[object] = []

            def apply_failing_once(result, ids):  # type: ignore[no-untyped-def]
                if not failed:
                    failed.append(ids)
                    raise RuntimeError("a bug while painting")
                return painted(result, ids)

            monkeypatch.setattr(screen, "apply", apply_failing_once)
            with AccountStore.open(store.path) as other:
                for account_id in ("00000001", "00000002", "00000003"):
                    other.update(account_id, label=f"renamed{account_id}@example.com")
            gate = threading.Event()
            app.engine.call_soon(lambda engine: gate.wait(10))
            app._engine_event(AccountsChanged(frozenset({"00000001"})))
            await pilot.pause()
            app._engine_event(AccountsChanged(frozenset({"00000002"})))  # told while that re-read waits
            await pilot.pause()
            gate.set()
            with contextlib.suppress(WorkerFailed):
                await app.workers.wait_for_complete()
            assert failed == [frozenset({"00000001"})]
            app._engine_event(AccountsChanged(frozenset({"00000003"})))  # the next change
            await settle(pilot)
            table = app.screen.query_one(AccountsTable)
            assert {account_id: str(table.get_row(account_id)[0]) for account_id in ("00000002", "00000003")} == {
                "00000002": "renamed00000002@example.com", "00000003": "renamed00000003@example.com"}
