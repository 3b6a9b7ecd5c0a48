"""Issue 10: a crash of the terminal UI prints one line and the log's path, never a token (Textual's
own report shows local variables), and the process exits non-zero. Run like a person runs it: the
TUI in a real terminal (tmux), stderr untouched (Textual draws on it).

The crash is caused without any hook in the product: a tiny script replaces the detail panel's
`show` with one that holds the account's tokens in local variables and raises, then calls
`kiro_tui.cli.main([])` exactly as the installed `kiro-tui` does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kiro_tui.core.store import AccountStore
from tests.support.engine import account_from_seed

pytestmark = pytest.mark.e2e

CRASHING_TUI = '''
import sys
from pathlib import Path

from kiro_tui.core import paths
from kiro_tui.core.store import AccountStore
from kiro_tui.tui.widgets import detail_panel


def show(self, *args, **kwargs):
    with AccountStore.open(paths.store_file()) as store:
        (account,) = store.accounts()
    access_token = account.access_token  # what Textual's report would print among the locals
    refresh_token = account.refresh_token
    raise RuntimeError("the detail panel fell over")


detail_panel.AccountDetail.show = show

from kiro_tui.cli import main

code = main([])
Path(sys.argv[1]).write_text(str(code))
sys.exit(code)
'''


def test_a_tui_crash_prints_one_line_no_token_and_exits_non_zero(isolated_dirs: Path, tmp_path: Path,
                                                                 live_emulator) -> None:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed (.ci/run installs it with apt-get)")
    with AccountStore.open(isolated_dirs / "data" / "kiro-tui" / "accounts.db") as store:
        account = account_from_seed(live_emulator.seed(kind="social", email="crash@example.com"), "c0ffee11")
        store.save(account)
    script, exit_file = tmp_path / "crash.py", tmp_path / "exit-code"
    script.write_text(CRASHING_TUI)
    tmux_conf = tmp_path / "tmux.conf"
    tmux_conf.write_text("set -g remain-on-exit on\n")  # the pane stays, with what was printed, after the exit
    socket = f"kiro-tui-crash-{os.getpid()}"
    env = {**os.environ, "TERM": "xterm-256color", "TMUX": "", "KIRO_TUI_ENDPOINT_URL": live_emulator.url}

    def tmux(*args: str) -> str:
        return subprocess.run(["tmux", "-L", socket, "-f", str(tmux_conf), *args], capture_output=True, text=True,
                              env=env, check=True).stdout

    tmux("new-session", "-d", "-s", "crash", "-x", "160", "-y", "40",
         f"{sys.executable} {script} {exit_file}")
    try:
        deadline = time.monotonic() + 60
        while not exit_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        dead = ""
        settled = time.monotonic() + 15
        while time.monotonic() < settled:  # the exit code is written just before the process ends
            dead = tmux("display-message", "-p", "-t", "crash", "#{pane_dead} #{pane_dead_status}").strip()
            if dead.split()[:1] == ["1"] and len(dead.split()) == 2:
                break
            time.sleep(0.1)
        # tmux 3.3 under load can mark the pane dead and never fill in the status: then the pane's
        # death and the code the program exited with (written by it just before sys.exit) suffice
        screen = tmux("capture-pane", "-p", "-J", "-t", "crash", "-S", "-200")
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, env=env)
    assert exit_file.exists(), f"the TUI did not exit after crashing; screen:\n{screen}"
    for secret in (account.access_token, account.refresh_token):
        assert secret[:12] not in screen, screen  # not a token, not even the start of one
    assert "access_token" not in screen and "Traceback" not in screen, screen  # no locals, no traceback
    printed = [line for line in screen.splitlines() if line.strip() and not line.startswith("Pane is dead")]
    log_path = isolated_dirs / "state" / "kiro-tui" / "log" / "kiro-tui.log"
    assert printed == [f"kiro-tui: internal error: RuntimeError; details in {log_path}. Please report it."], screen
    code = int(exit_file.read_text())
    assert code != 0 and dead.split()[:1] == ["1"], (code, dead)  # ended, and not with success
    assert dead in ("1", f"1 {code}"), (code, dead)  # the status tmux saw, when it saw one, is that code
    log_text = log_path.read_text()
    assert "RuntimeError: the detail panel fell over" in log_text  # the traceback is in the log...
    for secret in (account.access_token, account.refresh_token):
        assert secret not in log_text  # ...without a token
