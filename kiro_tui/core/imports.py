"""Where logins come from: every known place (where kiro-tui looks for logins, listed by
`kiro-tui sources`), and importing from one of them, or from all, into the store. "Source" is
kept for the one place an account was imported from (`Account.source`, `PlaceRole.SOURCE`).

A room of its own because finding and reading places is one idea whoever asks: a person's
`import`, the watch pass re-reading a place that changed, `sources` counting what each holds.
Every import ends the same way (`after_import`): the accounts rescheduled when it changed any, the change told.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from kiro_tui.core.errors import KiroCliError, KiroTuiError
from kiro_tui.core.events import AccountsChanged, ImportFinished
from kiro_tui.core.importer import ImportReport, import_snapshot
from kiro_tui.core.place_reads import PlaceReads
from kiro_tui.core.places import FORMATS, PlaceError, PlaceSnapshot, gateway_sqlite_paths, place_format
from kiro_tui.core.places.kiro_cli import find_kiro_cli_db, read_kiro_cli

if TYPE_CHECKING:
    from kiro_tui.core.engine import Engine

KIRO_CLI, GATEWAY, GATEWAY_DB, ALL = "kiro-cli", "gateway", "gateway-db", "all"
EXPORTED_PREFERENCE, EXPORTS_REMEMBERED = "exported_places", 50
"""The files `export` wrote, newest last: where `sources` also looks."""


@dataclass(frozen=True)
class KnownPlace:
    """One place kiro-tui knows to look for logins, found or not (`kiro-tui sources`)."""

    kind: str
    path: Path | None
    """None: a tool kiro-tui cannot find by itself (`error` says how to point it there)."""
    found: bool
    logins: int = 0
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "path": str(self.path) if self.path else None, "found": self.found,
                "logins": self.logins, "error": self.error}


def place_files(kind: str, path: Path) -> list[tuple[str, Path]]:
    """The place files at `path` (itself, or those a folder holds), by kind: kiro-gateway's
    credentials.json also names kiro-cli-format databases, read as `gateway-db`."""
    files = [(kind, file) for file in place_format(kind).discover(Path(path))]
    if kind == GATEWAY:
        files += [(GATEWAY_DB, file) for file in gateway_sqlite_paths(Path(path))]
    return files


def _look(kind: str, path: Path, now: datetime) -> KnownPlace:
    """Read one place (a file or a folder of them) just to count its logins."""
    try:
        files = place_files(kind, path)
    except KiroTuiError as exc:
        return KnownPlace(kind, path, True, 0, str(exc))
    if not files:
        return KnownPlace(kind, path, os.path.lexists(path), 0, None)
    logins, errors = 0, []
    for file_kind, file in files:
        try:
            logins += len(place_format(file_kind).scan(file, now).logins)
        except KiroTuiError as exc:
            errors.append(str(exc))
    return KnownPlace(kind, path, True, logins, errors[0] if errors else None)


async def import_now(engine: Engine, path: Path | None = None, kind: str = KIRO_CLI) -> ImportReport:
    """Import explicitly (every account is updated) from one kind of place: kiro-cli's
    database by default, or any kind at `path` (a file or a folder), or `all` that is found."""
    if kind == ALL:
        return await _import_all(engine)
    if kind == KIRO_CLI:  # one database, read with kiro-cli's own precise errors
        db = path or engine.kiro_cli_db or find_kiro_cli(engine)
        if db is None:
            looked = ", ".join(str(p) for p in engine.kiro_cli_candidates)
            raise KiroCliError(f"no kiro-cli database found (looked in {looked}); run `kiro-cli login` first")
        return await import_kiro_cli(engine, db, automatic=False)
    fmt = place_format(kind)
    targets = [Path(path)] if path is not None else fmt.default_paths()
    report: ImportReport | None = None
    for target in targets:
        found = await _import_place(engine, kind, target, automatic=False)
        if report is None:
            report = found
        else:
            report.merge(found)
    if report is None:
        raise PlaceError(f"kiro-tui does not know where {fmt.title} keeps its logins; name the file with --path")
    if not report.imported and not report.skipped and report.problems:
        raise PlaceError(report.problems[0][2])
    return report


async def _import_all(engine: Engine) -> ImportReport:
    """Every place found where the tools keep logins (kiro-cli first)."""
    report: ImportReport | None = None
    known = await engine.known_places()
    for place in known:
        if place.path is None or not place.found or not place.logins:
            continue  # (a folder with one broken file and good ones: the good ones import)
        found = await engine.import_now(place.path, place.kind)
        if report is None:
            report = found
        else:
            report.merge(found)
    unfound = [(s.kind, s.error or "") for s in known if s.path is None]
    if report is None:
        titles = ", ".join(place_format(kind).title for kind, _ in unfound)
        how = f", and how to point it at {titles}, which it cannot find by itself)" if unfound else ")"
        raise PlaceError("no logins found in any place kiro-tui knows (`kiro-tui sources` lists them" + how)
    report.source, report.kind, report.cannot_find = Path("all"), ALL, unfound
    return report


async def _import_place(engine: Engine, kind: str, path: Path, automatic: bool) -> ImportReport:
    """Every place file at `path` (a folder gives several; kiro-gateway's credentials.json
    names its own), each imported on its own: one that cannot be read is a problem in the
    report, and the others still import."""
    fmt = place_format(kind)
    report = ImportReport(source=Path(path), kind=kind)
    try:
        files = await asyncio.to_thread(place_files, kind, Path(path))
    except PlaceError as exc:
        report.problems.append((kind, Path(path), str(exc)))
        files = []
    if not files and not report.problems:
        report.problems.append((kind, Path(path), f"no {fmt.title} login found at {path}"))
    now = engine.clock.now()
    for file_kind, file in files:
        try:
            signature, snapshot = await asyncio.to_thread(_signed_scan, file_kind, file, now)
        except PlaceError as exc:
            report.problems.append((file_kind, file, str(exc)))
            continue
        report.merge(import_snapshot(engine.store, snapshot, now, engine.settings.default_import_mode,
                                     automatic=automatic, signature=signature))
    if files:
        after_import(engine, report, automatic)
    return report


def _signed_scan(kind: str, file: Path, now: datetime) -> tuple[str, PlaceSnapshot]:
    """The file's signature (taken first: a change while it is read makes it differ), and what it holds."""
    return PlaceReads.signature(kind, str(file)), place_format(kind).scan(file, now)


