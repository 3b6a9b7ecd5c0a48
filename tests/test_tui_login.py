"""Device-code login in the TUI, end to end against the emulator: form, code, approval, picker."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input, Static

from kiro_tui.core.clock import ManualClock
from kiro_tui.core.login import LoginRequest
from kiro_tui.core.models import AuthMethod, Mode
from kiro_tui.demo import IDC_PROFILES
from kiro_tui.tui.screens.accounts import AccountsScreen
from kiro_tui.tui.screens.choice import ChoiceScreen
from kiro_tui.tui.screens.device_code import DeviceCodeScreen
from kiro_tui.tui.screens.login_form import LoginFormScreen
from kiro_tui.tui.widgets.big_code import BigCode
from tests.support.engine import at, control
from tests.support.tui import RecordingClipboard, build_app, build_store, settle, toasts

SIZE = (160, 40)
IDC = "https://d-4444444444.awsapps.com/start"


@pytest.fixture
def rig(tmp_path: Path, emulator, emulator_time):
    clock = ManualClock(at(emulator_time.now))
    with build_store(tmp_path / "s.db", []) as store:
        yield store, clock


async def wait_for(pilot, condition, tries: int = 500) -> None:  # type: ignore[no-untyped-def]
    for _ in range(tries):
        if condition():
            return
        await pilot.pause(0.02)
    raise AssertionError("condition never became true")


async def open_code_screen(pilot, start_url: str = "", region: str | None = None) -> DeviceCodeScreen:  # type: ignore[no-untyped-def]
    await pilot.press("l")
    await pilot.pause()
    form = pilot.app.screen
    form.query_one("#start-url", Input).value = start_url
    if region is not None:
        form.query_one("#region", Input).value = region
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, DeviceCodeScreen))
    return pilot.app.screen


def text_of(screen, selector: str) -> str:  # type: ignore[no-untyped-def]
    return str(screen.query_one(selector, Static).render())


async def tick_polling(pilot, clock: ManualClock, emulator_time, seconds: float = 1) -> None:  # type: ignore[no-untyped-def]
    emulator_time.advance(seconds)
    clock.advance(seconds)
    await pilot.pause(0.05)


async def test_identity_center_login_end_to_end(rig, emulator, emulator_time) -> None:
    store, clock = rig
    emulator.state.add_user("idc", email="lee@acme.example", region="eu-west-1", start_url=IDC, profiles=IDC_PROFILES)
    clipboard = RecordingClipboard()
    app = build_app(store, emulator.url, clock=clock, clipboard=clipboard)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        screen = await open_code_screen(pilot, IDC, "eu-west-1")
        await wait_for(pilot, lambda: screen.login is not None and "Waiting" in text_of(screen, "#poll-status"))
        code = screen.login.user_code  # type: ignore[union-attr]
        assert screen.query_one("#user-code", BigCode).plain == code
        assert clipboard.copied == [code]
        assert "copied to the clipboard" in text_of(screen, "#clipboard")
        assert "expires in 10 minutes" in text_of(screen, "#countdown")
        assert f"{emulator.url}/device" in text_of(screen, "#instructions")
        assert not [t for t in toasts(app) if t.startswith("Code:")]  # said under the code, no toast on top
        await pilot.press("o")
        await pilot.press("c")
        assert clipboard.copied == [code, code]
        assert [t for t in toasts(app) if t.startswith("Code:")] == ["Code: The code was copied to the clipboard."]
        control(emulator, "approve", {"user_code": code})
        await tick_polling(pilot, clock, emulator_time)
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen))
        picker = app.screen
        assert [label.split("  ")[0].strip() for _, label in picker.options] == ["Team Dev", "Team Prod EU"]
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, AccountsScreen) and store.accounts())
        (account,) = store.accounts()
        assert (account.auth_method, account.mode, account.region, account.start_url) == (
            AuthMethod.IDC, Mode.OWN, "eu-west-1", IDC)
        assert (account.email, account.profile_name) == ("lee@acme.example", "Team Prod EU")
        assert any(t.startswith("Logged in: lee@acme.example is ready") for t in toasts(app))
        # the form remembers the last values
        await pilot.press("l")
        await pilot.pause()
        assert app.screen.query_one("#start-url", Input).value == IDC
        assert app.screen.query_one("#region", Input).value == "eu-west-1"


async def test_builder_id_without_profiles_skips_the_picker(rig, emulator, emulator_time) -> None:
    store, clock = rig
    app = build_app(store, emulator.url, clock=clock, clipboard=RecordingClipboard(works=False))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        screen = await open_code_screen(pilot)
        await wait_for(pilot, lambda: screen.login is not None)
        assert "OSC 52" in text_of(screen, "#clipboard") and app.clipboard == screen.login.user_code  # type: ignore[union-attr]
        control(emulator, "approve", {"user_code": screen.login.user_code})  # type: ignore[union-attr]
        await tick_polling(pilot, clock, emulator_time)
        await wait_for(pilot, lambda: isinstance(app.screen, AccountsScreen) and store.accounts())
        assert store.accounts()[0].auth_method is AuthMethod.BUILDER_ID
        assert store.accounts()[0].profile_arn is None


async def test_logging_in_again_as_someone_else_says_so_and_keeps_the_dead_account(rig, emulator,
                                                                                  emulator_time) -> None:
    from kiro_tui.core.models import Account, Health

    store, clock = rig
    emulator.state.add_user("builder-id", email="erin@example.com")  # who will sign in
    store.save(Account(id="d4fe9913", auth_method=AuthMethod.BUILDER_ID, access_token="aoaAAAAAGdave:sig",
                       refresh_token="aorAAAAAGdave:sig", expires_at=clock.now(), email="dave@example.com",
                       health=Health.NEEDS_LOGIN, mode=Mode.OWN))
    app = build_app(store, emulator.url, clock=clock)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        await pilot.pause()
        await pilot.press("enter")  # on dave, who needs a login: the fixes
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen))
        await pilot.press("enter")  # log in again
        await wait_for(pilot, lambda: isinstance(app.screen, LoginFormScreen))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DeviceCodeScreen) and app.screen.login is not None)
        control(emulator, "approve", {"user_code": app.screen.login.user_code})  # type: ignore[attr-defined]
        await tick_polling(pilot, clock, emulator_time)
        await wait_for(pilot, lambda: isinstance(app.screen, AccountsScreen) and len(store.accounts()) == 2)
        await wait_for(pilot, lambda: any(t.startswith("Someone else signed in") for t in toasts(app)))
        assert ("Someone else signed in: You signed in as erin@example.com, not dave@example.com: "
                "dave@example.com still needs a login. erin@example.com is saved as its own account.") in toasts(app)
        assert store.get("d4fe9913").health is Health.NEEDS_LOGIN  # type: ignore[union-attr]


@pytest.mark.parametrize("answer", ["n", "y"])
async def test_logging_in_again_as_another_account_holder_asks_before_renewing_that_account(
        rig, emulator, emulator_time, answer: str) -> None:
    from kiro_tui.core.models import Account, Health
    from kiro_tui.tui.screens.confirm import ConfirmScreen

    store, clock = rig
    emulator.state.add_user("builder-id", email="team@example.com")  # who will sign in
    dave = Account(id="d4fe9913", auth_method=AuthMethod.BUILDER_ID, access_token="aoaAAAAAGdave:sig",
                   refresh_token="aorAAAAAGdave:sig", expires_at=clock.now(), email="dave@example.com",
                   health=Health.NEEDS_LOGIN, mode=Mode.OWN)
    team = Account(id="7ea70001", auth_method=AuthMethod.BUILDER_ID, access_token="aoaAAAAAGteam:sig",
                   refresh_token="aorAAAAAGteam:sig", expires_at=clock.now(), email="team@example.com",
                   mode=Mode.SYNC, source="kiro-cli", source_key="kirocli:odic:token")
    store.save(dave)
    store.save(team)
    app = build_app(store, emulator.url, clock=clock)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        app.screen.table.move_cursor(row=app.screen.table.get_row_index(dave.id))  # type: ignore[attr-defined]
        await pilot.pause()
        await pilot.press("enter")  # on dave, who needs a login: the fixes
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen))
        await pilot.press("enter")  # log in again
        await wait_for(pilot, lambda: isinstance(app.screen, LoginFormScreen))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DeviceCodeScreen) and app.screen.login is not None)
        control(emulator, "approve", {"user_code": app.screen.login.user_code})  # type: ignore[attr-defined]
        await tick_polling(pilot, clock, emulator_time)
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        question = str(app.screen.question)  # type: ignore[attr-defined]
        assert "You signed in as team@example.com, not dave@example.com." in question
        assert "7ea70001, sync mode" in question
        assert store.get(team.id) == team  # nothing renewed while the person is asked
        await pilot.press(answer)
        if answer == "n":
            await wait_for(pilot, lambda: isinstance(app.screen, DeviceCodeScreen) and app.screen.failed)
            assert "nothing saved: dave@example.com still needs a login" in text_of(app.screen, "#login-error")
            assert store.get(team.id) == team and store.get(dave.id) == dave
        else:
            await wait_for(pilot, lambda: isinstance(app.screen, AccountsScreen)
                           and any(t.startswith("Someone else signed in") for t in toasts(app)))
            assert store.get(team.id).mode is Mode.OWN  # type: ignore[union-attr]
            assert store.get(dave.id) == dave and len(store.accounts()) == 2
            assert any("team@example.com's account is renewed" in t for t in toasts(app)), toasts(app)
        assert not any("link kiro-cli" in t.lower() for t in toasts(app)), toasts(app)


async def test_escape_cancels_and_polling_stops_at_once(rig, emulator, emulator_time) -> None:
    store, clock = rig
    app = build_app(store, emulator.url, clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = await open_code_screen(pilot)
        await wait_for(pilot, lambda: screen.login is not None and "Waiting" in text_of(screen, "#poll-status"))
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, AccountsScreen)
        polls = len(emulator.requests())
        for _ in range(5):
            await tick_polling(pilot, clock, emulator_time, 5)
        assert len(emulator.requests()) == polls
        assert store.accounts() == []


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("denied", "denied in the browser"),
        ("expired", "expired before it was approved"),
        ("wrong-region", "no IAM Identity Center at https://d-4444444444.awsapps.com/start in us-east-1"),
        ("network", "could not reach AWS"),
    ],
)
async def test_login_errors_are_plain_words_and_save_nothing(rig, emulator, emulator_time, case, needle) -> None:
    store, clock = rig
    emulator.state.add_user("idc", region="eu-west-1", start_url=IDC)
    url = "http://127.0.0.1:9" if case == "network" else emulator.url
    app = build_app(store, url, clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        if case == "wrong-region":
            screen = await open_code_screen(pilot, IDC, "us-east-1")
        else:
            screen = await open_code_screen(pilot)
        if case == "denied":
            await wait_for(pilot, lambda: screen.login is not None)
            control(emulator, "deny", {"user_code": screen.login.user_code})  # type: ignore[union-attr]
            await tick_polling(pilot, clock, emulator_time)
        elif case == "expired":
            await wait_for(pilot, lambda: screen.login is not None)
            await tick_polling(pilot, clock, emulator_time, 601)
        await wait_for(pilot, lambda: needle in text_of(screen, "#login-error"))
        assert "Press l to start again, or escape to change where you log in." in text_of(screen, "#login-error")
        assert text_of(screen, "#instructions") == ""  # no "Asking AWS for a code…" left behind
        await pilot.press("escape")  # back to the form, as filled in
        await pilot.pause()
        assert isinstance(app.screen, LoginFormScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, AccountsScreen)
        assert store.accounts() == []


async def test_form_refuses_a_bad_region_in_place(rig) -> None:
    store, clock = rig
    app = build_app(store, clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("l")
        await pilot.pause()
        app.screen.query_one("#region", Input).value = "Europe"
        await pilot.press("enter")
        await pilot.pause()
        assert "'Europe' is not an AWS region" in text_of(app.screen, "#form-error")


@pytest.mark.parametrize(("typed", "known_as"), [(IDC, "Lee@Acme.example"), (IDC, "lee@acme.example"),
                                              (IDC + "/", "Lee@Acme.example")])
async def test_logging_in_as_the_person_of_an_imported_login_renews_that_account(
        tmp_path: Path, emulator, emulator_time, typed: str, known_as: str) -> None:
    """One person's login is one account: `l` as the IdC person kiro-cli is logged in as (the
    start URL typed with a slash or in capitals, the email in other case) renews the imported
    row instead of adding a second one with the same email."""
    from tests.support.engine import seed_into_kiro_cli
    from tests.support.kiro_cli_db import KiroCliDb

    clock = ManualClock(at(emulator_time.now))
    db = KiroCliDb(tmp_path / "kiro-cli" / "data.sqlite3")
    seed_into_kiro_cli(emulator, db, kind="idc", email="Lee@Acme.example", region="eu-west-1", start_url=IDC,
                       profiles=IDC_PROFILES)
    with build_store(tmp_path / "s.db", []) as store:
        app = build_app(store, emulator.url, clock=clock, kiro_cli_db=db.path, candidates=[db.path])
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await settle(pilot)
            await pilot.press("i")
            await settle(pilot)
            (imported,) = store.accounts()
            store.update(imported.id, email=known_as)  # as the usage API said it, maybe in other case
            screen = await open_code_screen(pilot, typed, "eu-west-1")
            await wait_for(pilot, lambda: screen.login is not None or text_of(screen, "#login-error"))
            assert screen.login is not None, text_of(screen, "#login-error")
            control(emulator, "approve", {"user_code": screen.login.user_code})  # type: ignore[union-attr]
            await tick_polling(pilot, clock, emulator_time)
            await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen))
            await pilot.press("enter")
            await wait_for(pilot, lambda: any(t.startswith("Logged in") for t in toasts(app)))
            await settle(pilot)
            (account,) = store.accounts()  # one row, not two
            assert account.id == imported.id and account.client_id != imported.client_id  # the new login's
            assert account.mode is Mode.OWN  # kiro-tui's own login now: kiro-cli's copy is left alone
            assert app.screen.query_one("AccountsTable").row_count == 1


async def test_the_form_takes_a_region_in_capitals(rig) -> None:
    store, clock = rig
    app = build_app(store, clock=clock)
    chosen = []
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.push_screen(LoginFormScreen(LoginRequest()), callback=chosen.append)
        await pilot.pause()
        app.screen.query_one("#start-url", Input).value = IDC
        app.screen.query_one("#region", Input).value = "EU-WEST-1"
        await pilot.press("enter")
        await pilot.pause()
    assert chosen == [LoginRequest(IDC, "eu-west-1")]
