"""Helpers for refresh-engine tests: seed logins through the emulator into kiro-cli's DB."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from kiro_tui.demo import account_from_seed  # noqa: F401 - the one builder, shared with the demo
from tests.support.kiro_cli_db import KiroCliDb


def seed_into_kiro_cli(emulator, db: KiroCliDb, **spec: object) -> dict:
    """Create a user in the emulator and write its login into `db` exactly as kiro-cli would."""
    seeded = emulator.seed(**spec)
    for key, value in seeded["auth_kv"].items():
        db.set_json("auth_kv", key, value)
    for key, value in seeded["state"].items():
        db.set_json("state", key, value)
    return seeded


def calls(emulator, email: str, operation: str | None = None) -> list[dict]:
    """The emulator's log of network calls made with this user's tokens."""
    return [r for r in emulator.requests()
            if r["email"] == email and (operation is None or r["operation"] == operation)]


def control(emulator, name: str, body: dict) -> dict:
    response = httpx.post(f"{emulator.url}/_emulator/{name}", json=body)
    response.raise_for_status()
    return response.json()


def at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)

