"""`kiro-tui service install|uninstall|status` and `kiro-tui token`: kiro-tui always on.

The service itself (unit, plist, the manager's commands) is core/service.py and who runs is
core/runners.py; these commands only present them. `token` asks the engine's front for a
token valid long enough (core/engine.Engine.fresh_token) and prints it, and nothing else.
"""

from __future__ import annotations

import argparse
import json

from kiro_tui import cli
from kiro_tui.core import runners, service
from kiro_tui.core.clock import SystemClock
from kiro_tui.core.models import Account
from kiro_tui.core.store import AccountStore
from kiro_tui.core.timefmt import format_timestamp

DEFAULT_MIN_VALID = 300


def add_commands(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("service", help="run `kiro-tui watch` in the background (systemd or launchd)")
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

    p = commands.add_parser("token", help="print an account's access token (refreshed first if needed), for scripts")
    p.add_argument("id", nargs="?", metavar="ID", help="the account (default: the only one)")
    p.add_argument("--min-valid", type=cli._number(int, 0, 86_400, "number of seconds"), default=DEFAULT_MIN_VALID,
                   metavar="SECONDS", help=f"refresh first if it expires within this (default {DEFAULT_MIN_VALID})")
    p.add_argument("--json", action="store_true", help="print the token with its expiry, profile and region as JSON")
    p.set_defaults(handler=cmd_token)


# ---------------------------------------------------------------- service


def cmd_service_install(args: argparse.Namespace) -> int:
    manager = service.choose_manager(args.manager)
    report = service.install(manager, start=not args.no_start, force=args.force)
    for name in report.left_out:
        cli.warn(f"{name} holds a password, so it is not written into {report.unit_path}; "
                 "set the proxy in the service manager's own environment")
    done = "written" if not report.started else "installed and started"
    cli.say(f"kiro-tui watch {done} as a {manager} service: {report.unit_path}")
    if not report.started:
        start = (f"systemctl --user daemon-reload && systemctl --user enable --now {service.UNIT_NAME}"
                 if manager == service.SYSTEMD else f"launchctl bootstrap gui/$(id -u) {report.unit_path}")
        cli.say(f"Start it with: {start}")
    if manager == service.SYSTEMD:
        cli.say("On a machine without a desktop session (a server), `loginctl enable-linger $USER` keeps it "
                "running while you are logged out.")
    return cli.EXIT_OK


def cmd_service_uninstall(args: argparse.Namespace) -> int:
    manager = service.choose_manager(args.manager)
    removed = service.uninstall(manager, force=args.force)
    if removed is None:
        cli.say(f"No kiro-tui {manager} service is installed ({service.unit_path(manager)} does not exist).")
    else:
        cli.say(f"Stopped and removed the {manager} service ({removed}).")
    return cli.EXIT_OK


def cmd_service_status(args: argparse.Namespace) -> int:
    manager = args.manager or service.detect_manager()
    found = service.state(manager)
    now = SystemClock().now()
    with cli._open_store() as store:
        running = runners.runners(store)
    if args.json:
        print(json.dumps({**found.to_json(), "runners": [r.to_json(now) for r in running]}, indent=2))
        return cli.EXIT_OK
    if manager is None:
        cli.say(f"No service manager answers here; run `{service.BY_HAND}` by hand to keep accounts fresh.")
    elif not found.installed:
        cli.say(f"The {manager} service is not installed (`kiro-tui service install` installs it).")
    else:
        cli.say(f"The {manager} service is installed ({found.unit_path}) and "
                + ("enabled." if found.enabled else "not enabled (`kiro-tui service install` starts it)."))
    alive = [r for r in running if r.alive(now)]
    if alive:
        cli.say("Running: " + "; ".join(r.describe() + (f" on {r.host}" if r.host != runners.host_name() else "")
                                        for r in alive)
                + (" (they share the work)." if len(alive) > 1 else "."))
    else:
        cli.say("Nothing is refreshing the accounts right now.")
    return cli.EXIT_OK


# ---------------------------------------------------------------- token


def choose_account(store: AccountStore, wanted: str | None) -> str:
    """The account a command names: an id or a unique prefix; none named: the only account, or
    a usage error saying how to choose. The one place this is decided for `token`."""
    if wanted:
        return store.resolve_raw_id(wanted)
    ids = sorted(store.ids())
    if len(ids) == 1:
        return ids[0]
    if not ids:
        raise cli.CommandFailed("no accounts yet; `kiro-tui import` reads kiro-cli's logins, `kiro-tui login` signs in")
    raise cli.UsageError(f"there are {len(ids)} accounts; name one: `kiro-tui token ID` "
                         "(`kiro-tui list` shows the ids)")


def cmd_token(args: argparse.Namespace) -> int:
    settings = cli._settings()
    with cli._open_store() as store:
        account_id = choose_account(store, args.id)
        engine = cli._engine(store, settings, fetch_usage=False)

        async def run() -> Account:
            account = await engine.fresh_token(account_id, args.min_valid)
            await engine.stop(timeout=30)  # as `refresh`: anything held is committed first
            return account

        account = cli._run_engine(engine, run)  # a first Ctrl-C lets the refresh commit, as everywhere
    if args.json:
        print(json.dumps({"access_token": account.access_token, "expires_at": format_timestamp(account.expires_at),
                          "profile_arn": account.profile_arn, "region": account.region,
                          "auth_method": account.auth_method.value, "account_id": account.id}, indent=2))
    else:
        print(account.access_token, flush=True)
    return cli.EXIT_OK
