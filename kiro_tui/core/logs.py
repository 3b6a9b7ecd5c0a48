"""Logging to a private file in the platform's log folder. Never a token: callers log ids,
labels, statuses and redacted service messages only."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from io import TextIOWrapper
from logging.handlers import RotatingFileHandler
from pathlib import Path

from kiro_tui.core import paths
from kiro_tui.core.aws.errors import redact
from kiro_tui.core.paths import make_private_dirs
from kiro_tui.core.summary import printable

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MAX_LOG_BYTES = 1_000_000
LOG_BACKUPS = 3
_FILE_MODE = 0o600
_DIR_MODE = 0o700


class RedactingFormatter(logging.Formatter):
    """Masks anything token-shaped in every line, tracebacks included: a last line of defence.
    Lines are also made printable: a label from kiro-cli cannot forge a log line or send an
    escape sequence to the terminal `kiro-tui watch` writes to."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(redact(super().format(record)), keep_newlines=True)


class PrivateRotatingFileHandler(RotatingFileHandler):
    """A RotatingFileHandler whose every file is 0600, whatever the umask.

    The plain handler opens a new file after each rollover with the umask's mode (0644 under
    the usual 022), so everything logged after the first rotation was readable by others."""

    def _open(self) -> TextIOWrapper:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, _FILE_MODE)
        try:
            if hasattr(os, "fchmod"):  # not on Windows, where these modes mean nothing
                os.fchmod(fd, _FILE_MODE)  # an older kiro-tui may have left it 0644
            stream = open(fd, self.mode, encoding=self.encoding, errors=self.errors)
            assert isinstance(stream, TextIOWrapper)  # a text mode ("a"), as FileHandler opens it
            return stream
        except BaseException:
            os.close(fd)
            raise

    def handleError(self, record: logging.LogRecord) -> None:
        """The log file cannot take a line (its disk is full): the line is dropped, never
        logging's "--- Logging error ---" and a traceback on the terminal (`watch`, `refresh`)."""


def log_file() -> Path:
    return paths.log_dir() / "kiro-tui.log"


def _tighten_rotated_logs(base: Path, backups: int) -> None:
    """Rotated files are renamed base files, so they keep 0600 from now on; these are the
    ones an older kiro-tui left readable by others."""
    for number in range(1, backups + 1):
        rotated = base.with_name(f"{base.name}.{number}")
        with contextlib.suppress(OSError):
            if not rotated.is_symlink() and stat.S_IMODE(rotated.stat().st_mode) & ~_FILE_MODE:
                rotated.chmod(_FILE_MODE)


def setup_file_logging(level: int = logging.INFO, max_bytes: int = MAX_LOG_BYTES) -> Path | None:
    """Log to kiro-tui.log (0600, rotated at `max_bytes`). Returns the path, or None if it cannot be written."""
    path = log_file()
    root = logging.getLogger("kiro_tui")
    if any(isinstance(h, PrivateRotatingFileHandler) and Path(h.baseFilename) == path for h in root.handlers):
        return path  # already set up (a bug report after `watch` or the TUI set it up): no double lines
    try:
        make_private_dirs(path.parent)
        handler = PrivateRotatingFileHandler(path, maxBytes=max_bytes, backupCount=LOG_BACKUPS, encoding="utf-8")
    except OSError:
        return None
    _tighten_rotated_logs(path, LOG_BACKUPS)
    handler.setFormatter(RedactingFormatter(LOG_FORMAT))
    root.setLevel(level)
    root.addHandler(handler)
    return path
