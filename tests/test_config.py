from pathlib import Path

import pytest

from kiro_tui.core.config import Settings, load_settings
from kiro_tui.core.errors import ConfigError


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    assert load_settings(tmp_path / "nope.toml") == Settings()


def test_values_are_read(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('refresh_window = 300\nconcurrency = 4\nimport_mode = "follow"\nbell = true\n')
    settings = load_settings(path)
    assert (settings.refresh_window, settings.concurrency, settings.import_mode, settings.bell) == (
        300,
        4,
        "follow",
        True,
    )


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("refresh_window = 'ten'", "refresh_window must be a number"),
        ("concurrency = 0", "concurrency must be between 1 and 256"),
        ("concurrency = 2.5", "concurrency must be a whole number"),
        ("import_mode = 'mirror'", "import_mode must be one of sync, follow, own"),
        ("bell = 1", "bell must be true or false"),
        ("colour = 'red'", "unknown key 'colour'"),
        ("refresh_window = ", "not valid TOML"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert needle in str(info.value)
    assert str(path) in str(info.value)
