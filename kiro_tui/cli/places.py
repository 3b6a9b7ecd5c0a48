"""The commands about places, where copies of a login live: `import` (from kiro-cli or another
tool's files), `sources` (every place kiro-tui looks), `link`, `unlink` and `export`; and about
kiro-tui's own files: `paths` and `forget --all`.

`paths` and `forget` need nothing but the installed `kiro-tui` (docs/security.md, "Wiping
everything"). They never create the store to answer: a person wiping kiro-tui should not find
it made again, nor be stopped by a broken config file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiro_tui.cli.front import (
    kiro_cli_location,
    make_engine,
    open_store,
    path_argument,
    read_settings,
    run,
    run_engine,
)
from kiro_tui.cli.output import EXIT_FAILURE, EXIT_OK, CommandFailed, UsageError, print_json, print_table, say, warn
from kiro_tui.core import paths
from kiro_tui.core.config import Settings
from kiro_tui.core.errors import KiroTuiError
from kiro_tui.core.models import Place, PlaceState
from kiro_tui.core.places._files import resolved
from kiro_tui.core.places.kiro_cli import find_kiro_cli_db
from kiro_tui.core.wipe import forget, own_paths, to_forget

if TYPE_CHECKING:
    from kiro_tui.core.importer import ImportReport

DB_HELP = "kiro-cli's data.sqlite3 (default: kiro-cli's usual place)"
"""A subcommand's --db (`default=argparse.SUPPRESS`: it must not overwrite the one given before
the command, `kiro-tui --db X import`)."""

# ---------------------------------------------------------------- import / sources


def cmd_import(args: argparse.Namespace) -> int:
    """kiro-cli by default (--db PATH names its database); --from KIND [--path PATH] any place."""
    settings = read_settings()
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
    with open_store() as store:
        engine = make_engine(store, settings, db, candidates)
        report = run_engine(engine, lambda: engine.import_now(path or (db if kind == "kiro-cli" else None), kind))
    if args.json:
        print_json(report.to_json())
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
        from kiro_tui.core.importer import first_login_hint

        raise CommandFailed(f"no login in {where}; {first_login_hint(kind)}, then import again")
    return EXIT_OK


def _print_import(report: ImportReport) -> None:
    for item in report.imported:
        note = f"  ({item.note})" if item.note else ""
        say(f"{item.action:<10} {item.id}  {item.label:<32} {item.where}{note}")
    for account in report.missing:
        say(f"{'kept':<10} {account.id}  {account.label:<32} no longer in {report.source}")


def cmd_sources(args: argparse.Namespace) -> int:
    """Every known place (where kiro-tui looks for logins), found or not: the command keeps its
    older name, `sources`, as a contract."""
    settings = read_settings()
    db, candidates = kiro_cli_location(args.db, settings)
    with open_store() as store:
        engine = make_engine(store, settings, db, candidates)
        found = run(engine.known_places)
    if args.json:
        print_json([place.to_json() for place in found])
        return EXIT_OK
    rows = [[s.kind, str(s.path or "-"), "yes" if s.found else "no", str(s.logins) if s.found else "-",
             s.error or ""] for s in found]
    print_table(["KIND", "PATH", "FOUND", "LOGINS", "PROBLEM"], rows)
    return EXIT_OK


# ---------------------------------------------------------------- link / unlink / export


def cmd_link(args: argparse.Namespace) -> int:
    settings = read_settings()
    with open_store() as store:
        engine = make_engine(store, settings, fetch_usage=False)

        async def link_and_caveat() -> tuple[Place, str | None]:
            place = await engine.link(args.id, args.kind, path_argument(args.path))
            return place, await engine.caveat(args.id, args.kind)

        place, caveat = run_engine(engine, link_and_caveat)
    if caveat:
        warn(caveat)
    where = place.path + (f" ({place.entry})" if place.entry else "")
    if place.state is PlaceState.IN_SYNC:
        say(f"Linked {place.account_id} to {place.kind} {where}: written now, and after every refresh.")
        return EXIT_OK
    say(f"Linked {place.account_id} to {place.kind} {where}, but it is {place.state.value}: {place.detail}")
    return EXIT_FAILURE


def cmd_unlink(args: argparse.Namespace) -> int:
    settings = read_settings()
    with open_store() as store:
        engine = make_engine(store, settings, fetch_usage=False)
        gone = run(lambda: engine.unlink(args.id, args.place))
    for place in gone:
        say(f"Unlinked {place.kind} {place.path}: left as it is, no longer kept fresh.")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    settings = read_settings()
    with open_store() as store:
        engine = make_engine(store, settings, fetch_usage=False)

        async def export_and_caveat() -> tuple[Path, str | None]:
            written = await engine.export(args.id, args.kind, path_argument(args.path))
            return written, await engine.caveat(args.id, args.kind)

        written, caveat = run(export_and_caveat)
    if caveat:
        warn(caveat)
    say(f"Wrote {written} once; it is not kept fresh (`kiro-tui link` does that).")
    return EXIT_OK


# ---------------------------------------------------------------- paths / forget


def _links(settings: Settings) -> list[Place]:
    """The copies kiro-tui keeps fresh in other tools' files, if there is a store to ask."""
    if not paths.store_file().exists():
        return []
    try:
        with open_store() as store:
            return make_engine(store, settings).links()
    except KiroTuiError as exc:  # an unreadable store: the paths are still worth printing
        warn(f"cannot list the copies kiro-tui linked ({exc})")
        return []


