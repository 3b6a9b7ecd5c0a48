"""Issue 19: every way out of every face keeps the token.

Each face runs as a real process: the TUI in tmux, the CLI in a pseudo-terminal whose closing
is a real hangup (the process's controlling terminal goes away). The emulator is slow
(`latency_ms`), and it holds each refresh request it receives until the test lets it go: the
way out (q, ctrl+q, ctrl+c, SIGINT, SIGTERM, SIGHUP, a closed pipe, end of input) is sent once
the request has *arrived*, and the request is let go once the process has begun stopping (its
log says it is waiting), so the service rotates the token while the process is on its way out,
on a loaded machine as on an idle one: conditions, never a race against a delay. Then every stored refresh token is
spent once against the emulator, which rotates strictly (a spent token dies at once): a
token dropped on the way out shows as a refresh that fails. 0 lost, 0 tracebacks, 0 leases.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import pty
import select
import shutil
import signal
import sqlite3
import subprocess
import termios
import threading
from pathlib import Path

import pytest

from kiro_tui.demo import IDC_PROFILES
from tests.support.engine import control, seed_into_kiro_cli
from tests.support.kiro_cli_db import KiroCliDb
from tests.support.run import run_cli
from tests.support.waiting import until
from tests.support.watch import wait_for_answers, watch_config

pytestmark = pytest.mark.e2e  # real processes and terminals: run alone (see the README's test command)

SLOW_MS = 1000
"""The service's latency once a held request is let go."""
NOT_QUIET = ("Traceback", "internal error", "RuntimeWarning", "Exception in thread", "Task was destroyed")
IDC = "https://d-5555555555.awsapps.com/start"


# ---------------------------------------------------------------------------------- the world


class Gate:
    """Refresh requests held at the emulator: `arrived` once one is there, answered once `released`."""

    def __init__(self) -> None:
        self.arrived, self.released = threading.Event(), threading.Event()

    def release(self) -> None:
        self.released.set()


class World:
    """The emulator, kiro-cli's database, kiro-tui's store (this test's XDG folders) and the command."""

    def __init__(self, exe: str, home: Path, emulator, db: KiroCliDb) -> None:
        self.exe, self.home, self.emulator, self.db = exe, home, emulator, db
        self.env = {**os.environ, "KIRO_TUI_ENDPOINT_URL": emulator.url}
        self.store = home / "data" / "kiro-tui" / "accounts.db"
        self.gates: list[Gate] = []

    def accounts(self, count: int = 1) -> list[str]:
        """`count` logins in kiro-cli, due for a refresh, imported (sync mode); their ids."""
        for n in range(count):
            kind = "social" if n == 0 else "builder-id"  # kiro-cli holds one login of each kind
            seed_into_kiro_cli(self.emulator, self.db, kind=kind, email=f"exit{n}@example.com", expires_in=300)
        assert run_cli(self.exe, "import", env=self.env).code == 0
        return [row["id"] for row in run_cli(self.exe, "list", "--json").json()]

    def hold(self) -> Gate:
        """From now on every refresh request is held at the emulator until `release`, then
        answered `SLOW_MS` late."""
        gate = Gate()
        original = self.emulator.app.handle

        async def handle(request):  # type: ignore[no-untyped-def]
            if request.path in ("/refreshToken", "/token"):
                gate.arrived.set()
                while not gate.released.is_set():
                    await asyncio.sleep(0.02)
            return await original(request)

        self.emulator.app.handle = handle
        self.gates.append(gate)
        control(self.emulator, "faults", {"latency_ms": SLOW_MS})
        return gate

    def log_says(self, text: str, timeout: float = 60) -> None:
        """Until kiro-tui's log file has `text` (what a process says after a hangup goes only there)."""
        log = self.home / "state" / "kiro-tui" / "log" / "kiro-tui.log"
        try:
            until(lambda: log.exists() and text in log.read_text(errors="replace"), f"the log to say {text!r}",
                  timeout)
        except AssertionError:
            raise AssertionError(f"the log never said {text!r}; it said:\n"
                                 f"{log.read_text(errors='replace') if log.exists() else '(no log)'}") from None

    def leases(self) -> list[str]:
        with sqlite3.connect(self.store) as conn:
            return [row[0] for row in conn.execute("SELECT account_id FROM leases")]

    def spend_every_token(self) -> dict[str, tuple[str, str]]:
        """Refresh every stored login once, fast: (outcome, status) by id."""
        for gate in self.gates:
            gate.released.set()
        control(self.emulator, "faults", {"latency_ms": 0})
        result = run_cli(self.exe, "refresh", "--all", "--json", env=self.env)
        return {item["id"]: (item["outcome"], item["status"]) for item in json.loads(result.out)}

    def assert_nothing_lost(self, ids: list[str]) -> None:
        assert self.leases() == [], "a lease was left behind"
        rotated = [r for r in self.emulator.requests()
                   if r["operation"] in ("RefreshToken", "CreateToken") and r["status"] == 200]
        assert rotated, "the service never rotated: the test proved nothing"
        spent = self.spend_every_token()
        assert spent == {i: ("refreshed", "fresh") for i in ids}, spent  # every token still alive
        lineage_db = self.db.get_json("auth_kv", "kirocli:social:token")
        with sqlite3.connect(self.store) as conn:  # sync mode: kiro-cli holds the live token too
            (stored,) = conn.execute("SELECT refresh_token FROM accounts WHERE auth_method = 'social'").fetchone()
        assert lineage_db["refresh_token"] == stored


