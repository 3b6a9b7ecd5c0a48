"""The issue-19 full disk under a one-shot `kiro-tui refresh --all`: run inside `unshare -m` (a
private mount namespace), so the small tmpfs that holds the store exists for this process and its
children only. The kiro-cli databases (one login each, sync mode) are on the real disk, with room.

Usage: python tests/support/full_disk_rescue.py ROOT EMULATOR_URL KIRO_TUI_EXE DB...
                [--state-on-full-disk] [--reader]
The disk fills up once ROOT/arrived exists (the test makes it when a refresh request reached the
emulator, whose latency keeps every answer on the wire meanwhile). Prints one JSON object: what
each step said and its exit code, and what the rescue folders held.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx


def run(exe: str, env: dict[str, str], *args: str) -> dict[str, object]:
    done = subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=240)
    return {"code": done.returncode, "out": done.stdout, "err": done.stderr}


def imported(env: dict[str, str], dbs: list[str]) -> list[int]:
    """Each database imported by `kiro-tui import --db`, run in this process: the imports only set
    the scene (twelve processes of their own cost 2 s of CPU a run), the steps after them are the test."""
    import contextlib
    import io

    from kiro_tui.cli import main as kiro_tui

    os.environ.update(env)
    with contextlib.redirect_stdout(io.StringIO()):
        return [kiro_tui(["import", "--db", db]) for db in dbs]


def main(root: Path, url: str, exe: str, dbs: list[str], state_on_full_disk: bool,
         with_reader: bool) -> dict[str, object]:
    full = root / "full"
    full.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(full)], check=True)
    env = {**os.environ, "XDG_DATA_HOME": str(full / "data"), "XDG_CONFIG_HOME": str(root / "config"),
           "XDG_STATE_HOME": str((full if state_on_full_disk else root) / "state"), "HOME": str(root),
           "KIRO_TUI_ENDPOINT_URL": url}
    env.pop("XDG_RUNTIME_DIR", None)  # the runtime folder is the host's: not part of this test
    steps: dict[str, object] = {"imports": imported(env, dbs)}
    reader = None
    if with_reader:  # another kiro-tui reading the store (a TUI, a `list`): no checkpoint can give space back
        reader = sqlite3.connect(full / "data" / "kiro-tui" / "accounts.db", isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM accounts").fetchall()
    httpx.post(f"{url}/_emulator/faults", json={"latency_ms": 3000})
    refresh = subprocess.Popen([exe, "refresh", "--all"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    arrived = root / "arrived"  # the test touches it once the emulator has a refresh request (before answering)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not arrived.exists():
        time.sleep(0.02)
    steps["arrived"] = arrived.exists()
    filler = full / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=4k"], capture_output=True)
    out, err = refresh.communicate(timeout=240)
    steps["refresh"] = {"code": refresh.returncode, "out": out, "err": err}
    if reader is not None:
        reader.execute("ROLLBACK")
        reader.close()
    steps["rescue_files"] = {str(p): oct(p.stat().st_mode & 0o777) for p in root.rglob("rescue/*/*.json")}
    steps["rescue_files"].update({str(p): oct(p.stat().st_mode & 0o777)  # type: ignore[union-attr]
                                  for p in full.rglob("*.rescue/*.json")})
    httpx.request("DELETE", f"{url}/_emulator/faults")
    filler.unlink()  # space freed: the next start saves what was rescued
    steps["list"] = run(exe, env, "list", "--json")
    steps["rescue_files_after"] = [str(p) for p in root.rglob("rescue/*/*.json")]
    steps["again"] = run(exe, env, "refresh", "--all", "--json")  # a token rescued into a place: adopted
    steps["spend"] = run(exe, env, "refresh", "--all", "--json")  # every stored token spent once more
    return steps


if __name__ == "__main__":
    flags = [a for a in sys.argv[4:] if a.startswith("--")]
    print(json.dumps(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3], [a for a in sys.argv[4:] if a not in flags],
                          "--state-on-full-disk" in flags, "--reader" in flags)))
