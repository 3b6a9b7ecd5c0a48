"""What the benchmarks that run the TUI under load share: the emulator in its own process, a
store filled with accounts the emulator knows, a stall detector for an event loop, and a
reader that watches the store fill up from another connection.

Not a benchmark itself; `python -m benchmarks.tui_burst` and friends import it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from kiro_tui.core.models import Account, AuthMethod, Mode
from kiro_tui.core.store import AccountStore
from kiro_tui.core.timefmt import parse_timestamp
from tests.support.kiro_cli_db import rfc3339 as kiro_cli_time
from tests.support.places import Login

if TYPE_CHECKING:
    from kiro_tui.core.engine import Engine


def process_cpu(pid: int) -> tuple[float, float]:
    """(user, system) seconds a process has used so far, from Linux's /proc (OSError elsewhere)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks


def status_kb(pid: int, name: str) -> int:
    """A figure of a process's /proc status in kB (e.g. VmHWM, its peak RSS); 0 if not there."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return 0


def compile_bytecode() -> None:
    """Write kiro-tui's bytecode, as `pip install` does: a process benchmark then times what a
    person's install runs, not the compiling of 80 modules a source checkout repeats when
    PYTHONDONTWRITEBYTECODE is set (as on the development machine: 0.1 s a process)."""
    import compileall

    import kiro_tui

    compileall.compile_dir(str(Path(kiro_tui.__file__).parent), quiet=1)


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


def get(url: str) -> object:
    with urllib.request.urlopen(url) as response:
        return json.loads(response.read())


def delete(url: str) -> object:
    request = urllib.request.Request(url, method="DELETE")
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


class EmulatorProcess:
    """`kiro-tui emulator` in a process of its own (as a real service would be: its CPU is not
    ours), on a free loopback port."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> EmulatorProcess:
        self.process = subprocess.Popen([sys.executable, "-m", "kiro_tui", "emulator", "--port", "0", *self.args],
                                        stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().split()[-1]
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(timeout=10)

    def control(self, name: str, body: dict) -> dict:
        return post(f"{self.url}/_emulator/{name}", body)


def seed_accounts(url: str, count: int, *, prefix: str, expires_at: datetime | None = None,
                  expires_in: int = 3600) -> list[Account]:
    """`count` social logins the emulator knows, as kiro-tui accounts (own mode), named
    `{prefix}{i:04d}@example.com`. `expires_at`, if given, replaces every token's expiry, so
    that all of them come due at the same instant."""
    accounts = []
    for i in range(count):
        email = f"{prefix}{i:04d}@example.com"
        token = post(f"{url}/_emulator/accounts", {"kind": "social", "email": email, "expires_in": expires_in})["token"]
        accounts.append(Account(
            id=f"{i:08x}", auth_method=AuthMethod.SOCIAL, mode=Mode.OWN, label=email,
            access_token=token["access_token"], refresh_token=token["refresh_token"],
            expires_at=expires_at or parse_timestamp(token["expires_at"])))
    return accounts


IMPORT_KINDS = ("kiro-cli", "cliproxy", "aiclient", "gateway")
"""Where the accounts of `build_imported_store` come from, in turn: a kiro-cli database each,
CLIProxyAPI's auth files, AIClient-2-API's credential folders, kiro-gateway's files."""


def offline_logins(count: int, *, prefix: str = "user", expires_at: datetime | None = None) -> list[Login]:
    """`count` social logins no service knows (for benchmarks that never refresh), expiring
    15 to 60 minutes from now unless `expires_at` is given."""
    from datetime import UTC, timedelta

    now = datetime.now(UTC).replace(microsecond=0)
    return [Login(kind="social", email=f"{prefix}{i:04d}@example.com", access_token=f"aoaAAAAAG{i:040d}",
                  refresh_token=f"aorAAAAAG{i:040d}", expires_at=expires_at or now + timedelta(minutes=15 + i % 45),
                  region="us-east-1", start_url=None, client_id=None, client_secret=None, client_expires_at=None,
                  profile_arn=None, provider="github") for i in range(count)]


def emulator_logins(url: str, count: int, *, prefix: str, expires_in: int = 3600) -> list[Login]:
    """`count` social logins the emulator knows, named `{prefix}{i:04d}@example.com`."""
    logins = []
    for i in range(count):
        email = f"{prefix}{i:04d}@example.com"
        token = post(f"{url}/_emulator/accounts", {"kind": "social", "email": email, "expires_in": expires_in})["token"]
        logins.append(Login(kind="social", email=email, access_token=token["access_token"],
                            refresh_token=token["refresh_token"],
                            expires_at=parse_timestamp(token["expires_at"]).replace(microsecond=0),
                            region="us-east-1", start_url=None, client_id=None, client_secret=None,
                            client_expires_at=None, profile_arn=None, provider="github"))
    return logins


def write_places(folder: Path, logins: list[Login]) -> list[tuple[str, Path]]:
    """Each login in the file of one tool, the tools taken in turn (IMPORT_KINDS), as that tool
    writes it (tests/support). Returns what to import: (kind, path), a database or a folder."""
    import shutil

    from tests.support.kiro_cli_db import KiroCliDb
    from tests.support.places import write_aiclient, write_cliproxy, write_gateway

    template = folder / "kiro-cli-template.sqlite3"
    KiroCliDb(template)
    targets: list[tuple[str, Path]] = []
    for i, login in enumerate(logins):
        kind = IMPORT_KINDS[i % len(IMPORT_KINDS)]
        if kind == "kiro-cli":
            db = folder / "kiro-cli" / f"{i:05d}" / "data.sqlite3"
            db.parent.mkdir(parents=True)
            shutil.copyfile(template, db)
            db.chmod(0o600)
            with sqlite3.connect(db) as conn:
                conn.execute("INSERT INTO auth_kv (key, value) VALUES ('kirocli:social:token', ?)", (json.dumps({
                    "access_token": login.access_token, "refresh_token": login.refresh_token,
                    "expires_at": kiro_cli_time(login.expires_at), "provider": login.provider,
                    "profile_arn": login.profile_arn}, separators=(",", ":")),))
            conn.close()
            targets.append((kind, db))
        elif kind == "cliproxy":
            write_cliproxy(folder / "cliproxy", login)
        elif kind == "aiclient":
            write_aiclient(folder / "aiclient", login, stamp=1767225600000 + i)
        else:
            write_gateway(folder / "gateway" / f"kiro-{i:05d}.json", login)
    template.unlink()
    targets += [(kind, folder / kind) for kind in IMPORT_KINDS[1:] if (folder / kind).exists()]
    return targets


def import_places(store_path: Path, targets: list[tuple[str, Path]], *, durable: bool = True,
                  mode: Mode = Mode.SYNC) -> None:
    """`kiro-tui import` of each (kind, path), in this process: the engine's own import, one
    transaction per place file. `durable=False` only skips the fsync of each commit (a
    benchmark's store need not survive a power cut): the rows and places are the same."""
    from kiro_tui.core.aws.endpoints import Endpoints
    from kiro_tui.core.clock import SystemClock
    from kiro_tui.core.config import Settings
    from kiro_tui.core.engine import Engine

    async def run(store: AccountStore) -> None:
        engine = Engine(store, Settings(import_mode=mode.value), SystemClock(), Endpoints(override="http://127.0.0.1:9"),
                        None)
        for kind, path in targets:
            await engine.import_now(path, kind)

    with AccountStore.open(store_path) as store:
        if not durable:
            store.connection.execute("PRAGMA synchronous=OFF")
        asyncio.run(run(store))


def build_imported_store(path: Path, accounts: int | list[Login], *, places: Path | None = None,
                         mode: Mode = Mode.SYNC) -> list[tuple[str, Path]]:
    """A store at `path` holding `accounts` imported the way people get them: each login is
    written into a tool's file (a kiro-cli database, CLIProxyAPI, AIClient-2-API, kiro-gateway,
    in turn) and imported from there by the engine, so every account has its place. `accounts`
    is a count (logins no service knows) or logins (`emulator_logins`). The place files go in
    `places` (default: a `places` folder beside the store). Returns what was imported: (kind,
    path) of each kiro-cli database and each tool's folder."""
    logins = offline_logins(accounts) if isinstance(accounts, int) else accounts
    folder = places or path.parent / "places"
    folder.mkdir(parents=True, exist_ok=True)
    targets = write_places(folder, logins)
    import_places(path, targets, durable=False, mode=mode)
    return targets


def write_store(path: Path, accounts: list[Account]) -> None:
    """A new store at `path` holding `accounts` (one transaction)."""
    with AccountStore.open(path) as store, store.transaction() as tx:
        for account in accounts:
            store.save(account, tx)


def set_expiry(path: Path, expires_at: datetime) -> None:
    """Every account expires at `expires_at` (written by another connection, as another process would)."""
    from kiro_tui.core.timefmt import format_timestamp

    conn = sqlite3.connect(path, timeout=30)
    try:
        with conn:
            conn.execute("UPDATE accounts SET expires_at = ?", (format_timestamp(expires_at),))
    finally:
        conn.close()


class StoreProgress:
    """Counts, from a thread and a connection of its own, the accounts whose `last_refresh_at`
    is set: when the store holds every refresh, and how far it got over time."""

    def __init__(self, path: Path, total: int, every: float = 0.02) -> None:
        self.path, self.total, self.every = path, total, every
        self.count = 0
        self.done_at: float | None = None
        self.timeline: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="store progress", daemon=True)

    def __enter__(self) -> StoreProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
        try:
            while not self._stop.is_set():
                count = conn.execute("SELECT count(*) FROM accounts WHERE last_refresh_at IS NOT NULL").fetchone()[0]
                now = time.perf_counter()
                if count != self.count or not self.timeline:
                    self.timeline.append((now, count))
                self.count = count
                if count >= self.total and self.done_at is None:
                    self.done_at = now
                self._stop.wait(self.every)
        finally:
            conn.close()

    def at(self, when: float) -> int:
        """Refreshes in the store at `when` (perf_counter time)."""
        count = 0
        for moment, seen in self.timeline:
            if moment > when:
                break
            count = seen
        return count

    async def wait(self, timeout: float) -> float:
        deadline = time.perf_counter() + timeout
        while self.done_at is None:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"only {self.count} of {self.total} refreshed after {timeout:g} s")
            await asyncio.sleep(0.02)
        return self.done_at


