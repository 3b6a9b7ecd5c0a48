"""The log formatter: the last line of defence for secrets and for the terminal `watch` writes to."""

from __future__ import annotations

import logging
import sys

from kiro_tui.core.logs import RedactingFormatter


def record(message: str, exc_info: object = None) -> logging.LogRecord:
    return logging.LogRecord("kiro_tui.test", logging.INFO, __file__, 1, message, (), exc_info)  # type: ignore[arg-type]


def test_a_label_cannot_forge_a_line_or_reach_the_terminal_as_an_escape() -> None:
    line = RedactingFormatter("%(message)s").format(record("a1b2c3d4 ev\x1b[2Jil\rFAKE: added from kiro-cli"))
    assert line == "a1b2c3d4 ev?[2Jil?FAKE: added from kiro-cli"


def test_tracebacks_keep_their_lines_and_lose_their_secrets() -> None:
    try:
        raise RuntimeError("refresh failed for aorAAAAAGsecretsecretsecretsecret:sig")
    except RuntimeError:
        text = RedactingFormatter("%(message)s").format(record("boom", sys.exc_info()))
    lines = text.split("\n")
    assert lines[0] == "boom" and lines[1] == "Traceback (most recent call last):" and len(lines) > 3
    assert "aorAAAAAGsecretsecretsecretsecret" not in text
