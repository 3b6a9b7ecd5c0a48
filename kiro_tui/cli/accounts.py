"""The commands about accounts: `list`, `usage`, `show`, `mode`, `remove`, `rename` and `use`.

Each reads and edits accounts through the engine's front (core/engine.py), as the TUI does: a
`remove` or a `mode` here reschedules and tells exactly as the same key in the TUI.
"""

from __future__ import annotations

import argparse
import gc
import sys
from typing import Any

from kiro_tui.cli.front import (
    edit_engine,
    held_after_rescue,
    kiro_cli_location,
    make_engine,
    open_store,
    path_argument,
    read_settings,
    run,
    run_engine,
)
from kiro_tui.cli.output import EXIT_OK, NO_ACCOUNTS, CommandFailed, print_json, print_table, say, warn
from kiro_tui.core.clock import SystemClock
from kiro_tui.core.models import AccountView
from kiro_tui.core.places import place_format
from kiro_tui.core.summary import account_json, describe_expiry, describe_usage, printable, usage_json
from kiro_tui.core.views import holdings, read_views

# ---------------------------------------------------------------- list / usage / show


def cmd_list(args: argparse.Namespace) -> int:
    # One read, then the process ends: what it builds stays alive to the end, so the cyclic
    # collector would only walk it again and again (250 times at 10,000 accounts, 8 % of the run).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _list(args)
    finally:
        if collecting:  # (called in process, as the tests do, the caller's collector is back)
            gc.enable()


def _list(args: argparse.Namespace) -> int:
    # Only reads: core/views.py with no engine, whose machinery (asyncio, the watch, the
    # network) would be most of the command's time; an engine starts only to save an earlier
    # run's rescued tokens first.
    settings = read_settings()
    now = SystemClock().now()
    with open_store() as store:
        held = held_after_rescue(store, settings)
        result = read_views(store, now, held=held)
        for problem in result.unreadable:
            warn(problem.describe())
        views = result.views
        found = holdings(store, views, now) if args.json else None
        counts = store.refresh_counts()
    if found is not None:
        window = settings.window
        rows = [account_json(v, now, window, args.show_secrets, counts.get(v.id, (0, 0)),
                             settings.quota_warning, found.states, found.holders) for v in views]
        print_json(rows)
        return EXIT_OK
    if not views:
        print(NO_ACCOUNTS)
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
    print_table(headers, table)
    return EXIT_OK


def cmd_usage(args: argparse.Namespace) -> int:
    """Quota of every account: fetched now for every account whose token works."""
    settings = read_settings()
    clock = SystemClock()
    with open_store() as store:
        engine = make_engine(store, settings)

        async def fetch() -> list[AccountView]:
            await engine.fetch_all_usage()
            await engine.close()
            return (await engine.views()).views

        views = run(fetch)
    now = clock.now()
    if args.json:
        print_json([{"id": v.id, "label": v.account.label, "email": v.account.email,
                     "status": v.status(now, settings.window, settings.quota_warning).value,
                     "usage": usage_json(v.usage)} for v in views])
        return EXIT_OK
    if not views:
        print(NO_ACCOUNTS)
        return EXIT_OK
    rows = []
    for view in views:
        usage = view.usage
        resets = f"{usage.resets_at:%Y-%m-%d}" if usage and usage.resets_at else "-"
        plan = usage.subscription if usage and usage.subscription else "-"
        note = f" (stale: {usage.error})" if usage and usage.error and usage.known else ""
        rows.append([view.id, view.account.name, describe_usage(usage) + note, resets, plan,
                     view.status(now, settings.window, settings.quota_warning).label])
    print_table(["ID", "NAME", "USAGE", "RESETS", "PLAN", "STATUS"], rows)
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from kiro_tui.core.account_report import show_json, show_lines

    settings = read_settings()
    now = SystemClock().now()
    with open_store() as store:
        engine = make_engine(store, settings)
        account_id = engine.resolve(args.id)
        result = run(lambda: engine.views([account_id]))
        for problem in result.unreadable:
            warn(problem.describe())
        if not result.views:
            raise CommandFailed(f"account {account_id} cannot be read; `kiro-tui remove {account_id}` removes it")
        views = result.views
        held = run(lambda: engine.holdings(views))
        holds, holders = held.states, held.holders
        history = run(lambda: engine.history(account_id, 5))
        names = engine.names()
        counts = engine.refresh_counts().get(account_id, (0, 0))
    (view,) = views
    if args.json:
        print_json(show_json(view, now, settings.window, history, holds, holders, counts))
        return EXIT_OK
    for line in show_lines(view, now, settings.window, history, holds, holders, names):
        say(line)
    return EXIT_OK


# ---------------------------------------------------------------- edits: mode / remove / rename / use


def cmd_mode(args: argparse.Namespace) -> int:
    from kiro_tui.core.models import Mode

    mode = Mode(args.mode)
    with open_store() as store:
        engine = edit_engine(store)
        account = engine.account(args.id)
        run(lambda: engine.set_mode(account.id, mode))
    say(f"{account.id} ({account.name}): mode {account.mode.value} → {mode.value}")
    return EXIT_OK


