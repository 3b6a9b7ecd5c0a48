"""Run the installed `kiro-tui` command the way a person or a script would."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass

import pytest


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> object:
        return json.loads(self.out)


def run_cli(exe: str, *args: str, input_text: str | None = None, env: dict[str, str] | None = None,
            timeout: float = 60) -> Result:
    """Run `kiro-tui ARGS` with this test's XDG_* folders (set in os.environ by conftest)."""
    proc = subprocess.run(
        [exe, *args],
        capture_output=True,
        text=True,
        input=input_text if input_text is not None else "",
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return Result(proc.returncode, proc.stdout, proc.stderr)


class InProcessCli:
    """`kiro-tui ARGS` as `kiro_tui.cli.main(argv)` in this process, for the tests about what a
    command says and stores rather than about processes, terminals or signals (those run the
    installed command). The process-wide state a command touches is put back after each run:
    the environment and stdin (monkeypatched), and the handlers and level of the `kiro_tui`
    logger (`watch` adds the terminal, every command the log file of this test's folders)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
        self.monkeypatch, self.capsys = monkeypatch, capsys

    def __call__(self, *args: str, input_text: str | None = None, env: dict[str, str] | None = None) -> Result:
        from kiro_tui.cli import main

        logger = logging.getLogger("kiro_tui")
        handlers, level = list(logger.handlers), logger.level
        self.capsys.readouterr()  # what the test printed before is not this command's output
        with self.monkeypatch.context() as patch:
            for name, value in (env or {}).items():
                patch.setenv(name, value)
            patch.setattr(sys, "stdin", io.StringIO(input_text or ""))
            try:
                code = main(list(args))
            except SystemExit as exit_:  # argparse's usage errors
                code = exit_.code if isinstance(exit_.code, int) else 1
            finally:
                for added in [h for h in logger.handlers if h not in handlers]:
                    logger.removeHandler(added)
                    added.close()
                logger.setLevel(level)
        out, err = self.capsys.readouterr()
        assert "Traceback" not in err, err
        return Result(code, out, err)


def run_on_terminal(exe: str, *args: str, env: dict[str, str] | None = None, timeout: float = 60) -> str:
    """Run `kiro-tui ARGS` with its output on a pseudo-terminal (as a person sees it); returns
    what it wrote there, line ends as written by the program."""
    import pty
    import select
    import time

    controller, terminal = pty.openpty()
    proc = subprocess.Popen([exe, *args], stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal,
                            env={**os.environ, **(env or {})}, close_fds=True)
    os.close(terminal)
    written = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the program ended and closed its side
                break
            if not chunk:
                break
            written += chunk
        elif proc.poll() is not None:
            break
    proc.wait(timeout=timeout)
    os.close(controller)
    return written.decode("utf-8", "replace").replace("\r\n", "\n")
