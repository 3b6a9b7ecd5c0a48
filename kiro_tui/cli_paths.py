"""`kiro-tui paths` (where kiro-tui keeps its files) and `kiro-tui forget --all` (delete them).

Both need nothing but the installed `kiro-tui` (docs/security.md, "Wiping everything"). They
never create the store to answer: a person wiping kiro-tui should not find it made again.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from kiro_tui.cli import EXIT_OK, CommandFailed, UsageError, _open_store, _settings, kiro_cli_location, say, warn
from kiro_tui.core import paths
from kiro_tui.core.config import Settings
from kiro_tui.core.errors import KiroTuiError
from kiro_tui.core.models import Place, PlaceRole
from kiro_tui.core.wipe import forget, own_paths, to_forget


def add_commands(commands: Any) -> None:  # argparse's _SubParsersAction
    p = commands.add_parser("paths", help="the files and folders kiro-tui keeps (and kiro-cli's database)")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.set_defaults(handler=cmd_paths, logs=False)  # answering where the logs are must not make them

    p = commands.add_parser("forget", help="delete everything kiro-tui keeps: store, tokens, logs, config (asks first)")
    p.add_argument("--all", action="store_true", help="everything (required: one account is `kiro-tui remove ID`)")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.set_defaults(handler=cmd_forget, logs=False)


def _links() -> list[Place]:
    """The copies kiro-tui keeps fresh in other tools' files, if there is a store to ask."""
    if not paths.store_file().exists():
        return []
    try:
        with _open_store() as store:
            return [place for place in store.places() if place.role is PlaceRole.LINK]
    except KiroTuiError as exc:  # an unreadable store: the paths are still worth printing
        warn(f"cannot list the copies kiro-tui linked ({exc})")
        return []


def cmd_paths(args: argparse.Namespace) -> int:
    try:
        settings = _settings()
    except KiroTuiError as exc:  # a broken config file: this command is how to find it
        warn(str(exc))
        settings = Settings()
    kiro_cli, _ = kiro_cli_location(None, settings)
    own, links = own_paths(), _links()
    if args.json:
        found: dict[str, object] = {entry.name: str(entry.path) for entry in own}
        found["kiro_cli_db"] = str(kiro_cli) if kiro_cli else None
        found["links"] = [{"account_id": p.account_id, "kind": p.kind, "path": p.path} for p in links]
        print(json.dumps(found, indent=2))
        return EXIT_OK
    width = max(len(entry.name) for entry in own)
    for entry in own:
        say(f"{entry.name:<{width}}  {entry.path}  ({'exists' if entry.path.exists() else 'not there'}: {entry.holds})")
    say(f"kiro-cli's database: {kiro_cli or 'not found'} (kiro-cli's own; kiro-tui reads it, and writes it "
        "back only in sync mode)")
    if links:
        say("Copies kiro-tui keeps fresh in other tools' files:")
        for place in links:
            say(f"  {place.kind:<10} {place.path}  (account {place.account_id})")
    return EXIT_OK


def cmd_forget(args: argparse.Namespace) -> int:
    if not args.all:
        raise UsageError("forget deletes everything kiro-tui keeps and needs --all to say so; "
                         "`kiro-tui remove ID` removes one account")
    targets, links = to_forget(), _links()
    untouched = "kiro-cli's login" + (f" and the {len(links)} cop{'y' if len(links) == 1 else 'ies'} kiro-tui "
                                      f"linked into other tools' files ({', '.join(p.path for p in links)})"
                                      if links else "")
    if not targets:
        say(f"Nothing to forget: kiro-tui keeps nothing here ({', '.join(str(e.path) for e in own_paths())}).")
        return EXIT_OK
    if not args.yes:
        where = ", ".join(str(path) for path in targets)
        if not sys.stdin.isatty():
            raise CommandFailed(f"not deleting {where} without confirmation; pass --yes")
        say("This deletes every account and token kiro-tui keeps, its logs and its config:")
        for path in targets:
            say(f"  {path}")
        say(f"Not touched: {untouched}. Quit the terminal UI and stop `kiro-tui watch` first.")
        if input("Forget everything? [y/N] ").strip().lower() not in ("y", "yes"):
            print("Nothing deleted.")
            return EXIT_OK
    try:
        deleted = forget(targets)
    except OSError as exc:
        raise CommandFailed(f"could not delete {exc.filename or exc}: {exc.strerror or exc}; "
                            "check its permissions and run `kiro-tui forget --all` again") from exc
    say(f"Forgot everything: deleted {', '.join(str(path) for path in deleted)}.")
    say(f"Not touched: {untouched}. The tokens themselves stay valid until they expire or their session "
        "is signed out (docs/security.md).")
    return EXIT_OK