def cmd_remove(args: argparse.Namespace) -> int:
    with open_store() as store:
        engine = edit_engine(store)
        account_id, readable_name, kinds = engine.removal(args.id)
        name = readable_name or "unreadable account"  # an unreadable row can still be removed
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
        run(lambda: engine.remove(account_id))
    if kinds:
        titles = ", ".join(place_format(kind).title for kind in kinds)
        say(f"Removed {account_id} ({name}). The copies in {titles} are untouched; importing again will not "
            "bring this login back (a new login there will).")
    else:
        say(f"Removed {account_id} ({name}); it was kiro-tui's own login, so nothing else held it.")
    return EXIT_OK


def cmd_rename(args: argparse.Namespace) -> int:
    with open_store() as store:
        engine = edit_engine(store)
        before = engine.account(args.id)
        account = run(lambda: engine.rename(before.id, args.name))
    if account.nickname:
        say(f"{account.id} is now called {account.nickname} (it was shown as {before.name}).")
    else:
        say(f"{account.id} has no name now; it is shown as {account.name}.")
    return EXIT_OK


def cmd_use(args: argparse.Namespace) -> int:
    settings = read_settings()
    db, candidates = kiro_cli_location(getattr(args, "db", None), settings)
    with open_store() as store:
        engine = make_engine(store, settings, db, candidates, fetch_usage=False)
        outcome = run_engine(engine, lambda: engine.use(args.id, args.kind, path_argument(args.path)))
        names = engine.names()
    if args.json:
        print_json(outcome.to_json())
        return EXIT_OK
    account = outcome.account
    where = f"{outcome.path}" + (f" ({outcome.entry})" if outcome.entry else "")
    picks_up = ("kiro-cli uses it from its next start" if args.kind == "kiro-cli" else
                "the Kiro IDE picks it up by itself within seconds" if args.kind == "kiro-ide" else
                "the tool uses it once it reads the file again")
    say(f"{account.name} ({account.id}) is now the login in {where}: {picks_up}; kiro-tui keeps it fresh there.")
    for other, action in outcome.previous:
        what = "imported (kiro-tui had not seen it)" if action == "imported" else "kept"
        say(f"The login that was there, {names.get(other, other)} ({other}), is {what}: kiro-tui keeps it "
            f"fresh, and `kiro-tui use {other} --in {args.kind}` switches back.")
    for copy in outcome.copies:
        say(f"A copy of what was there: {copy}")
    for lost in outcome.lost:
        warn(f"not imported: {lost}; only the copy above keeps it")
    return EXIT_OK


# ---------------------------------------------------------------- the parser


def add_list_and_usage(commands: Any) -> None:
    p = commands.add_parser("list", help="list accounts with expiry and refresh health")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.add_argument("--show-secrets", action="store_true", help="show tokens unmasked (take care)")
    p.set_defaults(handler=cmd_list)

    p = commands.add_parser("usage", help="quota of every account (fetched now)")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(handler=cmd_usage)


def add_mode_and_remove(commands: Any) -> None:
    p = commands.add_parser("mode", help="how an account coexists with the place it came from: sync, follow or own")
    p.add_argument("id", metavar="ID")
    p.add_argument("mode", choices=["sync", "follow", "own"])
    p.set_defaults(handler=cmd_mode)

    p = commands.add_parser("remove", help="remove one account from kiro-tui (the places holding it are untouched)")
    p.add_argument("id", metavar="ID", help="account id (or a unique prefix) from `kiro-tui list`")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.set_defaults(handler=cmd_remove)


def add_use_rename_and_show(commands: Any) -> None:
    from kiro_tui.core.places import USE_KINDS

    p = commands.add_parser("use", help="make an account the one a tool uses (what was there is kept)")
    p.add_argument("id", metavar="ID", help="account id, name or email (or a unique prefix)")
    p.add_argument("--in", dest="kind", metavar="KIND", required=True, choices=list(USE_KINDS),
                   help=f"the tool: {', '.join(USE_KINDS)}")
    p.add_argument("--path", metavar="PATH", help="the tool's file (default: where that tool keeps it)")
    p.add_argument("--db", metavar="PATH", default=argparse.SUPPRESS,
                   help="kiro-cli's data.sqlite3, for --in kiro-cli (default: kiro-cli's usual place)")
    p.add_argument("--json", action="store_true", help="print what was done as JSON")
    p.set_defaults(handler=cmd_use)

    p = commands.add_parser("rename", help="give an account a name, used wherever an id is (\"\" removes it)")
    p.add_argument("id", metavar="ID")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(handler=cmd_rename)

    p = commands.add_parser("show", help="one account: status, places, last refreshes, what to do")
    p.add_argument("id", metavar="ID")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.set_defaults(handler=cmd_show)
