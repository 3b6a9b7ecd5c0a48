"""kiro-tui's durable account store: one SQLite file, WAL, private to the user.

Every write is one transaction, so a crash leaves either the old row or the new one.
The schema version lives in `PRAGMA user_version`; `MIGRATIONS[i]` upgrades version i to i+1.
A store from a newer kiro-tui, a corrupt one, or another program's SQLite database is refused
and never written to. One row that cannot be read (a hand edit, a bug) is reported and left
out; every other account keeps working. A write that fails says why (disk full, read-only,
locked) as a `StoreWriteError`, so the refresh engine can hold a new token in memory instead.

The package, one room per idea: `schema` (migrations), `codecs` (fields to columns and back),
`opening` (the file, its transactions, the words for what goes wrong), and the tables' reads and
writes (`accounts`, `places`, `history`, `leases`), put together as `AccountStore` in `repository`.
"""

from kiro_tui.core.store.accounts import LINEAGE_KEEP, UnreadableRow, touch_updated
from kiro_tui.core.store.codecs import storable_text
from kiro_tui.core.store.history import REFRESH_LOG_KEEP, RefreshLogEntry
from kiro_tui.core.store.opening import ROOM_FOR_A_COMMIT, damage_message, describe_sqlite_error
from kiro_tui.core.store.places import UnlinkMark
from kiro_tui.core.store.repository import AccountStore
from kiro_tui.core.store.schema import MIGRATIONS, SCHEMA_VERSION

__all__ = [
    "LINEAGE_KEEP",
    "MIGRATIONS",
    "REFRESH_LOG_KEEP",
    "ROOM_FOR_A_COMMIT",
    "SCHEMA_VERSION",
    "AccountStore",
    "RefreshLogEntry",
    "UnlinkMark",
    "UnreadableRow",
    "damage_message",
    "describe_sqlite_error",
    "storable_text",
    "touch_updated",
]
