"""An account's place files written in one job, wherever it runs: on a thread of the lane or in
the place writes' own process (core/lane.py, core/place_worker.py). Everything a job needs
comes with it (the places, the token, the account's lineage), and it answers with what the
rest of kiro-tui must remember (`Written`), so that it can run in another process: it reads no
store, and what it logs is passed back.

The compare-and-swap's rule (`may_replace`) and how a place file looks (`signature_of`,
`checked_signature`) live here too: the job is where they are used on a write.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from kiro_tui.core.models import Place, PlaceState
from kiro_tui.core.place_reads import is_database
from kiro_tui.core.places import TokenCopy, WriteOutcome, WriteResult, place_format
from kiro_tui.core.places._files import folder_syncs_deferred
from kiro_tui.core.places.base import PlaceSignature, inode_mtime_size, place_signature

log = logging.getLogger("kiro_tui.refresh")

FILE_LOCKS = tuple(threading.Lock() for _ in range(64))
"""One file is written by one thread at a time (by its path's lock; 64 of them, so 10,000
accounts' places cost no more and a few threads seldom share one by chance): two accounts'
logins in one database or folder file, written at once, would each see the other's write as a
tool's (the signature taken after it), and a database write's own look at how it left the file
fails at once on the other's lock. Locks of one process: while a burst moves to the place
worker process, the few jobs already on kiro-tui's own threads (and a job run beside) are not
kept apart from the process's. Two accounts sharing one file then cost at most a second read
of it (the signature taken after the other's write) or a write retried (locked): the
compare-and-swap itself is the file's own lock (flock, SQLite's)."""


@dataclass(frozen=True, slots=True)
class Written:
    """What a job did to one place: the format's answer; how the file looked just after it, to
    be remembered as kiro-tui's own write (`seen`, when written); and whether the place is known
    to hold the token while it looks as the write left it (`holds`)."""

    result: WriteResult
    seen: PlaceSignature | None = None
    holds: bool = False


def write_files(places: list[Place], copy: TokenCopy, lineage: dict[str, int], copy_print: str | None,
                timeout: float) -> list[Written]:
    """Write `copy` into each place, one after another, their folders synced together at the
    end (`folder_syncs_deferred`); a place's failure is its own."""
    done = []
    with folder_syncs_deferred():
        for place in places:
            try:
                done.append(_write_file(place, copy, lineage, copy_print, timeout))
            except Exception as exc:
                log.exception("writing %s %s failed unexpectedly", place.kind, place.path)
                done.append(Written(WriteResult(WriteOutcome.FAILED, f"{type(exc).__name__}: {exc}")))
    return done


def _write_file(place: Place, copy: TokenCopy, lineage: dict[str, int], copy_print: str | None,
                timeout: float) -> Written:
    belongs = partial(may_replace, lineage, place, writing=copy_print)
    with FILE_LOCKS[hash(place.path) % len(FILE_LOCKS)]:
        result = place_format(place.kind).write_token(Path(place.path), place.entry, copy, belongs, timeout)
        # Our own write is not a tool's refresh (as it left it: a rewrite since is).
        seen = (result.written or signature_of(place)) if result.outcome is WriteOutcome.WRITTEN else None
    # It holds this token while it looks as the write left it (written, or found holding it: a
    # place just linked): known only where the write could tell how it left the place, and
    # only if nobody changed it since.
    holds = (result.state is PlaceState.IN_SYNC and result.written is not None
             and checked_signature(place) == result.written)
    return Written(result, seen, holds)


def checked_signature(place: Place) -> PlaceSignature:
    """`signature_of`, asked so that a network file system cannot answer from its cache: a
    file is opened and its open descriptor stat-ed (an open revalidates what NFS cached). A
    database is only stat-ed: closing a descriptor of it that SQLite did not open would drop the
    POSIX locks SQLite holds on it in this process."""
    if is_database(place.kind):
        return signature_of(place)
    try:
        fd = os.open(place.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
                     | getattr(os, "O_CLOEXEC", 0))  # (non-blocking: a FIFO put there must not hang it)
    except OSError:
        return (None,)
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    return (inode_mtime_size(st),)


def signature_of(place: Place) -> PlaceSignature:
    """`place_signature` of a stored place (with its -wal when its kind is a database)."""
    return place_signature(place.path, is_database(place.kind))


def may_replace(lineage: dict[str, int], place: Place, token_print: str | None,
                writing: str | None = None) -> bool:
    """The compare-and-swap's rule: a place's token is replaced only when it is the one kiro-tui
    last wrote (or found) there, or one of the lineage it has not yet seen spent there (newer
    than that one). An older token of the lineage (a backup restored, a stale copy put there by
    someone) is not replaced: the place is shown in error instead. Nor is a token newer than
    the one `writing` (two writes of one account that finished out of order: the later token is
    never put back to the earlier). `lineage`: the account's, fingerprint to rank
    (`AccountStore.lineage`)."""
    if token_print is None or token_print not in lineage:
        return False
    if writing is not None and writing in lineage and lineage[token_print] > lineage[writing]:
        return False
    if place.written_print is None or token_print == place.written_print:
        return True
    last = lineage.get(place.written_print)
    return last is None or lineage[token_print] >= last
