"""`kiro-tui login`: a device-code login (AWS Builder ID or IAM Identity Center), saved as soon
as it is approved, before any question is asked: an approved login is never lost to a prompt.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kiro_tui.cli.front import make_engine, open_store, read_settings, run_engine
from kiro_tui.cli.output import EXIT_OK, CommandFailed, UsageError, print_json, say, warn
from kiro_tui.core.clock import SystemClock
from kiro_tui.core.models import Account, AccountView
from kiro_tui.core.summary import printable

if TYPE_CHECKING:
    from kiro_tui.core.aws.codewhisperer import Profile
    from kiro_tui.core.login import LoginOutcome


def cmd_login(args: argparse.Namespace) -> int:
    from kiro_tui.core.login import LoginError, LoginRequest, PollStatus
    from kiro_tui.core.summary import account_json

    settings = read_settings()
    out = sys.stderr if args.json else sys.stdout

    def tell(text: str) -> None:
        print(printable(text, keep_newlines=True), file=out, flush=True)

    request = LoginRequest(args.start_url or None, args.region or "us-east-1")
    try:
        request.validate()  # the region as given: a typo is pointed out even for Builder ID
    except LoginError as exc:  # a flag's value: a usage error (exit 2), before any network call
        raise UsageError(f"{exc}") from None
    if args.profile and not args.profile.startswith("arn:"):
        raise UsageError(f"--profile wants a profile ARN (arn:aws:codewhisperer:REGION:ACCOUNT:profile/ID), "
                         f"not {args.profile!r}")
    with open_store() as store:
        engine = make_engine(store, settings)

        async def sign_in() -> tuple[LoginOutcome, list[Profile]]:
            login = await engine.start_login(request)
            tell(f"Open {login.verification_uri} and enter the code:\n\n    {login.user_code}\n")
            tell(f"(or open {login.verification_uri_complete})")
            tell(copy_for_terminal(login.user_code))
            if not args.no_browser:
                _open_browser(login.verification_uri_complete)
            last = [""]

            def on_status(status: PollStatus) -> None:
                if status.state != last[0] and status.state != "waiting":
                    print(f"kiro-tui: {printable(status.state)}", file=sys.stderr, flush=True)
                last[0] = status.state

            tell("Waiting for you to approve in the browser…")
            token = await engine.wait_for_token(login, on_status)
            listing = await engine.list_profiles(token.access_token)
            profile = _given_profile(listing.profiles, args.profile)
            # saved now, before anything is asked: an approved login is never lost to a prompt
            outcome = await engine.finish_login(login, token, profile, identify_with=next(iter(listing.profiles), None))
            return outcome, listing.profiles

        outcome, profiles = run_engine(engine, sign_in)
        account = outcome.account
        if account.profile_arn is None and len(profiles) > 1:
            chosen = _ask_profile(account, profiles, tell)
            engine = make_engine(store, settings)
            run_engine(engine, lambda: engine.set_profile(account.id, chosen))
            account = engine.account(account.id)
        view = AccountView(account)
    now = SystemClock().now()
    if args.json:
        print_json(account_json(view, now, settings.window, quota_warning=settings.quota_warning))
    else:
        where = f", profile {account.profile_name}" if account.profile_name else ""
        tell(f"Logged in as {account.name} ({account.id}{where}); kiro-tui keeps it fresh.")
    if relinked := outcome.relinked_note():
        tell(relinked)
    before = outcome.renewed
    if before is not None and before.mode.value != "own":  # said, never silent: it changes how it is kept
        warn(f"this login renewed account {before.id} ({before.name}), until now in {before.mode.value} mode: "
             "it is kiro-tui's own login now (mode own)")
    if note := outcome.detached_note():
        warn(note)
    return EXIT_OK


def _given_profile(profiles: list[Profile], wanted: str | None) -> Profile | None:
    """--profile if given (it must be one of them), else the only one; None leaves it to ask."""
    if wanted:
        chosen = next((p for p in profiles if p.arn == wanted), None)
        if chosen is None:
            arns = ", ".join(p.arn for p in profiles) or "none"
            raise CommandFailed(f"signed in, but {wanted} is not among this login's profiles ({arns}); "
                                "nothing was saved")
        return chosen
    return profiles[0] if len(profiles) == 1 else None


def _ask_profile(account: Account, profiles: list[Profile], tell: Callable[[str], None]) -> Profile:
    """Ask which profile the saved login uses, on a terminal (never inside the event loop, so
    Ctrl-C is Ctrl-C). End of input, Ctrl-C or no terminal leave it saved without one, and say so."""
    saved = f"{account.name} ({account.id}) is logged in and saved without a profile"
    later = "choose it in the terminal UI (p), or log in again with --profile ARN"
    if not sys.stdin.isatty():
        listing = "; ".join(f"{p.name}: {p.arn}" for p in profiles)
        raise UsageError(f"{saved}: this login has {len(profiles)} profiles ({listing}); pass --profile ARN "
                         f"next time, or choose it in the terminal UI (p)")
    tell(f"Saved {account.name} ({account.id}). Profiles this login may use:")

    def choices() -> None:
        for number, profile in enumerate(profiles, 1):
            tell(f"  {number}. {profile.name}  ({profile.region})  {profile.arn}")

    choices()
    while True:
        try:
            answer = input(f"Choose 1-{len(profiles)}: ").strip()
        except EOFError:
            raise CommandFailed(f"no profile chosen (end of input); {saved}: {later}") from None
        except KeyboardInterrupt:
            from kiro_tui.core.shutdown import Interrupted

            raise Interrupted(f"interrupted; {saved}: {later}") from None
        if answer.isdigit() and 1 <= int(answer) <= len(profiles):
            return profiles[int(answer) - 1]
        say(f"{answer!r} is not one of the choices: type a number from 1 to {len(profiles)}", err=True)
        choices()


COPIED = {
    "system": "The code was copied to the clipboard.",
    "terminal": "The code was sent to your terminal (OSC 52); if nothing was copied, select it above.",
    "neither": "Copy the code from above.",
}


def copy_for_terminal(code: str, system: Callable[[str], None] | None = None) -> str:
    """Copy the code (core/clipboard.py): the system clipboard, else the terminal's (OSC 52) when
    the output is one. Say which, honestly."""
    from kiro_tui.core.clipboard import SYSTEM, TERMINAL, copy_text, osc52, system_copy

    def to_terminal(text: str) -> None:
        sys.stdout.write(osc52(text))
        sys.stdout.flush()

    done = copy_text(code, system or system_copy, to_terminal if sys.stdout.isatty() else None)
    return COPIED["system" if done == SYSTEM else "terminal" if done == TERMINAL else "neither"]


def _open_browser(url: str) -> None:
    import webbrowser

    try:
        webbrowser.open(url)
    except Exception:  # noqa: BLE001 - no browser here (SSH): the URL is printed above
        pass


def add_login(commands: Any) -> None:
    p = commands.add_parser("login", help="log in with a device code (AWS Builder ID or IAM Identity Center)")
    p.add_argument("--start-url", metavar="URL", help="IAM Identity Center start URL (default: AWS Builder ID)")
    p.add_argument("--region", metavar="R", help="region of your Identity Center (default us-east-1)")
    p.add_argument("--profile", metavar="ARN", help="profile ARN to use (default: the only one, or ask)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser; just print the URL")
    p.add_argument("--json", action="store_true", help="print the new account as JSON (prompts go to stderr)")
    p.set_defaults(handler=cmd_login)
