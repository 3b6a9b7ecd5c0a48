"""The TUI's faces of places: `i` offers every place found, `x` links, exports and unlinks."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input

from kiro_tui.core.models import PlaceRole, PlaceState
from kiro_tui.core.places import place_format
from kiro_tui.demo import account_from_seed
from kiro_tui.tui import format as fmt
from kiro_tui.tui.screens.choice import ChoiceScreen
from kiro_tui.tui.screens.path_prompt import PathPromptScreen
from tests.support.engine import seed_into_kiro_cli
from tests.support.kiro_cli_db import KiroCliDb
from tests.support.places import seed, write_cliproxy
from tests.support.tui import build_app, build_store, screen_text, settle, toasts

SIZE = (140, 40)


def kiro_cli_and_a_proxy(tmp_path: Path, isolated_dirs: Path, emulator) -> KiroCliDb:  # type: ignore[no-untyped-def]
    """A kiro-cli login, and a CLIProxyAPI file of another login at that tool's usual place."""
    db = KiroCliDb(tmp_path / "kiro-cli" / "data.sqlite3")
    seed_into_kiro_cli(emulator, db, kind="social", email="cli@example.com")
    write_cliproxy(isolated_dirs / ".cli-proxy-api", seed(emulator, "builder-id"))
    return db


async def test_i_offers_every_place_found_kiro_cli_first(tmp_path: Path, isolated_dirs: Path, emulator) -> None:
    db = kiro_cli_and_a_proxy(tmp_path, isolated_dirs, emulator)
    with build_store(tmp_path / "s.db", []) as store:
        app = build_app(store, emulator.url, kiro_cli_db=db.path, candidates=[db.path])
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await settle(pilot)
            await pilot.press("i")
            await settle(pilot)
            picker = app.screen
            assert isinstance(picker, ChoiceScreen)
            labels = [label for _, label in picker.options]
            assert labels[0].startswith("kiro-cli") and "1 login" in labels[0]
            assert any(label.startswith("CLIProxyAPI") and "1 login" in label for label in labels)
            assert labels[-1].startswith("Everything above") and "2 logins" in labels[-1]
            await pilot.press("end", "enter")  # everything
            await settle(pilot)
            assert len(app.accounts_screen.views) == 2
            assert any(t.startswith("Imported") for t in toasts(app))


async def test_an_import_from_another_tool_is_named_for_it_and_each_place_is_offered_once(
        tmp_path: Path, isolated_dirs: Path, emulator) -> None:
    db = kiro_cli_and_a_proxy(tmp_path, isolated_dirs, emulator)
    with build_store(tmp_path / "s.db", []) as store:
        app = build_app(store, emulator.url, kiro_cli_db=db.path, candidates=[db.path])
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await settle(pilot)
            for _ in range(2):  # the second time, the file imported is a place: still one entry
                await pilot.press("i")
                await settle(pilot)
                picker = app.screen
                assert isinstance(picker, ChoiceScreen)
                proxies = [i for i, (_, label) in enumerate(picker.options) if label.startswith("CLIProxyAPI")]
                assert len(proxies) == 1, picker.options
                assert picker.options[-1][1].startswith("Everything above") and "2 logins" in picker.options[-1][1]
                picker.query_one("#choices").highlighted = proxies[0]
                await pilot.press("enter")
                await settle(pilot)
            assert any(t.startswith("Imported from CLIProxyAPI") for t in toasts(app)), toasts(app)
            assert not any("kiro-cli" in t for t in toasts(app)), toasts(app)
            summary = str(app.screen.query_one("#summary").render())  # still kiro-cli's own database
            assert f"kiro-cli: {fmt.home_relative(db.path)}" in summary, summary


