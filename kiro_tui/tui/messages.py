"""Messages workers and the engine post; screens handle them and update widgets."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from kiro_tui.core.aws.codewhisperer import Usage
from kiro_tui.core.importer import ImportReport
from kiro_tui.core.refresh import StatusChange


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
class UsageLoaded(Message):
    account_id: str
    usage: Usage | None
    error: str | None = None
