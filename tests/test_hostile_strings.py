"""Every string that came from a file or a service is shown as text (issue 20, item 11): names,
plan names, errors, paths, holding ESC, OSC 52 / OSC 2, CSI, C1 controls, bidi overrides and NUL,
reach neither the TUI's screen and toasts nor any CLI line as anything but inert characters."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from datetime import timedelta
from pathlib import Path

from kiro_tui.core.models import Account, AuthMethod, Health, Mode, Place, PlaceRole, PlaceState, UsageRecord
from kiro_tui.core.store import AccountStore
from tests.support.run import run_cli
from tests.support.tui import NOW, build_app, build_store, screen_text, settle, toasts, watch_pass

OSC52 = "\x1b]52;c;cHduZWQ=\x07"  # writes "pwned" to the clipboard
TITLE = "\x1b]2;owned\x1b\\"  # sets the window title
CSI = "\x1b[2J\x9b31m"  # clears the screen; C1 CSI
BIDI = "\u202egnp.exe\u2066\u200f"
HOSTILE = f"eve{OSC52}{TITLE}{CSI}{BIDI}\x00@example.com"


def inert(text: str) -> bool:
    """Nothing a terminal acts on: no control character (C0, C1, DEL) and no bidi control."""
    return all(ch == "\n" or ch.isprintable() for ch in text)


def hostile_account(account_id: str = "e5c0e5c0") -> Account:
    return Account(id=account_id, auth_method=AuthMethod.SOCIAL, access_token="aoaAAAAAGe:sig",
                   refresh_token="aorAAAAAGe:sig", expires_at=NOW + timedelta(minutes=30), email=HOSTILE,
                   label=HOSTILE, profile_name=f"Prod{OSC52}EU", region="us-east-1", mode=Mode.OWN,
                   provider=f"Google{TITLE}", health=Health.REFRESH_FAILING,
                   next_refresh_at=NOW + timedelta(seconds=30), consecutive_failures=1,
                   last_error=f"Kiro auth refresh: HTTP 400 ({HOSTILE}); retrying",
                   sync_error=f"out of sync: {CSI}", last_refresh_at=NOW - timedelta(minutes=30))


def add_hostile_extras(store: AccountStore, account_id: str, tmp_path: Path) -> None:
    store.save_usage(account_id, UsageRecord(12, 50, NOW + timedelta(days=5), f"KIRO PRO{OSC52}{TITLE}{BIDI}",
                                             NOW))
    with store.transaction() as tx:
        store.save_place(tx, Place(account_id, "cliproxy", str(tmp_path / f"kiro{CSI}.json"), role=PlaceRole.LINK,
                                   state=PlaceState.ERROR, detail=f"holds another login {OSC52}"))


async def test_every_tui_surface_shows_hostile_strings_inert(tmp_path: Path) -> None:
    with build_store(tmp_path / "accounts.db", [hostile_account()]) as store:
        add_hostile_extras(store, "e5c0e5c0", tmp_path)
        app = build_app(store)
        async with app.run_test(size=(200, 50), notifications=True) as pilot:
            await settle(pilot)
            seen = [screen_text(app)]  # the table, the summary line, the detail panel (usage line included)
            with AccountStore.open(store.path) as other:  # another process finds it dead: a toast names it
                other.update("e5c0e5c0", health=Health.NEEDS_LOGIN, last_error=f"denied {HOSTILE}")
            await watch_pass(pilot)
            app.notify(f"a message {OSC52}", title=f"{HOSTILE}", markup=False)  # any toast titled by a name
            await pilot.pause()
            seen += [screen_text(app), *toasts(app)]
            await pilot.press("delete")  # the question names the account
            await pilot.pause()
            seen.append(screen_text(app))

    for text in seen:
        assert inert(text), repr(text)
    assert "KIRO PRO?]52;c;cHduZWQ=??]2;owned?\\?gnp.exe??" in seen[0]  # the plan name, as text
    assert "eve?]52;c;cHduZWQ=" in seen[0] and "Prod?]52;c;cHduZWQ=?EU" in seen[0]
    assert any("eve?]52" in toast.split(":")[0] for toast in toasts_of(seen)), seen


def toasts_of(seen: list[str]) -> list[str]:
    return [text for text in seen if "\n" not in text]


def test_every_cli_line_shows_hostile_strings_inert(kiro_tui_exe: str, isolated_dirs: Path, tmp_path: Path) -> None:
    from kiro_tui.core import paths

    with build_store(paths.store_file(), [hostile_account()]) as store:
        add_hostile_extras(store, "e5c0e5c0", tmp_path)
    offline = {"KIRO_TUI_ENDPOINT_URL": "http://127.0.0.1:9"}
    outputs = []
    for args in (["list"], ["list", "--json"], ["usage"], ["refresh", "--all"], ["mode", "e5c0e5c0", "own"],
                 ["remove", "e5c0e5c0"]):
        result = run_cli(kiro_tui_exe, *args, env=offline)
        outputs += [result.out, result.err]
    outputs.append(_remove_on_a_terminal(kiro_tui_exe, offline))

    for text in outputs:
        assert inert(text), repr(text)
    joined = "\n".join(outputs)
    assert "eve?]52;c;cHduZWQ=" in joined and "KIRO PRO?]52" in joined
    assert "Remove account e5c0e5c0 (eve?]52;c;cHduZWQ=??]2;owned?\\?[2J?31m?gnp.exe???@example.com)" in joined


def _remove_on_a_terminal(exe: str, env: dict[str, str]) -> str:
    """`remove` asks on a terminal: run it on a pseudo-terminal, answer no, return what it wrote."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen([exe, "remove", "e5c0e5c0"], stdin=terminal, stdout=terminal, stderr=terminal,
                            env={**os.environ, **env}, close_fds=True)
    os.close(terminal)
    written = b""
    deadline = time.monotonic() + 30
    while b"[y/N]" not in written and time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.5)
        if ready:
            written += os.read(controller, 4096)
    os.write(controller, b"n\n")
    proc.wait(timeout=30)
    while True:
        ready, _, _ = select.select([controller], [], [], 0.2)
        if not ready:
            break
        try:
            chunk = os.read(controller, 4096)
        except OSError:
            break
        if not chunk:
            break
        written += chunk
    os.close(controller)
    return written.decode("utf-8", "replace").replace("\r\n", "\n").replace("n\n", "\n", 1)
