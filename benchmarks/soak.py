"""Soak (issue 10): accounts under strict rotation against the emulator for minutes while
everything that can go wrong does, and `kiro-tui watch` keeps them alive. Prints refreshes
done, faults injected, and accounts lost (needs-login that the emulator did not cause).

    python -m benchmarks.soak [--accounts 50] [--minutes 3] [--token-ttl 120] [--latency-ms 400]
                              [--full-disk auto|mount|pragma|off] [--seed 1]

Needs Linux. Set up, in a temporary folder:
- the emulator in its own process (`kiro-tui emulator --token-ttl 120`): refresh tokens rotate
  and the old one dies at once (rotation_grace 0), every response `latency-ms` (1 s) late, so
  that stop signals find refreshes in flight;
- `accounts` logins of all four kinds (social, Builder ID, IAM Identity Center, external IdP),
  coming due spread over the first minute (then every half token lifetime, kiro-tui's floor):
  two of them in a kiro-cli database and imported in sync mode (written back after every
  refresh), the rest in kiro-tui's store in own mode;
- kiro-tui's data folder (store, rescue files, kiro-cli's database) on a small file system
  of its own: an 8 MB tmpfs mounted for the run (needs root), so that the disk can really be
  filled. Without one (`--full-disk pragma`, or `auto` when the mount is refused), the full
  disk is simulated instead: `watch` is stopped and the engine runs in a child process whose
  store connection has `PRAGMA max_page_count` set to the store's current size, then `watch`
  comes back. The output says which was used.

Then `kiro-tui watch` runs for `minutes` (fractions allowed: --minutes 0.5) while the script
injects, on a schedule scaled to the duration (the seed makes it repeatable):
- every ~8 s one fault on the refresh endpoints: a 5xx (1 to 3 requests), a timeout (the
  request hangs 20 s, past kiro-tui's 15 s timeout), a TCP reset (1 to 3), or a truncated
  200 answer (1 or 2);
- once, at 35 % of the run, absurd expiries: the emulator's token lifetime is set to
  300,000,000,000 s for 10 s (an expiry that overflows a datetime), then back;
- once, at 55 %, a full disk for 15 % of the run (at least 10 s): the WAL is checkpointed to
  nothing and a filler file takes every free block, then is deleted;
- SIGTERM, SIGINT or SIGHUP (a closed terminal) to `watch` every ~20 s (never while the disk is
  full), restarted once it exits: each must let the refreshes in flight finish and commit.

At the end, faults off: `watch` is stopped, `kiro-tui list --json` gives every status, and
`kiro-tui refresh --all --json` spends every stored refresh token once more. An account is
lost if either says needs-login: the emulator never revokes or expires anything here, so a
needs-login can only mean that kiro-tui spent a token and kept the old one. Goal: 0 lost.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.harness import EmulatorProcess, delete, get
from kiro_tui.core.models import Mode
from kiro_tui.core.places.kiro_cli_format import SCHEMA
from kiro_tui.core.store import AccountStore
from kiro_tui.demo import account_from_seed, write_kiro_cli_login

KINDS = ("social", "builder-id", "idc", "external-idp")
IDC_START_URL = "https://d-90675a1b2c.awsapps.com/start"
EXTERNAL_TOKEN_PATH = "/8f9e6d5c-0000-4000-8000-00000000e1d9/oauth2/v2.0/token"
REFRESH_PATHS = ("/refreshToken", "/token", EXTERNAL_TOKEN_PATH)
ABSURD_TTL = 300_000_000_000
LIMITED_ENGINE = """
import asyncio, sys, time
from pathlib import Path
from kiro_tui.core.aws.endpoints import Endpoints
from kiro_tui.core.clock import SystemClock
from kiro_tui.core.config import Settings
from kiro_tui.core.engine import Engine
from kiro_tui.core.store import AccountStore

