"""The command-line face of kiro-tui: `kiro-tui COMMAND ...` for scripts.

Each command is a small function over the engine's front (core/engine.py), the same one the
TUI uses. Any `KiroTuiError` ends the program with `kiro-tui: error: <message>` on stderr and
its exit code; a bug is logged with its traceback to the log file and reported in one line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from kiro_tui import __version__
from kiro_tui.core import paths, rescue
from kiro_tui.core.clock import SystemClock
from kiro_tui.core.config import Settings, load_settings
from kiro_tui.core.errors import KiroTuiError
from kiro_tui.core.importer import UNCHANGED, ImportReport, first_login_hint
from kiro_tui.core.models import Account, AccountView, Outcome, Place, Status
from kiro_tui.core.places import place_format
from kiro_tui.core.places.kiro_cli import find_kiro_cli_db, resolved
from kiro_tui.core.store import AccountStore
from kiro_tui.core.summary import (
    account_json,
    describe_expiry,
    describe_usage,
    printable,
    usage_json,
)

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_NEEDS_LOGIN = 0, 1, 2, 3
log = logging.getLogger("kiro_tui")
if TYPE_CHECKING:  # the engine and what it returns load lazily: `kiro-tui --help` stays quick
    from kiro_tui.core.aws.codewhisperer import Profile
    from kiro_tui.core.engine import Engine
    from kiro_tui.core.login import LoginOutcome

T = TypeVar("T")


class CommandFailed(KiroTuiError):
    """A command that ran but did not achieve what was asked."""


class UsageError(KiroTuiError):
    """The command was asked for something it cannot do as given (exit 2)."""

    exit_code = EXIT_USAGE


def _settings() -> Settings:
    return load_settings(paths.config_file())


def say(line: str, *, err: bool = False) -> None:
    """One line for a person. Labels, emails and errors come from kiro-cli and AWS: made
    printable, so no escape sequence reaches the terminal (JSON output escapes by itself)."""
    print(printable(line), file=sys.stderr if err else sys.stdout, flush=True)


def warn(message: str) -> None:
    say(f"kiro-tui: warning: {message}", err=True)


def _open_store() -> AccountStore:
    store = AccountStore.open(paths.store_file())
    for message in store.permission_fixes:
        warn(message)
    return store


def kiro_cli_location(explicit: str | None, settings: Settings) -> tuple[Path | None, list[Path]]:
    """Where kiro-cli's database is: --db, else config `kiro_cli_db` (taken as given, so a wrong
    path is reported as such), else the first of kiro-cli's and Amazon Q's usual paths that
    exists. Returns (the database or None, every path looked at). The one place this is
    decided, for every command and the TUI."""
    named = explicit or settings.kiro_cli_db
    if named:
        path = resolved(Path(named))
        return path, [path]
    candidates = paths.kiro_cli_db_candidates()
    found = next((path for path in candidates if path.exists()), None)
    return (resolved(found) if found else None), candidates


def _engine(store: AccountStore, settings: Settings, db: Path | None = None, candidates: list[Path] | None = None,
            **options: object) -> Engine:
    from kiro_tui.core.aws.endpoints import Endpoints
    from kiro_tui.core.engine import Engine

    return Engine(store, settings, SystemClock(), Endpoints.from_env(), db, kiro_cli_candidates=candidates,
                  **options)  # type: ignore[arg-type]


def _run(coroutine_fn: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(coroutine_fn())  # type: ignore[arg-type]


def _run_engine(engine: Engine, work: Callable[[], Awaitable[T]],
                tell: Callable[[str, bool], None] | None = None) -> T:
    """Run a command's work on its engine, the one way every command ends (core/shutdown.py):
    the first Ctrl-C, SIGTERM or SIGHUP lets refreshes under way finish and commit, a second
    abandons them by name; the engine is closed after them."""
    from kiro_tui.core.shutdown import run_stoppable

    return asyncio.run(run_stoppable(engine, work, tell or _tell_stopping))


def _tell_stopping(line: str, warning: bool) -> None:
    log.warning("%s", line)  # the log file keeps it, even after SIGHUP
    say(f"kiro-tui: {line}", err=True)


# ---------------------------------------------------------------- import


def cmd_import(args: argparse.Namespace) -> int:
    """kiro-cli by default (--db PATH names its database); --from KIND [--path PATH] any place."""
    settings = _settings()
    kind = args.kind or "kiro-cli"
    path = Path(args.path).expanduser() if args.path else None
    if args.db:
        if args.kind not in (None, "kiro-cli") or args.path:
            raise UsageError("--db names kiro-cli's database; use --from KIND --path PATH for another place")
        path = resolved(Path(args.db))
    if kind == "all" and args.path:
        raise UsageError("--path names one place, and --from all looks in every place kiro-tui knows; "
                         "name its tool too (--from KIND --path PATH), or drop --path")
    db, candidates = kiro_cli_location(str(path) if kind == "kiro-cli" and path else None, settings)
    if kind == "kiro-cli" and db is None:
        find_kiro_cli_db(candidates)  # raises, naming every path tried
    where = str(path or db or kind)
    with _open_store() as store:
        engine = _engine(store, settings, db, candidates)
        report = _run_engine(engine, lambda: engine.import_now(path or (db if kind == "kiro-cli" else None), kind))
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        _print_import(report)
    for skipped in report.skipped:
        warn(f"skipped {skipped.where or where}: {skipped.reason}")
    for problem_kind, problem_path, why in report.problems:
        warn(f"{problem_kind} {problem_path}: {why}")
    for _, how in report.cannot_find:  # --from all: the tools it could not look for by itself
        warn(f"not looked at: {how}")
    if not report.imported:
        if report.skipped:
            raise CommandFailed(f"no usable login in {report.skipped[0].path or where}: {report.skipped[0].reason}")
        raise CommandFailed(f"no login in {where}; {first_login_hint(kind)}, then import again")
    return EXIT_OK


def _print_import(report: ImportReport) -> None:
    for item in report.imported:
        note = f"  ({item.note})" if item.note else ""
        say(f"{item.action:<10} {item.id}  {item.label:<32} {item.where}{note}")
    for account in report.missing:
        say(f"{'kept':<10} {account.id}  {account.label:<32} no longer in {report.source}")


def cmd_sources(args: argparse.Namespace) -> int:
    """Every place kiro-tui knows to look for logins, found or not."""
    settings = _settings()
    db, candidates = kiro_cli_location(args.db, settings)
    with _open_store() as store:
        engine = _engine(store, settings, db, candidates)
        found = _run(engine.sources)
    if args.json:
        print(json.dumps([source.to_json() for source in found], indent=2))
        return EXIT_OK
    rows = [[s.kind, str(s.path or "-"), "yes" if s.found else "no", str(s.logins) if s.found else "-",
             s.error or ""] for s in found]
    _print_table(["KIND", "PATH", "FOUND", "LOGINS", "PROBLEM"], rows)
    return EXIT_OK


# ---------------------------------------------------------------- list / usage


async def _save_rescued(engine: Engine) -> list[str]:
    """Commit the tokens earlier runs left in rescue copies (starting the engine does); what to say."""
    try:
        await engine.start()
        held_now = engine.refresher.held.values() if engine.refresher is not None else []
        still = [f"{held.account_id}: {held.message}; {held.rescue_note}" for held in held_now]
        return engine.saved_at_start + still
    finally:
        await engine.close()


def cmd_list(args: argparse.Namespace) -> int:
    settings = _settings()
    now = SystemClock().now()
    with _open_store() as store:
        engine = _engine(store, settings)
        if rescue.pending(store.path):  # an earlier run's rescued tokens: saved first, and said
            for text in _run(lambda: _save_rescued(engine)):
                warn(text)
        result = _run(lambda: engine.views())
        for problem in result.unreadable:
            warn(problem.describe())
        views = result.views
        counts = store.refresh_counts()
        holds = _run(lambda: engine.holdings(views)) if args.json else {}
        holders = _run(lambda: engine.holders(views)) if args.json else {}
    if args.json:
        rows = [account_json(v, now, settings.window, args.show_secrets, counts.get(v.id, (0, 0)),
                             settings.quota_warning, holds, holders) for v in views]
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    if not views:
        print("No accounts yet. `kiro-tui import` reads kiro-cli's logins; `kiro-tui login` signs in.")
        return EXIT_OK
    headers = ["ID", "NAME", "METHOD", "REGION", "PROFILE", "MODE", "EXPIRES", "STATUS"]
    if args.show_secrets:
        headers.append("ACCESS TOKEN")
    table: list[list[str]] = []
    for view in views:
        account = view.account
        row = [account.id, account.name, account.auth_method.label, account.region, account.profile_label or "-",
               account.mode.value, describe_expiry(account.expires_at, now),
               view.status(now, settings.window, settings.quota_warning).label
               + (f" ({len(view.places_in_error)} place{'s' if len(view.places_in_error) > 1 else ''} in error)"
                  if view.places_in_error else "")]
        if args.show_secrets:
            row.append(account.access_token)
        table.append(row)
    _print_table(headers, table)
    return EXIT_OK


def _print_table(headers: list[str], rows: list[list[str]]) -> None:
    table = [[printable(cell) for cell in row] for row in [headers, *rows]]  # widths of what is printed
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    for row in table:
        say("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def cmd_usage(args: argparse.Namespace) -> int:
    """Quota of every account: fetched now for every account whose token works."""
    settings = _settings()
    clock = SystemClock()
    with _open_store() as store:
        engine = _engine(store, settings)

        async def fetch() -> list[AccountView]:
            now = clock.now()
            usable = [a.id for a in store.accounts() if a.health.value == "ok" and a.expires_at > now]
            limit = asyncio.Semaphore(4)

            async def one(account_id: str) -> None:
                async with limit:
                    await engine.fetch_usage_now(account_id)

            await asyncio.gather(*(one(i) for i in usable))
            await engine.close()
            return (await engine.views()).views

        views = _run(fetch)
    now = clock.now()
    if args.json:
        print(json.dumps([{"id": v.id, "label": v.account.label, "email": v.account.email,
                           "status": v.status(now, settings.window, settings.quota_warning).value,
                           "usage": usage_json(v.usage)} for v in views], indent=2))
        return EXIT_OK
    if not views:
        print("No accounts yet. `kiro-tui import` reads kiro-cli's logins; `kiro-tui login` signs in.")
        return EXIT_OK
    rows = []
    for view in views:
        usage = view.usage
        resets = f"{usage.resets_at:%Y-%m-%d}" if usage and usage.resets_at else "-"
        plan = usage.subscription if usage and usage.subscription else "-"
        note = f" (stale: {usage.error})" if usage and usage.error and usage.known else ""
        rows.append([view.id, view.account.name, describe_usage(usage) + note, resets, plan,
                     view.status(now, settings.window, settings.quota_warning).label])
    _print_table(["ID", "NAME", "USAGE", "RESETS", "PLAN", "STATUS"], rows)
    return EXIT_OK


# ---------------------------------------------------------------- remove / mode


def cmd_remove(args: argparse.Namespace) -> int:
    with _open_store() as store:
        account_id = store.resolve_raw_id(args.id)
        try:
            account = store.get(account_id)
            name = account.name if account else account_id
        except KiroTuiError:  # an unreadable row can still be removed
            name = "unreadable account"
        kinds = sorted({p.kind for p in store.places(account_id)})
        if not args.yes:
            if not sys.stdin.isatty():
                raise CommandFailed(f"not removing {account_id} ({name}) without confirmation; pass --yes")
            try:
                answer = input(printable(f"Remove account {account_id} ({name}) from kiro-tui? [y/N] "))
            except EOFError:  # Ctrl-D: no answer is a no
                answer = ""
                print()
            if answer.strip().lower() not in ("y", "yes"):
                print("Nothing removed.")
                return EXIT_OK
        store.delete(account_id)
    if kinds:
        titles = ", ".join(place_format(kind).title for kind in kinds)
        say(f"Removed {account_id} ({name}). The copies in {titles} are untouched; importing again will not "
            "bring this login back (a new login there will).")
    else:
        say(f"Removed {account_id} ({name}); it was kiro-tui's own login, so nothing else held it.")
    return EXIT_OK


def cmd_mode(args: argparse.Namespace) -> int:
    from kiro_tui.core.models import Mode

    mode = Mode(args.mode)
    with _open_store() as store:
        account = store.resolve_id(args.id)
        store.set_mode(account, mode)
    say(f"{account.id} ({account.name}): mode {account.mode.value} → {mode.value}")
    return EXIT_OK


# ---------------------------------------------------------------- refresh / watch


def cmd_refresh(args: argparse.Namespace) -> int:
    from kiro_tui.core.refresh import RefreshResult

    settings = _settings()
    clock = SystemClock()
    held: list[str] = []
    with _open_store() as store:
        if args.all:
            ids, force = sorted(store.ids()), True
        elif args.ids:
            ids, force = [store.resolve_raw_id(i) for i in args.ids], True
        else:
            ids, force = None, False
        engine = _engine(store, settings, fetch_usage=False)

        async def run() -> list[RefreshResult]:
            chosen = ids if ids is not None else await engine.due_ids()
            results = await engine.refresh_now(chosen, force) if chosen else []
            await engine.stop(timeout=30)
            if engine.refresher is not None:
                held.extend(f"{h.account_id}: {h.message}; {h.rescue_note}"
                            for h in engine.refresher.held.values())
            return results

        results = _run_engine(engine, run)
        has_accounts = bool(store.ids())
        names = {a.id: a.name for a in store.accounts()}  # the email once known, as `list` shows
    if args.json:
        print(json.dumps([r.to_json() for r in results], indent=2))
    elif not results:
        if not has_accounts:
            print("No accounts yet. `kiro-tui import` reads kiro-cli's logins; `kiro-tui login` signs in.")
        else:
            print("Nothing is due for a refresh. `kiro-tui refresh --all` refreshes every account now.")
    for result in results if not args.json else ():
        detail = result.message or (describe_expiry(result.expires_at, clock.now()) if result.expires_at else "")
        name = names.get(result.account_id, result.label)
        say(f"{result.outcome.value:<10} {result.account_id}  {name:<32} {result.status.label:<12} {detail}")
    for result in results:
        for warning in result.warnings:
            warn(f"{result.account_id}: {warning}")
    for message in held:
        warn(message)
    if any(r.status is Status.NEEDS_LOGIN for r in results):
        return EXIT_NEEDS_LOGIN
    if held or any(r.outcome is Outcome.FAILED or r.status is Status.SUSPENDED for r in results):
        return EXIT_FAILURE
    return EXIT_OK


def cmd_watch(args: argparse.Namespace) -> int:
    from kiro_tui.core.events import (
        EngineEvent,
        EngineProblem,
        ImportFailed,
        ImportFinished,
        StatusChanged,
    )
    from kiro_tui.core.logs import RedactingFormatter, setup_file_logging

    settings = _settings()
    setup_file_logging()
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(RedactingFormatter("%(asctime)s %(message)s", "%Y-%m-%dT%H:%M:%S"))
    logging.getLogger("kiro_tui").addHandler(console)
    logging.getLogger("kiro_tui").setLevel(logging.INFO)
    db, candidates = kiro_cli_location(args.db, settings)
    if db is None:
        log.warning("not watching kiro-cli yet: no database at %s", ", ".join(str(p) for p in candidates))

    def on_event(event: EngineEvent) -> None:
        if isinstance(event, StatusChanged):
            log.info(event.change.describe())
        elif isinstance(event, ImportFinished):
            for item in event.report.imported:
                if item.action != UNCHANGED:
                    log.info("%s %s: %s from kiro-cli", item.id, item.label, item.action)
        elif isinstance(event, ImportFailed):
            log.warning("kiro-cli: %s", event.error)
        elif isinstance(event, EngineProblem):
            log.warning("%s", event.problem or "the problem is over; all is well again")

    def tell(line: str, warning: bool) -> None:
        (log.warning if warning else log.info)("%s", line)

    async def run() -> None:
        await engine.start()
        count = len(store.ids())
        log.info("watching %d account%s%s", count, "" if count == 1 else "s",
                 f"; kiro-cli database {db}" if db else "")
        await engine.run()

    from kiro_tui.core.shutdown import Interrupted

    with _open_store() as store:
        engine = _engine(store, settings, db, candidates, on_event=on_event, fetch_usage=settings.fetch_usage,
                         runner_kind="watch")
        try:  # until Ctrl-C, SIGTERM or SIGHUP: refreshes under way finish first (a second one abandons)
            _run_engine(engine, run, tell)
        except Interrupted:
            pass
    log.info("stopped")
    return EXIT_OK


# ---------------------------------------------------------------- link / unlink / export


def cmd_link(args: argparse.Namespace) -> int:
    settings = _settings()
    with _open_store() as store:
        engine = _engine(store, settings, fetch_usage=False)

        async def link_and_caveat() -> tuple[Place, str | None]:
            return await engine.link(args.id, args.kind, _path(args.path)), await engine.caveat(args.id, args.kind)

        place, caveat = _run_engine(engine, link_and_caveat)
    if caveat:
        warn(caveat)
    where = place.path + (f" ({place.entry})" if place.entry else "")
    if place.state.value == "in-sync":
        say(f"Linked {place.account_id} to {place.kind} {where}: written now, and after every refresh.")
        return EXIT_OK
    say(f"Linked {place.account_id} to {place.kind} {where}, but it is {place.state.value}: {place.detail}")
    return EXIT_FAILURE


def cmd_unlink(args: argparse.Namespace) -> int:
    settings = _settings()
    with _open_store() as store:
        engine = _engine(store, settings, fetch_usage=False)
        gone = _run(lambda: engine.unlink(args.id, args.place))
    for place in gone:
        say(f"Unlinked {place.kind} {place.path}: left as it is, no longer kept fresh.")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    settings = _settings()
    with _open_store() as store:
        engine = _engine(store, settings, fetch_usage=False)

        async def run() -> tuple[Path, str | None]:
            return await engine.export(args.id, args.kind, _path(args.path)), await engine.caveat(args.id, args.kind)

        written, caveat = _run(run)
    if caveat:
        warn(caveat)
    say(f"Wrote {written} once; it is not kept fresh (`kiro-tui link` does that).")
    return EXIT_OK


def _path(text: str | None) -> Path | None:
    return Path(text).expanduser().absolute() if text else None


# ---------------------------------------------------------------- login


def cmd_login(args: argparse.Namespace) -> int:
    from kiro_tui.core.login import LoginError, LoginRequest, PollStatus
    from kiro_tui.core.summary import account_json

    settings = _settings()
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
    with _open_store() as store:
        engine = _engine(store, settings)

        async def sign_in() -> tuple[LoginOutcome, list[Profile]]:
            login = await engine.start_login(request)
            tell(f"Open {login.verification_uri} and enter the code:\n\n    {login.user_code}\n")
            tell(f"(or open {login.verification_uri_complete})")
            tell(_copy_for_terminal(login.user_code))
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

        outcome, profiles = _run_engine(engine, sign_in)
        account = outcome.account
        if account.profile_arn is None and len(profiles) > 1:
            profile = _ask_profile(account, profiles, tell)
            engine = _engine(store, settings)
            _run_engine(engine, lambda: engine.set_profile(account.id, profile))
            account = store.get(account.id) or account
        view = AccountView(account)
    now = SystemClock().now()
    if args.json:
        print(json.dumps(account_json(view, now, settings.window, quota_warning=settings.quota_warning), indent=2))
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


def _copy_for_terminal(code: str) -> str:
    """Copy the code: the system clipboard, else the terminal's (OSC 52). Say which, honestly."""
    try:
        import pyperclip

        pyperclip.copy(code)
        return "The code was copied to the clipboard."
    except Exception:  # noqa: BLE001 - pyperclip raises its own types, or anything from the OS
        pass
    if sys.stdout.isatty():
        import base64

        sys.stdout.write(f"\x1b]52;c;{base64.b64encode(code.encode()).decode()}\x07")
        sys.stdout.flush()
        return "The code was sent to your terminal (OSC 52); if nothing was copied, select it above."
    return "Copy the code from above."


