"""The core and the emulator must not know Textual; the layout the docs describe must be real."""

from __future__ import annotations

import ast
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

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


def loaded_after(code: str, wanted: str) -> list[str]:
    """The modules a fresh interpreter has loaded after running `code` that `wanted` (an
    expression on `m`, a module's name) picks."""
    script = f"import sys\n{code}\nprint(sorted(m for m in sys.modules if {wanted}))\n"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return ast.literal_eval(result.stdout.strip())


NETWORK = ("m.split('.')[0] == 'httpx' or m.startswith('kiro_tui.core.aws.')"
           " and m not in ('kiro_tui.core.aws.endpoints', 'kiro_tui.core.aws.errors', 'kiro_tui.core.aws.tokens')")
"""httpx and the AWS clients (not the endpoints, errors and token shapes every side names)."""


def test_list_loads_no_network_service_or_watch_module(isolated_dirs: Path) -> None:
    """`list` never calls a service, installs nothing and watches no folder: httpx and the AWS
    clients (a third of its time at 1,000 accounts), the service files' plistlib and inotify's
    ctypes stay unloaded."""
    code = ("import contextlib, io\n"
            "from kiro_tui.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    assert main(['list', '--json']) == 0")
    wanted = f"{NETWORK} or m.split('.')[0] in ('plistlib', 'ctypes') or m == 'kiro_tui.core.file_events'"
    assert loaded_after(code, wanted) == []


def test_the_tui_loads_no_network_module_before_its_first_screen() -> None:
    """httpx and the AWS clients load with the engine's start, on its thread, once the first
    screen is drawn (Engine.start): the app, its accounts screen and the login screens they
    import name the clients' types only. Loading them first was half of kiro-tui's own import
    time at launch (issue 24)."""
    assert loaded_after("import kiro_tui.cli, kiro_tui.cli.apps, kiro_tui.tui.app", NETWORK) == []


@pytest.mark.parametrize(("argv", "built"), [
    (["list", "--json"], ["list"]),
    (["service", "status"], ["service"]),
    (["lst"], "all"),  # no such command: the usage lists every one
    (["--db", "x", "list"], "all"),  # its mistake names every command that reads --db
    ([], "all"),
])
def test_a_command_line_builds_only_the_command_it_names(argv: list[str], built: object) -> None:
    from kiro_tui.cli.parser import build_parser

    everything = sorted(build_parser().commands())
    assert len(everything) > 15
    assert sorted(build_parser(argv).commands()) == (everything if built == "all" else built)


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
    for module in sorted((ROOT / "kiro_tui" / "core").rglob("*.py")):
        if module.name != "__init__.py":
            assert re.search(rf"\b{re.escape(module.name)}\b", architecture), \
                f"docs/architecture.md does not show {module.relative_to(ROOT / 'kiro_tui')}"
    for name in ("core/", "emulator/", "tui/", "benchmarks/", "scripts/screenshots.py", "tests/"):
        assert name in readme, name
    for doc in ("usage.md", "accounts-and-modes.md", "troubleshooting.md", "architecture.md", "emulator.md",
                "security.md"):
        assert (ROOT / "docs" / doc).is_file(), doc
        assert f"docs/{doc}" in readme, f"README does not link docs/{doc}"


DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
CODE_FOLDERS = ("kiro_tui", "tests", "benchmarks", "scripts")


def _named_in_docs(pattern: str) -> list[tuple[str, str]]:
    return [(doc.name, match) for doc in DOCS
            for match in re.findall(rf"`({pattern})`", doc.read_text())]


def test_every_file_the_docs_name_exists() -> None:
    """A backticked `path.py` names a real file: by its path from the repository, from the
    package, or (a bare name) anywhere in the code."""
    files = [p.relative_to(ROOT).as_posix() for folder in CODE_FOLDERS for p in (ROOT / folder).rglob("*.py")]
    named = _named_in_docs(r"[\w./-]+\.py")
    assert named, "the docs name no file: the pattern is wrong"
    for doc, name in named:
        assert any(f == name or f.endswith("/" + name) for f in files), f"{doc} names `{name}`, which does not exist"


def test_every_module_and_attribute_the_docs_name_exists() -> None:
    """A backticked `kiro_tui.module` imports, and a backticked `Class.attr` is an attribute of a
    class of kiro-tui's (a method, a property, a field): how a dead name would stay in the docs."""
    import dataclasses
    import importlib
    import inspect

    for _doc, name in _named_in_docs(r"kiro_tui(?:\.\w+)+"):
        importlib.import_module(name)  # raises, naming it, if it is gone
    classes: dict[str, list[type]] = {}
    for package in ("kiro_tui",):
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, package + "."):
            if info.name.endswith("__main__"):
                continue
            module = importlib.import_module(info.name)
            for cls_name, cls in inspect.getmembers(module, inspect.isclass):
                if cls.__module__ == module.__name__:
                    classes.setdefault(cls_name, []).append(cls)
    named = _named_in_docs(r"[A-Z]\w+\.\w+")
    assert named, "the docs name no Class.attr: the pattern is wrong"
    for doc, dotted in named:
        cls_name, attr = dotted.split(".")
        assert cls_name in classes, f"{doc} names `{dotted}`, but kiro-tui has no class {cls_name}"

        def has(cls: type, attr: str = attr) -> bool:
            fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
            return hasattr(cls, attr) or attr in fields or attr in getattr(cls, "__annotations__", {})

        assert any(has(cls) for cls in classes[cls_name]), f"{doc} names `{dotted}`, which does not exist"


def test_every_type_ignore_names_its_code_and_why() -> None:
    """mypy's silences stay few and explained (issue 25): `# type: ignore[code]  # why`."""
    explained = re.compile(r"# type: ignore\[[a-z-]+(, [a-z-]+)*\]  # \S")
    bare = [f"{path.relative_to(ROOT)}:{number}" for path in (ROOT / "kiro_tui").rglob("*.py")
            for number, line in enumerate(path.read_text().splitlines(), 1)
            if "type: ignore" in line and not explained.search(line)]
    assert bare == []


def test_no_module_holds_more_than_600_lines() -> None:
    """One room per idea (issue 25): a module that outgrows 600 lines is holding more than one."""
    too_long = {str(path.relative_to(ROOT)): count for path in (ROOT / "kiro_tui").rglob("*.py")
                if (count := len(path.read_text().splitlines())) > 600}
    assert too_long == {}
