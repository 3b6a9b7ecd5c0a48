"""Shared fixtures: every test runs with its own XDG folders, so nothing touches the real home."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.support.kiro_cli_db import KiroCliDb


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