def _open_browser(url: str) -> None:
    import webbrowser

    try:
        webbrowser.open(url)
    except Exception:  # noqa: BLE001 - no browser here (SSH): the URL is printed above
        pass


# ---------------------------------------------------------------- the TUI and the demo


def cmd_tui(args: argparse.Namespace) -> int:
    from kiro_tui.core.aws.endpoints import Endpoints
    from kiro_tui.core.logs import setup_file_logging
    from kiro_tui.tui.app import run_app

    settings = _settings()
    endpoints = Endpoints.from_env()
    db, candidates = kiro_cli_location(args.db, settings)
    setup_file_logging()
    _open_store().close()  # refuse an unusable store here, in one line, before the screen is taken
    return run_app(paths.store_file(), settings, SystemClock(), endpoints, db, candidates)


def cmd_demo(args: argparse.Namespace) -> int:
    from kiro_tui.demo import run_demo

    return run_demo(approve_after=args.approve_after)


# ---------------------------------------------------------------- emulator


def cmd_emulator(args: argparse.Namespace) -> int:
    import signal

    from kiro_tui.emulator import Emulator

    emulator = Emulator(args.host, args.port, token_ttl=args.token_ttl, approve_after=args.approve_after)

    async def serve() -> None:
        try:
            url = await emulator.start_async()
        except OSError as exc:
            raise CommandFailed(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from exc
        print(f"kiro-tui emulator listening on {url}", flush=True)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, lambda: asyncio.ensure_future(emulator.stop_async()))
            except NotImplementedError:  # Windows: Ctrl-C arrives as KeyboardInterrupt instead
                pass
        await emulator.serve_until_stopped()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    return EXIT_OK


