"""A place file written all at once (core/places/_files.py): the rename made durable by an fsync
of its folder, at once, or, inside `folder_syncs_deferred`, once per folder at the block's end,
after every write of the block (so one journal commit covers their renames)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiro_tui.core.places import _files
from kiro_tui.core.places._files import atomic_write, folder_syncs_deferred


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, list[str]]]:
    """Each folder sync, with what every file under the test's folders held at that moment."""
    calls: list[tuple[Path, list[str]]] = []
    real = _files._sync_folder

    def sync(folder: Path) -> None:
        root = folder.parent
        calls.append((folder, sorted(p.read_text() for p in root.glob("*/*.json"))))
        real(folder)

    monkeypatch.setattr(_files, "_sync_folder", sync)
    return calls


def folders(tmp_path: Path, *names: str) -> list[Path]:
    made = [tmp_path / name for name in names]
    for folder in made:
        folder.mkdir(mode=0o700)
    return made


def test_a_write_alone_syncs_its_folder_before_it_returns(tmp_path: Path, synced) -> None:  # type: ignore[no-untyped-def]
    a, b = folders(tmp_path, "a", "b")
    atomic_write(a / "one.json", b"1", 0o600)
    assert synced == [(a, ["1"])]
    atomic_write(b / "two.json", b"2", 0o600)
    assert synced == [(a, ["1"]), (b, ["1", "2"])]


def test_deferred_folders_are_synced_once_each_after_the_last_write(tmp_path: Path, synced) -> None:  # type: ignore[no-untyped-def]
    a, b = folders(tmp_path, "a", "b")
    with folder_syncs_deferred():
        atomic_write(a / "one.json", b"1", 0o600)
        atomic_write(b / "two.json", b"2", 0o600)
        with folder_syncs_deferred():  # an inner block leaves them to the outer one
            atomic_write(a / "three.json", b"3", 0o600)
        assert synced == []
    assert synced == [(a, ["1", "2", "3"]), (b, ["1", "2", "3"])]
    atomic_write(a / "four.json", b"4", 0o600)  # after the block: at once again
    assert [folder for folder, _ in synced] == [a, b, a]


def test_a_write_that_fails_inside_the_block_still_leaves_the_others_synced(tmp_path: Path, synced) -> None:  # type: ignore[no-untyped-def]
    (a,) = folders(tmp_path, "a")
    with pytest.raises(FileNotFoundError), folder_syncs_deferred():
        atomic_write(a / "one.json", b"1", 0o600)
        atomic_write(tmp_path / "gone" / "two.json", b"2", 0o600)
    assert synced == [(a, ["1"])]
    assert (a / "one.json").read_text() == "1"
    assert not list(a.glob("*.kiro-tui.tmp"))
