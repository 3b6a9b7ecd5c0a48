"""Who keeps the accounts fresh: every `watch` and every TUI's engine records itself in the store.

A runner's row says its pid, host, kind (`watch` | `tui`), how it was started (`systemd`,
`launchd`, `hand`), when, and when its last watch pass was. It is removed on a clean exit; one
left behind by `kill -9` or a power cut is simply not alive: its pid is gone (same host), or
its last pass is older than twice its interval. The last pass is written at most once per
interval (at least `HEARTBEAT` seconds), so a runner costs other processes one re-read of the
store a half-minute, not one a pass. Two runners at once are fine: leases share the work.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from kiro_tui.core.store import AccountStore
from kiro_tui.core.timefmt import format_timestamp, parse_timestamp

WATCH, TUI = "watch", "tui"
BY_SYSTEMD, BY_LAUNCHD, BY_HAND = "systemd", "launchd", "hand"
HEARTBEAT = 30.0
"""Seconds between two records of a runner's last pass, at the least."""


def host_name() -> str:
    return socket.gethostname()


def started_by(kind: str, environ: dict[str, str] | None = None) -> str:
    """How this process was started: systemd sets INVOCATION_ID for a unit's process, launchd
    names the job in XPC_SERVICE_NAME; a TUI is always a person's."""
    from kiro_tui.core.service import LAUNCHD_LABEL

    environ = dict(os.environ) if environ is None else environ
    if kind == TUI:
        return BY_HAND
    if environ.get("INVOCATION_ID"):
        return BY_SYSTEMD
    if environ.get("XPC_SERVICE_NAME") == LAUNCHD_LABEL or environ.get("LAUNCH_JOB_LABEL") == LAUNCHD_LABEL:
        return BY_LAUNCHD
    return BY_HAND


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class Runner:
    id: str
    pid: int
    host: str
    kind: str
    started_by: str
    started_at: datetime
    last_pass_at: datetime | None
    interval: float

    def alive(self, now: datetime, here: str | None = None) -> bool:
        if self.host == (here or host_name()) and not pid_exists(self.pid):
            return False
        last = self.last_pass_at or self.started_at
        return last > now - timedelta(seconds=2 * self.interval)

    def to_json(self, now: datetime) -> dict[str, object]:
        return {"pid": self.pid, "host": self.host, "kind": self.kind, "started_by": self.started_by,
                "started_at": format_timestamp(self.started_at),
                "last_pass_at": format_timestamp(self.last_pass_at) if self.last_pass_at else None,
                "alive": self.alive(now)}

    def describe(self) -> str:
        how = {BY_HAND: "by hand"}.get(self.started_by, f"by {self.started_by}")
        return f"{self.kind} pid {self.pid} (started {how})"


def register(store: AccountStore, kind: str, now: datetime, watch_interval: float) -> Runner:
    """Record this process as a runner; rows of runners on this host whose pid is gone are dropped."""
    runner = Runner(f"{host_name()}:{os.getpid()}:{secrets.token_hex(3)}", os.getpid(), host_name(), kind,
                    started_by(kind), now, None, max(HEARTBEAT, watch_interval))
    with store.transaction(durable=False) as tx:
        for old_id, pid in tx.execute("SELECT id, pid FROM runners WHERE host = ?", (runner.host,)).fetchall():
            if not pid_exists(int(pid)):  # left behind by a kill -9 or a power cut: gone for good
                tx.execute("DELETE FROM runners WHERE id = ?", (old_id,))
        tx.execute("INSERT OR REPLACE INTO runners (id, pid, host, kind, started_by, started_at, last_pass_at,"
                   " interval_seconds) VALUES (?, ?, ?, ?, ?, ?, NULL, ?)",
                   (runner.id, runner.pid, runner.host, runner.kind, runner.started_by,
                    format_timestamp(now), runner.interval))
    return runner


def record_pass(store: AccountStore, runner: Runner, now: datetime) -> None:
    with store.transaction(durable=False, places=False) as tx:
        tx.execute("UPDATE runners SET last_pass_at = ? WHERE id = ?", (format_timestamp(now), runner.id))


def unregister(store: AccountStore, runner: Runner) -> None:
    with store.transaction(durable=False) as tx:
        tx.execute("DELETE FROM runners WHERE id = ?", (runner.id,))


def runners(store: AccountStore) -> list[Runner]:
    rows = store.connection.execute(
        "SELECT id, pid, host, kind, started_by, started_at, last_pass_at, interval_seconds FROM runners"
        " ORDER BY started_at, id").fetchall()
    found = []
    for row in rows:
        try:
            found.append(Runner(row[0], int(row[1]), row[2], row[3], row[4], parse_timestamp(row[5]),
                                parse_timestamp(row[6]) if row[6] else None, float(row[7])))
        except (TypeError, ValueError):
            continue  # a damaged row says nothing about who runs
    return found


def keepers(found: list[Runner], now: datetime) -> list[Runner]:
    """The running `watch` processes: what keeps the accounts fresh once a TUI is closed."""
    return [r for r in found if r.kind == WATCH and r.alive(now)]


def describe_keepers(found: list[Runner], now: datetime) -> str:
    """One short phrase for the TUI's summary line and `service status`."""
    watching = keepers(found, now)
    if not watching:
        return "when closed, nothing refreshes: `kiro-tui service install`"
    if len(watching) == 1:
        return f"kept fresh by {watching[0].describe()}"
    pids = ", ".join(str(r.pid) for r in watching)
    return f"kept fresh by {len(watching)} watches (pids {pids}; they share the work)"
