"""The log file: private (0600 files, 0700 folders) and the last line of defence for secrets and
for the terminal `watch` writes to."""

from __future__ import annotations

import logging
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiro_tui.core.logs import (
    LOG_BACKUPS,
    RedactingFormatter,
    log_file,
    setup_file_logging,
)


def record(message: str, exc_info: object = None) -> logging.LogRecord:
    return logging.LogRecord("kiro_tui.test", logging.INFO, __file__, 1, message, (), exc_info)  # type: ignore[arg-type]


def test_a_label_cannot_forge_a_line_or_reach_the_terminal_as_an_escape() -> None:
    line = RedactingFormatter("%(message)s").format(record("a1b2c3d4 ev\x1b[2Jil\rFAKE: added from kiro-cli"))
    assert line == "a1b2c3d4 ev?[2Jil?FAKE: added from kiro-cli"


def test_tracebacks_keep_their_lines_and_lose_their_secrets() -> None:
    try:
        raise RuntimeError("refresh failed for aorAAAAAGsecretsecretsecretsecret:sig")
    except RuntimeError:
        text = RedactingFormatter("%(message)s").format(record("boom", sys.exc_info()))
    lines = text.split("\n")
    assert lines[0] == "boom" and lines[1] == "Traceback (most recent call last):" and len(lines) > 3
    assert "aorAAAAAGsecretsecretsecretsecret" not in text


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """The usual umask (022), under which a plain new file comes out 0644 and a folder 0755."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.fixture
def kiro_logger() -> Iterator[logging.Logger]:
    """kiro-tui's logger, with the handlers a test adds removed and closed afterwards."""
    logger = logging.getLogger("kiro_tui")
    handlers, level = list(logger.handlers), logger.level
    yield logger
    for handler in [h for h in logger.handlers if h not in handlers]:
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(level)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_log_file_stays_0600_across_rotations(permissive_umask, kiro_logger) -> None:
    path = setup_file_logging(max_bytes=300)
    assert path is not None
    for number in range(60):  # ~5 rotations: every backup slot is filled by a file opened after a rollover
        kiro_logger.info("line %d %s", number, "x" * 60)
    files = [path, *(path.with_name(f"{path.name}.{n}") for n in range(1, LOG_BACKUPS + 1))]
    assert {f.name: oct(mode(f)) for f in files} == {f.name: oct(0o600) for f in files}


def test_files_an_older_version_left_readable_are_tightened(permissive_umask, kiro_logger) -> None:
    path = log_file()
    path.parent.mkdir(parents=True)
    older = [path, path.with_name(f"{path.name}.1")]
    for file in older:
        file.write_text("old line\n")
        file.chmod(0o644)
    assert setup_file_logging() == path
    kiro_logger.info("new line")
    assert [oct(mode(f)) for f in older] == [oct(0o600)] * 2


def test_folders_it_creates_are_0700_and_the_state_home_is_left_alone(isolated_dirs: Path, permissive_umask,
                                                                      kiro_logger) -> None:
    state_home = isolated_dirs / "state"
    state_home.mkdir(parents=True)
    state_home.chmod(0o775)  # the person's own folder, whatever its mode
    path = setup_file_logging()
    assert path is not None and path.parent == state_home / "kiro-tui" / "log"
    assert oct(mode(state_home)) == oct(0o775)
    assert [oct(mode(d)) for d in (state_home / "kiro-tui", path.parent)] == [oct(0o700)] * 2
    assert oct(mode(path)) == oct(0o600)


def test_a_missing_state_home_is_created_0700_as_the_xdg_spec_asks(isolated_dirs: Path, permissive_umask,
                                                                   kiro_logger) -> None:
    path = setup_file_logging()
    assert path is not None
    created = [isolated_dirs, isolated_dirs / "state", isolated_dirs / "state" / "kiro-tui", path.parent]
    assert [oct(mode(d)) for d in created] == [oct(0o700)] * 4
