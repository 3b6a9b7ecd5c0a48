"""Build kiro-cli databases the way kiro-cli builds them, for tests.

The migration SQL below is kiro-cli's own (crates/chat-cli/src/database/sqlite_migrations,
versions 0-8), applied in order and recorded in `migrations` as kiro-cli's `migrate()` does.
Migration 8 also copies old `conversations` rows into `conversations_v2`; a new database has
none, so that copy is left out.
Values are JSON text bound as `str`, exactly like `set_json_entry` (serde_json::to_string).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

KIRO_CLI_MIGRATIONS = (
    "CREATE TABLE IF NOT EXISTS migrations (id INTEGER PRIMARY KEY, version INTEGER NOT NULL, "
    "migration_time INTEGER NOT NULL);",
    "CREATE TABLE IF NOT EXISTS history (id INTEGER PRIMARY KEY, command TEXT, shell TEXT, pid INTEGER, "
    "session_id TEXT, cwd TEXT, time INTEGER, in_ssh INTEGER, in_docker INTEGER, hostname TEXT, "
    "exit_code INTEGER);",
    "ALTER TABLE history DROP COLUMN in_ssh; ALTER TABLE history DROP COLUMN in_docker;",
    "ALTER TABLE history RENAME COLUMN time TO start_time; ALTER TABLE history ADD COLUMN end_time INTEGER; "
    "ALTER TABLE history ADD COLUMN duration INTEGER;",
    "CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT);",
    "CREATE TABLE auth_kv (key TEXT PRIMARY KEY, value TEXT);",
    "ALTER TABLE state RENAME TO state_old; CREATE TABLE state (key TEXT PRIMARY KEY, value BLOB); "
    "INSERT INTO state SELECT key, value FROM state_old; DROP TABLE state_old;",
    "CREATE TABLE conversations (key TEXT PRIMARY KEY, value TEXT);",
    "CREATE TABLE conversations_v2 (key TEXT NOT NULL, conversation_id TEXT NOT NULL, value TEXT NOT NULL, "
    "created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (key, conversation_id)); "
    "CREATE INDEX idx_conversations_v2_key_updated ON conversations_v2(key, updated_at); "
    "CREATE INDEX idx_conversations_v2_updated_at ON conversations_v2(updated_at);",
)

SCOPES = ["codewhisperer:completions", "codewhisperer:analysis", "codewhisperer:conversations"]
DEFAULT_SOCIAL_PROFILE_ARN = "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK"


def rfc3339(when: datetime) -> str:
    """The `time` crate's RFC 3339: fraction only when non-zero, trailing zeros trimmed, `Z`."""
    when = when.astimezone(UTC)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if when.microsecond:
        text += "." + f"{when.microsecond:06d}".rstrip("0")
    return text + "Z"


def token(prefix: str = "aoa") -> str:
    return f"{prefix}AAAAAG{secrets.token_urlsafe(24)}:{secrets.token_urlsafe(12)}"