@pytest.fixture
def world(kiro_tui_exe, isolated_dirs, kiro_db):
    from kiro_tui.emulator import Emulator

    with Emulator(approve_after=0.2) as emulator:
        world = World(kiro_tui_exe, isolated_dirs, emulator, kiro_db)
        try:
            yield world
        finally:
            for gate in world.gates:
                gate.released.set()
            control(emulator, "faults", {"latency_ms": 0})


def assert_quiet(text: str) -> None:
    for word in NOT_QUIET:
        assert word not in text, text


# ------------------------------------------------------------------------- a pseudo-terminal


class Terminal:
    """A command whose controlling terminal is a pty: Ctrl-C typed is a SIGINT from the terminal,
    and closing it (the window closed) is the hangup the kernel sends."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        master, slave = pty.openpty()
        self.master: int | None = master
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     start_new_session=True,
                                     preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        os.close(slave)
        self.chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while (master := self.master) is not None:
            try:
                ready, _, _ = select.select([master], [], [], 0.05)
                data = os.read(master, 4096) if ready else b"-"
            except (OSError, ValueError):
                return
            if not data:
                return
            if ready:
                self.chunks.append(data)

    @property
    def text(self) -> str:
        return b"".join(self.chunks).decode(errors="replace").replace("\r\n", "\n")

    def wait_for(self, text: str, timeout: float = 60) -> None:
        until(lambda: text in self.text or self.proc.poll() is not None, f"{text!r}", timeout)
        assert text in self.text, self.text

    def type(self, keys: bytes) -> None:
        assert self.master is not None
        os.write(self.master, keys)

    def hang_up(self) -> None:
        master, self.master = self.master, None
        assert master is not None
        self._reader.join(timeout=5)  # no read may hold the terminal open: closing it is the hangup
        os.close(master)

    def end(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout=timeout)
        if self.master is not None:
            self._reader.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.master is not None:
            os.close(self.master)
            self.master = None


# ------------------------------------------------------------------------------- the CLI


def _stop_cli(term: Terminal, way: str) -> None:
    if way == "ctrl+c":
        term.type(b"\x03")  # the terminal's SIGINT, to the whole foreground process group
    elif way == "SIGTERM":
        term.proc.send_signal(signal.SIGTERM)
    elif way == "hangup":
        term.hang_up()


@pytest.mark.parametrize("way", ["ctrl+c", "SIGTERM", "hangup"])
def test_refresh_interrupted_mid_refresh_waits_and_commits(world: World, way: str) -> None:
    ids = world.accounts(2)
    gate = world.hold()
    term = Terminal([world.exe, "refresh", "--all"], world.env)
    try:
        assert gate.arrived.wait(60), "the refresh never reached the emulator"
        _stop_cli(term, way)
        world.log_says("stopping: waiting for ")  # on its way out, with the answer still to come
        gate.release()
        code = term.end()
    finally:
        term.kill()
    assert code == 130, term.text
    if way != "hangup":  # after a hangup nothing is written to the terminal that went away
        assert "stopping: waiting for" in term.text and "under way to finish" in term.text, term.text
        assert "kiro-tui: interrupted (" in term.text, term.text
    assert_quiet(term.text)
    world.assert_nothing_lost(ids)


@pytest.mark.parametrize("way", ["ctrl+c", "SIGTERM", "hangup"])
def test_watch_stopped_mid_refresh_waits_and_commits(world: World, way: str) -> None:
    ids = world.accounts(1)
    watch_config(world.home)
    gate = world.hold()
    term = Terminal([world.exe, "watch"], world.env)
    try:
        assert gate.arrived.wait(60), "the refresh never reached the emulator"
        _stop_cli(term, way)
        world.log_says(f"stopping: waiting for 1 refresh under way to finish ({ids[0]})")
        gate.release()
        code = term.end()
    finally:
        term.kill()
    assert code == 0, term.text
    if way != "hangup":
        assert f"stopping: waiting for 1 refresh under way to finish ({ids[0]})" in term.text, term.text
    assert_quiet(term.text)
    world.assert_nothing_lost(ids)


def test_after_the_first_signal_no_new_refresh_starts(world: World) -> None:
    ids = world.accounts(2)
    config = world.home / "config" / "kiro-tui" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("concurrency = 1\n")  # the second account waits its turn behind the first
    gate = world.hold()
    term = Terminal([world.exe, "refresh", "--all"], world.env)
    try:
        assert gate.arrived.wait(60)
        term.proc.send_signal(signal.SIGTERM)
        world.log_says("stopping: waiting for 1 refresh under way to finish")
        gate.release()
        assert term.end() == 130, term.text
    finally:
        term.kill()
    assert "kiro-tui: interrupted (SIGTERM) after the refresh of " in term.text, term.text
    calls = [r for r in world.emulator.requests() if r["operation"] in ("RefreshToken", "CreateToken")]
    assert len(calls) == 1, calls  # the one under way; the one waiting its turn never started
    world.assert_nothing_lost(ids)


@pytest.mark.parametrize("command", [["refresh", "--all"], ["watch"]])
def test_a_second_signal_abandons_and_names_what_it_abandons(world: World, command: list[str]) -> None:
    ids = world.accounts(1)
    watch_config(world.home)
    gate = world.hold()  # never let go: only the second signal ends the wait
    term = Terminal([world.exe, *command], world.env)
    try:
        assert gate.arrived.wait(60)
        term.proc.send_signal(signal.SIGTERM)
        term.wait_for("stopping: waiting for 1 refresh under way to finish")
        assert term.proc.poll() is None  # still waiting for the answer
        term.type(b"\x03")
        code = term.end(timeout=20)
    finally:
        term.kill()
    assert code == (0 if command == ["watch"] else 130), term.text
    assert f"abandoned the refresh of {ids[0]}: if the service answered" in term.text, term.text
    assert_quiet(term.text)
    assert world.leases() == []  # released, even abandoned


# ----------------------------------------------------------------------- login's profile prompt


def _login_at_the_prompt(world: World) -> Terminal:
    world.emulator.state.add_user("idc", email="pat@acme.example", region="eu-west-1", start_url=IDC,
                                  profiles=IDC_PROFILES)
    term = Terminal([world.exe, "login", "--start-url", IDC, "--region", "eu-west-1", "--no-browser"], world.env)
    term.wait_for("Choose 1-2: ")
    return term


def _saved(world: World) -> list[dict]:
    return run_cli(world.exe, "list", "--json").json()  # type: ignore[return-value]


@pytest.mark.parametrize(("keys", "code", "says"), [
    (b"\x03", 130, "interrupted; "),
    (b"\x04", 1, "no profile chosen (end of input); "),
])
def test_login_is_saved_before_the_profile_prompt_which_ctrl_c_and_ctrl_d_end(world: World, keys: bytes, code: int,
                                                                              says: str) -> None:
    term = _login_at_the_prompt(world)
    try:
        (saved,) = _saved(world)  # saved while the question is still on screen
        assert (saved["email"], saved["profile_arn"]) == ("pat@acme.example", None)
        term.type(keys)
        assert term.end(timeout=20) == code, term.text
    finally:
        term.kill()
    assert says in term.text and f"({saved['id']}) is logged in and saved without a profile" in term.text
    assert_quiet(term.text)
    assert [(a["id"], a["profile_arn"]) for a in _saved(world)] == [(saved["id"], None)]  # kept, as it was


def test_a_wrong_answer_says_what_was_wrong_and_shows_the_choices_again(world: World) -> None:
    term = _login_at_the_prompt(world)
    try:
        term.type(b"7\r")
        term.wait_for("'7' is not one of the choices: type a number from 1 to 2")
        # The choices, again, then the prompt (the first prompt is on screen already: waiting for
        # its text alone returned before the second listing on a loaded machine)
        until(lambda: term.text.count("Choose 1-2: ") == 2 or term.proc.poll() is not None, "the prompt again")
        assert term.text.count(IDC_PROFILES[1]["arn"]) == 2, term.text
        term.type(b"2\r")
        assert term.end(timeout=30) == 0, term.text
    finally:
        term.kill()
    assert_quiet(term.text)
    (saved,) = _saved(world)
    assert saved["profile_arn"] == IDC_PROFILES[1]["arn"]


# ------------------------------------------------------------------------------------ pipes


@pytest.mark.parametrize(("args", "code"), [(["list"], 141), (["list", "--json"], 141), (["sources"], 141),
                                            (["refresh", "--all", "--json"], 141),
                                            (["--help"], 0)])  # argparse itself passes over a closed pipe
def test_a_closed_pipe_ends_every_command_quietly(world: World, args: list[str], code: int) -> None:
    ids = world.accounts(2)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte (as `| head -1` is, sooner or later)
    proc = subprocess.run([world.exe, *args], stdout=write_end, stderr=subprocess.PIPE, env=world.env, text=True,
                          timeout=60)
    os.close(write_end)
    assert proc.returncode == code and proc.stderr == "", (proc.returncode, proc.stderr)
    if args[0] == "refresh":  # the refreshes were committed before the output went nowhere
        assert world.spend_every_token() == {i: ("refreshed", "fresh") for i in ids}


def test_list_piped_into_head(world: World) -> None:
    world.accounts(2)
    proc = subprocess.run(["bash", "-c", f"'{world.exe}' list | head -1; exit ${{PIPESTATUS[0]}}"],
                          capture_output=True, env=world.env, text=True, timeout=60)
    assert proc.returncode in (0, 141) and proc.stderr == "", proc
    assert proc.stdout.startswith("ID")


# ---------------------------------------------------------------------------------- the TUI


def _zombie_status(pid: int) -> int | None:
    """The wait status of a process that has exited but is not yet reaped (field 52 of
    /proc/PID/stat, "exit_code", as waitpid would give it); None while it runs or once gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[-1]) if fields[0] == "Z" else None


