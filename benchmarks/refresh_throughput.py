"""How fast the refresh engine gets through a pile of due accounts, against the same HTTP client
making the same calls with no store.

N accounts imported the way people get them (each login written into a tool's file, in turn
kiro-cli, CLIProxyAPI, AIClient-2-API, kiro-gateway, and imported from there in sync mode, so
every refresh also writes its place back), all due, refreshed by the real scheduler
(concurrency 16) against the emulator in its own process with 100 ms of latency on every
response. Two floors: N x RTT / concurrency, and the same refresh calls made by the same HTTP
client at the same concurrency with nothing stored (other logins, since each refresh token can
be spent once). Goals (issue 24): ≤ 1.05× the bare client, ≤ 1.10× N x RTT / c; with
`--links 3` (each account also linked to a Kiro IDE file, a CLIProxyAPI folder and a gateway-db
database of its own, all written after every refresh) ≤ 1.15×.

Every file goes under TMPDIR: the file system there decides what a place write costs (on this
machine's root, an ext4 with no journal, about 1 ms of the kernel's CPU a file in finding a free
inode; on a journaled ext4, the wait for its commit). The output names it, and gives the CPU the
run took (this process's, and how busy the machine was: the emulator shares it).

    python -m benchmarks.refresh_throughput [--accounts 1000] [--latency-ms 100] [--concurrency 16] [--links 0-3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from benchmarks.harness import (
    LINKS,
    EmulatorProcess,
    build_imported_store,
    emulator_logins,
    link_places,
    process_cpu,
    status_kb,
)
from kiro_tui.core.aws.endpoints import Endpoints
from kiro_tui.core.aws.transport import make_http_client
from kiro_tui.core.clock import SystemClock
from kiro_tui.core.config import Settings
from kiro_tui.core.engine import Engine
from kiro_tui.core.refresh import RefreshClients, Refresher
from kiro_tui.core.scheduler import RefreshScheduler
from kiro_tui.core.store import AccountStore


def machine_ticks() -> list[int] | None:
    """The machine's CPU ticks so far (user, nice, system, idle, iowait, ...), where Linux says."""
    try:
        with open("/proc/stat") as stat:
            return [int(tick) for tick in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None


def file_system(path: Path) -> str:
    """The type of the file system holding `path`, where /proc/mounts says."""
    try:
        mounts = [line.split()[1:3] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return "unknown"
    where = str(path.resolve())
    found = max((m for m in mounts if where == m[0] or where.startswith(m[0].rstrip("/") + "/")),
                key=lambda m: len(m[0]), default=None)
    return f"{found[1]} at {found[0]}" if found else "unknown"


async def run(store: AccountStore, url: str, concurrency: int, total: int) -> tuple[float, str]:
    settings = replace(Settings(), concurrency=concurrency)
    clock = SystemClock()
    async with make_http_client() as http:
        refresher = Refresher(store, RefreshClients.create(http, Endpoints(override=url)), clock, settings)
        scheduler = RefreshScheduler(store, refresher, clock, settings)
        scheduler.keep_results = True
        started, cpu, ticks = time.perf_counter(), os.times(), machine_ticks()
        task = asyncio.create_task(scheduler.run())
        while len(scheduler.results) < total:
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
        cpu_after, ticks_after = os.times(), machine_ticks()
        worker = refresher.places.lane.worker
        try:
            worker_cpu = process_cpu(worker.pid) if worker is not None else None
            worker_rss = status_kb(worker.pid, "VmHWM") / 1024 if worker is not None else None
        except OSError:  # not Linux
            worker_cpu = worker_rss = None
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    outcomes = {r.outcome for r in scheduler.results}
    assert outcomes == {"refreshed"}, outcomes
    usage = (f"this process {cpu_after.user - cpu.user:.2f} s user + "
             f"{cpu_after.system - cpu.system:.2f} s system")
    if worker_cpu is not None:  # (started within the run: all it used is the run's)
        usage += (f"; its place writer process {worker_cpu[0]:.2f} s user + {worker_cpu[1]:.2f} s system"
                  + (f", peak RSS {worker_rss:.1f} MB" if worker_rss else ""))
    if ticks and ticks_after:
        spent = [after - before for before, after in zip(ticks, ticks_after, strict=True)]
        usage += f"; the machine {100 * (1 - (spent[3] + spent[4]) / sum(spent)):.0f} % busy"
    return elapsed, usage


async def link_all(store: AccountStore, url: str, links: int, root: Path) -> None:
    """Link every account to `links` places of its own, through the engine as `kiro-tui link` does."""
    async with make_http_client() as http:
        engine = Engine(store, Settings(), SystemClock(), Endpoints(override=url), None, http=http, fetch_usage=False)
        for account in store.accounts():
            await link_places(engine, account.id, root / account.id, LINKS[:links])
        await engine.close()


async def bare(url: str, concurrency: int, refresh_tokens: list[str]) -> tuple[float, float]:
    """The same refresh calls through the same client, `concurrency` at a time, nothing stored;
    the time they took and the CPU they used (user and system)."""
    async with make_http_client() as http:
        social = RefreshClients.create(http, Endpoints(override=url)).social
        limit = asyncio.Semaphore(concurrency)

        async def one(refresh_token: str) -> None:
            async with limit:
                await social.refresh(refresh_token)

        started, cpu = time.perf_counter(), os.times()
        await asyncio.gather(*(one(token) for token in refresh_tokens))
        after = os.times()
        return time.perf_counter() - started, after.user - cpu.user + after.system - cpu.system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--links", type=int, default=0, choices=range(len(LINKS) + 1),
                        help="places of its own each account is also linked to")
    args = parser.parse_args()

    with EmulatorProcess() as emulator, tempfile.TemporaryDirectory() as tmp:
        store_path = Path(tmp) / "accounts.db"
        build_imported_store(store_path, emulator_logins(emulator.url, args.accounts, prefix="b", expires_in=60),
                             places=Path(tmp) / "places")
        if args.links:
            with AccountStore.open(store_path) as store:
                asyncio.run(link_all(store, emulator.url, args.links, Path(tmp) / "links"))
        spare = [login.refresh_token for login in emulator_logins(emulator.url, args.accounts, prefix="f")]
        emulator.control("faults", {"latency_ms": args.latency_ms})
        floor, floor_cpu = asyncio.run(bare(emulator.url, args.concurrency, spare))
        with AccountStore.open(store_path) as store:
            elapsed, usage = asyncio.run(run(store, emulator.url, args.concurrency, args.accounts))
        where = file_system(Path(tmp))
    bound = args.accounts * (args.latency_ms / 1000) / args.concurrency
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"accounts:          {args.accounts} imported (each with its place, sync mode), "
          f"{args.links} more links each ({', '.join(LINKS[:args.links]) or 'none'})")
    print(f"latency per call:  {args.latency_ms} ms, concurrency {args.concurrency}")
    print(f"files on:          {where} (TMPDIR chooses)")
    print(f"kiro-tui:          {elapsed:.2f} s")
    print(f"bare client:       {floor:.2f} s  (the same calls, nothing stored)  "
          f"ratio {elapsed / floor:.3f}  (goal ≤ {1.15 if args.links else 1.05}); its CPU {floor_cpu:.2f} s")
    print(f"latency bound:     {bound:.2f} s  (N x RTT / concurrency)         "
          f"ratio {elapsed / bound:.3f}  (goal ≤ 1.10)")
    print(f"CPU in the run:    {usage}")
    print(f"peak RSS:          {peak_rss_mb:.1f} MB (this process; the emulator runs apart)")


if __name__ == "__main__":
    main()