class KiroCliDb:
    """A kiro-cli data.sqlite3 on disk; `put_*` write rows as kiro-cli would."""

    def __init__(self, path: Path, wal: bool = False) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path)
        if wal:
            conn.execute("PRAGMA journal_mode=WAL")
        for version, sql in enumerate(KIRO_CLI_MIGRATIONS):
            conn.executescript(sql)
            conn.execute(
                "INSERT INTO migrations (version, migration_time) VALUES (?1, strftime('%s','now'))",
                (version,),
            )
        conn.commit()
        conn.close()
        path.chmod(0o600)

    def connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path)

    def set_raw(self, table: str, key: str, value: object) -> None:
        with self.connect() as conn:
            conn.execute(f"INSERT OR REPLACE INTO {table} (key, value) VALUES (?1, ?2)", (key, value))
        conn.close()

    def set_json(self, table: str, key: str, value: object) -> None:
        self.set_raw(table, key, json.dumps(value, separators=(",", ":")))

    def delete(self, table: str, key: str) -> None:
        with self.connect() as conn:
            conn.execute(f"DELETE FROM {table} WHERE key = ?1", (key,))
        conn.close()

    def get_json(self, table: str, key: str) -> object:
        with self.connect() as conn:
            row = conn.execute(f"SELECT value FROM {table} WHERE key = ?1", (key,)).fetchone()
        conn.close()
        return json.loads(row[0]) if row else None

    def digest(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    # -- logins, shaped like kiro-cli's serde structs ------------------------------------

    def put_oidc(
        self,
        key_prefix: str = "kirocli",
        *,
        start_url: str | None = None,
        region: str | None = "us-east-1",
        expires_at: datetime | None = None,
        registration_region: str | None = None,
        registration_expires_at: datetime | None = None,
        access_token: str | None = None,
        refresh_token: str | None = None,
        with_registration: bool = True,
        oauth_flow: str = "DeviceCode",
        new_client: bool = False,
    ) -> dict[str, object]:
        now = datetime.now(UTC)
        value = {
            "access_token": access_token or token("aoa"),
            "expires_at": rfc3339(expires_at or now + timedelta(hours=1)),
            "refresh_token": refresh_token or token("aor"),
            "region": region,
            "start_url": start_url,
            "oauth_flow": oauth_flow,
            "scopes": SCOPES,
        }
        self.set_json("auth_kv", f"{key_prefix}:odic:token", value)
        if with_registration:
            # kiro-cli keeps its registration while it is valid: a new token reuses it.
            registration_key = f"{key_prefix}:odic:device-registration"
            existing = self.get_json("auth_kv", registration_key) if new_client is False else None
            self.set_json(
                "auth_kv",
                f"{key_prefix}:odic:device-registration",
                {
                    "client_id": existing["client_id"] if existing else "cid-" + secrets.token_hex(6),
                    "client_secret": existing["client_secret"] if existing else "csecret-" + secrets.token_hex(16),
                    "client_secret_expires_at": rfc3339(
                        (registration_expires_at or now + timedelta(days=90)).replace(microsecond=0)
                    ),
                    "region": registration_region or region or "us-east-1",
                    "oauth_flow": oauth_flow,
                    "scopes": SCOPES,
                },
            )
        if start_url:
            self.set_json("state", "auth.idc.start-url", start_url)
            self.set_json("state", "auth.idc.region", region)
        return value

    def put_social(
        self,
        provider: str = "github",
        *,
        profile_arn: str | None = DEFAULT_SOCIAL_PROFILE_ARN,
        expires_at: datetime | None = None,
        refresh_token: str | None = None,
    ) -> dict[str, object]:
        value = {
            "access_token": token("aoa"),
            "expires_at": rfc3339(expires_at or datetime.now(UTC) + timedelta(hours=1)),
            "refresh_token": refresh_token or token("aor"),
            "provider": provider,
            "profile_arn": profile_arn,
        }
        self.set_json("auth_kv", "kirocli:social:token", value)
        if profile_arn:
            self.put_profile(profile_arn, "Social_Default_Profile")
        return value

    def put_external_idp(self, *, expires_at: datetime | None = None) -> dict[str, object]:
        tenant = "11111111-2222-3333-4444-555555555555"
        value = {
            "access_token": "eyJ0eXAiOi" + secrets.token_urlsafe(30),
            "expires_at": rfc3339(expires_at or datetime.now(UTC) + timedelta(hours=1)),
            "refresh_token": "0.AXEA" + secrets.token_urlsafe(30),
            "issuer_url": f"https://login.microsoftonline.com/{tenant}/v2.0",
            "token_endpoint": f"https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
            "client_id": "00000000-0000-0000-0000-000000000000",
        }
        self.set_json("auth_kv", "kirocli:external-idp:token", value)
        return value

    def put_profile(self, arn: str, name: str) -> None:
        self.set_json("state", "api.codewhisperer.profile", {"arn": arn, "profile_name": name})