@dataclass
class Beat:
    at: float  # perf_counter time the loop ran the beat
    late: float  # seconds later than asked
    cpu: float  # the loop thread's CPU seconds over the same wait


def burst_app(store_path: Path, url: str, settings):  # type: ignore[no-untyped-def]
    """The TUI as `kiro-tui` runs it (its engine on, no usage fetches), against the emulator at `url`."""
    from kiro_tui.core.aws.endpoints import Endpoints
    from kiro_tui.core.clock import SystemClock
    from kiro_tui.tui.app import make_app

    return make_app(store_path, settings, SystemClock(), Endpoints(override=url), None, [],
                    run_engine=True, fetch_usage=False)


async def until_loaded(app, total: int) -> None:  # type: ignore[no-untyped-def]
    """Until the accounts screen shows all `total` accounts and has nothing left to load."""
    screen = app.accounts_screen
    while not (screen.loaded and len(screen.views) == total and not screen._loading):
        await asyncio.sleep(0.02)


class LoopStallMonitor:
    """On the running loop: a task sleeps `period` over and over and records how late it wakes,
    and the loop thread's own CPU time over each wait (a call blocked on I/O uses none; Python
    work on the loop, a repaint, uses it all). A watchdog thread records the loop thread's stack
    while a wake-up is more than `capture_after` late: what was running instead. Used by the TUI
    benchmarks and by tests/test_tui_no_blocking.py."""

    def __init__(self, period: float = 0.01, capture_after: float = 0.04) -> None:
        self.period, self.capture_after = period, capture_after
        self.beats: list[Beat] = []
        self.stacks: list[tuple[float, float, list[str]]] = []
        """(the beat it was overdue from, when it was taken, frames "file:line function", outermost first)"""
        self._last = time.perf_counter()
        self._stop = threading.Event()
        self._task: asyncio.Task[None] | None = None
        self._watchdog: threading.Thread | None = None
        self._loop_thread = 0

    @property
    def worst(self) -> float:
        return max((b.late for b in self.beats), default=0.0)

    async def __aenter__(self) -> LoopStallMonitor:
        self._loop_thread = threading.get_ident()
        self._last = time.perf_counter()
        self._task = asyncio.create_task(self._run())
        self._watchdog = threading.Thread(target=self._watch, name="stall watchdog", daemon=True)
        self._watchdog.start()
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._task is not None and self._watchdog is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._watchdog.join(1)

    async def _run(self) -> None:
        while True:
            before, cpu = time.perf_counter(), time.thread_time()
            await asyncio.sleep(self.period)
            self._last = now = time.perf_counter()
            self.beats.append(Beat(now, now - before - self.period, time.thread_time() - cpu))

    def _watch(self) -> None:
        import traceback

        captured_for = None
        while not self._stop.wait(0.02):
            last = self._last
            if time.perf_counter() - last > self.capture_after and captured_for != last:
                captured_for = last
                frame = sys._current_frames().get(self._loop_thread)
                if frame is not None:  # lines are looked up later, not while the loop waits on us
                    summary = traceback.StackSummary.extract(traceback.walk_stack(frame), limit=40, lookup_lines=False)
                    self.stacks.append((last, time.perf_counter(), [f"{f.filename}:{f.lineno} {f.name}"
                                                                    for f in reversed(summary)]))

    def window(self, start: float, end: float) -> list[Beat]:
        return [b for b in self.beats if start <= b.at <= end]

    def longest_stacks(self, count: int = 3) -> list[str]:
        """What the loop was running during its `count` longest captured stalls, longest first."""
        def stall(last: float) -> float:  # the lateness of the wake-up that ended it
            return next((b.late for b in self.beats if b.at > last), float("inf"))

        longest = sorted(self.stacks, key=lambda s: -stall(s[0]))[:count]
        return ["\n".join(frames) for _, _, frames in longest]

    def report(self) -> str:
        text = describe_stalls(self.beats)
        stacks = self.longest_stacks()
        if stacks:
            text += "\n\nWhat the loop was running during the longest stalls:\n" + "\n---\n".join(stacks)
        return text


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of `values`."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def describe_stalls(beats: list[Beat]) -> str:
    late = [b.late for b in beats]
    worst = max(beats, key=lambda b: b.late, default=None)
    if worst is None:
        return "no samples"
    off_cpu = max(beats, key=lambda b: b.late - b.cpu)
    return (f"worst {worst.late * 1000:.0f} ms ({worst.cpu * 1000:.0f} ms of it the loop thread's own CPU), "
            f"p99 {percentile(late, 99) * 1000:.0f} ms, p50 {percentile(late, 50) * 1000:.1f} ms, "
            f"{sum(1 for x in late if x > 0.05)} wake-ups over 50 ms, of {len(late)}; longest wait off the "
            f"loop thread's CPU (blocked, or waiting for the GIL or a core): "
            f"{(off_cpu.late - off_cpu.cpu) * 1000:.0f} ms")


def where_stalled(monitor: LoopStallMonitor, start: float, end: float, top: int = 3) -> list[str]:
    """The innermost kiro_tui / textual frames of the longest captured stalls in [start, end]."""
    lines = []
    captured = [(seen - last, frames) for last, seen, frames in monitor.stacks if start <= last <= end]
    for _, frames in sorted(captured, key=lambda c: -c[0])[:top]:
        ours = [f for f in frames if "/kiro_tui/" in f or "/textual/" in f or "/rich/" in f]
        lines.append(" > ".join(f.rsplit("/", 1)[-1] for f in ours[-8:]))
    return lines


LINKS = ("kiro-ide", "cliproxy", "gateway-db")
"""The kinds a benchmark links an account to, each account's in a folder of its own (the Kiro
IDE's file holds one login, so a shared folder would make the accounts take turns)."""


async def link_places(engine: Engine, account_id: str, folder: Path, kinds: tuple[str, ...] = LINKS) -> None:
    """Link one account to each of `kinds` in `folder`, through the engine as `kiro-tui link` does."""
    for kind in kinds:
        await engine.link(account_id, kind, folder / "kiro-auth-token.json" if kind == "kiro-ide" else folder)
