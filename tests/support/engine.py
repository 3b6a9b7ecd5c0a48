"""Helpers for refresh-engine tests: seed logins through the emulator into kiro-cli's DB."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

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
    return [r for r in emulator.requests() if r["email"] == email and (operation is None or r["operation"] == operation)]


def control(emulator, name: str, body: dict) -> dict:
    response = httpx.post(f"{emulator.url}/_emulator/{name}", json=body)
    response.raise_for_status()
    return response.json()


def at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def account_from_seed(seeded: dict, account_id: str):
    """The Account kiro-tui would hold for an emulator-seeded login (mode own)."""
    from kiro_tui.core.models import Account, AuthMethod, Mode
    from kiro_tui.core.timefmt import parse_timestamp

    token, registration = seeded["token"], seeded.get("device_registration") or {}
    return Account(
        id=account_id,
        auth_method=AuthMethod(seeded["kind"]),
        access_token=token["access_token"],
        refresh_token=token["refresh_token"],
        expires_at=parse_timestamp(token["expires_at"]),
        label=seeded["email"],
        email=seeded["email"],
        region=token.get("region") or "us-east-1",
        start_url=token.get("start_url"),
        scopes=token.get("scopes") if isinstance(token.get("scopes"), list) else None,
        client_id=registration.get("client_id") or token.get("client_id"),
        client_secret=registration.get("client_secret"),
        client_secret_expires_at=parse_timestamp(registration["client_secret_expires_at"]) if registration else None,
        token_endpoint=token.get("token_endpoint"),
        issuer_url=token.get("issuer_url"),
        provider=token.get("provider"),
        profile_arn=(seeded.get("profile") or {}).get("arn"),
        mode=Mode.OWN,
    )
