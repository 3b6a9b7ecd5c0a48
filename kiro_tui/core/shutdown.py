"""How a process ends while refreshes are under way: one piece for every command and the TUI.

A refresh token rotates: once the service has answered, the new token in that answer is the
only live copy, so no way out may drop it. The first SIGINT (Ctrl-C), SIGTERM or SIGHUP (the
terminal closed) stops the engine: nothing new starts, refreshes under way finish and commit,
and only then do the HTTP client and the store close. A second one abandons what is still
under way and names it. After SIGHUP nothing is written to the terminal that went away (its
output goes to /dev/null; the log file still has every line).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from kiro_tui.core.errors import KiroTuiError

if TYPE_CHECKING:
    import asyncio

    from kiro_tui.core.engine import Engine

T = TypeVar("T")
EXIT_INTERRUPTED = 130
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
"""The ways a person or the system asks a kiro-tui process to end (Windows has only SIGINT, SIGTERM)."""
ABANDON_CONSEQUENCE = "if the service answered, its new token is lost and the account will need a login"


class Interrupted(KiroTuiError):
    """A command stopped by a signal, after its refreshes under way finished (or were abandoned)."""

    exit_code = EXIT_INTERRUPTED


class AbandonedRefreshes(KeyboardInterrupt):
    """A second Ctrl-C (or signal) cut the wait for refreshes under way; `ids` name them."""

    def __init__(self, ids: list[str]) -> None:
        super().__init__(ids)
        self.ids = ids


def waiting_message(ids: list[str]) -> str:
    """'stopping: waiting for 2 refreshes under way to finish (A, B); ...'"""
    return (f"stopping: waiting for {len(ids)} refresh{'es' if len(ids) > 1 else ''} under way to finish "
            f"({', '.join(ids)}); Ctrl-C again to abandon")


def abandoned_message(ids: list[str]) -> str:
    return f"abandoned the refresh of {', '.join(ids)}: {ABANDON_CONSEQUENCE}"


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def leave_the_terminal() -> None:
    """The terminal went away (SIGHUP): what would still be written to it goes to /dev/null, so
    that no write can fail or block while refreshes under way finish."""
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
    except OSError:
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    for fd in (0, 1, 2):
        try:
            os.dup2(devnull, fd)
        except OSError:
            pass
    os.close(devnull)


async def run_stoppable(engine: Engine, work: Callable[[], Awaitable[T]],
                        tell: Callable[[str, bool], None]) -> T:
    """Run a command's `work` on this engine until it ends, or until a stop signal: then the
    refreshes under way finish and commit (a second signal abandons them, by name) and
    `Interrupted` is raised saying what happened. The engine is closed either way, after them.
    `tell(line, warning)` says what is being waited for and what was abandoned."""
    import asyncio  # (here: a command that only reads, `list`, never loads it)

    loop = asyncio.get_running_loop()
    signals: asyncio.Queue[int] = asyncio.Queue()
    installed = []
    for signum in STOP_SIGNALS:
        try:
            loop.add_signal_handler(signum, signals.put_nowait, signum)
            installed.append(signum)
        except (NotImplementedError, RuntimeError, ValueError):  # Windows, or not the main thread
            pass
    job = asyncio.ensure_future(work())
    first = asyncio.ensure_future(signals.get())
    try:
        await asyncio.wait([job, first], return_when=asyncio.FIRST_COMPLETED)
        if job.done():
            return job.result()
        signum = first.result()
        if signum == getattr(signal, "SIGHUP", None):
            leave_the_terminal()
        running = engine.under_way
        abandoned = await stop_draining(engine, signals, tell)
        job.cancel()
        await asyncio.gather(job, return_exceptions=True)
        raise Interrupted(_interrupted(signum, running, abandoned))
    finally:
        first.cancel()
        for signum in installed:
            loop.remove_signal_handler(signum)
        if not job.done():  # the work raised through us (a bug, or a cancel from outside)
            job.cancel()
            await asyncio.gather(job, return_exceptions=True)
        await engine.close()


async def stop_draining(engine: Engine, signals: asyncio.Queue[int], tell: Callable[[str, bool], None]) -> list[str]:
    """Stop the engine, letting refreshes under way finish and commit; the next signal on
    `signals` abandons them. Returns the ids abandoned (none when everything finished)."""
    import asyncio

    running = engine.under_way
    if running:
        tell(waiting_message(running), False)
    stopper = asyncio.ensure_future(engine.stop())
    again = asyncio.ensure_future(signals.get())
    await asyncio.wait([stopper, again], return_when=asyncio.FIRST_COMPLETED)
    if stopper.done():
        again.cancel()
        left = stopper.result()
    else:
        if again.result() == getattr(signal, "SIGHUP", None):
            leave_the_terminal()
        left = engine.under_way
    if left:
        tell(abandoned_message(left), True)
        await engine.abandon()
    return left


def _interrupted(signum: int, running: list[str], abandoned: list[str]) -> str:
    finished = [i for i in running if i not in abandoned]
    said = f"interrupted ({signal_name(signum)})"
    if abandoned:
        return f"{said}; {abandoned_message(abandoned)}"
    if finished:
        return f"{said} after the refresh of {', '.join(finished)} under way finished"
    return said
