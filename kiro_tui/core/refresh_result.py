"""What a refresh ended in (`RefreshResult`) and a status change it caused (`StatusChange`):
plain values, apart from the refresh that makes them, so `events` and presenters can carry
them without importing the refresh."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from kiro_tui.core.models import Outcome, Status
from kiro_tui.core.timefmt import format_timestamp


@dataclass(frozen=True)
class StatusChange:
    """An account moved from one status to another: for `watch`'s log lines and the TUI."""

    account_id: str
    name: str
    before: Status
    after: Status
    message: str | None = None

    def describe(self) -> str:
        text = f"{self.account_id} {self.name}: {self.before.label} → {self.after.label}"
        return f"{text} ({self.message})" if self.message and self.after is not Status.FRESH else text


@dataclass
class RefreshResult:
    account_id: str
    outcome: Outcome
    status: Status
    label: str = ""
    classification: str | None = None
    message: str | None = None
    expires_at: datetime | None = None
    retry_in: float | None = None
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.account_id,
            "label": self.label,
            "outcome": self.outcome.value,
            "status": self.status.value,
            "classification": self.classification,
            "message": self.message,
            "expires_at": format_timestamp(self.expires_at) if self.expires_at else None,
            "retry_in_seconds": round(self.retry_in, 1) if self.retry_in is not None else None,
            "warnings": self.warnings,
        }