# ---------------------------------------------------------------- parser


def _number(kind: type, low: float, high: float, what: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {what}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is out of range ({low:,.0f} to {high:,.0f})")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    from kiro_tui.cli_parser import Parser

    parser = Parser(
        prog="kiro-tui",
        description="Keep AWS Kiro / CodeWhisperer logins fresh. With no command, opens the terminal UI.",
    )
    parser.add_argument("--version", action="version", version=f"kiro-tui {__version__}")
    parser.add_argument("--db", metavar="PATH",
                        help="kiro-cli's data.sqlite3 (for the terminal UI, and the commands with a --db of their own)")
    parser.top_level_db = "--db"  # refused before a command that does not read kiro-cli's database
    parser.set_defaults(handler=cmd_tui)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    # A subcommand's --db must not overwrite the one given before the command (`kiro-tui --db X import`).
    db_help = "kiro-cli's data.sqlite3 (default: kiro-cli's usual place)"

    from kiro_tui.core.places import FORMATS

    kinds = ["all", *FORMATS]
    p = commands.add_parser("import", help="import logins from kiro-cli's database, or another tool's files")
    p.add_argument("--db", metavar="PATH", default=argparse.SUPPRESS, help=db_help + "; = --from kiro-cli --path PATH")
    p.add_argument("--from", dest="kind", metavar="KIND", choices=kinds,
                   help=f"where to import from: {', '.join(kinds)} (default kiro-cli)")
    p.add_argument("--path", metavar="PATH", help="the file or folder (default: where that tool keeps them)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=cmd_import)

    p = commands.add_parser("sources", help="every place kiro-tui looks for logins, found or not")
    p.add_argument("--db", metavar="PATH", default=argparse.SUPPRESS, help=db_help)
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(handler=cmd_sources)

    p = commands.add_parser("list", help="list accounts with expiry and refresh health")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.add_argument("--show-secrets", action="store_true", help="show tokens unmasked (take care)")
    p.set_defaults(handler=cmd_list)

    p = commands.add_parser("usage", help="quota of every account (fetched now)")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(handler=cmd_usage)

    p = commands.add_parser("refresh", help="refresh accounts now (default: those that are due)")
    p.add_argument("ids", nargs="*", metavar="ID", help="accounts to refresh now, even if not yet due")
    p.add_argument("--all", action="store_true", help="refresh every account now")
    p.add_argument("--json", action="store_true", help="print each outcome as JSON")
    p.set_defaults(handler=cmd_refresh)

    p = commands.add_parser("watch", help="keep every account fresh in the background until Ctrl-C")
    p.add_argument("--db", metavar="PATH", default=argparse.SUPPRESS, help=db_help)
    p.set_defaults(handler=cmd_watch)

    p = commands.add_parser("login", help="log in with a device code (AWS Builder ID or IAM Identity Center)")
    p.add_argument("--start-url", metavar="URL", help="IAM Identity Center start URL (default: AWS Builder ID)")
    p.add_argument("--region", metavar="R", help="region of your Identity Center (default us-east-1)")
    p.add_argument("--profile", metavar="ARN", help="profile ARN to use (default: the only one, or ask)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser; just print the URL")
    p.add_argument("--json", action="store_true", help="print the new account as JSON (prompts go to stderr)")
    p.set_defaults(handler=cmd_login)

    from kiro_tui.core.places import LINK_KINDS as writable
    from kiro_tui.core.places import link_refusal

    for name, handler, what in (
        ("link", cmd_link, "keep a copy of an account fresh in another tool's file"),
        ("export", cmd_export, "write an account's login once into another tool's file (not kept fresh)"),
    ):
        p = commands.add_parser(name, help=what)
        p.add_argument("id", metavar="ID")
        to = p.add_argument("--to", dest="kind", metavar="KIND", required=True, choices=writable,
                            help=f"the tool: {', '.join(writable)}")
        p.explain(to, {kind: why for kind in FORMATS if (why := link_refusal(kind))})
        p.add_argument("--path", metavar="PATH", help="the file or folder (default: where that tool keeps it)")
        p.set_defaults(handler=handler)

    p = commands.add_parser("unlink", help="stop keeping a copy fresh (the file is left as it is)")
    p.add_argument("id", metavar="ID")
    p.add_argument("place", metavar="KIND-or-PATH")
    p.set_defaults(handler=cmd_unlink)

    p = commands.add_parser("mode", help="how an account coexists with the place it came from: sync, follow or own")
    p.add_argument("id", metavar="ID")
    p.add_argument("mode", choices=["sync", "follow", "own"])
    p.set_defaults(handler=cmd_mode)

    p = commands.add_parser("remove", help="remove one account from kiro-tui (the places holding it are untouched)")
    p.add_argument("id", metavar="ID", help="account id (or a unique prefix) from `kiro-tui list`")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.set_defaults(handler=cmd_remove)

    from kiro_tui.cli_paths import add_commands as add_path_commands

    add_path_commands(commands)  # paths, forget

    p = commands.add_parser("demo", help="try the whole app offline against a built-in emulator")
    p.add_argument("--approve-after", type=_number(float, 0, 3600, "number of seconds"), default=5.0,
                   metavar="SECONDS", help="approve device-code logins after this many seconds (default 5)")
    p.set_defaults(handler=cmd_demo)

    p = commands.add_parser("emulator", help="serve a local emulator of the AWS / Kiro endpoints (for tests and demos)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=_number(int, 0, 65535, "port number"), default=0,
                   help="port (default 0: any free port)")
    p.add_argument("--token-ttl", type=_number(int, 1, 30 * 86_400, "number of seconds"), default=3600,
                   metavar="SECONDS", help="access token lifetime (default 3600)")
    p.add_argument("--approve-after", type=_number(float, 0, 3600, "number of seconds"), default=None,
                   metavar="SECONDS", help="approve any pending device code after this many seconds, without a browser")
    p.set_defaults(handler=cmd_emulator)

    from kiro_tui.cli_always_on import add_commands as add_always_on  # service, token

    add_always_on(commands)

    from kiro_tui.cli_switch import add_commands

    add_commands(commands)  # use, rename, show, completion
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # anywhere, --help included
        return _pipe_closed()


def _main(argv: Sequence[str] | None) -> int:
    # What the core logs goes to the private log file (and `watch` adds the terminal), never to
    # Python's last-resort handler: that prints unformatted, unmasked lines on stderr.
    logging.getLogger("kiro_tui").addHandler(logging.NullHandler())
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["__complete"]:  # the completion scripts' helper: cheap, no parser, no engine
        from kiro_tui.cli_switch import complete_accounts

        return complete_accounts()
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    if getattr(args, "ids", None) and getattr(args, "all", False):
        parser.error("give account ids or --all, not both")
    if handler not in (cmd_emulator, cmd_demo) and getattr(args, "logs", True):  # (paths, forget: logs=False)
        from kiro_tui.core.logs import setup_file_logging

        setup_file_logging()  # warnings from the core (a lease not released, an unreadable row) land here
    from kiro_tui.core.shutdown import Interrupted

    try:
        code = handler(args)
        sys.stdout.flush()  # a closed pipe is noticed here, not in the interpreter's last flush
        return code
    except BrokenPipeError:
        raise
    except Interrupted as exc:
        say(f"kiro-tui: {exc}", err=True)
        return exc.exit_code
    except KiroTuiError as exc:
        say(f"kiro-tui: error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        print("kiro-tui: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: the traceback goes to the log file, one line to the person
        from kiro_tui.core.aws.errors import redact
        from kiro_tui.core.logs import setup_file_logging
        from kiro_tui.core.store import damage_message

        damaged = damage_message(paths.store_file(), exc)  # the places say their own files' damage
        if damaged:
            say(f"kiro-tui: error: {damaged}", err=True)
            return EXIT_FAILURE

        where = setup_file_logging()
        log.exception("unexpected error in `kiro-tui %s`", args.command or "")
        detail = f"; details in {where}" if where else ""
        say(f"kiro-tui: internal error: {type(exc).__name__}: {redact(str(exc))[:200]}{detail}. "
            "Please report it.", err=True)
        return EXIT_FAILURE


EXIT_PIPE_CLOSED = 141
"""128 + SIGPIPE: what a command killed by a closed pipe reports, as `yes | head` does."""


def _pipe_closed() -> int:
    """Whoever read our output stopped reading (`kiro-tui list | head -1`): end quietly. What is
    still buffered goes to /dev/null, so the interpreter's last flush cannot complain either."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(devnull, stream.fileno())
        except (OSError, ValueError):
            pass
    os.close(devnull)
    return EXIT_PIPE_CLOSED
