"""The command-line face of kiro-tui: `kiro-tui COMMAND ...` for scripts.

Each command is a small function over the engine's front (core/engine.py), the same one the
TUI uses, in the module of its group: accounts.py, refresh.py, places.py, login.py, apps.py;
parser.py builds the parser, output.py holds how commands print and end, front.py how they
reach the engine. Any `KiroTuiError` ends the program with `kiro-tui: error: <message>` on
stderr and its exit code; a bug is logged with its traceback to the log file and reported in
one line.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from kiro_tui.cli.accounts import cmd_list, cmd_mode, cmd_remove, cmd_rename, cmd_show, cmd_usage, cmd_use
from kiro_tui.cli.apps import COMPLETE, cmd_completion, cmd_demo, cmd_emulator, cmd_tui
from kiro_tui.cli.front import kiro_cli_location
from kiro_tui.cli.login import cmd_login
from kiro_tui.cli.output import (
    EXIT_FAILURE,
    EXIT_NEEDS_LOGIN,
    EXIT_OK,
    EXIT_PIPE_CLOSED,
    EXIT_USAGE,
    CommandFailed,
    UsageError,
    say,
    warn,
)
from kiro_tui.cli.parser import build_parser
from kiro_tui.cli.places import cmd_export, cmd_import, cmd_link, cmd_sources, cmd_unlink
from kiro_tui.cli.refresh import cmd_refresh, cmd_token, cmd_watch
from kiro_tui.core import paths
from kiro_tui.core.errors import KiroTuiError

__all__ = [
    "EXIT_FAILURE", "EXIT_NEEDS_LOGIN", "EXIT_OK", "EXIT_PIPE_CLOSED", "EXIT_USAGE", "CommandFailed", "UsageError",
    "build_parser", "cmd_completion", "cmd_demo", "cmd_emulator", "cmd_export", "cmd_import", "cmd_link",
    "cmd_list", "cmd_login", "cmd_mode", "cmd_refresh", "cmd_remove", "cmd_rename", "cmd_show", "cmd_sources",
    "cmd_token", "cmd_tui", "cmd_unlink", "cmd_usage", "cmd_use", "cmd_watch", "kiro_cli_location", "main",
    "say", "warn",
]

log = logging.getLogger("kiro_tui")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # anywhere, --help included
        return _pipe_closed()


def _main(argv: Sequence[str] | None) -> int:
    # What the core logs goes to the private log file (and `watch` adds the terminal), never to
    # Python's last-resort handler: that prints unformatted, unmasked lines on stderr.
    logging.getLogger("kiro_tui").addHandler(logging.NullHandler())
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [COMPLETE]:  # the completion scripts' helper: cheap, no parser, no engine
        from kiro_tui.cli.apps import complete_accounts

        return complete_accounts()
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    if getattr(args, "ids", None) and getattr(args, "all", False):
        parser.error("give account ids or --all, not both")
    if handler not in (cmd_emulator, cmd_demo) and getattr(args, "logs", True):  # (paths, forget: logs=False)
        from kiro_tui.core.logs import setup_file_logging

        setup_file_logging()  # warnings from the core (a lease not released, an unreadable row) land here
    from kiro_tui.core.shutdown import EXIT_INTERRUPTED, Interrupted

    try:
        code = handler(args)
        sys.stdout.flush()  # a closed pipe is noticed here, not in the interpreter's last flush
        return code
    except BrokenPipeError:
        raise
    except Interrupted as exc:
        say(f"kiro-tui: {exc}", err=True)
        return exc.exit_code
    except KiroTuiError as exc:
        say(f"kiro-tui: error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        print("kiro-tui: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: the traceback goes to the log file, one line to the person
        from kiro_tui.core.aws.errors import redact
        from kiro_tui.core.logs import setup_file_logging
        from kiro_tui.core.store import damage_message

        damaged = damage_message(paths.store_file(), exc)  # the places say their own files' damage
        if damaged:
            say(f"kiro-tui: error: {damaged}", err=True)
            return EXIT_FAILURE

        where = setup_file_logging()
        log.exception("unexpected error in `kiro-tui %s`", args.command or "")
        detail = f"; details in {where}" if where else ""
        say(f"kiro-tui: internal error: {type(exc).__name__}: {redact(str(exc))[:200]}{detail}. "
            "Please report it.", err=True)
        return EXIT_FAILURE


def _pipe_closed() -> int:
    """Whoever read our output stopped reading (`kiro-tui list | head -1`): end quietly. What is
    still buffered goes to /dev/null, so the interpreter's last flush cannot complain either."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(devnull, stream.fileno())
        except (OSError, ValueError):
            pass
    os.close(devnull)
    return EXIT_PIPE_CLOSED
