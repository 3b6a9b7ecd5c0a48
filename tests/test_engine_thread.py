"""The engine's own thread (core/engine_thread.py): the presenter's word that its first screen is
up (`begin`) starts the engine's background work whenever it comes, even before the thread's loop
is there to be told (a test that called it right after `start` once hit the loop before its event
existed, and CI failed on an AttributeError)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiro_tui.core import engine_thread
from kiro_tui.core.aws.endpoints import Endpoints
from kiro_tui.core.clock import SystemClock
from kiro_tui.core.config import Settings
from kiro_tui.core.engine_thread import EngineThread
from tests.support.waiting import until


@pytest.mark.parametrize("when", ["before start", "right after start", "once ready"])
def test_begin_starts_the_engine_whenever_it_comes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   when: str) -> None:
    monkeypatch.setattr(engine_thread, "BEGIN_AT_THE_LATEST", 3600.0)  # only `begin` can start it here
    thread = EngineThread(tmp_path / "accounts.db", Settings(), SystemClock(), Endpoints(override="http://127.0.0.1:9"),
                          None, [], run_loops=False, fetch_usage=False)
    if when == "before start":
        thread.begin()
    thread.start()
    try:
        if when == "right after start":
            thread.begin()
        if when == "once ready":
            assert thread._ready.wait(30)
            thread.begin()
        until(lambda: thread.engine is not None and thread.engine.refresher is not None, "the engine to start", 30)
        assert thread.error is None
    finally:
        thread.stop()