def _settings_or_defaults() -> Settings:
    try:
        return read_settings()
    except KiroTuiError as exc:  # a broken config file: `paths` is how to find it, `forget` deletes it
        warn(str(exc))
        return Settings()


def cmd_paths(args: argparse.Namespace) -> int:
    settings = _settings_or_defaults()
    kiro_cli, _ = kiro_cli_location(None, settings)
    own, links = own_paths(), _links(settings)
    if args.json:
        found: dict[str, object] = {entry.name: str(entry.path) for entry in own}
        found["kiro_cli_db"] = str(kiro_cli) if kiro_cli else None
        found["links"] = [{"account_id": p.account_id, "kind": p.kind, "path": p.path} for p in links]
        print_json(found)
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
    # Only the links are read, and no setting changes them: a broken config must not stop a wipe.
    targets, links = to_forget(), _links(Settings())
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


# ---------------------------------------------------------------- the parser


def add_import(commands: Any) -> None:
    from kiro_tui.core.places import FORMATS

    kinds = ["all", *FORMATS]
    p = commands.add_parser("import", help="import logins from kiro-cli's database, or another tool's files")
    p.add_argument("--db", metavar="PATH", default=argparse.SUPPRESS, help=DB_HELP + "; = --from kiro-cli --path PATH")
    p.add_argument("--from", dest="kind", metavar="KIND", choices=kinds,
                   help=f"where to import from: {', '.join(kinds)} (default kiro-cli)")
    p.add_argument("--path", metavar="PATH", help="the file or folder (default: where that tool keeps them)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=cmd_import)


def add_sources(commands: Any) -> None:
    p = commands.add_parser("sources", help="every place kiro-tui looks for logins, found or not")
    p.add_argument("--db", metavar="PATH", default=argparse.SUPPRESS, help=DB_HELP)
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(handler=cmd_sources)


def add_link_and_export(commands: Any) -> None:
    from kiro_tui.core.places import FORMATS, link_refusal
    from kiro_tui.core.places import LINK_KINDS as writable

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


def add_unlink(commands: Any) -> None:
    p = commands.add_parser("unlink", help="stop keeping a copy fresh (the file is left as it is)")
    p.add_argument("id", metavar="ID")
    p.add_argument("place", metavar="KIND-or-PATH")
    p.set_defaults(handler=cmd_unlink)


def add_paths_and_forget(commands: Any) -> None:
    p = commands.add_parser("paths", help="the files and folders kiro-tui keeps (and kiro-cli's database)")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.set_defaults(handler=cmd_paths, logs=False)  # answering where the logs are must not make them

    p = commands.add_parser("forget", help="delete everything kiro-tui keeps: store, tokens, logs, config (asks first)")
    p.add_argument("--all", action="store_true", help="everything (required: one account is `kiro-tui remove ID`)")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.set_defaults(handler=cmd_forget, logs=False)
