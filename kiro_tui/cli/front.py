"""How a command reaches the engine's front (core/engine.py), the one the TUI uses too: the
settings, the store, the engine over it, and running the engine's work to its end.

A command changes accounts only through the `Engine` it gets here, never through the store: the
same edit then does the same thing whether a person makes it here or in the TUI. A command that
only reads accounts (`list`) asks the engine's own readers (core/views.py) without starting one
(they keep only their cache of what each place held).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from kiro_tui.cli.output import say, warn
from kiro_tui.core import paths
from kiro_tui.core.clock import SystemClock
from kiro_tui.core.config import Settings, load_settings
from kiro_tui.core.places._files import resolved
from kiro_tui.core.store import AccountStore

if TYPE_CHECKING:  # the engine loads lazily: `kiro-tui --help` stays quick
    from kiro_tui.core.engine import Engine
    from kiro_tui.core.held import HeldToken

T = TypeVar("T")
log = logging.getLogger("kiro_tui")


def read_settings() -> Settings:
    return load_settings(paths.config_file())


def open_store() -> AccountStore:
    store = AccountStore.open(paths.store_file())
    for message in store.permission_fixes:
        warn(message)
    return store


def kiro_cli_location(explicit: str | None, settings: Settings) -> tuple[Path | None, list[Path]]:
    """Where kiro-cli's database is: --db, else config `kiro_cli_db` (taken as given, so a wrong
    path is reported as such), else the first of kiro-cli's and Amazon Q's usual paths that
    exists. Returns (the database or None, every path looked at). The one place this is
    decided, for every command and the TUI."""
    named = explicit or settings.kiro_cli_db
    if named:
        path = resolved(Path(named))
        return path, [path]
    candidates = paths.kiro_cli_db_candidates()
    found = next((path for path in candidates if path.exists()), None)
    return (resolved(found) if found else None), candidates


def make_engine(store: AccountStore, settings: Settings, db: Path | None = None,
                candidates: list[Path] | None = None, **options: Any) -> Engine:
    from kiro_tui.core.aws.endpoints import Endpoints
    from kiro_tui.core.engine import Engine

    return Engine(store, settings, SystemClock(), Endpoints.from_env(), db, kiro_cli_candidates=candidates,
                  **options)  # Engine's own keywords, passed on


def held_after_rescue(store: AccountStore, settings: Settings) -> Mapping[str, HeldToken]:
    """Commit the tokens earlier runs left in rescue copies, and say which (and what is still
    held), before a command reads accounts without an engine; returns the tokens still held in
    memory, by account. In the usual case, with none, one look at the folders and no engine."""
    from kiro_tui.core import rescue

    if not rescue.pending(store.path):
        return {}
    engine = make_engine(store, settings)

    async def save() -> list[str]:
        try:
            return await engine.save_rescued()
        finally:
            await engine.close()

    for text in run(save):
        warn(text)
    return engine.refresher.held if engine.refresher is not None else {}


def edit_engine(store: AccountStore) -> Engine:
    """An engine for an edit that reads no setting (`mode`, `remove`, `rename`): a broken config
    file does not stop a person tidying their accounts."""
    return make_engine(store, Settings())


def run(coroutine_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    import asyncio  # (here: `list` never loads it)

    return asyncio.run(coroutine_fn())


def run_engine(engine: Engine, work: Callable[[], Awaitable[T]],
               tell: Callable[[str, bool], None] | None = None) -> T:
    """Run a command's work on its engine, the one way every command ends (core/shutdown.py):
    the first Ctrl-C, SIGTERM or SIGHUP lets refreshes under way finish and commit, a second
    abandons them by name; the engine is closed after them."""
    import asyncio

    from kiro_tui.core.shutdown import run_stoppable

    return asyncio.run(run_stoppable(engine, work, tell or _tell_stopping))


def _tell_stopping(line: str, warning: bool) -> None:
    log.warning("%s", line)  # the log file keeps it, even after SIGHUP
    say(f"kiro-tui: {line}", err=True)


def path_argument(text: str | None) -> Path | None:
    """A --path as given: the home folder expanded, made absolute against the working folder."""
    return Path(text).expanduser().absolute() if text else None
