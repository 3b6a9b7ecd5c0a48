"""A database another program left mid-write (killed, crashed) is still read, and left untouched.

A writer killed inside a transaction leaves a hot journal; SQLite rolls it back at the next
read-write open, which a read-only connection may not do ("attempt to write a readonly
database"). kiro-tui reads such a place from a private rolled-back copy: what the tool (or any
writer) sees next, without writing the tool's file. Found by tests/test_exits_kill.py, where a
SIGKILL during kiro-tui's own write-back left kiro-gateway's database so.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from kiro_tui.core.places import place_format
from kiro_tui.core.places.kiro_cli import read_kiro_cli
from tests.support.engine import seed_into_kiro_cli
from tests.support.kiro_cli_db import KiroCliDb

KILLED_MID_WRITE = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA cache_size=1")  # the change spills into the file before the commit
conn.execute("BEGIN IMMEDIATE")
conn.execute("UPDATE auth_kv SET value = 'torn'")
for _ in range(500):
    conn.execute("INSERT INTO state VALUES (hex(randomblob(16)), randomblob(1000))")
print("mid-write", flush=True)
time.sleep(600)
"""


def leave_mid_write(path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", KILLED_MID_WRITE, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "mid-write\n"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_a_database_left_mid_write_is_read_as_rolled_back_and_left_as_it_is(emulator, kiro_db: KiroCliDb) -> None:
    seeded = seed_into_kiro_cli(emulator, kiro_db, kind="social", email="torn@example.com")
    leave_mid_write(kiro_db.path)
    journal = Path(f"{kiro_db.path}-journal")
    assert journal.exists()
    before = (kiro_db.path.read_bytes(), journal.read_bytes())

    (login,) = read_kiro_cli(kiro_db.path, datetime.now(UTC)).logins
    assert login.refresh_token == seeded["auth_kv"]["kirocli:social:token"]["refresh_token"]
    read = place_format("gateway-db").read_entry(kiro_db.path, "kirocli:social:token", datetime.now(UTC))
    assert read is not None and read.refresh_token == login.refresh_token
    assert (kiro_db.path.read_bytes(), journal.read_bytes()) == before  # the tool's files, untouched
