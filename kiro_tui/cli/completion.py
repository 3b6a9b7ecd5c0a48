"""Shell completion scripts (`kiro-tui completion bash|zsh|fish`), made from the CLI's own parser.

Commands, flags and the choices of each (kinds, modes, shells) are written into the script when
it is made, so completing them costs nothing. Account ids and names are asked for at completion
time from `kiro-tui __complete accounts`, which reads the store directly (no engine, no network).
zsh uses the bash function through bashcompinit.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, field

ACCOUNT_METAVARS = ("ID",)
ACCOUNTS = "@accounts"
FILES = "@files"


@dataclass
class Command:
    name: str
    help: str
    flags: dict[str, list[str] | None] = field(default_factory=dict)
    """Each flag, and what its value completes to (None: it takes no value)."""
    positionals: list[list[str]] = field(default_factory=list)
    repeat_last: bool = False


def commands_of(parser: argparse.ArgumentParser) -> tuple[dict[str, list[str] | None], list[Command]]:
    """(the top-level flags, every visible subcommand) as completion needs them."""
    top = _flags(parser)
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                if name.startswith("_"):
                    continue
                command = Command(name, helps.get(name) or "", _flags(sub))
                for positional in (a for a in sub._actions if not a.option_strings):
                    command.positionals.append(_values(positional))
                    command.repeat_last = positional.nargs in ("*", "+")
                found.append(command)
    return top, found


def _flags(parser: argparse.ArgumentParser) -> dict[str, list[str] | None]:
    flags: dict[str, list[str] | None] = {}
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
            continue
        for option in action.option_strings:
            if option.startswith("--"):
                flags[option] = None if action.nargs == 0 else _values(action)
    return flags


def _values(action: argparse.Action) -> list[str]:
    if action.choices:
        return [str(choice) for choice in action.choices]
    if action.metavar in ACCOUNT_METAVARS:
        return [ACCOUNTS]
    if action.metavar == "KIND-or-PATH":
        from kiro_tui.core.places import FORMATS

        return [*FORMATS, FILES]
    if action.metavar in ("PATH",):
        return [FILES]
    return []


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    top, commands = commands_of(parser)
    if shell == "fish":
        return _fish(top, commands)
    bash = _bash(top, commands)
    if shell == "zsh":
        return "autoload -U +X bashcompinit && bashcompinit\n" + bash
    return bash


def _words(values: list[str] | None) -> str:
    return " ".join(v for v in values or [] if not v.startswith("@"))


def _bash(top: dict[str, list[str] | None], commands: list[Command]) -> str:
    valued = sorted({flag for flags in [top, *(c.flags for c in commands)] for flag, v in flags.items()
                     if v is not None})
    value_cases, flag_cases, positional_cases = [], [], []
    for command in commands:
        for flag, values in command.flags.items():
            if values is not None:
                value_cases.append(f"        {command.name}:{flag}) _kiro_tui_add {shlex.quote(_words(values))} "
                                   f"{int(ACCOUNTS in values)} {int(FILES in values)} ;;")
        flag_cases.append(f"        {command.name}) _kiro_tui_add {shlex.quote(' '.join(command.flags))} 0 0 ;;")
        for index, values in enumerate(command.positionals):
            pattern = f"{command.name}:{index}" + ("|" + f"{command.name}:*" if command.repeat_last
                                                   and index == len(command.positionals) - 1 else "")
            positional_cases.append(f"        {pattern}) _kiro_tui_add {shlex.quote(_words(values))} "
                                    f"{int(ACCOUNTS in values)} {int(FILES in values)} ;;")
    for flag, values in top.items():
        if values is not None:
            value_cases.append(f"        :{flag}) _kiro_tui_add {shlex.quote(_words(values))} 0 "
                               f"{int(FILES in values)} ;;")
    names = " ".join(c.name for c in commands)
    return f"""# kiro-tui completion for bash (`source <(kiro-tui completion bash)`)
_kiro_tui_add() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}"
    COMPREPLY+=($(compgen -W "$1" -- "$cur"))
    if [[ "$2" == 1 ]]; then
        COMPREPLY+=($(compgen -W "$("${{COMP_WORDS[0]}}" __complete accounts 2>/dev/null)" -- "$cur"))
    fi
    if [[ "$3" == 1 ]]; then
        COMPREPLY+=($(compgen -f -- "$cur"))
    fi
}}

_kiro_tui() {{
    COMPREPLY=()
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    local valued=" {' '.join(valued)} " cmd="" position=0 i word
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${{COMP_WORDS[i]}}"
        if [[ "$valued" == *" $word "* ]]; then
            ((i++))
        elif [[ "$word" != -* ]]; then
            if [[ -z "$cmd" ]]; then cmd="$word"; else ((position++)); fi
        fi
    done
    if [[ "$valued" == *" $prev "* ]]; then
        case "$cmd:$prev" in
{chr(10).join(value_cases)}
        *) _kiro_tui_add "" 0 1 ;;
        esac
        return 0
    fi
    if [[ -z "$cmd" ]]; then
        if [[ "$cur" == -* ]]; then
            _kiro_tui_add {shlex.quote(' '.join(top))} 0 0
        else
            _kiro_tui_add {shlex.quote(names)} 0 0
        fi
        return 0
    fi
    if [[ "$cur" == -* ]]; then
        case "$cmd" in
{chr(10).join(flag_cases)}
        esac
        return 0
    fi
    case "$cmd:$position" in
{chr(10).join(positional_cases)}
    esac
    return 0
}}
complete -F _kiro_tui kiro-tui
"""


def _fish(top: dict[str, list[str] | None], commands: list[Command]) -> str:
    lines = ["# kiro-tui completion for fish (`kiro-tui completion fish | source`)",
             "complete -c kiro-tui -f"]
    for command in commands:
        lines.append(f"complete -c kiro-tui -n __fish_use_subcommand -a {command.name} "
                     f"-d {shlex.quote(command.help)}")
        when = f"-n '__fish_seen_subcommand_from {command.name}'"
        for flag, values in command.flags.items():
            line = f"complete -c kiro-tui {when} -l {flag[2:]}"
            if values is not None:
                line += _fish_values(values, exclusive=True)
            lines.append(line)
        for values in command.positionals:
            if values:
                lines.append(f"complete -c kiro-tui {when}" + _fish_values(values, exclusive=False))
    for flag, values in top.items():
        lines.append(f"complete -c kiro-tui -n __fish_use_subcommand -l {flag[2:]}"
                     + (_fish_values(values, exclusive=True) if values is not None else ""))
    return "\n".join(lines) + "\n"


def _fish_values(values: list[str], exclusive: bool) -> str:
    words = _words(values)
    if ACCOUNTS in values:
        words = (words + " " if words else "") + "(kiro-tui __complete accounts)"
    if FILES in values:
        return (" -r" if exclusive else "") + (f" -a {shlex.quote(words)}" if words else "") + " -F"
    return (" -x" if exclusive else "") + (f" -a {shlex.quote(words)}" if words else "")
