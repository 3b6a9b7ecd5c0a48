"""Build each tool's credential files the way that tool writes them, from emulator logins.

Facts from ../shared/reference/peer-formats.md and kiro-cli-storage.md §9-§11. The timestamp
and JSON writers here are written independently of kiro-tui's own (JS toISOString, Go
time.RFC3339, Python isoformat, JSON.stringify, Go json.Marshal), so a test compares kiro-tui
against the tool, not against itself.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kiro_tui.core.timefmt import parse_timestamp

BUILDER_ID_START_URL = "https://view.awsapps.com/start"
IDC_START_URL = "https://d-9067c1a2b3.awsapps.com/start"
IDC_PROFILES = [{"arn": "arn:aws:codewhisperer:eu-central-1:123456789012:profile/TEAMPROD001", "name": "Team"}]


# -- how each tool writes --------------------------------------------------------------------

def js_iso(when: datetime) -> str:
    """Date.prototype.toISOString()."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def go_rfc3339(when: datetime) -> str:
    """time.Time.Format(time.RFC3339) of a UTC time."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def js_stringify(value: object, indent: int | None = None) -> str:
    """JSON.stringify(value, null, indent): raw UTF-8, `": "` only when indented."""
    if indent is None:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return json.dumps(value, ensure_ascii=False, indent=indent)


def go_marshal(value: dict[str, object]) -> str:
    """json.Marshal of a map[string]any: compact, keys sorted."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


# -- an emulator login, flattened ----------------------------------------------------------

@dataclass
class Login:
    kind: str  # social | builder-id | idc | external-idp
    email: str
    access_token: str
    refresh_token: str
    expires_at: datetime
    region: str
    start_url: str | None
    client_id: str | None
    client_secret: str | None
    client_expires_at: datetime | None
    profile_arn: str | None
    provider: str | None
    token_endpoint: str | None = None
    issuer_url: str | None = None


def login_of(seeded: dict) -> Login:
    """What `emulator.seed(...)` handed out (kiro-cli's rows), as one flat record."""
    token, registration = seeded["token"], seeded.get("device_registration") or {}
    return Login(
        kind=seeded["kind"],
        email=seeded["email"],
        access_token=token["access_token"],
        refresh_token=token["refresh_token"],
        expires_at=parse_timestamp(token["expires_at"]),
        region=token.get("region") or "us-east-1",
        start_url=token.get("start_url"),
        client_id=registration.get("client_id") or token.get("client_id"),
        client_secret=registration.get("client_secret"),
        client_expires_at=parse_timestamp(registration["client_secret_expires_at"]) if registration else None,
        profile_arn=(seeded.get("profile") or {}).get("arn"),
        provider=token.get("provider"),
        token_endpoint=token.get("token_endpoint"),
        issuer_url=token.get("issuer_url"),
    )


def seed(emulator, kind: str) -> Login:  # type: ignore[no-untyped-def]
    """One emulator user of each kind, the IdC one in another region with its own profile."""
    if kind == "idc":
        return login_of(emulator.seed(kind="idc", email="team@acme.example", region="eu-west-1",
                                      start_url=IDC_START_URL, profiles=IDC_PROFILES))
    return login_of(emulator.seed(kind=kind, email=f"{kind}@example.com"))


def _write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


# -- the Kiro IDE ------------------------------------------------------------------------------

def ide_registration_hash(start_url: str) -> str:
    """How the IDE names a registration: sha1 of JSON.stringify({startUrl}) (apart from kiro-tui's own)."""
    return hashlib.sha1(js_stringify({"startUrl": start_url}).encode()).hexdigest()


def write_kiro_ide(folder: Path, login: Login) -> Path:
    """kiro-auth-token.json (and the IdC registration beside it), as the IDE's tokenResponseToToken."""
    if login.kind == "social":
        token = {"accessToken": login.access_token, "refreshToken": login.refresh_token,
                 "profileArn": login.profile_arn, "expiresAt": js_iso(login.expires_at),
                 "authMethod": "social", "provider": "Github" if login.provider == "github" else "Google"}
    else:
        start_url = login.start_url or BUILDER_ID_START_URL
        client_id_hash = ide_registration_hash(start_url)
        _write(folder / f"{client_id_hash}.json", js_stringify(
            {"clientId": login.client_id, "clientSecret": login.client_secret,
             "expiresAt": js_iso(login.client_expires_at)}, 2))  # type: ignore[arg-type]
        token = {"accessToken": login.access_token, "refreshToken": login.refresh_token,
                 "expiresAt": js_iso(login.expires_at), "clientIdHash": client_id_hash, "authMethod": "IdC",
                 "provider": "BuilderId" if login.kind == "builder-id" else "Enterprise", "region": login.region}
    return _write(folder / "kiro-auth-token.json", js_stringify(token, 2))


# -- CLIProxyAPI -------------------------------------------------------------------------------

CLIPROXY_PROVIDERS = {"builder-id": "AWS", "idc": "Enterprise"}


def cliproxy_record(login: Login, **extra: object) -> dict[str, object]:
    record: dict[str, object] = {
        "type": "kiro", "access_token": login.access_token, "refresh_token": login.refresh_token,
        "profile_arn": login.profile_arn or "", "expires_at": go_rfc3339(login.expires_at),
        "auth_method": login.kind, "email": login.email, "last_refresh": "2026-01-01T00:00:00Z",
        "provider": CLIPROXY_PROVIDERS.get(login.kind) or ("Github" if login.provider == "github" else "Google"),
    }
    if login.kind != "social":
        record.update(client_id=login.client_id, client_secret=login.client_secret, region=login.region)
    if login.kind == "idc":
        record["start_url"] = login.start_url
    record.update(extra)
    return record


