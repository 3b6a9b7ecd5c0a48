"""The installed `kiro-tui demo`, driven in tmux like a person at a terminal."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


class Tmux:
    def __init__(self, socket: str, env: dict[str, str], tmpdir: Path, home: Path) -> None:
        self.socket, self.env, self.tmpdir, self.home = socket, env, tmpdir, home

    def demo_folders(self) -> set[str]:
        """The demo's temporary folders: in this test's own TMPDIR, so no other run interferes."""
        return {p.name for p in self.tmpdir.glob("kiro-tui-demo-*")}

    def run(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, env=self.env,
                              check=True).stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-t", "demo", "-p")

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "demo", *keys)

    def session_ends(self, timeout: float) -> bool:
        """True once the demo's session is gone (the program exited and tmux closed its window)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            alive = subprocess.run(["tmux", "-L", self.socket, "has-session", "-t", "demo"],
                                   capture_output=True, env=self.env).returncode == 0
            if not alive:
                return True
            time.sleep(0.2)
        return False

    def wait_for(self, condition: Callable[[str], bool], timeout: float = 30, what: str = "") -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.screen()
            if condition(text):
                return text
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; screen was:\n{self.screen()}")


@pytest.fixture
def tmux(kiro_tui_exe: str, tmp_path):
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed (.ci/run installs it with apt-get)")
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    home = tmp_path / "home"  # the person's own home: the demo must never touch it
    home.mkdir()
    env = {**os.environ, "TERM": "xterm-256color", "TMUX": "", "TMPDIR": str(tmpdir), "HOME": str(home)}
    session = Tmux(f"kiro-tui-test-{os.getpid()}", env, tmpdir, home)
    session.run("new-session", "-d", "-s", "demo", "-x", "160", "-y", "40", f"{kiro_tui_exe} demo --approve-after 600")
    try:
        yield session
    finally:
        subprocess.run(["tmux", "-L", session.socket, "kill-server"], capture_output=True, env=env)


def row(screen: str, name: str) -> str:
    return next((line for line in screen.splitlines() if line.lstrip().startswith(name)), "")


def test_demo_in_tmux(tmux: Tmux) -> None:
    first = tmux.wait_for(lambda s: "alice@example.com" in s or "GitHub (kiro-cli)" in s
                          and "erin@example.com" in s, what="the accounts to appear")
    assert "IdC d-9067c1a2b3 (kiro-cli)" in first or "team@acme.example" in first
    assert "Traceback" not in first
    alice = row(first, "GitHub (kiro-cli)") or row(first, "alice@example.com")
    assert re.search(r"in \d+ s\b", alice), alice
    time.sleep(2.5)
    second = tmux.screen()
    alice_later = row(second, "GitHub (kiro-cli)") or row(second, "alice@example.com")
    assert alice_later and alice_later != alice  # the countdown moved, in place

    tmux.wait_for(lambda s: "NEEDS LOGIN" in s, what="the revoked account to need a login")
    tmux.wait_for(lambda s: "retrying" in row(s, "frank@contoso.example"), what="the failing IdP to back off")

    tmux.keys("i")
    tmux.wait_for(lambda s: "Imported from kiro-cli" in s and "unchanged" in s, what="the import toast")

    tmux.keys("x")  # link the selected account to the Kiro IDE: the file lands in the demo's folder
    tmux.wait_for(lambda s: "Link to Kiro IDE" in s, what="the link / export choices")
    tmux.keys("Enter")
    prompt = tmux.wait_for(lambda s: "kiro-auth-token.json" in s, what="the path prompt")
    assert "kiro-tui-demo-" in prompt and str(tmux.home) not in prompt, prompt
    tmux.keys("Enter")
    tmux.wait_for(lambda s: "kept fresh in Kiro IDE" in s, what="the link toast")

    tmux.keys("l")
    tmux.wait_for(lambda s: "Log in with a device code" in s, what="the login form")
    tmux.keys("Enter")  # blank start URL: AWS Builder ID
    code_screen = tmux.wait_for(lambda s: "enter this code" in s, what="a device code")
    assert "Log in to AWS Builder ID" in code_screen and "expires in 10 minutes" in code_screen
    assert "╭" in code_screen or "┌" in code_screen  # the code in large type
    assert re.search(r"^\s*[A-Z0-9]{4}-[A-Z0-9]{4}\s*$", code_screen, re.M), code_screen  # and as plain text
    tmux.keys("Escape")
    tmux.wait_for(lambda s: "Log in" in s and "Import" in s and "enter this code" not in s, what="the accounts")
    tmux.keys("q")
    assert tmux.session_ends(timeout=10), "q did not quit the demo"
    assert tmux.demo_folders() == set()  # the demo left nothing behind
    assert list(tmux.home.iterdir()) == []  # and never wrote into the person's home


def test_demo_cleans_up_when_its_terminal_closes(tmux: Tmux) -> None:
    tmux.wait_for(lambda s: "erin@example.com" in s, what="the accounts to appear")
    assert len(tmux.demo_folders()) == 1  # the demo's own folder, while it runs
    tmux.run("kill-session", "-t", "demo")  # the terminal goes away: SIGHUP
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and tmux.demo_folders():
        time.sleep(0.2)
    assert tmux.demo_folders() == set()


def test_demo_cleans_up_when_it_is_terminated(tmux: Tmux) -> None:
    import signal

    tmux.wait_for(lambda s: "erin@example.com" in s, what="the accounts to appear")
    assert len(tmux.demo_folders()) == 1
    pid = int(tmux.run("display-message", "-p", "-t", "demo", "#{pane_pid}").strip())
    command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    assert b"kiro-tui" in command and b"demo" in command  # the demo itself, not a shell around it
    os.kill(pid, signal.SIGTERM)
    assert tmux.session_ends(timeout=10), "SIGTERM did not end the demo"
    assert tmux.demo_folders() == set()
