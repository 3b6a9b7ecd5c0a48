"""The core and the emulator must not know Textual; the layout the docs describe must be real."""

from __future__ import annotations

import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import kiro_tui.core
import kiro_tui.emulator

ROOT = Path(__file__).resolve().parent.parent


def modules_of(package) -> list[str]:  # type: ignore[no-untyped-def]
    return [info.name for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]


def test_core_and_emulator_modules_do_not_import_textual() -> None:
    modules = modules_of(kiro_tui.core) + modules_of(kiro_tui.emulator) + ["kiro_tui.cli", "kiro_tui.demo"]
    assert "kiro_tui.core.refresh" in modules and "kiro_tui.emulator.server" in modules
    headless = [m for m in modules if m != "kiro_tui.demo"]  # the demo opens the TUI, lazily
    script = (
        "import importlib, sys\n"
        f"for name in {headless!r}:\n"
        "    importlib.import_module(name)\n"
        "    assert not any(m == 'textual' or m.startswith('textual.') for m in sys.modules), name\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_the_tui_only_presents_the_core() -> None:
    """No SQL, no HTTP in the tui package: it calls the core for both."""
    for source in (ROOT / "kiro_tui" / "tui").rglob("*.py"):
        text = source.read_text()
        assert "import sqlite3" not in text and "execute(" not in text, source
        assert not re.search(r"\bhttpx\.(get|post|request|AsyncClient\()", text), source


def test_styles_live_in_tcss_files_not_inline() -> None:
    for source in (ROOT / "kiro_tui" / "tui").rglob("*.py"):
        assert "DEFAULT_CSS" not in source.read_text() and "CSS =" not in source.read_text(), source
    assert (ROOT / "kiro_tui" / "tui" / "app.tcss").is_file()


def test_layout_in_the_docs_matches_the_code() -> None:
    readme = (ROOT / "README.md").read_text()
    architecture = (ROOT / "docs" / "architecture.md").read_text()
    packages = sorted(p.relative_to(ROOT / "kiro_tui") for p in (ROOT / "kiro_tui").rglob("__init__.py"))
    for init in packages:
        if init.parent != Path("."):
            assert f"{init.parent.name}/" in architecture, f"docs/architecture.md does not show {init.parent}/"
    for package in ("core/", "emulator/", "tui/"):
        assert (ROOT / "kiro_tui" / package).is_dir(), package
    for module in sorted((ROOT / "kiro_tui" / "core").glob("*.py")):
        if module.name != "__init__.py":
            assert module.stem in architecture, f"docs/architecture.md does not mention core/{module.name}"
    for name in ("core/", "emulator/", "tui/", "benchmarks/", "scripts/screenshots.py", "tests/"):
        assert name in readme, name
    for doc in ("usage.md", "accounts-and-modes.md", "troubleshooting.md", "architecture.md", "emulator.md",
                "security.md"):
        assert (ROOT / "docs" / doc).is_file(), doc
        assert f"docs/{doc}" in readme, f"README does not link docs/{doc}"
