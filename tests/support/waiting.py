"""Waiting for what another process, thread or task does: polled, bounded, and named when it
never comes (the bound is how long a broken run hangs, never a measure of speed)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


def until(condition: Callable[[], object], what: str, timeout: float = 60, every: float = 0.05) -> None:
    """Block until `condition()` holds, looking `every` seconds (a look may start a process:
    tmux, a CLI); fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:g} s for {what}")
        time.sleep(every)


async def until_async(condition: Callable[[], object], what: str, timeout: float = 10) -> None:
    """`until` for a test on the event loop: the loop goes on meanwhile."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:g} s for {what}")
        await asyncio.sleep(0.01)
