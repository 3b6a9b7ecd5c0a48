"""Run the installed `kiro-tui` command the way a person or a script would."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass


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
