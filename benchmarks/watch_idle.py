"""`kiro-tui watch` as a service, idle: CPU and peak RSS over 60 s with 1,000 accounts, nothing due.

    python -m benchmarks.watch_idle [--accounts 1000] [--seconds 60] [--no-usage] [--quota-never-fetched]

Goals (issue 22): at most 0.2 % of one core, at most 60 MB peak RSS.

Set up in a temporary folder, the way people get their accounts: `accounts` logins seeded in the
emulator (its own process, tokens valid an hour, so nothing comes due in the run), each in a
kiro-cli database of its own (kiro-cli keeps one login per database; the first at kiro-cli's
usual path), every one imported into kiro-tui's store in sync mode, so each account has its
place (the database it came from) that `watch` looks at every pass. Default settings otherwise
(a pass every 3 s; quota fetched a few accounts a pass, from the emulator: `--no-usage` turns
that off to see the bare passes). Quota figures are stored as a `watch` that has run for a while
leaves them, fetched over the last hour, one account every 3.6 s, so the run sees the steady
rate of quota calls; `--quota-never-fetched` sees the first hour instead (four calls a pass
until every account has figures).

Then the installed `kiro-tui watch` is started with that folder as its XDG folders; once it
says it is watching, and after a 10 s settling time (its first passes learn how every place
file looks), its CPU time (user + system, /proc/PID/stat) is read, again after `seconds`, and
its peak RSS (VmHWM, /proc/PID/status) at the end. Linux only.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.harness import EmulatorProcess, get, process_cpu, status_kb
from kiro_tui.core.importer import import_snapshot
from kiro_tui.core.models import Mode, UsageRecord
from kiro_tui.core.places.kiro_cli import read_kiro_cli
from kiro_tui.core.places.kiro_cli_format import SCHEMA
from kiro_tui.core.quota import HEADLESS_USAGE_MAX_AGE
from kiro_tui.core.store import AccountStore
from kiro_tui.demo import write_kiro_cli_login

SETTLE = 10.0
GOAL_CPU, GOAL_RSS_MB = 0.2, 60.0


def kiro_cli_databases(emulator: EmulatorProcess, data: Path, count: int) -> list[Path]:
    """One kiro-cli database per login, written as kiro-cli writes them; the first where kiro-cli keeps it."""
    paths = []
    for i in range(count):
        folder = data / "kiro-cli" if i == 0 else data / "other-machines" / f"{i:04d}"
        folder.mkdir(parents=True, mode=0o700)
        db = folder / "data.sqlite3"
        conn = sqlite3.connect(db)
        conn.executescript(SCHEMA)
        conn.close()
        seeded = emulator.control("accounts", {"kind": "social", "email": email_of(i)})
        write_kiro_cli_login(db, seeded)
        paths.append(db)
    return paths


def import_all(store_path: Path, databases: list[Path], quota_fetched: bool = False) -> int:
    """Import every database; with `quota_fetched`, leave what a watch running for the last hour
    leaves: quota figures fetched evenly over that hour, and the email each quota answer names
    (kiro-cli's social logins carry none; the first answer for an account stores it)."""
    now = datetime.now(UTC)
    with AccountStore.open(store_path) as store:
        emails = {}
        for i, db in enumerate(databases):
            report = import_snapshot(store, read_kiro_cli(db, now), now, Mode.SYNC)
            emails.update({login.id: email_of(i) for login in report.imported})
        if quota_fetched:
            spacing = HEADLESS_USAGE_MAX_AGE / max(1, len(databases))
            for i, account_id in enumerate(sorted(store.ids())):
                store.save_usage(account_id, UsageRecord(1.0, 50.0, None, "KIRO FREE", now - spacing * (i + 1)))
                store.update(account_id, email=emails[account_id])
        return len(store.ids())


def email_of(i: int) -> str:
    return f"idle{i:04d}@example.com"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--no-usage", action="store_true", help="fetch_usage = false")
    parser.add_argument("--quota-never-fetched", action="store_true",
                        help="no quota figures stored yet (a watch's first hour)")
    args = parser.parse_args()
    exe = str(Path(sys.executable).parent / "kiro-tui")
    with tempfile.TemporaryDirectory(prefix="kiro-tui-watch-idle-") as folder, EmulatorProcess() as emulator:
        root = Path(folder)
        env = {**os.environ, "HOME": str(root / "home"), "KIRO_TUI_ENDPOINT_URL": emulator.url}
        for name in ("DATA", "CONFIG", "STATE", "CACHE"):
            env[f"XDG_{name}_HOME"] = str(root / name.lower())
        data = root / "data"
        started = time.perf_counter()
        databases = kiro_cli_databases(emulator, data, args.accounts)
        count = import_all(data / "kiro-tui" / "accounts.db", databases, not args.quota_never_fetched)
        print(f"set up: {count:,} accounts imported from {len(databases):,} kiro-cli databases "
              f"in {time.perf_counter() - started:.0f} s")
        if args.no_usage:
            (root / "config" / "kiro-tui").mkdir(parents=True)
            (root / "config" / "kiro-tui" / "config.toml").write_text("fetch_usage = false\n")
        watch = subprocess.Popen([exe, "watch"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            assert watch.stderr is not None
            began = time.perf_counter()
            for line in watch.stderr:
                if "watching" in line:
                    break
            ready = time.perf_counter() - began
            time.sleep(SETTLE)
            requests_before = len(get(f"{emulator.url}/_emulator/requests"))  # type: ignore[arg-type]
            cpu_start, wall_start = sum(process_cpu(watch.pid)), time.perf_counter()
            startup_cpu = cpu_start
            time.sleep(args.seconds)
            cpu = sum(process_cpu(watch.pid)) - cpu_start
            wall = time.perf_counter() - wall_start
            peak_mb = status_kb(watch.pid, "VmHWM") / 1024
            rss_mb = status_kb(watch.pid, "VmRSS") / 1024
            calls = len(get(f"{emulator.url}/_emulator/requests")) - requests_before  # type: ignore[arg-type]
        finally:
            watch.terminate()
            watch.wait(30)
    share = 100 * cpu / wall
    print(f"watch ready in {ready:.1f} s (CPU {startup_cpu:.2f} s to start and settle)")
    quota = "off" if args.no_usage else ("on, never fetched" if args.quota_never_fetched else "on, steady")
    print(f"idle {wall:.0f} s, {count:,} accounts, nothing due, usage {quota} "
          f"({calls} calls to the emulator):")
    print(f"  CPU      {cpu:.2f} s = {share:.2f} % of one core   (goal <= {GOAL_CPU} %: "
          f"{'met' if share <= GOAL_CPU else 'NOT met'})")
    print(f"  peak RSS {peak_mb:.1f} MB (now {rss_mb:.1f} MB)      (goal <= {GOAL_RSS_MB:.0f} MB: "
          f"{'met' if peak_mb <= GOAL_RSS_MB else 'NOT met'})")


if __name__ == "__main__":
    main()
