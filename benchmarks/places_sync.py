"""What writing its linked places adds to a refresh.

200 accounts, each linked to 3 places (the Kiro IDE's token file, a CLIProxyAPI auth file and a
gateway-db database, each account's three in a folder of its own), refreshed once through the
engine against the emulator running in its own process (no added latency); and 200 accounts
with no links, refreshed the same way (the two sets in alternating batches of 20, so the machine's
drift falls on both alike). Prints the time one place write takes (median and p95,
per kind), the time one refresh takes with and without its links (the difference is what the
places cost), and where a JSON place write spends its time (its two fsyncs). Goal: <= 5 ms
median per place.

    python -m benchmarks.places_sync [--accounts 200] [--concurrency 1] [--dir PATH]

`--concurrency 1` (the default) times each refresh alone; the engine's own 8 shows the same
work under contention. `--dir` puts the files on another file system (default: a temporary
folder).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from benchmarks.harness import LINKS, link_places
from kiro_tui.core.aws.endpoints import Endpoints
from kiro_tui.core.aws.transport import make_http_client
from kiro_tui.core.clock import SystemClock
from kiro_tui.core.config import Settings
from kiro_tui.core.engine import Engine
from kiro_tui.core.models import Account, AuthMethod, Mode
from kiro_tui.core.places import FORMATS
from kiro_tui.core.store import AccountStore
from kiro_tui.core.timefmt import parse_timestamp


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


def seed_accounts(store: AccountStore, url: str, count: int, prefix: str) -> list[str]:
    ids = []
    for i in range(count):
        token = post(f"{url}/_emulator/accounts", {"kind": "social", "email": f"{prefix}{i}@example.com",
                                                   "expires_in": 3600})["token"]
        account_id = f"{prefix}{i:06x}"
        store.save(Account(id=account_id, auth_method=AuthMethod.SOCIAL, mode=Mode.OWN, provider="github",
                           access_token=token["access_token"], refresh_token=token["refresh_token"],
                           profile_arn=token.get("profile_arn"), expires_at=parse_timestamp(token["expires_at"]),
                           label=f"bench {prefix}{i}"))
        ids.append(account_id)
    return ids


class Timings:
    """Durations recorded by wrappers around the code being measured (seconds)."""

    def __init__(self) -> None:
        self.places: dict[str, list[float]] = {kind: [] for kind in LINKS}
        self.records: list[float] = []
        self.refreshes: list[float] = []
        self.fsyncs: list[float] = []
        self.passes: list[float] = []
        self.elapsed = 0.0
        self.recording = False

    def wrap_writes(self) -> None:
        for kind in LINKS:
            fmt = FORMATS[kind]
            fmt.write_token = self.timed(fmt.write_token, self.places[kind])  # type: ignore[method-assign]

    def wrap_fsync(self) -> None:
        os.fsync = self.timed(os.fsync, self.fsyncs)  # what atomic_write calls (SQLite fsyncs in C)

    def timed(self, call: Callable, into: list[float]) -> Callable:  # type: ignore[type-arg]
        def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
            started = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                if self.recording:
                    into.append(time.perf_counter() - started)
        return timed

    def timed_async(self, call: Callable, into: list[float]) -> Callable:  # type: ignore[type-arg]
        async def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
            started = time.perf_counter()
            try:
                return await call(*args, **kwargs)
            finally:
                if self.recording:
                    into.append(time.perf_counter() - started)
        return timed


async def make_engine(store: AccountStore, url: str, http, concurrency: int, timings: Timings) -> Engine:  # type: ignore[no-untyped-def]
    engine = Engine(store, replace(Settings(), concurrency=concurrency), SystemClock(), Endpoints(override=url), None,
                    http=http, fetch_usage=False)
    await engine.start()
    refresher = engine.refresher
    assert refresher is not None
    refresher.refresh = timings.timed_async(refresher.refresh, timings.refreshes)  # type: ignore[method-assign]
    refresher.places._record_place = timings.timed(refresher.places._record_place, timings.records)  # type: ignore[method-assign]
    return engine


async def refresh_batch(engine: Engine, ids: list[str], timings: Timings) -> None:
    timings.recording = True
    started = time.perf_counter()
    results = await engine.refresh_now(ids)
    timings.elapsed += time.perf_counter() - started
    timings.recording = False
    outcomes = {r.outcome for r in results}
    assert outcomes == {"refreshed"}, outcomes


async def run(plain_store: AccountStore, linked_store: AccountStore, url: str, plain_ids: list[str],
              linked_ids: list[str], concurrency: int, plain: Timings, linked: Timings, link_root: Path,
              batch: int) -> None:
    """Both sets refreshed in alternating batches, so the machine's drift falls on both alike."""
    async with make_http_client() as http:
        without = await make_engine(plain_store, url, http, concurrency, plain)
        with_links = await make_engine(linked_store, url, http, concurrency, linked)
        for account_id in linked_ids:
            await link_places(with_links, account_id, link_root / account_id)
        for start in range(0, len(plain_ids), batch):
            await refresh_batch(without, plain_ids[start:start + batch], plain)
            await refresh_batch(with_links, linked_ids[start:start + batch], linked)
        refresher = with_links.refresher
        assert refresher is not None
        await refresher.adopt_from_changed_places()  # the first look learns how every place looks
        for _ in range(5):  # then each watch pass stats them all and finds nothing changed
            started = time.perf_counter()
            await refresher.adopt_from_changed_places()
            linked.passes.append(time.perf_counter() - started)
    states = {p.state.value for p in linked_store.places()}
    assert states == {"in-sync"} and len(linked_store.places()) == len(linked_ids) * len(LINKS), states


