"""Bulk import: N places imported one after another into one store (each a `kiro-tui import
--from KIND --path FILE` of a single login, the engine's own import with its durable commit,
in this process), timed one by one.

    python -m benchmarks.import_bulk [--accounts 1000]

Goal: linear, the last imports no slower than the first (± noise): an import costs what it
imports, not what the store already holds. The places are the tools' files of
benchmarks.harness.write_places (kiro-cli databases, CLIProxyAPI, AIClient-2-API, kiro-gateway).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from itertools import zip_longest
from pathlib import Path

from benchmarks.harness import offline_logins, write_places
from kiro_tui.core.aws.endpoints import Endpoints
from kiro_tui.core.clock import SystemClock
from kiro_tui.core.config import Settings
from kiro_tui.core.engine import Engine
from kiro_tui.core.imports import place_files
from kiro_tui.core.store import AccountStore


async def import_one_by_one(store: AccountStore, files: list[tuple[str, Path]]) -> list[float]:
    engine = Engine(store, Settings(), SystemClock(), Endpoints(override="http://127.0.0.1:9"), None)
    times = []
    for kind, path in files:
        started = time.perf_counter()
        await engine.import_now(path, kind)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--window", type=int, default=100, help="imports in the first and last groups compared")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        targets = write_places(Path(tmp) / "places", offline_logins(args.accounts))
        by_kind: dict[str, list[tuple[str, Path]]] = {}
        for kind, path in targets:
            by_kind.setdefault(kind, []).extend(place_files(kind, path))
        files = [file for group in zip_longest(*by_kind.values()) for file in group if file is not None]
        with AccountStore.open(Path(tmp) / "accounts.db") as store:
            times = asyncio.run(import_one_by_one(store, files))
            assert len(store.accounts()) == args.accounts
    first, last = times[:args.window], times[-args.window:]
    print(f"imports:  {len(times)} one after another, each one login (durable commits)")
    print(f"first {args.window}: median {statistics.median(first) * 1000:.1f} ms")
    print(f"last {args.window}:  median {statistics.median(last) * 1000:.1f} ms")
    print(f"ratio last / first: {statistics.median(last) / statistics.median(first):.2f}  (goal ≈ 1)")


if __name__ == "__main__":
    main()
