"""`kiro-tui watch` in a subprocess, and an emulator that tells when a refresh request arrives."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path


class Watch:
    """`kiro-tui watch` in a subprocess; stderr is read line by line on a thread."""

    def __init__(self, exe: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([exe, "watch"], env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def err(self) -> str:
        return "".join(self.lines)

    def wait_for_line(self, text: str, timeout: float = 60, times: int = 1) -> None:
        """Until stderr has said `text` (`times` times); fails at once if watch exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.err.count(text) >= times:
                return
            if self.proc.poll() is not None:
                self._reader.join(timeout=5)
                if self.err.count(text) >= times:
                    return
                raise AssertionError(f"watch exited ({self.proc.returncode}) before saying {text!r}:\n{self.err}")
            time.sleep(0.05)
        raise AssertionError(f"watch never said {text!r} {times} times:\n{self.err}")

    def wait(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def refresh_request_arrives(emulator) -> threading.Event:
    """Set once the emulator has *received* a refresh request (before its latency, before it answers)."""
    arrived = threading.Event()
    original = emulator.app.handle

    async def handle(request):  # type: ignore[no-untyped-def]
        if request.path in ("/refreshToken", "/token"):
            arrived.set()
        return await original(request)

    emulator.app.handle = handle
    return arrived


def wait_for_answers(emulator, operation: str, timeout: float = 30) -> list[dict]:
    """The emulator's answers to `operation`, once there is at least one (it logs after answering)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answered = [r for r in emulator.requests() if r["operation"] == operation]
        if answered:
            return answered
        time.sleep(0.05)
    return []


def watch_config(isolated_dirs: Path) -> None:
    config = isolated_dirs / "config" / "kiro-tui" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("watch_interval = 0.5\n")
