"""The command-line face of kiro-tui: `kiro-tui COMMAND ...` for scripts.

Each command is a small function over the core. Any `KiroTuiError` ends the program with
`kiro-tui: error: <message>` on stderr and its exit code; a bug is logged with its traceback
to the log file and reported in one line.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from kiro_tui import __version__
from kiro_tui.core import paths
from kiro_tui.core.clock import SystemClock
from kiro_tui.core.config import Settings, load_settings
from kiro_tui.core.errors import KiroTuiError
from kiro_tui.core.importer import ImportReport, import_snapshot
from kiro_tui.core.kiro_cli import find_kiro_cli_db, read_kiro_cli
from kiro_tui.core.models import Account
from kiro_tui.core.store import AccountStore
from kiro_tui.core.summary import account_json, describe_expiry, printable

EXIT_OK, EXIT_FAILURE, EXIT_NEEDS_LOGIN = 0, 1, 3  # 2: usage errors, from argparse
log = logging.getLogger("kiro_tui")


class CommandFailed(KiroTuiError):
    """A command that ran but did not achieve what was asked."""


def _settings() -> Settings:
    return load_settings(paths.config_file())


def say(line: str, *, err: bool = False) -> None:
    """One line for a person. Labels, emails and errors come from kiro-cli and AWS: made
    printable, so no escape sequence reaches the terminal (JSON output escapes by itself)."""
    print(printable(line), file=sys.stderr if err else sys.stdout)


def _open_store() -> AccountStore:
    store = AccountStore.open(paths.store_file())
    for message in store.permission_fixes:
        say(f"kiro-tui: warning: {message}", err=True)
    return store


def kiro_cli_db_path(explicit: str | None, settings: Settings) -> Path:
    """--db, else config `kiro_cli_db`, else the first of kiro-cli's / Amazon Q's usual paths."""
    if explicit:
        return Path(explicit).expanduser()
    if settings.kiro_cli_db:
        return Path(settings.kiro_cli_db).expanduser()
    return find_kiro_cli_db(paths.kiro_cli_db_candidates())


# ---------------------------------------------------------------- import


def cmd_import(args: argparse.Namespace) -> int:
    settings = _settings()
    db = kiro_cli_db_path(args.db, settings)
    now = SystemClock().now()
    snapshot = read_kiro_cli(db, now)
    with _open_store() as store:
        report = import_snapshot(store, snapshot, now, settings.default_import_mode)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        _print_import(report)
    for skipped in report.skipped:
        say(f"kiro-tui: warning: skipped {skipped.key} in {db}: {skipped.reason}", err=True)
    if not report.imported:
        if report.skipped:
            raise CommandFailed(f"no usable login in {db}: {report.skipped[0].reason}")
        raise CommandFailed(f"no login in {db}; run `kiro-cli login` first, then import again")
    return EXIT_OK


def _print_import(report: ImportReport) -> None:
    for item in report.imported:
        note = f"  ({item.note})" if item.note else ""
        say(f"{item.action:<10} {item.id}  {item.label:<32} {item.key}{note}")
    for account in report.missing:
        say(f"{'kept':<10} {account.id}  {account.label:<32} no longer in kiro-cli's database")


# ---------------------------------------------------------------- list


def cmd_list(args: argparse.Namespace) -> int:
    settings = _settings()
    now = SystemClock().now()
    with _open_store() as store:
        accounts = store.accounts()
        refreshing = store.refreshing_ids(now)
        counts = store.refresh_counts()
    if args.json:
        rows = [
            account_json(a, now, settings.window, args.show_secrets, a.id in refreshing, counts.get(a.id, (0, 0)))
            for a in accounts
        ]
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    if not accounts:
        print("No accounts yet. `kiro-tui import` reads kiro-cli's logins.")
        return EXIT_OK
    _print_table(accounts, now, settings, args.show_secrets, refreshing)
    return EXIT_OK


def _print_table(
    accounts: Sequence[Account], now: datetime, settings: Settings, show_secrets: bool, refreshing: set[str]
) -> None:
    headers = ["ID", "NAME", "METHOD", "REGION", "PROFILE", "MODE", "EXPIRES", "STATUS"]
    if show_secrets:
        headers.append("ACCESS TOKEN")
    table = [headers]
    for account in accounts:
        row = [
            account.id,
            account.name,
            account.auth_method.title,
            account.region,
            account.profile_name or "-",
            account.mode.value,
            describe_expiry(account.expires_at, now),
            account.status(now, settings.window, account.id in refreshing).value,
        ]
        if show_secrets:
            row.append(account.access_token)
        table.append(row)
    table = [[printable(cell) for cell in row] for row in table]  # widths of what is printed
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    for row in table:
        say("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


# ---------------------------------------------------------------- remove


def cmd_remove(args: argparse.Namespace) -> int:
    with _open_store() as store:
        account = store.resolve_id(args.id)
        if not args.yes:
            if not sys.stdin.isatty():
                raise CommandFailed(
                    f"not removing {account.id} ({account.name}) without confirmation; pass --yes"
                )
            answer = input(f"Remove account {account.id} ({account.name}) from kiro-tui? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("Nothing removed.")
                return EXIT_OK
        store.delete(account.id)
    say(f"Removed {account.id} ({account.name}). kiro-cli's own login is untouched.")
    return EXIT_OK


# ---------------------------------------------------------------- refresh / watch / mode


def cmd_refresh(args: argparse.Namespace) -> int:
    import asyncio

    from kiro_tui.core.aws.endpoints import Endpoints
    from kiro_tui.core.aws.transport import make_http_client
    from kiro_tui.core.refresh import RefreshClients, Refresher, RefreshResult

    settings = _settings()
    endpoints = Endpoints.from_env()
    clock = SystemClock()

    async def run() -> list[RefreshResult]:
        async with make_http_client() as http:
            with _open_store() as store:
                refresher = Refresher(store, RefreshClients.create(http, endpoints), clock, settings)
                if args.all:
                    ids, force = [a.id for a in store.accounts()], True
                elif args.ids:
                    ids, force = [store.resolve_id(i).id for i in args.ids], True
                else:
                    now = clock.now()
                    ids = [a.id for a in store.accounts() if refresher.is_due(a, now)]
                    force = False
                limit = asyncio.Semaphore(settings.concurrency)

                async def one(account_id: str) -> RefreshResult:
                    async with limit:
                        return await refresher.refresh(account_id, force)

                return list(await asyncio.gather(*(one(i) for i in ids)))

    results = asyncio.run(run())
    if args.json:
        print(json.dumps([r.to_json() for r in results], indent=2))
    elif not results:
        print("Nothing is due for a refresh. `kiro-tui refresh --all` refreshes every account now.")
    for result in results if not args.json else ():
        detail = result.message or (describe_expiry(result.expires_at, clock.now()) if result.expires_at else "")
        say(f"{result.outcome:<10} {result.account_id}  {result.label:<32} {result.status.value:<16} {detail}")
    statuses = {r.status.value for r in results}
    if "needs-login" in statuses:
        return EXIT_NEEDS_LOGIN
    if any(r.outcome == "failed" or r.status.value == "suspended" for r in results):
        return EXIT_FAILURE
    return EXIT_OK


def cmd_watch(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from kiro_tui.core.aws.endpoints import Endpoints
    from kiro_tui.core.aws.transport import make_http_client
    from kiro_tui.core.engine import Engine
    from kiro_tui.core.errors import KiroCliError
    from kiro_tui.core.logs import RedactingFormatter, setup_file_logging

    settings = _settings()
    endpoints = Endpoints.from_env()
    setup_file_logging()
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(RedactingFormatter("%(asctime)s %(message)s", "%Y-%m-%dT%H:%M:%S"))
    logging.getLogger("kiro_tui").addHandler(console)
    logging.getLogger("kiro_tui").setLevel(logging.INFO)
    try:
        db: Path | None = kiro_cli_db_path(args.db, settings)
    except KiroCliError as exc:
        log.warning("not watching kiro-cli: %s", exc)
        db = None

    def imported(report: ImportReport) -> None:
        for item in report.imported:
            if item.action != "unchanged":
                log.info("%s %s: %s from kiro-cli", item.id, item.label, item.action)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, stop.set)
            except NotImplementedError:
                pass
        async with make_http_client() as http:
            with _open_store() as store:
                engine = Engine(store, settings, SystemClock(), http, endpoints, db,
                                on_change=lambda change: log.info(change.describe()),
                                on_import=imported,
                                on_error=lambda exc: log.warning("kiro-cli: %s", exc))
                log.info("watching %d accounts%s", len(store.ids()), f"; kiro-cli database {db}" if db else "")
                task = asyncio.create_task(engine.run())
                stopper = asyncio.create_task(stop.wait())
                await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                if task.done() and not task.cancelled() and task.exception():
                    raise task.exception()  # type: ignore[misc]
        log.info("stopped")

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def cmd_mode(args: argparse.Namespace) -> int:
    from kiro_tui.core.models import Mode

    mode = Mode(args.mode)
    with _open_store() as store:
        account = store.resolve_id(args.id)
        store.set_mode(account, mode)
    say(f"{account.id} ({account.name}): mode {account.mode.value} → {mode.value}")
    return EXIT_OK


# ---------------------------------------------------------------- the TUI and the demo


def cmd_tui(args: argparse.Namespace) -> int:
    from kiro_tui.core.aws.endpoints import Endpoints
    from kiro_tui.core.logs import setup_file_logging
    from kiro_tui.tui.app import make_app

    settings = _settings()
    endpoints = Endpoints.from_env()
    if getattr(args, "db", None):
        candidates = [Path(args.db).expanduser()]
    elif settings.kiro_cli_db:
        candidates = [Path(settings.kiro_cli_db).expanduser()]
    else:
        candidates = paths.kiro_cli_db_candidates()
    db = next((p for p in candidates if p.exists()), None)
    setup_file_logging()
    with _open_store() as store:
        make_app(store, settings, SystemClock(), endpoints, db, candidates).run()
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from kiro_tui.demo import run_demo

    run_demo(approve_after=args.approve_after)
    return EXIT_OK


# ---------------------------------------------------------------- emulator


def cmd_emulator(args: argparse.Namespace) -> int:
    import asyncio
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kiro-tui",
        description="Keep AWS Kiro / CodeWhisperer logins fresh. With no command, opens the terminal UI.",
    )
    parser.add_argument("--version", action="version", version=f"kiro-tui {__version__}")
    parser.add_argument("--db", metavar="PATH", help="kiro-cli's data.sqlite3, for the terminal UI")
    parser.set_defaults(handler=cmd_tui)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = commands.add_parser("import", help="import logins from kiro-cli's database")
    p.add_argument("--db", metavar="PATH", help="kiro-cli's data.sqlite3 (default: kiro-cli's usual place)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=cmd_import)

    p = commands.add_parser("list", help="list accounts with expiry and refresh health")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.add_argument("--show-secrets", action="store_true", help="show tokens unmasked (take care)")
    p.set_defaults(handler=cmd_list)

    p = commands.add_parser("refresh", help="refresh accounts now (default: those that are due)")
    p.add_argument("ids", nargs="*", metavar="ID", help="accounts to refresh now, even if not yet due")
    p.add_argument("--all", action="store_true", help="refresh every account now")
    p.add_argument("--json", action="store_true", help="print each outcome as JSON")
    p.set_defaults(handler=cmd_refresh)

    p = commands.add_parser("watch", help="keep every account fresh in the background until Ctrl-C")
    p.add_argument("--db", metavar="PATH", help="kiro-cli's data.sqlite3 to watch (default: the usual place)")
    p.set_defaults(handler=cmd_watch)

    p = commands.add_parser("mode", help="how an account coexists with kiro-cli: sync, follow or own")
    p.add_argument("id", metavar="ID")
    p.add_argument("mode", choices=["sync", "follow", "own"])
    p.set_defaults(handler=cmd_mode)

    p = commands.add_parser("remove", help="remove one account from kiro-tui (kiro-cli is untouched)")
    p.add_argument("id", metavar="ID", help="account id (or a unique prefix) from `kiro-tui list`")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.set_defaults(handler=cmd_remove)

    p = commands.add_parser("demo", help="try the whole app offline against a built-in emulator")
    p.add_argument("--approve-after", type=float, default=5.0, metavar="SECONDS",
                   help="approve device-code logins after this many seconds (default 5)")
    p.set_defaults(handler=cmd_demo)

    p = commands.add_parser("emulator", help="serve a local emulator of the AWS / Kiro endpoints (for tests and demos)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port (default 0: any free port)")
    p.add_argument("--token-ttl", type=int, default=3600, metavar="SECONDS", help="access token lifetime (default 3600)")
    p.add_argument("--approve-after", type=float, default=None, metavar="SECONDS",
                   help="approve any pending device code after this many seconds, without a browser")
    p.set_defaults(handler=cmd_emulator)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    if getattr(args, "ids", None) and getattr(args, "all", False):
        parser.error("give account ids or --all, not both")
    try:
        return handler(args)
    except KiroTuiError as exc:
        say(f"kiro-tui: error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        print("kiro-tui: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: the traceback goes to the log file, one line to the person
        from kiro_tui.core.aws.errors import redact
        from kiro_tui.core.logs import setup_file_logging

        where = setup_file_logging()
        log.exception("unexpected error in `kiro-tui %s`", args.command or "")
        detail = f"; details in {where}" if where else ""
        say(f"kiro-tui: internal error: {type(exc).__name__}: {redact(str(exc))[:200]}{detail}. "
            "Please report it.", err=True)
        return EXIT_FAILURE
