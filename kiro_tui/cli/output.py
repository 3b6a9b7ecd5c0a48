"""What the commands print and how they end: lines for a person (made printable), JSON for
scripts, tables, warnings, the one-line errors and the exit codes (contracts: docs/usage.md).
"""

from __future__ import annotations

import json
import sys

from kiro_tui.core.errors import KiroTuiError
from kiro_tui.core.summary import printable

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_NEEDS_LOGIN = 0, 1, 2, 3
EXIT_PIPE_CLOSED = 141
"""128 + SIGPIPE: what a command killed by a closed pipe reports, as `yes | head` does."""

NO_ACCOUNTS = "No accounts yet. `kiro-tui import` reads kiro-cli's logins; `kiro-tui login` signs in."


class CommandFailed(KiroTuiError):
    """A command that ran but did not achieve what was asked."""


class UsageError(KiroTuiError):
    """The command was asked for something it cannot do as given (exit 2)."""

    exit_code = EXIT_USAGE


def say(line: str, *, err: bool = False) -> None:
    """One line for a person. Labels, emails and errors come from kiro-cli and AWS: made
    printable, so no escape sequence reaches the terminal (JSON output escapes by itself)."""
    print(printable(line), file=sys.stderr if err else sys.stdout, flush=True)


def warn(message: str) -> None:
    say(f"kiro-tui: warning: {message}", err=True)


def print_json(value: object) -> None:
    """Indented for a person at a terminal; one compact line for a program reading a pipe (as
    `gh` does), which json's C encoder writes several times faster (indenting is pure Python:
    0.1 s of `list --json` at 1,000 accounts)."""
    if sys.stdout.isatty():
        print(json.dumps(value, indent=2))
    else:
        print(json.dumps(value, separators=(",", ":")))


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    table = [[printable(cell) for cell in row] for row in [headers, *rows]]  # widths of what is printed
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    for row in table:
        say("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