async def test_i_imports_kiro_cli_at_once_when_it_is_the_only_place(tmp_path: Path, emulator) -> None:
    db = KiroCliDb(tmp_path / "kiro-cli" / "data.sqlite3")
    seed_into_kiro_cli(emulator, db, kind="social", email="only@example.com")
    with build_store(tmp_path / "s.db", []) as store:
        app = build_app(store, emulator.url, kiro_cli_db=db.path, candidates=[db.path])
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await settle(pilot)
            await pilot.press("i")
            await settle(pilot)
            assert not isinstance(app.screen, ChoiceScreen)
            assert len(app.accounts_screen.views) == 1


async def test_x_links_a_copy_shows_it_in_the_detail_and_unlinks_it(tmp_path: Path, emulator) -> None:
    with build_store(tmp_path / "s.db", []) as store:
        store.save(account_from_seed(emulator.seed(kind="social", email="x@example.com"), "0a0b0c0d"))
        app = build_app(store, emulator.url)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await settle(pilot)
            await pilot.press("x")
            await settle(pilot)
            choices = app.screen
            assert isinstance(choices, ChoiceScreen)
            ids = [option_id for option_id, _ in choices.options]
            assert "link\tcliproxy" in ids and "export\tkiro-ide" in ids
            assert not any(i.startswith("unlink") for i in ids)
            choices.query_one("#choices").highlighted = ids.index("link\tcliproxy")
            await pilot.press("enter")
            await settle(pilot)
            prompt = app.screen
            assert isinstance(prompt, PathPromptScreen)
            assert prompt.query_one("#path", Input).value.endswith(".cli-proxy-api")  # the tool's usual folder
            prompt.query_one("#path", Input).value = str(tmp_path / "proxy")
            await pilot.press("enter")
            await settle(pilot)
            (place,) = store.places("0a0b0c0d")
            assert (place.kind, place.role, place.state) == ("cliproxy", PlaceRole.LINK, PlaceState.IN_SYNC)
            login = place_format("cliproxy").read_entry(Path(place.path), "", store.get("0a0b0c0d").expires_at)
            assert login is not None and login.refresh_token == store.get("0a0b0c0d").refresh_token
            assert "CLIProxyAPI (link)" in screen_text(app) or "cliproxy (link)" in screen_text(app)
            await pilot.press("x")
            await settle(pilot)
            ids = [option_id for option_id, _ in app.screen.options]  # type: ignore[attr-defined]
            app.screen.query_one("#choices").highlighted = ids.index(f"unlink\t{place.path}")
            await pilot.press("enter")
            await settle(pilot)
            assert store.places("0a0b0c0d") == [place]  # it asks first
            await pilot.press("y")
            await settle(pilot)
            assert store.places("0a0b0c0d") == [] and Path(place.path).exists()


async def test_x_linking_an_idc_login_to_cliproxy_says_what_the_proxy_cannot_do(tmp_path: Path, emulator) -> None:
    """Issue 21: the proxy cannot refresh an IdC login itself; the toast that confirms the link
    says so (kiro-tui refreshes it first while linked)."""
    from tests.support.places import IDC_PROFILES, IDC_START_URL

    with build_store(tmp_path / "s.db", []) as store:
        store.save(account_from_seed(emulator.seed(kind="idc", email="team@acme.example", region="eu-west-1",
                                                   start_url=IDC_START_URL, profiles=IDC_PROFILES), "0e0f0a0b"))
        app = build_app(store, emulator.url)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await settle(pilot)
            await pilot.press("x")
            await settle(pilot)
            choices = app.screen
            ids = [option_id for option_id, _ in choices.options]  # type: ignore[attr-defined]
            choices.query_one("#choices").highlighted = ids.index("link\tcliproxy")
            await pilot.press("enter")
            await settle(pilot)
            app.screen.query_one("#path", Input).value = str(tmp_path / "proxy")
            await pilot.press("enter")
            await settle(pilot)
            (place,) = store.places("0e0f0a0b")
            assert place.state is PlaceState.IN_SYNC
            said = " ".join(toasts(app))
            assert "kept fresh in" in said and "cannot refresh this IdC login itself" in said, said