def write_cliproxy(folder: Path, login: Login, **extra: object) -> Path:
    """kiro-{auth_method}-{email with @ and . as -}.json, as the proxy's file store writes it."""
    name = f"kiro-{login.kind}-{login.email.replace('@', '-').replace('.', '-')}.json"
    return _write(folder / name, go_marshal(cliproxy_record(login, **extra)))


# -- opencode-kiro-auth ------------------------------------------------------------------------

OPENCODE_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
  id TEXT PRIMARY KEY, email TEXT NOT NULL, auth_method TEXT NOT NULL, region TEXT NOT NULL,
  client_id TEXT, client_secret TEXT, profile_arn TEXT, refresh_token TEXT NOT NULL,
  access_token TEXT NOT NULL, expires_at INTEGER NOT NULL, rate_limit_reset INTEGER DEFAULT 0,
  is_healthy INTEGER DEFAULT 1, unhealthy_reason TEXT, recovery_time INTEGER, fail_count INTEGER DEFAULT 0,
  last_used INTEGER DEFAULT 0, used_count INTEGER DEFAULT 0, limit_count INTEGER DEFAULT 0,
  last_sync INTEGER DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_refresh_token_unique ON accounts(refresh_token);
"""


def opencode_id(email: str, auth_method: str, client_id: str | None, profile_arn: str | None) -> str:
    return hashlib.sha256(f"{email}:{auth_method}:{client_id or ''}:{profile_arn or ''}".encode()).hexdigest()


def opencode_row(login: Login) -> dict[str, object]:
    method = "desktop" if login.kind == "social" else "idc"
    return {
        "id": opencode_id(login.email, method, login.client_id, login.profile_arn),
        "email": login.email, "auth_method": method, "region": login.region,
        "client_id": login.client_id, "client_secret": login.client_secret, "profile_arn": login.profile_arn,
        "refresh_token": login.refresh_token, "access_token": login.access_token,
        "expires_at": int(login.expires_at.timestamp() * 1000), "is_healthy": 1,
    }


def write_opencode(path: Path, rows: list[dict[str, object]]) -> Path:
    """kiro.db in WAL mode with the plugin's schema (storage/migrations.ts)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(OPENCODE_SCHEMA)
    for row in rows:
        columns = ", ".join(row)
        conn.execute(f"INSERT INTO accounts ({columns}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))
    conn.commit()
    conn.close()
    path.chmod(0o600)
    return path


# -- AIClient-2-API ----------------------------------------------------------------------------

def aiclient_record(login: Login) -> dict[str, object]:
    """What src/auth/kiro-oauth.js writes: social, Builder ID device flow, or an AWS import (IdC)."""
    if login.kind == "social":
        return {"accessToken": login.access_token, "refreshToken": login.refresh_token,
                "profileArn": login.profile_arn, "socialProvider": "Github", "expiresAt": js_iso(login.expires_at),
                "authMethod": "social", "region": "us-east-1"}
    if login.kind == "builder-id":
        return {"accessToken": login.access_token, "refreshToken": login.refresh_token,
                "expiresAt": js_iso(login.expires_at), "authMethod": "builder-id", "clientId": login.client_id,
                "clientSecret": login.client_secret, "idcRegion": login.region}
    return {"clientId": login.client_id, "clientSecret": login.client_secret, "accessToken": login.access_token,
            "refreshToken": login.refresh_token, "authMethod": "IdC", "idcRegion": login.region,
            "expiresAt": js_iso(login.expires_at), "startUrl": login.start_url}


def write_aiclient(root: Path, login: Login, stamp: int = 1767225600000) -> Path:
    """configs/kiro/{ms}_kiro-auth-token/{ms}_kiro-auth-token.json, JSON.stringify(…, null, 2)."""
    name = f"{stamp}_kiro-auth-token"
    return _write(root / "configs" / "kiro" / name / f"{name}.json", js_stringify(aiclient_record(login), 2))


# -- kiro-gateway ------------------------------------------------------------------------------

def gateway_record(login: Login) -> dict[str, object]:
    """KIRO_CREDS_FILE (camelCase), as its README describes it."""
    record: dict[str, object] = {"refreshToken": login.refresh_token, "accessToken": login.access_token,
                                 "profileArn": login.profile_arn, "region": login.region,
                                 "expiresAt": login.expires_at.astimezone(UTC).isoformat()}
    if login.kind in ("builder-id", "idc"):
        record.update(clientId=login.client_id, clientSecret=login.client_secret)
    if login.kind == "external-idp":
        record.update(authMethod="external_idp", tokenEndpoint=login.token_endpoint, issuerUrl=login.issuer_url,
                      clientId=login.client_id, scopes="openid offline_access", audience="api://kiro")
    return {key: value for key, value in record.items() if value is not None}


def write_gateway(path: Path, login: Login) -> Path:
    return _write(path, json.dumps(gateway_record(login), indent=2))


def write_gateway_credentials(path: Path, entries: list[dict[str, object]]) -> Path:
    return _write(path, json.dumps(entries, indent=2))
