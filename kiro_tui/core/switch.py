"""`kiro-tui use`: make an account the one a tool uses, and switch back with every login alive.

The account's whole login (token, client registration, profile, in the tool's own shape)
replaces what the place holds (`PlaceFormat.replace_login`), and the place becomes this
account's: a link, or for kiro-cli's database the account's `sync` place. What was there is
never lost: before anything is written a byte copy of the place is kept in kiro-tui's data
folder (0600, the last few per place), and its login is imported (a known one brings its
account up to date; an unknown one becomes an account), so kiro-tui keeps refreshing it in
`own` mode and switching back finds it alive. The renewal of a login (core/login.py) re-writes
its account's places with the same operation.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import sqlite3
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from kiro_tui.core.errors import KiroCliError, KiroTuiError
from kiro_tui.core.importer import import_snapshot
from kiro_tui.core.masking import fingerprint
from kiro_tui.core.models import Account, Health, Mode, Place, PlaceRole, PlaceState
from kiro_tui.core.paths import make_private_dirs
from kiro_tui.core.place_reads import used_print
from kiro_tui.core.places import USE_KINDS, PlaceError, PlaceSnapshot, place_format
from kiro_tui.core.places._files import atomic_write, is_folder, read_json
from kiro_tui.core.places.kiro_cli import find_kiro_cli_db, open_read_only
from kiro_tui.core.store import AccountStore

if TYPE_CHECKING:
    from kiro_tui.core.engine import Engine
    from kiro_tui.core.login import LoginOutcome

KIRO_CLI = "kiro-cli"
KEEP_COPIES = 5
PLACED_BY_USE = "placed_by_use"
"""Account.extra: the kiro-cli database `use` made this account's sync place (kiro-tui's session
there, not kiro-cli's own: a renewal writes it again instead of detaching it)."""
LEASE_TRIES = 50
LEASE_WAIT = 0.1


@dataclass
class UseOutcome:
    """What `use` did: where the account's login now is, and what became of what was there."""

    account: Account
    kind: str
    path: Path
    entry: str
    copies: list[Path] = field(default_factory=list)
    """Byte copies of what the place held, kept before it was written."""
    previous: list[tuple[str, str]] = field(default_factory=list)
    """(account id, what happened: "kept" a known login, "imported" one kiro-tui had not seen)."""
    lost: list[str] = field(default_factory=list)
    """Logins there that could not be imported (a removed account's, say): only the copy keeps them."""

    def to_json(self) -> dict[str, object]:
        return {"id": self.account.id, "name": self.account.name, "kind": self.kind, "path": str(self.path),
                "entry": self.entry or None, "copies": [str(p) for p in self.copies],
                "previous": [{"id": i, "action": a} for i, a in self.previous], "not_imported": self.lost}


def copies_folder(store: AccountStore) -> Path:
    """Beside the store, in kiro-tui's data folder: where replaced places are kept."""
    return store.path.parent / "replaced"


