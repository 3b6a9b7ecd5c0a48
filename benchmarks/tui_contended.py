"""The TUI refreshing while another process holds the store's write lock: how long its event
loop stalls.

    python -m benchmarks.tui_contended [--accounts 1000] [--latency-ms 100] [--lock-seconds 3] [--lock-after 2]

The TUI (headless driver, 150x40) is open on `accounts` accounts that all come due at once
(see benchmarks/tui_burst.py; emulator in its own process, `latency-ms` per response,
concurrency 16). `lock-after` seconds into that burst, another process (a plain `python`
with sqlite3) takes the store's write lock with BEGIN IMMEDIATE and holds it `lock-seconds`.

Printed: the worst and 99th-percentile stall of the app's loop while the lock is held (and
half a second after), against the same length of burst just before the lock; how many
refreshes reached the store while the lock was held (none can: it shows the engine really
waited); and the time until all were refreshed. Goal: worst stall ≤ 50 ms (the issue
measured ≥ 2 s before the engine moved to its own thread).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from benchmarks.harness import (
    EmulatorProcess,
    LoopStallMonitor,
    StoreProgress,
    burst_app,
    describe_stalls,
    percentile,
    seed_accounts,
    until_loaded,
    where_stalled,
    write_store,
)
from benchmarks.tui_burst import due_together, sleep_until
from benchmarks.tui_startup import SIZE
from kiro_tui.core.config import Settings

HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
print("released", flush=True)
"""


async def run(store_path: Path, url: str, settings: Settings, total: int, due_at: float, lock_after: float,
              lock_seconds: float) -> dict[str, object]:
    app = burst_app(store_path, url, settings)
    monitor = LoopStallMonitor()
    result: dict[str, object] = {}
    with StoreProgress(store_path, total) as progress:
        async with app.run_test(size=SIZE), monitor:
            await until_loaded(app, total)
            await sleep_until(due_at + lock_after)
            holder = await asyncio.create_subprocess_exec(
                sys.executable, "-c", HOLDER, str(store_path), str(lock_seconds), stdout=asyncio.subprocess.PIPE)
            assert holder.stdout is not None
            assert (await holder.stdout.readline()).strip() == b"locked"
            locked = time.perf_counter()
            assert (await holder.stdout.readline()).strip() == b"released"
            released = time.perf_counter()
            await holder.wait()
            result["during"] = (locked, released + 0.5)
            result["before"] = (locked - (released + 0.5 - locked), locked)
            result["committed_while_locked"] = progress.at(released) - progress.at(locked + 0.1)
            result["done_before_lock"] = progress.at(locked)
            result["store"] = await progress.wait(timeout=900) - due_at
            await asyncio.sleep(0.5)
    result["monitor"] = monitor
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--lock-seconds", type=float, default=3.0)
    parser.add_argument("--lock-after", type=float, default=2.0, help="seconds into the burst")
    parser.add_argument("--lead", type=float, default=8.0, help="seconds from start until everything is due")
    args = parser.parse_args()
    settings = replace(Settings(), concurrency=args.concurrency)
    with EmulatorProcess() as emulator, tempfile.TemporaryDirectory() as tmp:
        accounts = seed_accounts(emulator.url, args.accounts, prefix="c")
        emulator.control("faults", {"latency_ms": args.latency_ms})
        accounts, due_at = due_together(accounts, settings, args.lead)
        write_store(Path(tmp) / "accounts.db", accounts)
        result = asyncio.run(run(Path(tmp) / "accounts.db", emulator.url, settings, args.accounts, due_at,
                                 args.lock_after, args.lock_seconds))
    monitor: LoopStallMonitor = result["monitor"]  # type: ignore[assignment]
    during = monitor.window(*result["during"])  # type: ignore[misc]
    before = monitor.window(*result["before"])  # type: ignore[misc]
    worst = max((b.late for b in during), default=0.0)
    print(f"accounts:            {args.accounts}, all due at once; emulator latency {args.latency_ms} ms; "
          f"concurrency {args.concurrency}")
    print(f"another process held the store's write lock {args.lock_seconds:g} s, from {args.lock_after:g} s into "
          f"the burst ({result['done_before_lock']} refreshed by then)")
    print(f"refreshes that reached the store while it was locked: {result['committed_while_locked']}")
    print("stalls of the app's loop (wake-ups of a task sleeping 10 ms):")
    print(f"  while locked:      worst {worst * 1000:.0f} ms  (goal ≤ 50 ms), "
          f"p99 {percentile([b.late for b in during], 99) * 1000:.0f} ms")
    print(f"                     {describe_stalls(during)}")
    for line in where_stalled(monitor, *result["during"]):  # type: ignore[misc]
        print(f"    a long one:      {line}")
    print(f"  just before, same length, refreshing unlocked: {describe_stalls(before)}")
    print(f"all refreshed {result['store']:.2f} s after the due moment")


if __name__ == "__main__":
    main()