class TuiSession:
    """The installed `kiro-tui` in tmux as the pane's own process (so closing the pane hangs up on
    it, as closing a terminal window does); everything it writes is kept (pipe-pane), and the pane
    stays after it exits so that its exit status can be read."""

    def __init__(self, world: World, tmp: Path) -> None:
        self.output = tmp / "tui.out"
        self.socket = f"kiro-tui-exits-{os.getpid()}-{id(self)}"
        self.env = {**world.env, "TERM": "xterm-256color", "TMUX": ""}
        self.tmux("-f", "/dev/null", "new-session", "-d", "-s", "tui", "-x", "160", "-y", "40", world.exe)
        self.tmux("set-option", "-t", "tui", "remain-on-exit", "on")
        self.tmux("pipe-pane", "-t", "tui", "-o", f"cat >> '{self.output}'")
        self.pid = int(self.tmux("display-message", "-p", "-t", "tui", "#{pane_pid}").strip())

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, env=self.env,
                              check=True).stdout

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "tui", *keys)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-t", "tui", "-p")

    def ended(self, timeout: float = 60) -> int:
        """The exit status, once kiro-tui has exited."""
        def dead() -> bool:
            return self.tmux("display-message", "-p", "-t", "tui", "#{pane_dead}").strip() == "1"

        def status() -> str:
            return self.tmux("display-message", "-p", "-t", "tui", "#{pane_dead_status}:#{pane_dead_signal}").strip()

        until(dead, "kiro-tui to end", timeout)
        with contextlib.suppress(AssertionError):  # tmux may mark the pane dead before it reaps the status
            until(lambda: status() != ":" or _zombie_status(self.pid) is not None,
                  "tmux or the kernel to know how kiro-tui ended", 30)
        code, _, killed_by = status().partition(":")
        if not code and not killed_by:  # tmux 3.3a under load can leave its pane's process unreaped
            # (a zombie) for a long while; the kernel keeps its wait status, readable in /proc.
            raw = _zombie_status(self.pid)
            if raw is not None:
                code, killed_by = (str(os.WEXITSTATUS(raw)), "") if os.WIFEXITED(raw) else ("", str(raw & 0x7F))
        assert code, f"kiro-tui was killed by signal {killed_by or '?'}; it said:\n{self.said[-2000:]}"
        return int(code)

    def gone(self, timeout: float = 60) -> None:
        """Once the process has exited (after a hangup the pane, and its status, are gone too)."""
        until(lambda: not Path(f"/proc/{self.pid}").exists()
              or "zombie" in Path(f"/proc/{self.pid}/status").read_text(), "kiro-tui to end", timeout)

    @property
    def said(self) -> str:
        """What it wrote to the terminal, escape sequences and all (its last lines are plain text)."""
        return self.output.read_text(errors="replace") if self.output.exists() else ""

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, env=self.env)