async def use_account(engine: Engine, text: str, kind: str, path: Path | None = None) -> UseOutcome:
    """Put the account `text` names at the `kind` place (its usual one, or `path`)."""
    store = engine.store
    account = store.resolve_id(text)
    if kind not in USE_KINDS:
        raise PlaceError(f"kiro-tui never writes {place_format(kind).title}'s file (the tool saves over it); "
                         "use kiro-cli instead: opencode re-imports kiro-cli's login")
    _check_usable(account)
    fmt = place_format(kind)
    target = await asyncio.to_thread(_target, engine, kind, path)
    now = engine.clock.now()
    if account.status(now, engine.settings.window).value in ("expired", "expiring"):
        try:
            await engine.refresh_now([account.id], force=False)  # hand the tool a token that lasts
        except KiroTuiError:
            pass  # no network now: the tool gets the token as it is, and kiro-tui refreshes it later
    async with _holding(engine, account.id):
        account = store.get(account.id) or account
        _check_usable(account)
        snapshot = await asyncio.to_thread(_look, kind, target, now)
        held = frozenset(held_prints(snapshot))
        outcome = UseOutcome(account, kind, target, "")
        if snapshot is not None:
            outcome.copies = await asyncio.to_thread(keep_copy, store, kind, target, now)
            report = import_snapshot(store, snapshot, now, Mode.OWN)
            outcome.previous = [(item.id, "imported" if item.action == "added" else "kept")
                                for item in report.imported if item.id != account.id]
            outcome.lost = [f"{s.key or s.path}: {s.reason}" for s in report.skipped]
        created = await asyncio.to_thread(fmt.replace_login, target, account, held)
        outcome.path, outcome.entry = created.path, created.entry
        _take_place(store, account, kind, created.path, created.entry, {str(target), str(created.path)},
                    engine.clock.now())
    for other, _ in outcome.previous:
        engine.account_changed(other)
    engine.account_changed(account.id)
    return outcome


def _check_usable(account: Account) -> None:
    if account.health in (Health.NEEDS_LOGIN, Health.SUSPENDED) or not account.refresh_token:
        why = account.last_error or "no refresh token"
        raise PlaceError(f"{account.id} ({account.name}) cannot be refreshed ({why}), so a tool could not keep "
                         f"it alive; log in again first (`kiro-tui show {account.id}` says how)")


def _target(engine: Engine, kind: str, path: Path | None) -> Path:
    """The file `use` writes: `path`, else the tool's usual one; in a folder, the one login
    file there (a new one if there is none)."""
    fmt = place_format(kind)
    if path is not None:
        target = Path(path).expanduser().absolute()
    elif kind == KIRO_CLI:
        try:  # (read only here: this runs off the engine's loop)
            target = engine.kiro_cli_db or find_kiro_cli_db(engine.kiro_cli_candidates)
        except KiroCliError:
            looked = ", ".join(str(p) for p in engine.kiro_cli_candidates)
            raise KiroCliError(f"no kiro-cli database found (looked in {looked}); run `kiro-cli login` once "
                               "so kiro-cli makes it, or name it with --path") from None
    elif defaults := fmt.default_paths():
        target = defaults[0]
    else:
        raise PlaceError(f"{fmt.title} has no usual place for its file; name it with --path")
    if not is_folder(target):
        return target
    files = fmt.discover(target)
    if len(files) > 1:
        raise PlaceError(f"{target} holds {len(files)} {fmt.title} files; name the one the tool uses with --path")
    return files[0] if files else target


def _look(kind: str, target: Path, now: datetime) -> PlaceSnapshot | None:
    """What the place holds now (None: nothing there yet). A login that cannot be read is
    refused: it could be neither imported nor put back."""
    if is_folder(target) or not os.path.lexists(target):
        return None
    snapshot = place_format(kind).scan(target, now)
    if snapshot.skipped:
        entry, why = snapshot.skipped[0]
        raise PlaceError(f"{target}{f' ({entry})' if entry else ''} holds a login kiro-tui cannot read ({why}); "
                         "nothing was written. Let its tool write it again, or move it away, then run this again")
    return snapshot


class AccountBusy(PlaceError):
    """Another kiro-tui process kept the account (refreshing it) for as long as `use` waited."""


class _holding:
    """The account to this process while its login is written somewhere: no refresh (here or in
    another kiro-tui process) rotates the token between reading and writing it."""

    def __init__(self, engine: Engine, account_id: str) -> None:
        self.engine, self.account_id = engine, account_id
        self._context: contextlib.AbstractAsyncContextManager[bool] | None = None

    async def __aenter__(self) -> None:
        refresher = self.engine.refresher
        assert refresher is not None
        for _ in range(LEASE_TRIES):
            context = refresher._exclusive(self.account_id)
            if await context.__aenter__():
                self._context = context
                return
            await context.__aexit__(None, None, None)
            await asyncio.sleep(LEASE_WAIT)
        raise AccountBusy(f"{self.account_id} is being refreshed by another kiro-tui process; run this again "
                          "in a moment")

    async def __aexit__(self, *exc: object) -> None:
        if self._context is not None:
            await self._context.__aexit__(None, None, None)


