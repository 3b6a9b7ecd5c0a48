"""A real full disk for `kiro-tui watch`: run inside `unshare -m` (a private mount namespace), so
the 2 MB tmpfs that holds the store exists for this process and its children only.

Usage: python tests/support/full_disk.py ROOT EMULATOR_URL KIRO_TUI_EXE
Prints one JSON object: what `watch` said on stderr, its exit code, and what a `kiro-tui
refresh` said afterwards (the login is alive only if the held token reached the store).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx


def main(root: Path, url: str, exe: str) -> dict[str, object]:
    folder = root / "data" / "kiro-tui"
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)], check=True)
    env = {**os.environ, "XDG_DATA_HOME": str(root / "data"), "XDG_CONFIG_HOME": str(root / "config"),
           "XDG_STATE_HOME": str(root / "state"), "HOME": str(root), "KIRO_TUI_ENDPOINT_URL": url}
    config = root / "config" / "kiro-tui" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("watch_interval = 0.5\n")
    seeded = httpx.post(f"{url}/_emulator/accounts",
                        json={"kind": "social", "email": "disk@example.com", "expires_in": 300}).json()
    from kiro_tui.core.store import AccountStore
    from kiro_tui.demo import account_from_seed

    with AccountStore.open(folder / "accounts.db") as store:
        store.save(account_from_seed(seeded, "d15cf011"))
    httpx.post(f"{url}/_emulator/faults", json={"latency_ms": 5000})
    watch = subprocess.Popen([exe, "watch"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(watch.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()

    def said(text: str, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in "".join(lines):
                return True
            if watch.poll() is not None:
                break
            time.sleep(0.05)
        return text in "".join(lines)

    steps = {"refreshing": said("expiring → refreshing")}
    # The disk is full, and the store's WAL holds no space a checkpoint could give back (the
    # refresher checkpoints once and tries again: that path is tested with max_page_count).
    fillers = [folder / "filler-1", folder / "filler-2"]
    for filler in fillers:
        try:
            with sqlite3.connect(folder / "accounts.db", timeout=5) as db:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=4k"], capture_output=True)
    steps["held"] = said("token held in memory: the store is not writable: disk full")
    for filler in fillers:
        filler.unlink()  # space freed
    steps["saved"] = said("the held token is now saved in the store")
    watch.send_signal(signal.SIGTERM)
    code = watch.wait(60)
    reader.join(5)
    httpx.request("DELETE", f"{url}/_emulator/faults")
    after = subprocess.run([exe, "refresh", "d15cf011", "--json"], env=env, capture_output=True, text=True)
    return {"steps": steps, "code": code, "err": "".join(lines), "after": after.stdout, "after_err": after.stderr,
            "spent": seeded["token"]["refresh_token"]}


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3])))