@pytest.fixture
def tui(world: World, tmp_path: Path):
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed (.ci/run installs it with apt-get)")
    sessions: list[TuiSession] = []

    def start() -> TuiSession:
        sessions.append(TuiSession(world, tmp_path))
        return sessions[-1]

    yield start
    for session in sessions:
        session.close()


def _stop_tui(session: TuiSession, pid: int, way: str) -> None:
    if way in ("q", "ctrl+q"):
        session.keys("q" if way == "q" else "C-q")
    elif way == "SIGINT":
        os.kill(pid, signal.SIGINT)
    elif way == "SIGTERM":
        os.kill(pid, signal.SIGTERM)
    elif way == "hangup":
        session.tmux("kill-session", "-t", "tui")  # the terminal closes: the kernel hangs up on kiro-tui


@pytest.mark.parametrize("way", ["q", "ctrl+q", "SIGINT", "SIGTERM", "hangup"])
def test_the_tui_ended_mid_refresh_waits_and_commits(world: World, tui, way: str) -> None:
    ids = world.accounts(1)
    gate = world.hold()
    session = tui()
    assert gate.arrived.wait(60), "the TUI never started the refresh"
    _stop_tui(session, session.pid, way)
    world.log_says(f"stopping: waiting for 1 refresh under way to finish ({ids[0]})")
    gate.release()
    if way == "hangup":  # the terminal is gone: nothing is said to it, and tmux keeps no status
        session.gone()
        assert world.leases() == []
        world.assert_nothing_lost(ids)
        return
    assert session.ended() == 0, session.said
    assert f"stopping: waiting for 1 refresh under way to finish ({ids[0]})" in session.said, session.said
    assert_quiet(session.said)
    world.assert_nothing_lost(ids)