def _take_place(store: AccountStore, account: Account, kind: str, path: Path, entry: str, spellings: set[str],
                now: datetime) -> None:
    """The place is this account's now (a link; kiro-cli's database: its sync place); the
    accounts that held it before keep their tokens in kiro-tui alone (own mode)."""
    place = Place(account.id, kind, str(path), entry,
                  PlaceRole.SOURCE if kind == KIRO_CLI else PlaceRole.LINK, PlaceState.IN_SYNC, written_at=now)
    with store.transaction() as tx:
        for other in store.places():
            if other.kind == kind and other.path in spellings and other.account_id != account.id:
                store.delete_place(tx, other)
                holder = store.get(other.account_id)
                if holder is not None and holder.source in spellings:
                    holder.extra.pop(PLACED_BY_USE, None)
                    store.update(holder.id, tx, source=None, source_key=None, mode=Mode.OWN, sync_error=None,
                                 extra=holder.extra)
        for mine in store.places(account.id):  # an earlier entry of this account in the same place
            if mine.kind == kind and mine.path in spellings and mine.address != place.address:
                store.delete_place(tx, mine)
        store.save_place(tx, place)
        if kind == KIRO_CLI:  # marked: a renewal writes this place again, as it does a link
            account.extra[PLACED_BY_USE] = str(path)
            store.update(account.id, tx, source=str(path), source_key=entry, mode=Mode.SYNC, sync_error=None,
                         extra=account.extra)
    store.mark_unlinked(place, None, unlinked=False)


async def rewrite_places(engine: Engine, outcome: LoginOutcome) -> LoginOutcome:
    """After a renewal (login.save_login): the whole new login (token and the new client
    registration) into every link it kept (and the kiro-cli database `use` put it in), which stay
    linked. A link that holds anything but
    the old session (this account's lineage) now is not written, and is detached as before."""
    if not outcome.relinked:
        return outcome
    relinked, detached = [], list(outcome.detached)
    try:
        async with _holding(engine, outcome.account.id):
            for place in outcome.relinked:
                try:
                    relinked.append(await _rewrite(engine, outcome.account, place))
                except KiroTuiError as exc:
                    detached.append(_detach(engine, place, str(exc)))
    except AccountBusy as exc:  # refreshed elsewhere all along: detached, as a renewal used to
        detached += [_detach(engine, place, str(exc)) for place in outcome.relinked]
    return outcome._replace(detached=detached, relinked=relinked)


async def _rewrite(engine: Engine, account: Account, place: Place) -> Place:
    store = engine.store
    snapshot = await asyncio.to_thread(_look, place.kind, Path(place.path), engine.clock.now())
    held = frozenset(held_prints(snapshot))
    if not all(store.in_lineage(account.id, token_print) for token_print in held):
        raise PlaceError(f"{place.path} holds another login now")
    created = await asyncio.to_thread(place_format(place.kind).replace_login, Path(place.path), account, held)
    written = replace(place, path=str(created.path), entry=created.entry, state=PlaceState.IN_SYNC, detail=None,
                      pending_from=None, written_at=engine.clock.now())
    with store.transaction() as tx:
        if written.address != place.address:
            store.delete_place(tx, place)
        store.save_place(tx, written)
        if place.role is PlaceRole.SOURCE:  # kiro-cli's database, which `use` made this account's
            store.update(account.id, tx, source_key=written.entry)
    return written


def _detach(engine: Engine, place: Place, why: str) -> Place:
    with engine.store.transaction() as tx:
        engine.store.delete_place(tx, place)
    engine.store.mark_unlinked(place, engine.clock.now(), why="login")
    return replace(place, detail=why)


