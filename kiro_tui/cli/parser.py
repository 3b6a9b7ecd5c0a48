"""argparse, with mistakes answered the way failures are: one line saying what, where and what to
do. Every command built from `Parser` gets this for free.

- A flag the command does not know is reported by that command (its usage, not the top-level
  one), with the nearest flag it does know: `kiro-tui import --form all` → did you mean `--from`?
- A value outside a flag's choices gets the nearest choice, or, for a value refused on purpose
  (`link --to opencode`), the reason and what to do instead (`Parser.explain`).
- `--db` given before a command that never reads kiro-cli's database is refused, not ignored.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

EXPLAINED = "_kiro_tui_explained"
"""The attribute of an argparse Action holding the values it refuses on purpose: value -> reason."""


class Parser(argparse.ArgumentParser):
    top_level_db: str | None = None
    """The top-level option naming kiro-cli's database (`--db`): a command that does not take it
    itself does not read that database, so giving it there is a mistake worth saying."""

    def parse_args(self, args: Sequence[str] | None = None,  # type: ignore[override]  # one of argparse's overloads
                   namespace: argparse.Namespace | None = None) -> argparse.Namespace:
        parsed, extras = self.parse_known_args(args, namespace)
        command = self.chosen_command(parsed)
        if extras:
            (command or self).unrecognized(extras)
        if command is not None and self.top_level_db and getattr(parsed, "db", None) is not None \
                and not command.takes(self.top_level_db):
            name = command.prog.removeprefix(f"{self.prog} ")
            readers = ", ".join(f"`{n}`" for n, p in self.commands().items() if p.takes(self.top_level_db))
            command.error(f"{self.top_level_db} names kiro-cli's database, which `{name}` does not read; "
                          f"it is for the terminal UI and {readers}")
        return parsed

    # ---------------------------------------------------------------- the commands

    def commands(self) -> dict[str, Parser]:
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                return dict(action.choices)
        return {}

    def chosen_command(self, parsed: argparse.Namespace) -> Parser | None:
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                name = getattr(parsed, action.dest, None) if action.dest != argparse.SUPPRESS else None
                return action.choices.get(name) if name else None
        return None

    def takes(self, option: str) -> bool:
        return option in self._option_string_actions

    # ---------------------------------------------------------------- mistakes

    def unrecognized(self, extras: list[str]) -> NoReturn:
        flags = [text.split("=", 1)[0] for text in extras if text.startswith("-")]
        known = [option for option in self._option_string_actions if option.startswith("--")]
        near = next((match for flag in flags for match in difflib.get_close_matches(flag, known, n=1)), None)
        advice = f"did you mean `{near}`?" if near else f"`{self.prog} --help` lists what it takes"
        self.error(f"unrecognized argument{'s' if len(extras) > 1 else ''} {' '.join(extras)}; {advice}")

    def explain(self, action: argparse.Action, reasons: dict[str, str]) -> None:
        """Values this option refuses on purpose, with why and what to do instead (rather than
        argparse's bare "invalid choice")."""
        setattr(action, EXPLAINED, reasons)

    def _check_value(self, action: argparse.Action, value: object) -> None:
        # argparse's one hook for a value outside an option's choices (the same in 3.11 to 3.13)
        reasons: dict[str, str] = getattr(action, EXPLAINED, {})
        if isinstance(value, str) and value in reasons:
            raise argparse.ArgumentError(action, reasons[value])
        choices = action.choices
        if choices is None or value in choices:
            return
        names = [str(choice) for choice in choices]
        near = difflib.get_close_matches(str(value), names, n=1)
        advice = f"did you mean `{near[0]}`?" if near else f"choose from {', '.join(names)}"
        raise argparse.ArgumentError(action, f"invalid choice {value!r}; {advice}")


# ---------------------------------------------------------------- kiro-tui's parser


def number(kind: type, low: float, high: float, what: str) -> Callable[[str], float]:
    """An argparse `type` for a number within bounds, refused in one line naming the range."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {what}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is out of range ({low:,.0f} to {high:,.0f})")
        return value

    return parse


def build_parser(argv: Sequence[str] | None = None) -> Parser:
    """Every command, each registered by its group's module, in the order `kiro-tui --help` lists
    them. Given the command line, only the command it names is built (8 ms of every run go to
    building twenty commands' arguments), unless it asks for more than one command's words:
    no command or one no command has (the top-level usage lists them all), `--help` or
    `--version` before the command, or `--db` there (its mistake names every command reading it)."""
    wanted = _named_command(argv) if argv is not None else None
    if wanted is not None:
        parser = _build(wanted)
        if wanted in parser.commands():
            return parser
    return _build(None)


def _named_command(argv: Sequence[str]) -> str | None:
    for word in argv:
        if not word.startswith("-"):
            return word
        if word != "--":  # any top-level option (--db, --help, --version): every command is built
            return None
    return None


def built(command: Any) -> bool:
    """Whether `add_parser` really built this command (the command line names it, or every
    command is built): a module may skip costly work for a command that is not."""
    return not isinstance(command, _Unbuilt)


class _Unbuilt:
    """A command the command line does not name: whatever its module asks of it is ignored."""

    def __getattr__(self, name: str) -> Callable[..., _Unbuilt]:
        return lambda *args, **kwargs: self


class _Only:
    """The subcommands action, building only the one command wanted (see `build_parser`)."""

    def __init__(self, commands: Any, wanted: str) -> None:
        self.commands, self.wanted = commands, wanted

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        if name == self.wanted:
            return self.commands.add_parser(name, **kwargs)
        return _Unbuilt()


def _build(wanted: str | None) -> Parser:
    from kiro_tui import __version__
    from kiro_tui.cli import accounts, apps, login, places, refresh

    parser = Parser(
        prog="kiro-tui",
        description="Keep AWS Kiro / CodeWhisperer logins fresh. With no command, opens the terminal UI.",
    )
    parser.add_argument("--version", action="version", version=f"kiro-tui {__version__}")
    parser.add_argument("--db", metavar="PATH",
                        help="kiro-cli's data.sqlite3 (for the terminal UI, and the commands with a --db of their own)")
    parser.top_level_db = "--db"  # refused before a command that does not read kiro-cli's database
    parser.set_defaults(handler=apps.cmd_tui)
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands = subcommands if wanted is None else _Only(subcommands, wanted)
    for add in (places.add_import, places.add_sources, accounts.add_list_and_usage, refresh.add_refresh_and_watch,
                login.add_login, places.add_link_and_export, places.add_unlink, accounts.add_mode_and_remove,
                places.add_paths_and_forget, apps.add_demo_and_emulator, apps.add_service, refresh.add_token,
                accounts.add_use_rename_and_show, apps.add_completion):
        add(commands)
    return parser