def test_ctrl_c_in_the_tui_tells_how_to_quit_and_loses_nothing(world: World, tui) -> None:
    ids = world.accounts(1)
    gate = world.hold()
    session = tui()
    assert gate.arrived.wait(60)
    session.keys("C-c")  # Textual's own: a note saying how to quit; the app carries on
    until(lambda: "to quit" in session.screen(), "the note on how to quit", 30)
    gate.release()
    assert wait_for_answers(world.emulator, "RefreshToken", timeout=30), "the refresh never finished"
    session.keys("q")
    assert session.ended() == 0, session.said
    assert_quiet(session.said)
    world.assert_nothing_lost(ids)


def test_the_tui_abandons_on_a_second_signal_and_names_it(world: World, tui) -> None:
    ids = world.accounts(1)
    gate = world.hold()  # never let go: only the second signal ends the wait
    session = tui()
    assert gate.arrived.wait(60)
    session.keys("q")
    until(lambda: "stopping: waiting for 1 refresh" in session.said, "the wait to be said", 30)
    os.kill(session.pid, signal.SIGTERM)
    assert session.ended(timeout=20) == 130, session.said
    assert f"abandoned the refresh of {ids[0]}: if the service answered" in session.said, session.said
    assert_quiet(session.said)
    assert world.leases() == []


def test_end_of_input_at_the_remove_question_is_a_no(world: World) -> None:
    (account_id,) = world.accounts(1)
    term = Terminal([world.exe, "remove", account_id], world.env)
    try:
        term.wait_for("from kiro-tui? [y/N] ")
        term.type(b"\x04")
        assert term.end(timeout=20) == 0, term.text
    finally:
        term.kill()
    assert "Nothing removed." in term.text
    assert_quiet(term.text)
    assert [a["id"] for a in _saved(world)] == [account_id]
