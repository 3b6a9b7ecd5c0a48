"""`kiro-tui list --json` with N imported accounts (each with its place), against plain Python
reading the same store: both as a fresh process, taking turns, median of the runs.

    python -m benchmarks.list_json [--accounts 1000] [--runs 7]

Goal: ratio ≤ 3. The first `list --json` after the import is timed on its own ("first"): a
place is read only when its file changed since it was last read, or since the import read it. Both write
into a pipe, so both print one compact line (as `list --json` does into a pipe), and kiro-tui's
bytecode is written first, as an install has it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import build_imported_store, compile_bytecode

FLOOR = """
import json, sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
places = {}
for row in conn.execute("SELECT * FROM places"):
    places.setdefault(row[1], []).append(row)
columns = [c[1] for c in conn.execute("PRAGMA table_info(accounts)")]
usage = {row[0]: row for row in conn.execute("SELECT * FROM usage")}
rows = [{**dict(zip(columns, row)), "usage": usage.get(row[0]), "places": places.get(row[0], [])}
        for row in conn.execute("SELECT * FROM accounts")]
print(json.dumps(rows, separators=(",", ":")))
"""


def timed(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{args[:3]} failed: {done.stderr.strip()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    compile_bytecode()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        store = data / "kiro-tui" / "accounts.db"
        store.parent.mkdir(parents=True)
        build_imported_store(store, args.accounts, places=Path(tmp) / "places")
        env = {**os.environ, "XDG_DATA_HOME": str(data), "XDG_CONFIG_HOME": str(Path(tmp) / "config"),
               "XDG_STATE_HOME": str(Path(tmp) / "state")}
        ours_command = [sys.executable, "-m", "kiro_tui", "list", "--json"]
        floor_command = [sys.executable, "-c", FLOOR, str(store)]
        first = timed(ours_command, env)
        ours, floor = [], []
        for run in range(args.runs):
            for name in ("ours", "floor") if run % 2 else ("floor", "ours"):
                if name == "ours":
                    ours.append(timed(ours_command, env))
                else:
                    floor.append(timed(floor_command, env))
    print(f"accounts:                 {args.accounts} imported (each with its place), runs: {args.runs}")
    print(f"first list --json:        {first * 1000:.0f} ms (the first after the import)")
    print(f"list --json:              median {statistics.median(ours) * 1000:.0f} ms "
          f"(min {min(ours) * 1000:.0f}, max {max(ours) * 1000:.0f})")
    print(f"plain Python, same store: median {statistics.median(floor) * 1000:.0f} ms "
          f"(min {min(floor) * 1000:.0f}, max {max(floor) * 1000:.0f})")
    print(f"ratio:                    {statistics.median(ours) / statistics.median(floor):.2f}  (goal ≤ 3)")


if __name__ == "__main__":
    main()
