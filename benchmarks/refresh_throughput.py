"""How fast the refresh engine gets through a pile of due accounts.

1,000 accounts, all due, refreshed by the real scheduler (concurrency 16) against the
emulator running in its own process with 100 ms of latency on every response. The floor for
this is N x RTT / concurrency; the ratio says how close the engine comes to it.

    python benchmarks/refresh_throughput.py [--accounts 1000] [--latency-ms 100] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

from kiro_tui.core.aws.endpoints import Endpoints
from kiro_tui.core.aws.transport import make_http_client
from kiro_tui.core.clock import SystemClock
from kiro_tui.core.config import Settings
from kiro_tui.core.models import Account, AuthMethod, Mode
from kiro_tui.core.refresh import RefreshClients, Refresher
from kiro_tui.core.scheduler import RefreshScheduler
from kiro_tui.core.store import AccountStore
from kiro_tui.core.timefmt import parse_timestamp


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


async def run(store: AccountStore, url: str, concurrency: int, total: int) -> float:
    settings = replace(Settings(), concurrency=concurrency)
    clock = SystemClock()
    async with make_http_client() as http:
        refresher = Refresher(store, RefreshClients.create(http, Endpoints(override=url)), clock, settings)
        scheduler = RefreshScheduler(store, refresher, clock, settings)
        scheduler.keep_results = True
        started = time.perf_counter()
        task = asyncio.create_task(scheduler.run())
        while len(scheduler.results) < total:
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    outcomes = {r.outcome for r in scheduler.results}
    assert outcomes == {"refreshed"}, outcomes
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    emulator = subprocess.Popen([sys.executable, "-m", "kiro_tui", "emulator", "--port", "0"],
                                stdout=subprocess.PIPE, text=True)
    try:
        url = emulator.stdout.readline().split()[-1]  # type: ignore[union-attr]
        with tempfile.TemporaryDirectory() as tmp:
            with AccountStore.open(Path(tmp) / "accounts.db") as store:
                for i in range(args.accounts):
                    seeded = post(f"{url}/_emulator/accounts", {"kind": "social", "email": f"b{i}@example.com",
                                                                "expires_in": 60})
                    token = seeded["token"]
                    store.save(Account(id=f"{i:08x}", auth_method=AuthMethod.SOCIAL, mode=Mode.OWN,
                                       access_token=token["access_token"], refresh_token=token["refresh_token"],
                                       expires_at=parse_timestamp(token["expires_at"]), label=f"bench {i}"))
                post(f"{url}/_emulator/faults", {"latency_ms": args.latency_ms})
                elapsed = asyncio.run(run(store, url, args.concurrency, args.accounts))
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
    bound = args.accounts * (args.latency_ms / 1000) / args.concurrency
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"accounts:          {args.accounts}")
    print(f"latency per call:  {args.latency_ms} ms, concurrency {args.concurrency}")
    print(f"elapsed:           {elapsed:.2f} s")
    print(f"latency bound:     {bound:.2f} s  (N x RTT / concurrency)")
    print(f"ratio:             {elapsed / bound:.2f}")
    print(f"peak RSS:          {peak_rss_mb:.1f} MB (this process; the emulator runs apart)")


if __name__ == "__main__":
    main()
