"""Shared fixtures: every test runs with its own XDG folders, so nothing touches the real home."""

from __future__ import annotations

import gc
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, settings

from tests.support.kiro_cli_db import KiroCliDb
from tests.support.run import InProcessCli

if TYPE_CHECKING:
    from kiro_tui.emulator import Emulator


# The suite's own modules are cached as compiled (and, for the tests, assertion-rewritten)
# bytecode, as pytest does by default: where PYTHONDONTWRITEBYTECODE is set (this machine sets
# it), every xdist worker rewrote every test module again, 2.7 s of CPU each.
sys.dont_write_bytecode = False

# Property tests check what an input does, never how fast it is made: on two cores shared by six
# workers a generated example can take a second, and the too_slow health check failed a run for
# the machine's load, not for kiro-tui.
settings.register_profile("kiro-tui", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("kiro-tui")


def pytest_configure(config: pytest.Config) -> None:
    """kiro-tui's bytecode written once, by the controller, as an install has it: where
    PYTHONDONTWRITEBYTECODE is set (this machine sets it), every worker and every `kiro-tui`
    process a test starts would compile its modules again (0.1 s of CPU each)."""
    if not hasattr(config, "workerinput"):
        from benchmarks.harness import compile_bytecode

        compile_bytecode()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first (the grouped multi-process run before them): under xdist they start at
    once, and their real seconds of waiting overlap the quick tests on the other worker instead
    of ending the run alone."""
    items.sort(key=lambda item: (item.get_closest_marker("xdist_group") is None,
                                 item.get_closest_marker("slow") is None))


@pytest.fixture(autouse=True)
def collector_given_back() -> Iterator[None]:
    """The TUI takes the garbage collector's full collections over while it runs
    (tui/collector.py) and must give them back when it leaves: a test whose app did not would
    leave this process never collecting cycles."""
    given = gc.get_threshold()
    yield
    left = gc.get_threshold()
    gc.set_threshold(*given)
    assert left == given, f"the garbage collector's thresholds were left at {left}, not {given}"


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point platformdirs (XDG on Linux) at a temp folder for this test."""
    home = tmp_path / "home"
    for var, sub in (
        ("XDG_DATA_HOME", "data"),
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_STATE_HOME", "state"),
        ("XDG_CACHE_HOME", "cache"),
    ):
        monkeypatch.setenv(var, str(home / sub))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("KIRO_TUI_ENDPOINT_URL", raising=False)
    # pytest-xdist's workers set COLUMNS=80 and LINES=24, which Textual obeys over the real
    # terminal's size: a TUI started in a 160-column tmux pane would draw 80 columns.
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)
    return home


@pytest.fixture
def kiro_db(isolated_dirs: Path) -> KiroCliDb:
    """An empty kiro-cli database at kiro-cli's default Linux path."""
    return KiroCliDb(isolated_dirs / "data" / "kiro-cli" / "data.sqlite3")


@pytest.fixture
def kiro_tui_exe() -> str:
    """The installed `kiro-tui` console script of this environment."""
    candidate = Path(sys.executable).parent / ("kiro-tui.exe" if os.name == "nt" else "kiro-tui")
    found = str(candidate) if candidate.exists() else shutil.which("kiro-tui")
    if not found:
        pytest.fail("kiro-tui is not installed in this environment; run `pip install -e .[test]`")
    return found


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> InProcessCli:
    """`cli("list", "--json")`: kiro-tui's `main(argv)` in this process (tests/support/run.py)."""
    return InProcessCli(monkeypatch, capsys)


class FakeTime:
    """A wall clock for the emulator that only moves when a test says so."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def emulator_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def emulator(emulator_time: FakeTime):
    """The emulator on 127.0.0.1 (real HTTP), with a clock the test controls."""
    from kiro_tui.emulator import Emulator

    with Emulator(clock=emulator_time) as running:
        yield running


@pytest.fixture
def start_emulator() -> Iterator[Callable[..., Emulator]]:
    """Start emulators on the real clock, with the settings a test needs (`token_ttl`,
    `approve_after`, ...); every one started is stopped after the test. Each test gets fresh ones:
    a start costs about a millisecond, and a shared one would carry users, faults (latency) and
    its request log from one test into the next."""
    from kiro_tui.emulator import Emulator

    started: list[Emulator] = []

    def start(**settings: Any) -> Emulator:
        running = Emulator(**settings)
        running.start()
        started.append(running)
        return running

    yield start
    for running in reversed(started):
        running.stop()


@pytest.fixture
def live_emulator(start_emulator: Callable[..., Emulator]) -> Emulator:
    """The emulator on wall time (real HTTP), for tests whose `kiro-tui` runs read the real clock."""
    return start_emulator()


@pytest.fixture
def approving_emulator(start_emulator: Callable[..., Emulator]) -> Emulator:
    """The live emulator approving each login code half a second after it is shown, as a person
    approving in the browser would."""
    return start_emulator(approve_after=0.5)


@pytest.fixture
def endpoints(emulator):
    from kiro_tui.core.aws.endpoints import Endpoints

    return Endpoints(override=emulator.url)


@pytest.fixture
async def http():
    from kiro_tui.core.aws.transport import make_http_client

    async with make_http_client(timeout=5.0) as client:
        yield client


@pytest.fixture
async def rig(tmp_path: Path, emulator, emulator_time: FakeTime, http, endpoints):
    """The refresh rig (tests/support/refresh_rig.py): its own store, the emulator's clock."""
    from kiro_tui.core.clock import ManualClock
    from kiro_tui.core.store import AccountStore
    from tests.support.engine import at
    from tests.support.refresh_rig import Rig

    with AccountStore.open(tmp_path / "store" / "accounts.db") as store:
        yield Rig(tmp_path, store, http, endpoints, ManualClock(at(emulator_time.now)), emulator)
