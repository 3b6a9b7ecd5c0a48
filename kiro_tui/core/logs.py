"""Logging to a private file in the platform's log folder. Never a token: callers log ids,
labels, statuses and redacted service messages only."""

from __future__ import annotations

import logging
import os
from logging.handlers import RotatingFileHandler
from pathlib import Path

from kiro_tui.core import paths
from kiro_tui.core.aws.errors import redact
from kiro_tui.core.summary import printable

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RedactingFormatter(logging.Formatter):
    """Masks anything token-shaped in every line, tracebacks included: a last line of defence.
    Lines are also made printable: a label from kiro-cli cannot forge a log line or send an
    escape sequence to the terminal `kiro-tui watch` writes to."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(redact(super().format(record)), keep_newlines=True)


def log_file() -> Path:
    return paths.log_dir() / "kiro-tui.log"


def setup_file_logging(level: int = logging.INFO) -> Path | None:
    """Log to kiro-tui.log (0600, rotated at 1 MB). Returns the path, or None if it cannot be written."""
    path = log_file()
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        handler = RotatingFileHandler(path, maxBytes=1_000_000, backupCount=3, encoding="utf-8")
    except OSError:
        return None
    handler.setFormatter(RedactingFormatter(LOG_FORMAT))
    root = logging.getLogger("kiro_tui")
    root.setLevel(level)
    root.addHandler(handler)
    return path
