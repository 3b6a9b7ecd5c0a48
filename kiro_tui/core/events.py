"""What the engine tells whoever presents it (the TUI, `kiro-tui watch`): typed, by account id."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from kiro_tui.core.importer import ImportReport
from kiro_tui.core.refresh_result import StatusChange


@dataclass(frozen=True)
class AccountsChanged:
    """These accounts changed in the store (re-read and repaint them); None: any may have."""

    ids: frozenset[str] | None


@dataclass(frozen=True)
class StatusChanged:
    """An account moved from one status to another (toasts, log lines)."""

    change: StatusChange


@dataclass(frozen=True)
class ImportFinished:
    report: ImportReport
    automatic: bool


@dataclass(frozen=True)
class ImportFailed:
    error: str
    automatic: bool


@dataclass(frozen=True)
class EngineProblem:
    """Something is wrong beyond one account (the store will not take writes, background
    refresh stopped and is restarting); None when it is over."""

    problem: str | None
    title: str = "kiro-tui"


@dataclass(frozen=True)
class EngineNotice:
    """Something a person should hear once that is not a problem (a rescued token is saved)."""

    text: str
    title: str = "kiro-tui"


@dataclass(frozen=True)
class RunnersChanged:
    """Who keeps the accounts fresh changed (a `watch` started, stopped or died): `keepers`
    says it in a phrase (core/runners.describe_keepers)."""

    keepers: str


@dataclass(frozen=True)
class KiroCliState:
    """kiro-cli's database as the engine knows it: where it is (None: not found), when the engine
    last read it, why the last automatic read failed (None once a read works again), and where
    it was looked for."""

    db: Path | None
    read_at: datetime | None
    error: str | None
    looked_in: tuple[Path, ...] = ()


EngineEvent = AccountsChanged | StatusChanged | ImportFinished | ImportFailed | EngineProblem | EngineNotice \
    | RunnersChanged