async def import_kiro_cli(engine: Engine, db: Path, automatic: bool) -> ImportReport:
    """kiro-cli's database, read whole: what the engine tells of kiro-cli (`kiro_cli_state`)
    is from here."""
    now = engine.clock.now()
    signature, snapshot = await asyncio.to_thread(lambda: (PlaceReads.signature(KIRO_CLI, str(db)),
                                                           read_kiro_cli(db, now)))
    report = import_snapshot(engine.store, snapshot, now, engine.settings.default_import_mode, automatic=automatic,
                             signature=signature)
    engine.watch_error = None
    engine.last_import_at = now
    after_import(engine, report, automatic)
    return report


def after_import(engine: Engine, report: ImportReport, automatic: bool) -> None:
    if engine.scheduler is not None and (report.changed or report.missing):  # (nothing new: nothing to reschedule;
        engine.scheduler.schedule_all()                                      # it reads every account)
    changed = frozenset(i.id for i in report.imported if i.action != "unchanged")
    if changed:
        engine._emit(AccountsChanged(changed))
    engine._emit(ImportFinished(report, automatic))


async def known_places(engine: Engine) -> list[KnownPlace]:
    """Every place kiro-tui knows to look (each tool's usual paths and the files its
    environment names, kiro-cli's database, every place it imported from, linked or exported
    to), found or not, with how many logins each holds; then each tool it cannot find by
    itself, with how to point it there."""
    now = engine.clock.now()
    wanted: dict[tuple[str, Path], None] = {}
    db = engine.kiro_cli_db or find_kiro_cli(engine)
    for path in ([db] if db else engine.kiro_cli_candidates):
        wanted[(KIRO_CLI, Path(path))] = None
    for kind, fmt in FORMATS.items():
        if kind != KIRO_CLI:
            for path in fmt.default_paths():
                wanted[(kind, Path(path))] = None
    folders = [(kind, path) for kind, path in wanted if kind != KIRO_CLI]
    known = [(place.kind, Path(place.path)) for place in engine.store.places()] + engine.exported_places()
    for place_kind, path in known:
        # a file in a folder already looked in (CLIProxyAPI's) is counted there, not twice;
        # one in a subfolder is not (the folder is read one level deep)
        if place_kind in FORMATS and not any(kind == place_kind and path.parent == folder
                                             for kind, folder in folders):
            wanted[(place_kind, path)] = None
    looked = [await asyncio.to_thread(_look, kind, path, now) for kind, path in wanted]
    return looked + [KnownPlace(kind, None, False, 0, fmt.finding) for kind, fmt in FORMATS.items()
                     if fmt.finding and not any(k == kind for k, _ in wanted)]


def exported_places(engine: Engine) -> list[tuple[str, Path]]:
    """The files `export` wrote (not kept fresh, so not places of an account): still where
    a tool may keep a login, so `sources` and `import --from all` look there."""
    recorded = engine.store.preference(EXPORTED_PREFERENCE)
    return [(str(item[0]), Path(str(item[1]))) for item in recorded if isinstance(item, list) and len(item) == 2
            ] if isinstance(recorded, list) else []


def find_kiro_cli(engine: Engine) -> Path | None:
    """kiro-cli's database among the engine's candidates, remembered once found; None if none is."""
    try:
        found = find_kiro_cli_db(engine.kiro_cli_candidates)
    except KiroCliError:
        return None
    engine.kiro_cli_db = found
    return found
