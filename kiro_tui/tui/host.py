"""What screens and widgets may ask of the app: the clock, the settings and the engine's thread.

A screen reaches the app through this small typed interface rather than through whatever
attributes the app happens to have: what the engine knows (accounts, places, kiro-cli's
database, problems) is asked of the engine or arrives in its events, never kept on the app.
`KiroTuiApp` satisfies it (mypy checks that in tui/app.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, cast

if TYPE_CHECKING:
    from textual.dom import DOMNode

    from kiro_tui.core.clock import Clock
    from kiro_tui.core.config import Settings
    from kiro_tui.core.engine_thread import EngineThread


class Host(Protocol):
    clock: Clock
    settings: Settings
    engine_thread: EngineThread
    """The engine on its own thread: `await engine_thread.call(lambda engine: ...)` from a worker."""
    fetch_usage: bool
    """Whether anything may ask the service for usage and profiles (off in tests and snapshots)."""

    def take_changed(self) -> frozenset[str] | None:
        """The account ids the engine changed since the last take (None: any may have)."""
        ...

    def freeze_what_is_built(self) -> None:
        """Every row is on screen: what exists now leaves the garbage collector's sight."""
        ...


def host(node: DOMNode) -> Host:
    """The app this screen or widget runs in, as the interface it may use."""
    return cast("Host", node.app)
