"""Messages the engine's events become (posted from its thread) and what workers post."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from kiro_tui.core import events


@dataclass
class AccountsUpdated(Message):
    """Accounts changed: take their ids from the app (`KiroTuiApp.take_changed`), re-read them
    and repaint their rows. One message stands for every change until the ids are taken."""


@dataclass
class AccountStatusChanged(Message):
    """The engine moved an account from one status to another (its event, as told)."""

    event: events.StatusChanged


@dataclass
class ImportFinished(Message):
    """An import finished: the engine's event, as told (its report, whether it was automatic)."""

    event: events.ImportFinished


@dataclass
class ImportFailed(Message):
    error: str
    automatic: bool


@dataclass
class EngineNotice(Message):
    """Something to say once (a token an earlier run rescued is now saved)."""

    text: str
    title: str = "kiro-tui"


@dataclass
class EngineProblem(Message):
    """Something beyond one account is wrong (None: it is over)."""

    problem: str | None
    title: str = "kiro-tui"


@dataclass
class KeepersChanged(Message):
    """Who keeps the accounts fresh once the TUI is closed changed (a phrase for the summary)."""

    keepers: str
