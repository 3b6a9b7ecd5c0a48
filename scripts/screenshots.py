"""Regenerate screenshots/ from the demo: the real app, the real engine, the emulator.

    python scripts/screenshots.py

Writes SVGs (Textual's own export) and, when rsvg-convert or cairosvg is available, PNGs.
Tokens on screen are masked as everywhere else.
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

from kiro_tui.core.aws.endpoints import Endpoints
from kiro_tui.core.clock import SystemClock
from kiro_tui.core.models import Health
from kiro_tui.demo import USAGE, demo_environment
from kiro_tui.tui.app import make_app
from kiro_tui.tui.screens.choice import LoadingChoiceScreen
from kiro_tui.tui.screens.device_code import DeviceCodeScreen
from kiro_tui.tui.widgets.accounts_table import AccountsTable

OUT = Path(__file__).resolve().parent.parent / "screenshots"
SIZE = (150, 40)  # every column shows (the table drops columns below 140, see accounts_table.plan_columns)


async def capture() -> list[Path]:
    saved: list[Path] = []
    with demo_environment(approve_after=600) as demo:
        demo.emulator.state.next_user_codes = ["WDJB-MJHT"]
        demo.emulator.state.verification_uri = "https://device.sso.us-east-1.amazonaws.com/"
        app = make_app(demo.store.path, demo.settings, SystemClock(), Endpoints(override=demo.emulator.url),
                       demo.kiro_cli_db, [demo.kiro_cli_db], system_copy=None)

        def shot(name: str) -> None:
            path = OUT / f"{name}.svg"
            app.save_screenshot(filename=path.name, path=str(OUT))
            saved.append(path)

        async with app.run_test(size=SIZE) as pilot:
            for _ in range(300):  # let the engine show its work: a dead token, a flaky IdP, quota
                await pilot.pause(0.1)
                dave, frank = demo.store.get("d4fe9913"), demo.store.get("f7a3b2e1")
                emails = {a.id: a.email for a in demo.store.accounts()}
                usage = {emails.get(i) for i, record in demo.store.usage().items() if record.known}
                if dave and frank and dave.health is Health.NEEDS_LOGIN and frank.health is Health.REFRESH_FAILING \
                        and set(USAGE) <= usage:
                    break
            await pilot.pause(0.5)
            shot("accounts")
            table = app.screen.query_one(AccountsTable)
            team = next(a.id for a in demo.store.accounts() if a.auth_method.value == "idc")
            table.move_cursor(row=table.get_row_index(team))
            await pilot.pause(1.0)  # usage arrives from the emulator
            shot("detail")
            await pilot.press("p")
            for _ in range(50):  # the profiles come from the emulator
                if isinstance(app.screen, LoadingChoiceScreen) and app.screen.options:
                    break
                await pilot.pause(0.1)
            await pilot.pause(0.3)
            shot("profile-picker")
            await pilot.press("escape", "question_mark")
            await pilot.pause(0.3)
            shot("help")
            await pilot.press("escape", "l")
            await pilot.pause(0.3)
            await pilot.press("enter")
            for _ in range(50):
                screen = app.screen
                if isinstance(screen, DeviceCodeScreen) and screen.login is not None:
                    break
                await pilot.pause(0.1)
            await pilot.pause(0.3)
            shot("login-code")
            await pilot.press("escape")
    return saved


def to_png(svg: Path) -> Path | None:
    """A PNG beside the SVG. Textual's SVG starts some text runs with a space, which SVG
    renderers drop unless told to keep whitespace ("kiro-tui keeps" drew as "kiro-tuikeeps")."""
    png = svg.with_suffix(".png")
    spaced = svg.read_text(encoding="utf-8").replace("<svg ", '<svg xml:space="preserve" ', 1)
    if shutil.which("rsvg-convert"):
        subprocess.run(["rsvg-convert", "-o", str(png)], input=spaced.encode(), check=True)
        return png
    if importlib.util.find_spec("cairosvg"):
        import cairosvg

        cairosvg.svg2png(bytestring=spaced.encode(), write_to=str(png))
        return png
    return None


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for svg in asyncio.run(capture()):
        png = to_png(svg)
        print(f"wrote {svg.relative_to(OUT.parent)}" + (f" and {png.name}" if png else ""))
    if not shutil.which("rsvg-convert") and not importlib.util.find_spec("cairosvg"):
        print("no SVG converter (rsvg-convert or cairosvg) found: SVGs only", file=sys.stderr)


if __name__ == "__main__":
    main()
