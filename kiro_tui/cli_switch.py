"""The commands of switching and naming: `use`, `rename`, `show`, `completion` (issue 23).

Kept beside cli.py, which registers them (`add_commands`); they reach the core through the
same engine front. `kiro-tui __complete accounts` is the hidden, cheap helper the completion
scripts call: it reads the ids and names straight from the store, read-only, and prints them.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import urllib.parse

from kiro_tui.core import paths
from kiro_tui.core.clock import SystemClock
from kiro_tui.core.switch import USE_KINDS

COMPLETE = "__complete"


def cmd_use(args: argparse.Namespace) -> int:
    from kiro_tui.cli import EXIT_OK, _engine, _open_store, _path, _run_engine, _settings, kiro_cli_location, say, warn

    settings = _settings()
    db, candidates = kiro_cli_location(getattr(args, "db", None), settings)
    with _open_store() as store:
        engine = _engine(store, settings, db, candidates, fetch_usage=False)

        outcome = _run_engine(engine, lambda: engine.use(args.id, args.kind, _path(args.path)))
        names = {a.id: a.name for a in store.accounts()}
    if args.json:
        print(json.dumps(outcome.to_json(), indent=2))
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


def cmd_rename(args: argparse.Namespace) -> int:
    from kiro_tui.cli import EXIT_OK, _open_store, say
    from kiro_tui.core.names import rename

    with _open_store() as store:
        before = store.resolve_id(args.id)
        account = rename(store, before.id, args.name)
    if account.nickname:
        say(f"{account.id} is now called {account.nickname} (it was shown as {before.name}).")
    else:
        say(f"{account.id} has no name now; it is shown as {account.name}.")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from kiro_tui.cli import EXIT_OK, _engine, _open_store, _run, _settings, say, warn
    from kiro_tui.core.account_report import show_json, show_lines

    settings = _settings()
    now = SystemClock().now()
    with _open_store() as store:
        account_id = store.resolve_raw_id(args.id)
        engine = _engine(store, settings)
        result = _run(lambda: engine.views([account_id]))
        for problem in result.unreadable:
            warn(problem.describe())
        if not result.views:
            from kiro_tui.cli import CommandFailed

            raise CommandFailed(f"account {account_id} cannot be read; `kiro-tui remove {account_id}` removes it")
        views = result.views
        holds = _run(lambda: engine.holdings(views))
        holders = _run(lambda: engine.holders(views))
        history = _run(lambda: engine.history(account_id, 5))
        names = {a.id: a.name for a in store.accounts()}
        counts = store.refresh_counts().get(account_id, (0, 0))
    (view,) = views
    if args.json:
        print(json.dumps(show_json(view, now, settings.window, history, holds, holders, counts), indent=2))
        return EXIT_OK
    for line in show_lines(view, now, settings.window, history, holds, holders, names):
        say(line)
    return EXIT_OK


def cmd_completion(args: argparse.Namespace) -> int:
    from kiro_tui.cli import build_parser
    from kiro_tui.completion import script

    print(script(args.shell, build_parser()))
    return 0


def complete_accounts() -> int:
    """Ids and names, one per line, read-only and without migrating or creating anything."""
    store = paths.store_file()
    if not store.exists():
        return 0
    uri = "file:" + urllib.parse.quote(str(store)) + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=0.5)
        try:
            columns = {row[1] for row in conn.execute("PRAGMA table_info(accounts)")}
            names = "nickname" if "nickname" in columns else "NULL"
            rows = conn.execute(f"SELECT id, {names} FROM accounts ORDER BY id").fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return 0
    for account_id, nickname in rows:
        print(account_id)
        if nickname:
            print(nickname)
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register `use`, `rename`, `show` and `completion` on cli.py's parser."""
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

    p = commands.add_parser("completion", help="print a shell completion script: bash, zsh or fish")
    p.add_argument("shell", choices=["bash", "zsh", "fish"])
    p.set_defaults(handler=cmd_completion)


__all__ = ["COMPLETE", "add_commands", "complete_accounts"]
