"""Links and exports: copies of an account's login written into other tools' files, kept fresh
after every refresh (a link) or written once (an export).

A room of its own because both come down to one rule, kept here (`_target`): find the file a
tool uses and what it holds, and never overwrite a login kiro-tui does not own.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from kiro_tui.core.imports import EXPORTED_PREFERENCE, EXPORTS_REMEMBERED
from kiro_tui.core.masking import fingerprint
from kiro_tui.core.models import Account, Place, PlaceRole, PlaceState
from kiro_tui.core.places import PlaceError, PlaceFormat, TokenCopy, link_refusal, place_format
from kiro_tui.core.places.base import PlaceLogin

if TYPE_CHECKING:
    from kiro_tui.core.engine import Engine


async def link(engine: Engine, account_id: str, kind: str, path: Path | None = None) -> Place:
    """Keep a copy of this account fresh at a place: the file is created if absent (or found
    holding this login), written now, and written after every refresh from then on."""
    account = engine.store.resolve_id(account_id)
    fmt, target, existing = await _target(
        engine, account, kind, path, "holds another login (or a token kiro-tui has never seen); a link does not "
        f"overwrite it. `kiro-tui use {account.id} --in {kind}` (and the same --path) makes this account the login "
        "there (the one there is kept), or name another file with --path")
    written_at = None
    if existing is not None:
        entry_path, entry = existing
    else:
        created = await asyncio.to_thread(fmt.create, target, account)
        entry_path, entry, written_at = created.path, created.entry, engine.clock.now()
    taken = engine.store.place_at(kind, str(entry_path), entry)
    if taken is not None and taken.account_id != account.id:
        raise PlaceError(f"{entry_path} is already a place of account {taken.account_id}")
    place = Place(account.id, kind, str(entry_path), entry, PlaceRole.LINK,  # a source linked is written too
                  PlaceState.PENDING, "writing the token", written_at=written_at)
    with engine.store.transaction() as tx:
        engine.store.save_place(tx, place)
    engine.store.mark_unlinked(place, None, unlinked=False)
    await engine.start()
    assert engine.refresher is not None  # (built by start)
    await engine.refresher.write_places_now(account.id, [place])
    engine.account_changed(account.id)
    return next(p for p in engine.store.places(account.id) if p.address == place.address)


async def unlink(engine: Engine, account_id: str, kind_or_path: str) -> list[Place]:
    """Stop keeping copies fresh at these places (by kind, or by path); the files are left as
    they are. Source places are not links: change the mode (own) to stop writing them."""
    account = engine.store.resolve_id(account_id)
    is_path = "/" in kind_or_path or kind_or_path.startswith(".")
    # Path arithmetic only ($HOME and the working folder): no file is touched.
    wanted = str(Path(kind_or_path).expanduser().absolute()) if is_path else None  # noqa: ASYNC240
    gone = [p for p in engine.store.places(account.id) if p.role is PlaceRole.LINK
            and (p.kind == kind_or_path or p.path == wanted or p.path == kind_or_path)]
    if not gone:
        raise PlaceError(f"{account.id} ({account.name}) has no link {kind_or_path!r}; "
                         f"`kiro-tui show {account.id}` shows its places")
    with engine.store.transaction() as tx:
        for place in gone:
            engine.store.delete_place(tx, place)
    for place in gone:  # an import of that file later does not link it back behind the person's back
        engine.store.mark_unlinked(place, engine.clock.now(), client_id=account.client_id)
    engine.account_changed(account.id)
    return gone


async def export(engine: Engine, account_id: str, kind: str, path: Path | None = None) -> Path:
    """Write this account's login once into a new file of that tool (no link: not kept fresh)."""
    account = engine.store.resolve_id(account_id)
    fmt, target, existing = await _target(engine, account, kind, path,
                                          "already exists and does not hold this login; name a new file")
    if existing is not None:
        entry_path, entry = existing
        copy = TokenCopy.of(account)
        lineage = engine.store.lineage(account.id)  # asked here: the write runs in a worker thread
        result = await asyncio.to_thread(fmt.write_token, entry_path, entry, copy,
                                         lambda p: p in lineage, 2.0)
        if result.state is not PlaceState.IN_SYNC:
            raise PlaceError(f"could not write {entry_path}: {result.detail or result.outcome.value}")
    else:
        entry_path = (await asyncio.to_thread(fmt.create, target, account)).path
    exported = [(k, p) for k, p in engine.exported_places() if (k, p) != (kind, entry_path)]
    engine.store.set_preference(EXPORTED_PREFERENCE, [[k, str(p)] for k, p in [*exported, (kind, entry_path)]
                                                      ][-EXPORTS_REMEMBERED:])
    return entry_path


async def caveat(engine: Engine, account_id: str, kind: str) -> str | None:
    """What that tool cannot do with this login by itself (a person linking or exporting it
    there is told), if anything."""
    return place_format(kind).caveat(engine.store.resolve_id(account_id))


async def usual_place(kind: str) -> Path | None:
    """Where that tool keeps its file when configured as usual, if it has such a place."""
    defaults = place_format(kind).default_paths()
    return defaults[0] if defaults else None


async def _target(engine: Engine, account: Account, kind: str, path: Path | None,
                  not_this_login: str) -> tuple[PlaceFormat, Path, tuple[Path, str] | None]:
    """The format and file a link or export writes, and the entry there already holding this
    login (its token is of the account's lineage), if any. A file holding anything else is
    refused with `not_this_login`: kiro-tui never overwrites a login it does not own."""
    fmt = place_format(kind)
    if refusal := link_refusal(kind):
        raise PlaceError(refusal)
    if path is not None:
        target = Path(path).expanduser().absolute()  # noqa: ASYNC240 - path arithmetic, no file touched
    elif defaults := fmt.default_paths():
        target = defaults[0]
    else:
        raise PlaceError(f"{fmt.title} has no usual place for its file; name it with --path")
    found = await asyncio.to_thread(_logins_at, fmt, target, engine.clock.now())
    if target.is_dir():  # a folder of the tool's files: one may hold this login
        return fmt, target, next(((file, entry) for file, entry, login in found
                                  if engine.store.in_lineage(account.id, fingerprint(login.refresh_token))), None)
    if not found:
        return fmt, target, None
    current = fingerprint(account.refresh_token)  # in a file of several logins, this one's, else the first
    entry_path, entry, login = next((f for f in found if fingerprint(f[2].refresh_token) == current), found[0])
    if not engine.store.in_lineage(account.id, fingerprint(login.refresh_token)):
        raise PlaceError(f"{entry_path} {not_this_login}")
    return fmt, target, (entry_path, entry)


def _logins_at(fmt: PlaceFormat, target: Path, now: datetime) -> list[tuple[Path, str, PlaceLogin]]:
    """Every login already at `target`, as (file, entry, login): a file's (one that cannot be
    read is an error), or those of the tool's files in a folder (one that cannot be read is
    passed over: it is not this account's to link). Nothing when there is nothing there yet."""
    if target.is_file():
        snapshot = fmt.scan(target, now)
        return [(snapshot.path, login.key, login) for login in snapshot.logins]
    found = []
    for file in fmt.discover(target) if target.is_dir() else []:
        try:
            snapshot = fmt.scan(file, now)
        except PlaceError:
            continue
        found += [(snapshot.path, login.key, login) for login in snapshot.logins]
    return found