def ms(values: list[float], q: float) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000:.2f}"


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--dir", type=Path, default=None, help="where the stores and place files go")
    parser.add_argument("--batch", type=int, default=20, help="accounts per batch (the two sets alternate)")
    args = parser.parse_args()

    emulator = subprocess.Popen([sys.executable, "-m", "kiro_tui", "emulator", "--port", "0"],
                                stdout=subprocess.PIPE, text=True)
    try:
        url = emulator.stdout.readline().split()[-1]  # type: ignore[union-attr]
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            root = Path(tmp)
            plain, linked = Timings(), Timings()
            linked.wrap_writes()
            linked.wrap_fsync()
            with AccountStore.open(root / "plain" / "accounts.db") as plain_store, \
                    AccountStore.open(root / "linked" / "accounts.db") as linked_store:
                plain_ids = seed_accounts(plain_store, url, args.accounts, "p")
                linked_ids = seed_accounts(linked_store, url, args.accounts, "l")
                asyncio.run(run(plain_store, linked_store, url, plain_ids, linked_ids, args.concurrency, plain,
                                linked, root / "places", args.batch))
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)

    writes = [t for kind in LINKS for t in linked.places[kind]]
    json_writes = len(linked.places["kiro-ide"]) + len(linked.places["cliproxy"])
    extra = median_ms(linked.refreshes) - median_ms(plain.refreshes)
    print(f"accounts:              {args.accounts} x {len(LINKS)} links ({', '.join(LINKS)}), "
          f"concurrency {args.concurrency}, files under {args.dir or tempfile.gettempdir()}")
    print(f"place writes:          {len(writes)}; median {median_ms(writes):.2f} ms, p95 {ms(writes, 0.95)} ms "
          f"(goal <= 5 ms median)")
    for kind in LINKS:
        times = linked.places[kind]
        print(f"  {kind:<11}          median {median_ms(times):.2f} ms, p95 {ms(times, 0.95)} ms")
    print(f"refresh, no links:     median {median_ms(plain.refreshes):.2f} ms, p95 {ms(plain.refreshes, 0.95)} ms; "
          f"all {args.accounts} in {plain.elapsed:.2f} s")
    print(f"refresh, 3 links:      median {median_ms(linked.refreshes):.2f} ms, p95 {ms(linked.refreshes, 0.95)} ms; "
          f"all {args.accounts} in {linked.elapsed:.2f} s")
    print(f"extra per refresh:     {extra:.2f} ms median ({extra / len(LINKS):.2f} ms per place); "
          f"{(linked.elapsed - plain.elapsed) / args.accounts * 1000:.2f} ms per refresh in wall time")
    print(f"  of which writing:    {sum(writes) / args.accounts * 1000:.2f} ms per refresh (mean of the place writes)")
    print(f"  and recording:       {sum(linked.records) / args.accounts * 1000:.2f} ms per refresh (each place's "
          f"state in the store; median {median_ms(linked.records):.2f} ms a place)")
    print(f"watch pass, {len(writes)} places unchanged: median {median_ms(linked.passes):.2f} ms "
          f"(a stat of each, to notice a tool's own refresh)")
    if json_writes:
        per_write = sum(linked.fsyncs) / json_writes * 1000
        print(f"fsync (JSON places):   {len(linked.fsyncs)} calls, median {median_ms(linked.fsyncs):.2f} ms, "
              f"{per_write:.2f} ms per JSON place write (temporary file + folder)")


if __name__ == "__main__":
    main()