# ---------------------------------------------------------------- byte copies


def keep_copy(store: AccountStore, kind: str, path: Path, now: datetime) -> list[Path]:
    """A copy of the place's files (a database's pages as SQLite sees them, -wal included; a
    JSON file and the registration it names, byte for byte) in kiro-tui's data folder, 0600.
    The last KEEP_COPIES per place are kept. Raises PlaceError when it cannot be made: then
    nothing is written to the place."""
    folder = copies_folder(store) / f"{kind}-{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
    stamp = now.strftime("%Y%m%dT%H%M%S.%f")
    try:
        make_private_dirs(folder)
        where = folder / "place.txt"
        if not where.exists():
            atomic_write(where, f"{kind}\t{path}\n".encode(), 0o600)
        base, turn = stamp, 0
        while any(folder.glob(f"{stamp}-*")):  # two switches within a clock tick
            turn += 1
            stamp = f"{base}{turn:03d}"
        copies = []
        for file in _files_of(kind, path):
            copy = folder / f"{stamp}-{file.name}"
            if place_format(kind).is_database:
                _copy_database(file, copy)
            else:
                atomic_write(copy, file.read_bytes(), 0o600)
            copies.append(copy)
        _prune(folder)
    except (OSError, sqlite3.Error, KiroTuiError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise PlaceError(f"could not keep a copy of {path} in {folder} ({reason}); nothing was written") from exc
    return copies


def _files_of(kind: str, path: Path) -> list[Path]:
    """The place's file, and for a JSON login that names its registration by `clientIdHash`
    (the Kiro IDE's way), that registration file beside it."""
    files = [path]
    if not place_format(kind).is_database:
        try:
            data = read_json(path, place_format(kind).title).data
        except KiroTuiError:
            return files
        name = data.get("clientIdHash") if isinstance(data, dict) else None
        if isinstance(name, str) and name and "/" not in name and (path.parent / f"{name}.json").is_file():
            files.append(path.parent / f"{name}.json")
    return files


def _copy_database(source: Path, copy: Path) -> None:
    fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    with open_read_only(source) as src:
        dst = sqlite3.connect(copy)
        try:
            src.backup(dst)
        finally:
            dst.close()


def _prune(folder: Path) -> None:
    stamps = sorted({p.name.split("-", 1)[0] for p in folder.iterdir() if p.name != "place.txt"})
    for old in stamps[:-KEEP_COPIES]:
        for p in folder.glob(f"{old}-*"):
            p.unlink(missing_ok=True)


@dataclass(frozen=True)
class Tool:
    """A tool found where it keeps its login, and whose login that is now (`use in ...`)."""

    kind: str
    path: Path
    holder: str | None


async def tools_found(engine: Engine) -> list[Tool]:
    """Every tool whose usual file (or database) is there, kiro-cli first, with who it uses."""
    now = engine.clock.now()

    def look() -> list[tuple[str, Path, str | None]]:  # files only, in a worker thread
        found = []
        for kind in USE_KINDS:
            try:
                target = _target(engine, kind, None)
            except KiroTuiError:
                continue
            if os.path.lexists(target) and not is_folder(target):
                found.append((kind, target, used_print(kind, target, now)[1]))
        return found

    found = await asyncio.to_thread(look)
    owners = engine.store.print_owners(used for _, _, used in found)
    return [Tool(kind, target, owners.get(used or "")) for kind, target, used in found]


__all__ = ["AccountBusy", "Tool", "UseOutcome", "keep_copy",
           "rewrite_places", "tools_found", "use_account"]


def held_prints(snapshot: PlaceSnapshot | None) -> list[str]:
    """The fingerprints of the refresh tokens a place holds (what a replacement must still find)."""
    return [p for login in (snapshot.logins if snapshot else []) if (p := fingerprint(login.refresh_token))]