async def main(store_path, db, seconds):
    store = AccountStore.open(Path(store_path))
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages}")  # the store can grow no more: a full disk
    print(f"limited to {pages} pages", flush=True)
    engine = Engine(store, Settings(), SystemClock(), Endpoints.from_env(), Path(db) if db else None)
    await engine.start()
    engine.scheduler.keep_results = True
    task = asyncio.create_task(engine.run())
    troubles = set()
    for _ in range(int(seconds * 10)):
        await asyncio.sleep(0.1)
        if engine.refresher.store_trouble:
            troubles.add(engine.refresher.store_trouble)
    held = len(engine.refresher.held)
    store._db.execute("PRAGMA max_page_count = 1073741823")  # room again: what is held is written now
    outcomes = [r.outcome.value for r in engine.scheduler.results]
    print(f"{len(outcomes)} refresh attempts ({', '.join(sorted(set(outcomes)))}), {held} tokens held in memory "
          f"at the end, store trouble seen: {'; '.join(troubles) or 'none'}", flush=True)
    left = await engine.stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await engine.close()
    store.close()
    print(f"stopped; abandoned {left}", flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
"""


@dataclass
class Faults:
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, n: int = 1) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + n


class Watch:
    """`kiro-tui watch` as a person runs it, restarted after every stop signal."""

    def __init__(self, exe: str, env: dict[str, str], logs: Path) -> None:
        self.exe, self.env, self.logs = exe, env, logs
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.waited_for_in_flight = 0

    def start(self) -> None:
        self.starts += 1
        log = (self.logs / f"watch-{self.starts:03d}.log").open("wb")
        self.process = subprocess.Popen([self.exe, "watch"], env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def stop(self, timeout: float = 60.0, signum: int = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(signum)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        text = (self.logs / f"watch-{self.starts:03d}.log").read_text(errors="replace")
        if "stopping: waiting for" in text:
            self.waited_for_in_flight += 1
        self.process = None
        return code


class FullDisk:
    """Every free block of the small file system taken by a filler file, until `release`."""

    def __init__(self, folder: Path, store: Path) -> None:
        self.folder, self.store = folder, store
        self.filler = folder / "filler"

    def fill(self) -> int:
        try:  # an empty WAL: the next commit needs new blocks (a WAL reuses the blocks it has)
            conn = sqlite3.connect(self.store, timeout=10)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.close()
        except sqlite3.Error:
            pass
        written = 0
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for size in (1 << 20, 1 << 16, 1 << 12, 512):
                chunk = b"\0" * size
                while True:
                    try:
                        written += os.write(fd, chunk)
                    except OSError:
                        break
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)
        return written

    def release(self) -> None:
        self.filler.unlink(missing_ok=True)


def mount_small_fs(folder: Path, size_mb: int = 8) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", str(folder)],
                          capture_output=True)
    return done.returncode == 0


def seed(emulator: EmulatorProcess, count: int, data: Path, store_path: Path) -> tuple[Path, list[str]]:
    """Logins in the emulator; two in a kiro-cli database (sync), the rest straight in the store."""
    db = data / "kiro-cli" / "data.sqlite3"
    db.parent.mkdir(parents=True, mode=0o700)
    conn = sqlite3.connect(db)
    conn.executescript(SCHEMA)
    conn.close()
    accounts = []
    emails = []
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        spec: dict[str, object] = {"kind": kind, "email": f"soak{i:03d}@example.com",
                                   "expires_in": 600 + (i * 37) % 60}  # come due spread over the first minute
        if kind == "idc":
            spec.update(start_url=IDC_START_URL, region="us-east-1")
        seeded = emulator.control("accounts", spec)
        emails.append(str(spec["email"]))
        if i in (0, 2):  # one social, one Identity Center login in kiro-cli: imported, sync mode
            write_kiro_cli_login(db, seeded)
        else:
            accounts.append(account_from_seed(seeded, f"{0x50000000 + i:08x}", Mode.OWN))
    with AccountStore.open(store_path) as store, store.transaction() as tx:
        for account in accounts:
            store.save(account, tx)
    return db, emails


def refresh_calls(log: list[dict]) -> dict[str, int]:
    """What the emulator saw on its refresh endpoints: rotations done, and each failure kind."""
    seen: dict[str, int] = {}
    for entry in log:
        path, status = entry.get("path"), entry.get("status")
        if path not in REFRESH_PATHS or (path == "/token" and entry.get("grant_type") not in (None, "refresh_token")):
            continue
        key = "rotated" if status == 200 else str(status)
        seen[key] = seen.get(key, 0) + 1
    return seen


def lineage_size(store: Path) -> int:
    """Refresh tokens kiro-tui has held for its accounts (fingerprints): one more per rotation it kept."""
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute("SELECT count(*) FROM lineage").fetchone()[0]
    finally:
        conn.close()


def run_cli(exe: str, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    done = subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout, done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=50)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--token-ttl", type=int, default=120)
    parser.add_argument("--latency-ms", type=int, default=1000)
    parser.add_argument("--full-disk", choices=("auto", "mount", "pragma", "off"), default="auto")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs) and print its path")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    exe = str(Path(sys.executable).parent / "kiro-tui")
    duration = args.minutes * 60
    faults = Faults()
    notes: list[str] = []

    tmp = Path(tempfile.mkdtemp(prefix="kiro-soak-"))
    data = tmp / "data"
    mounted = False
    how_full = args.full_disk
    if how_full in ("auto", "mount"):
        mounted = mount_small_fs(data)
        if not mounted and how_full == "mount":
            raise SystemExit("cannot mount a tmpfs here (not root?); use --full-disk pragma")
        how_full = "mount" if mounted else "pragma"
    data.mkdir(exist_ok=True)
    (tmp / "logs").mkdir()
    store_path = data / "kiro-tui" / "accounts.db"
    watch: Watch | None = None
    limited: subprocess.Popen[str] | None = None
    disk = FullDisk(data, store_path)
    try:
        with EmulatorProcess("--token-ttl", str(args.token_ttl)) as emulator:
            env = {**os.environ, "XDG_DATA_HOME": str(data), "XDG_CONFIG_HOME": str(tmp / "config"),
                   "XDG_STATE_HOME": str(tmp / "state"), "XDG_CACHE_HOME": str(tmp / "cache"),
                   "HOME": str(tmp / "home"), "KIRO_TUI_ENDPOINT_URL": emulator.url}
            db, _ = seed(emulator, args.accounts, data, store_path)
            code, out, err = run_cli(exe, env, "import", "--json")
            assert code == 0, (out, err)
            emulator.control("config", {"rotation_grace": 0})
            emulator.control("faults", {"latency_ms": args.latency_ms})
            delete(f"{emulator.url}/_emulator/requests")
            tokens_before = lineage_size(store_path)

            watch = Watch(exe, env, tmp / "logs")
            watch.start()
            started = time.monotonic()
            absurd_at, absurd_until = 0.35 * duration, 0.35 * duration + 10
            full_at = 0.55 * duration
            full_for = max(10.0, 0.15 * duration)
            next_fault = started + rng.uniform(3, 8)
            next_term = started + rng.uniform(12, 25)
            absurd_state = "before"
            full_state = "before"
            while (now := time.monotonic()) - started < duration:
                elapsed = now - started
                if absurd_state == "before" and elapsed >= absurd_at:
                    emulator.control("config", {"token_ttl": ABSURD_TTL})
                    absurd_state = "on"
                    faults.add("absurd expiry window (token_ttl 3e11 s for 10 s)")
                elif absurd_state == "on" and elapsed >= absurd_until:
                    emulator.control("config", {"token_ttl": args.token_ttl})
                    absurd_state = "done"
                if full_state == "before" and elapsed >= full_at and how_full != "off":
                    if how_full == "mount":
                        taken = disk.fill()
                        notes.append(f"disk filled at {elapsed:.0f} s ({taken // 1024} KiB filler) "
                                     f"for {full_for:.0f} s")
                    else:
                        watch.stop()
                        limited = subprocess.Popen([sys.executable, "-c", LIMITED_ENGINE, str(store_path), str(db),
                                                    str(full_for)], env=env, stdout=subprocess.PIPE, text=True)
                        notes.append(f"store limited to its size (max_page_count) at {elapsed:.0f} s "
                                     f"for {full_for:.0f} s")
                    faults.add(f"full disk ({how_full})")
                    full_state = "on"
                elif full_state == "on" and elapsed >= full_at + full_for:
                    if how_full == "mount":
                        disk.release()
                    else:
                        assert limited is not None
                        out, _ = limited.communicate(timeout=120)
                        notes.extend(f"limited engine: {line}" for line in out.strip().splitlines())
                        watch.start()
                    full_state = "done"
                if now >= next_fault:
                    kind = rng.choice(("5xx", "timeout", "reset", "malformed"))
                    path = rng.choice(REFRESH_PATHS)
                    if kind == "5xx":
                        n = rng.randint(1, 3)
                        emulator.control("faults", {"path": path, "status": rng.choice((500, 502, 503)), "count": n})
                    elif kind == "timeout":
                        n = 1
                        emulator.control("faults", {"path": path, "kind": "timeout", "seconds": 20, "count": n})
                    elif kind == "reset":
                        n = rng.randint(1, 3)
                        emulator.control("faults", {"path": path, "kind": "reset", "count": n})
                    else:
                        n = rng.randint(1, 2)
                        emulator.control("faults", {"path": path, "kind": "malformed", "count": n})
                    faults.add(kind, n)
                    next_fault = now + rng.uniform(5, 11)
                near_full = full_state == "on" or (full_state == "before" and full_at - 3 <= elapsed)
                if now >= next_term and not near_full and watch.process is not None:
                    signum = rng.choice((signal.SIGTERM, signal.SIGINT, signal.SIGHUP))
                    watch.stop(signum=signum)
                    faults.add(f"{signal.Signals(signum).name} to watch")
                    watch.start()
                    next_term = time.monotonic() + rng.uniform(15, 25)
                time.sleep(0.2)
            if full_state == "on":  # a run shorter than the schedule
                if how_full == "mount":
                    disk.release()
                elif limited is not None:
                    limited.communicate(timeout=120)
                    watch.start()
            if absurd_state == "on":
                emulator.control("config", {"token_ttl": args.token_ttl})
            if watch.process is not None:
                watch.stop()
            calls = refresh_calls(get(f"{emulator.url}/_emulator/requests"))  # type: ignore[arg-type]
            kept = lineage_size(store_path) - tokens_before

            delete(f"{emulator.url}/_emulator/faults")
            code, out, err = run_cli(exe, env, "list", "--json")
            listed = json.loads(out)
            needs_login_listed = sorted(a["id"] for a in listed if a["status"] == "needs-login")
            held_or_pending = sum(1 for a in listed if a.get("sync_error"))
            far = sum(1 for a in listed if (a.get("expires_in_seconds") or 0) > 10 * 365 * 86400)
            code, out, err = run_cli(exe, env, "refresh", "--all", "--json")
            final = json.loads(out) if out.strip() else []
            lost_final = sorted(r["id"] for r in final if r["status"] == "needs-login")
            not_refreshed = sorted(r["id"] for r in final if r["outcome"] not in ("refreshed", "adopted"))
            logs = "".join(p.read_text(errors="replace") for p in sorted((tmp / "logs").glob("*.log")))
    finally:
        if watch is not None and watch.process is not None and watch.process.poll() is None:
            watch.process.kill()
            watch.process.wait()
        if limited is not None and limited.poll() is None:
            limited.kill()
            limited.wait()
        disk.release()
        if mounted:
            subprocess.run(["umount", str(data)], check=False)
        if args.keep:
            print(f"kept: {tmp}")
        else:
            subprocess.run(["rm", "-rf", str(tmp)], check=False)

    lost = sorted(set(needs_login_listed) | set(lost_final))
    print(f"accounts:            {args.accounts} ({', '.join(KINDS)}; 2 in kiro-cli, sync mode), strict rotation, "
          f"token lifetime {args.token_ttl} s, latency {args.latency_ms} ms")
    print(f"duration:            {args.minutes:g} min of `kiro-tui watch`, started {watch.starts} times")
    full = "a real one: an 8 MB tmpfs filled to the last block" if how_full == "mount" else how_full
    print(f"full disk:           {full}")
    for note in notes:
        print(f"                     {note}")
    print(f"refreshes done:      {kept} (new refresh tokens kiro-tui committed); the emulator answered "
          f"{calls.get('rotated', 0)} refresh calls with 200, {faults.counts.get('malformed', 0)} of the injected "
          "ones among them at most (a truncated 200 rotates nothing)")
    print("faults injected:     " + ", ".join(f"{n} {kind}" for kind, n in faults.counts.items()))
    print(f"                     {watch.waited_for_in_flight} of the stop signals found refreshes in flight "
          "(watch waited)")
    print("refresh calls that failed at the emulator: "
          + (", ".join(f"{n} {kind}" for kind, n in calls.items() if kind != "rotated") or "none")
          + " (a fault not met by any request before the end is not counted here)")
    print("what watch logged:   " + ", ".join(f"{logs.count(word)} x {word!r}" for word in (
        "held in memory", "disk full", "out of range; assumed", "needs login", "OverflowError",
        "kiro-tui: internal error", "Traceback")))
    print(f"after the run:       {len(needs_login_listed)} needs-login in `list`; {held_or_pending} with a sync error; "
          f"{far} expiring more than 10 years out (absurd expiries kept); "
          f"final `refresh --all`: {len(final) - len(not_refreshed)} of {len(final)} refreshed"
          + (f", not: {', '.join(not_refreshed)}" if not_refreshed else ""))
    print(f"accounts lost:       {len(lost)}  (goal 0){': ' + ', '.join(lost) if lost else ''}")


if __name__ == "__main__":
    main()
