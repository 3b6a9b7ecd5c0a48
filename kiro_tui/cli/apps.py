"""The commands that run something bigger than one edit: the terminal UI (no command), `demo`,
`emulator`, `service install|uninstall|status` (kiro-tui always on: core/service.py writes the
unit, core/runners.py says who runs) and `completion` (scripts made from the parser itself).

`kiro-tui __complete accounts` is the hidden, cheap helper the completion scripts call on every
Tab: no parser and no engine; it reads ids and names from the store, read-only, without
migrating or creating anything, and prints them.
"""

from __future__ import annotations

import argparse
import sqlite3
import urllib.parse
from typing import Any

from kiro_tui.cli.front import kiro_cli_location, make_engine, open_store, read_settings
from kiro_tui.cli.output import EXIT_OK, CommandFailed, print_json, say, warn
from kiro_tui.cli.parser import built, number
from kiro_tui.core import paths
from kiro_tui.core.clock import SystemClock
from kiro_tui.core.config import Settings

COMPLETE = "__complete"

# ---------------------------------------------------------------- the TUI and the demo


def cmd_tui(args: argparse.Namespace) -> int:
    from kiro_tui.core.aws.endpoints import Endpoints
    from kiro_tui.core.logs import setup_file_logging
    from kiro_tui.tui.app import run_app

    settings = read_settings()
    endpoints = Endpoints.from_env()
    db, candidates = kiro_cli_location(args.db, settings)
    setup_file_logging()
    open_store().close()  # refuse an unusable store here, in one line, before the screen is taken
    return run_app(paths.store_file(), settings, SystemClock(), endpoints, db, candidates)


def cmd_demo(args: argparse.Namespace) -> int:
    from kiro_tui.demo import run_demo

    return run_demo(approve_after=args.approve_after)


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


# ---------------------------------------------------------------- service


def cmd_service_install(args: argparse.Namespace) -> int:
    from kiro_tui.core import service

    manager = service.choose_manager(args.manager)
    report = service.install(manager, start=not args.no_start, force=args.force)
    for name in report.left_out:
        warn(f"{name} holds a password, so it is not written into {report.unit_path}; "
             "set the proxy in the service manager's own environment")
    done = "written" if not report.started else "installed and started"
    say(f"kiro-tui watch {done} as a {manager} service: {report.unit_path}")
    if not report.started:
        start = (f"systemctl --user daemon-reload && systemctl --user enable --now {service.UNIT_NAME}"
                 if manager == service.SYSTEMD else f"launchctl bootstrap gui/$(id -u) {report.unit_path}")
        say(f"Start it with: {start}")
    if manager == service.SYSTEMD:
        say("On a machine without a desktop session (a server), `loginctl enable-linger $USER` keeps it "
            "running while you are logged out.")
    return EXIT_OK


def cmd_service_uninstall(args: argparse.Namespace) -> int:
    from kiro_tui.core import service

    manager = service.choose_manager(args.manager)
    removed = service.uninstall(manager, force=args.force)
    if removed is None:
        say(f"No kiro-tui {manager} service is installed ({service.unit_path(manager)} does not exist).")
    else:
        say(f"Stopped and removed the {manager} service ({removed}).")
    return EXIT_OK


def cmd_service_status(args: argparse.Namespace) -> int:
    from kiro_tui.core import runners, service

    manager = args.manager or service.detect_manager()
    found = service.state(manager)
    now = SystemClock().now()
    with open_store() as store:
        running = make_engine(store, Settings()).runners_now()  # who runs needs no setting (nor a sound config)
    if args.json:
        print_json({**found.to_json(), "runners": [r.to_json(now) for r in running]})
        return EXIT_OK
    if manager is None:
        say(f"No service manager answers here; run `{service.BY_HAND}` by hand to keep accounts fresh.")
    elif not found.installed:
        say(f"The {manager} service is not installed (`kiro-tui service install` installs it).")
    else:
        say(f"The {manager} service is installed ({found.unit_path}) and "
            + ("enabled." if found.enabled else "not enabled (`kiro-tui service install` starts it)."))
    alive = [r for r in running if r.alive(now)]
    if alive:
        say("Running: " + "; ".join(r.describe() + (f" on {r.host}" if r.host != runners.host_name() else "")
                                    for r in alive)
            + (" (they share the work)." if len(alive) > 1 else "."))
    else:
        say("Nothing is refreshing the accounts right now.")
    return EXIT_OK


# ---------------------------------------------------------------- completion


def cmd_completion(args: argparse.Namespace) -> int:
    from kiro_tui.cli.completion import script
    from kiro_tui.cli.parser import build_parser

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


# ---------------------------------------------------------------- the parser


def add_demo_and_emulator(commands: Any) -> None:
    p = commands.add_parser("demo", help="try the whole app offline against a built-in emulator")
    p.add_argument("--approve-after", type=number(float, 0, 3600, "number of seconds"), default=5.0,
                   metavar="SECONDS", help="approve device-code logins after this many seconds (default 5)")
    p.set_defaults(handler=cmd_demo)

    p = commands.add_parser("emulator", help="serve a local emulator of the AWS / Kiro endpoints (for tests and demos)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=number(int, 0, 65535, "port number"), default=0,
                   help="port (default 0: any free port)")
    p.add_argument("--token-ttl", type=number(int, 1, 30 * 86_400, "number of seconds"), default=3600,
                   metavar="SECONDS", help="access token lifetime (default 3600)")
    p.add_argument("--approve-after", type=number(float, 0, 3600, "number of seconds"), default=None,
                   metavar="SECONDS", help="approve any pending device code after this many seconds, without a browser")
    p.set_defaults(handler=cmd_emulator)


def add_service(commands: Any) -> None:
    p = commands.add_parser("service", help="run `kiro-tui watch` in the background (systemd or launchd)")
    if not built(p):  # another command was named: no need to load the service's module for its words
        return
    from kiro_tui.core import service

    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    manager = {"choices": service.MANAGERS, "help": "systemd or launchd (default: the one that answers here)"}
    q = actions.add_parser("install", help="install and start the background service")
    q.add_argument("--manager", **manager)
    q.add_argument("--no-start", action="store_true", help="only write the unit file; do not enable or start it")
    q.add_argument("--force", action="store_true", help="replace a file kiro-tui did not write")
    q.set_defaults(handler=cmd_service_install)
    q = actions.add_parser("uninstall", help="stop and remove the background service")
    q.add_argument("--manager", **manager)
    q.add_argument("--force", action="store_true", help="remove a file kiro-tui did not write")
    q.set_defaults(handler=cmd_service_uninstall)
    q = actions.add_parser("status", help="whether the service is installed, and who keeps the accounts fresh")
    q.add_argument("--manager", **manager)
    q.add_argument("--json", action="store_true", help="print it as JSON")
    q.set_defaults(handler=cmd_service_status)


def add_completion(commands: Any) -> None:
    p = commands.add_parser("completion", help="print a shell completion script: bash, zsh or fish")
    p.add_argument("shell", choices=["bash", "zsh", "fish"])
    p.set_defaults(handler=cmd_completion)
