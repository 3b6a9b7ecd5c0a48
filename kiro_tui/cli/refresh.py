"""Keeping tokens fresh: `refresh` (now), `watch` (until stopped) and `token` (one valid token,
refreshed first if needed, for scripts). All three end the one stoppable way (core/shutdown.py).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING, Any

from kiro_tui.cli.front import kiro_cli_location, make_engine, open_store, read_settings, run_engine
from kiro_tui.cli.output import (
    EXIT_FAILURE,
    EXIT_NEEDS_LOGIN,
    EXIT_OK,
    NO_ACCOUNTS,
    CommandFailed,
    UsageError,
    print_json,
    say,
    warn,
)
from kiro_tui.cli.parser import number
from kiro_tui.core.clock import SystemClock
from kiro_tui.core.identity import UNCHANGED
from kiro_tui.core.models import Account, Outcome, Status
from kiro_tui.core.summary import describe_expiry
from kiro_tui.core.timefmt import format_timestamp

if TYPE_CHECKING:
    from kiro_tui.core.engine import Engine

log = logging.getLogger("kiro_tui")
DEFAULT_MIN_VALID = 300


def cmd_refresh(args: argparse.Namespace) -> int:
    from kiro_tui.core.refresh import RefreshResult

    settings = read_settings()
    clock = SystemClock()
    held: list[str] = []
    with open_store() as store:
        engine = make_engine(store, settings, fetch_usage=False)
        if args.all:
            ids, force = engine.account_ids(), True
        elif args.ids:
            ids, force = [engine.resolve(i) for i in args.ids], True
        else:
            ids, force = None, False

        async def run() -> list[RefreshResult]:
            chosen = ids if ids is not None else await engine.due_ids()
            results = await engine.refresh_now(chosen, force) if chosen else []
            await engine.stop(timeout=30)
            held.extend(engine.held_notes())
            return results

        results = run_engine(engine, run)
        has_accounts = bool(engine.account_ids())
        names = engine.names()  # the email once known, as `list` shows
    if args.json:
        print_json([r.to_json() for r in results])
    elif not results:
        if not has_accounts:
            print(NO_ACCOUNTS)
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

    settings = read_settings()
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
        count = len(engine.account_ids())
        log.info("watching %d account%s%s", count, "" if count == 1 else "s",
                 f"; kiro-cli database {db}" if db else "")
        await engine.run()

    from kiro_tui.core.shutdown import Interrupted

    with open_store() as store:
        engine = make_engine(store, settings, db, candidates, on_event=on_event, fetch_usage=settings.fetch_usage,
                             runner_kind="watch")
        try:  # until Ctrl-C, SIGTERM or SIGHUP: refreshes under way finish first (a second one abandons)
            run_engine(engine, run, tell)
        except Interrupted:
            pass
    log.info("stopped")
    return EXIT_OK


def choose_account(engine: Engine, wanted: str | None) -> str:
    """The account a command names: an id or a unique prefix; none named: the only account, or
    a usage error saying how to choose. The one place this is decided for `token`."""
    if wanted:
        return engine.resolve(wanted)
    ids = engine.account_ids()
    if len(ids) == 1:
        return ids[0]
    if not ids:
        raise CommandFailed("no accounts yet; `kiro-tui import` reads kiro-cli's logins, `kiro-tui login` signs in")
    raise UsageError(f"there are {len(ids)} accounts; name one: `kiro-tui token ID` "
                     "(`kiro-tui list` shows the ids)")


def cmd_token(args: argparse.Namespace) -> int:
    """Ask the front for a token valid long enough (`Engine.fresh_token`) and print it, and nothing else."""
    settings = read_settings()
    with open_store() as store:
        engine = make_engine(store, settings, fetch_usage=False)
        account_id = choose_account(engine, args.id)

        async def run() -> Account:
            account = await engine.fresh_token(account_id, args.min_valid)
            await engine.stop(timeout=30)  # as `refresh`: anything held is committed first
            return account

        account = run_engine(engine, run)  # a first Ctrl-C lets the refresh commit, as everywhere
    if args.json:
        print_json({"access_token": account.access_token, "expires_at": format_timestamp(account.expires_at),
                    "profile_arn": account.profile_arn, "region": account.region,
                    "auth_method": account.auth_method.value, "account_id": account.id})
    else:
        print(account.access_token, flush=True)
    return EXIT_OK


def add_refresh_and_watch(commands: Any) -> None:
    from kiro_tui.cli.places import DB_HELP

    p = commands.add_parser("refresh", help="refresh accounts now (default: those that are due)")
    p.add_argument("ids", nargs="*", metavar="ID", help="accounts to refresh now, even if not yet due")
    p.add_argument("--all", action="store_true", help="refresh every account now")
    p.add_argument("--json", action="store_true", help="print each outcome as JSON")
    p.set_defaults(handler=cmd_refresh)

    p = commands.add_parser("watch", help="keep every account fresh in the background until Ctrl-C")
    p.add_argument("--db", metavar="PATH", default=argparse.SUPPRESS, help=DB_HELP)
    p.set_defaults(handler=cmd_watch)


def add_token(commands: Any) -> None:
    p = commands.add_parser("token", help="print an account's access token (refreshed first if needed), for scripts")
    p.add_argument("id", nargs="?", metavar="ID", help="the account (default: the only one)")
    p.add_argument("--min-valid", type=number(int, 0, 86_400, "number of seconds"), default=DEFAULT_MIN_VALID,
                   metavar="SECONDS", help=f"refresh first if it expires within this (default {DEFAULT_MIN_VALID})")
    p.add_argument("--json", action="store_true", help="print the token with its expiry, profile and region as JSON")
    p.set_defaults(handler=cmd_token)
