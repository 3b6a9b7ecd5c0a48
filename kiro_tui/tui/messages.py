"""Messages the engine's events become (posted from its thread) and what workers post."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from kiro_tui.core.importer import ImportReport
from kiro_tui.core.refresh import StatusChange


@dataclass
class AccountsUpdated(Message):
    """Accounts changed: take their ids from the app (`KiroTuiApp.take_changed`), re-read them
    and repaint their rows. One message stands for every change until the ids are taken."""


@dataclass
class AccountStatusChanged(Message):
    """The engine moved an account from one status to another."""

    change: StatusChange


@dataclass
class ImportFinished(Message):
    report: ImportReport
    automatic: bool


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
