"""What a person waits for: the installed `kiro-tui` started in a real terminal (a pty), from
exec until the rows of its 1,000 accounts are on screen, against a bare Textual app showing a
1,000-row DataTable (benchmarks/bare_table_app.py) started the same way. Imports, interpreter
start and the first frame are all included.

    python -m benchmarks.launch [--accounts 1000] [--runs 9] [--marker-row 10]

Each launch forks a pseudo-terminal of 150x40 (TERM=xterm-256color), execs the program in it,
and reads what it writes until the name of account `marker-row` (user0010@example.com: both
apps sort by name, so it is the 11th row of the first screen in both) has been drawn. The time
is from just before the fork to the read that completed that name; the program is then sent
SIGTERM. kiro-tui runs with its own XDG folders in a temporary directory, a store of
`accounts` accounts imported from tools' files the way people get them (each with its place:
benchmarks.harness.build_imported_store, then each named as the bare app's row), expiring 15
to 60 minutes from now (nothing due), no kiro-cli database at its default path, and its
endpoints pointed at a closed loopback port (nothing leaves the machine).
The two programs take turns (and swap who goes first each round), after one untimed warm-up
launch of each; printed: both medians of `runs`, their spread, and the ratio. Goal ≤ 1.10 (issue 24; 1.15 before).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import signal
import statistics
import struct
import sys
import tempfile
import termios
import time
from pathlib import Path

from benchmarks.harness import build_imported_store
from kiro_tui.core.store import AccountStore

ROWS, COLS = 40, 150
HERE = Path(__file__).resolve().parent


def name_as_the_bare_app(path: Path) -> None:
    """Give each imported account the name the bare app shows for its row (an account imported
    with no email is named after its tool, "GitHub (kiro-cli)", many alike): as `kiro-tui
    rename` would, so `marker-row` names the same row of the first screen in both apps."""
    with AccountStore.open(path) as store, store.transaction() as tx:
        for account in store.accounts():  # the harness's login i holds refresh token aorAAAAAG<i, 40 digits>
            store.update(account.id, tx, nickname=f"user{int((account.refresh_token or '')[-40:]):04d}@example.com")


def launch(argv: list[str], env: dict[str, str], marker: bytes, timeout: float = 60.0) -> float:
    """Seconds from exec until `marker` has been written to the terminal."""
    started = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:  # the child: size the terminal, then become the program
        try:
            fcntl.ioctl(sys.stdout.fileno(), termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    seen = b""
    found: float | None = None
    try:
        while found is None:
            left = timeout - (time.perf_counter() - started)
            if left <= 0:
                raise TimeoutError(f"{argv} did not draw {marker!r} within {timeout:g} s; it wrote: {seen[-500:]!r}")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 1 << 16)
            except OSError:  # the program ended
                chunk = b""
            if not chunk:
                raise RuntimeError(f"{argv} exited before drawing {marker!r}; it wrote: {seen[-2000:]!r}")
            seen = seen[-len(marker):] + chunk
            if marker in seen:
                found = time.perf_counter() - started
    finally:
        stop(pid, fd)
    return found


def stop(pid: int, fd: int) -> None:
    """SIGTERM (kiro-tui quits as on `q`), draining the terminal meanwhile; SIGKILL after 10 s."""
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while True:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            break
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            try:
                os.read(fd, 1 << 16)
            except OSError:
                pass
    os.close(fd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--marker-row", type=int, default=10)
    args = parser.parse_args()
    kiro_tui = Path(sys.executable).parent / "kiro-tui"
    assert kiro_tui.exists(), f"kiro-tui is not installed beside {sys.executable}"
    marker = f"user{args.marker_row:04d}@example.com".encode()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TERM": "xterm-256color", "LANG": "C.UTF-8",
            "HOME": str(home / "home"), "XDG_DATA_HOME": str(home / "data"), "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_STATE_HOME": str(home / "state"), "XDG_CACHE_HOME": str(home / "cache"),
            "KIRO_TUI_ENDPOINT_URL": "http://127.0.0.1:9",
        }
        (home / "home").mkdir()
        store = home / "data" / "kiro-tui" / "accounts.db"
        build_imported_store(store, args.accounts, places=home / "places")
        name_as_the_bare_app(store)
        programs = {
            "kiro-tui": [str(kiro_tui)],
            "bare": [sys.executable, str(HERE / "bare_table_app.py"), str(args.accounts)],
        }
        times: dict[str, list[float]] = {name: [] for name in programs}
        for run in range(args.runs + 1):  # run 0 warms the disk cache and the .pyc files; not counted
            for name in ("kiro-tui", "bare") if run % 2 else ("bare", "kiro-tui"):
                elapsed = launch(programs[name], env, marker)
                if run:
                    times[name].append(elapsed)
    ours, bare = statistics.median(times["kiro-tui"]), statistics.median(times["bare"])
    print(f"accounts: {args.accounts}, terminal {COLS}x{ROWS} (pty), runs: {args.runs} each, taking turns")
    for name, label in (("kiro-tui", "kiro-tui (installed)"), ("bare", "bare DataTable app")):
        values = times[name]
        print(f"  {label:<22} median {statistics.median(values) * 1000:.0f} ms  "
              f"(min {min(values) * 1000:.0f}, max {max(values) * 1000:.0f})")
    print(f"  ratio:                 {ours / bare:.2f}  (goal ≤ 1.10)")


if __name__ == "__main__":
    main()
