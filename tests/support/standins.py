"""Stand-ins for the tools that keep a copy of a Kiro login beside kiro-tui (issue 14).

Each refreshes on its OWN threshold and writes its file ITS OWN way, as docs/places.md and
../shared/reference/peer-formats.md describe, with every threshold scaled to a short token
lifetime in the proportion of the real defaults (the real tokens live 3,600 s):

- `cliproxy`   CLIProxyAPI: watches its auth files and hot-reloads one when it changes (here a
               stat poll every 0.1 s, for fsnotify); a sweep (60 s, scaled) refreshes a login
               only when `expires_at` is under 300 s away; writes `json.Marshal` of its map
               (compact, keys sorted, every field kept) via a temporary file and a rename, 0600.
- `aiclient`   AIClient-2-API: loads its file (every other *.json of the folder laid over it,
               all but `expiresAt`) once at start and keeps the token in memory; force-refreshes
               whenever the expiry IT holds is within 1,800 s, even if the file is fresher;
               writes `accessToken`, `refreshToken`, `expiresAt`, `profileArn` back into the
               file (`JSON.stringify(…, null, 2)`, temporary file, fsync, rename, 0600).
- `gateway-db` kiro-gateway in SQLite mode: keeps the token in memory; within 600 s of the
               expiry it holds it re-reads the database and takes a fresh token from it with no
               call, else refreshes (stored expiry = now + expiresIn − 60 s) and writes back by
               replacing the whole value (older versions: `+00:00`, start_url/provider/
               profile_arn dropped), `UPDATE … WHERE key = ?`, no compare-and-swap. Its Python
               3.10 parses times with `fromisoformat` ('Z' replaced by '+00:00').
- `kiro-ide`   The Kiro IDE, by the rules of its extension code (issue 21): polls its file every
               5 s, refreshes under 600 s (a 60 s loop) and on demand under 180 s, writes back
               only over the refresh token it started from, and on a failed refresh within 180 s
               of expiry logs out hard (deletes its file and registration, revokes a social
               login's refresh token): the run counts those `logout` events.
- `kiro-cli`   kiro-cli: re-reads its database on every use; refreshes lazily, 60 s before
               expiry, and writes the whole value back in its own serde shape.

Every tool also *uses* the access token it holds (GetUsageLimits, every `--use-every` s): a 403
means it was left holding a dead copy. Events go to a JSON-lines log (refresh tokens only as a
12-hex fingerprint); "ready" is printed once every file is loaded. SIGTERM ends it cleanly.

Usage: python -m tests.support.standins KIND --url URL --ttl S --log FILE PATH [PATH ...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import signal
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from tests.support.kiro_cli_db import rfc3339
from tests.support.places import go_marshal, go_rfc3339, js_iso, js_stringify

REAL_LIFETIME = 3600.0
REAL = {  # the real defaults, in seconds before expiry (and the proxy's sweep interval)
    "cliproxy": 300.0,
    "cliproxy-sweep": 60.0,
    "aiclient": 1800.0,
    "gateway-db": 600.0,
    "gateway-short": 60.0,
    "kiro-cli": 60.0,
    "kiro-ide": 600.0,  # its refresh loop's window
    "kiro-ide-loop": 60.0,
    "kiro-ide-poll": 5.0,  # fs.watchFile
    "kiro-ide-on-demand": 180.0,  # before a call; and a failed refresh this near expiry logs out
    "kiro-ide-registration": 900.0,  # a registration expiring sooner is invalid to it
}
SOCIAL_HOST = "prod.us-east-1.auth.desktop.kiro.dev"
TICK = 0.05


class BadFile(ValueError):
    """The tool could not use the file as written (its own parser refused it)."""


def fp(token: str | None) -> str | None:
    return hashlib.sha256(token.encode()).hexdigest()[:12] if token else None


# -- each tool's own time parser --------------------------------------------------------------

_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_JS_ISO = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(\.\d{1,3})?(Z|[+-]\d{2}:\d{2})$")
_PY310_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{3}|\.\d{6})?([+-]\d{2}:\d{2})?$")


def _from_match(match: re.Match[str]) -> float:
    date, clock, fraction, zone = match.groups()
    base = datetime.fromisoformat(f"{date}T{clock}+00:00" if zone == "Z" else f"{date}T{clock}{zone}")
    return base.timestamp() + (float(fraction) if fraction else 0.0)


def go_parse(value: object) -> float:
    """time.Parse(time.RFC3339, …): a fraction is accepted, `Z` or an offset required."""
    match = _RFC3339.match(value) if isinstance(value, str) else None
    if not match:
        raise BadFile(f"Go cannot parse {value!r} as RFC 3339")
    return _from_match(match)


def js_parse(value: object) -> float:
    """new Date(…) of an ISO string (what AIClient-2-API and the IDE do with expiresAt)."""
    match = _JS_ISO.match(value) if isinstance(value, str) else None
    if not match:
        raise BadFile(f"JavaScript's Date cannot parse {value!r}")
    return _from_match(match)


def py310_fromisoformat(text: str) -> datetime:
    """Python 3.10's datetime.fromisoformat on a date and time: `T` or a space, HH:MM:SS, a
    fraction of exactly 3 or 6 digits or none, an optional ±HH:MM; no `Z` (3.11 widened it)."""
    if not _PY310_ISO.match(text):
        raise BadFile(f"Python 3.10's fromisoformat cannot parse {text!r}")
    return datetime.fromisoformat(text)


def py310_parse(value: object) -> float:
    """kiro-gateway on Python 3.10: datetime.fromisoformat(value.replace('Z', '+00:00'))."""
    if not isinstance(value, str):
        raise BadFile(f"Python 3.10's fromisoformat cannot parse {value!r}")
    when = py310_fromisoformat(value.replace("Z", "+00:00"))
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def rust_parse(value: object) -> float:
    """The `time` crate's RFC 3339 (kiro-cli)."""
    return go_parse(value)


def at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


# -- the network, as every tool calls it -------------------------------------------------------

class Service:
    def __init__(self, url: str, log: Log) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(timeout=15.0)
        self.log = log

    def refresh(self, path: Path, *, social: bool, refresh_token: str, client_id: str | None = None,
                client_secret: str | None = None, region: str = "us-east-1") -> dict | None:
        """One refresh; the answer's JSON, or None (logged) when the service refused it."""
        if social:
            response = self.http.post(f"{self.url}/refreshToken", json={"refreshToken": refresh_token},
                                      headers={"Host": SOCIAL_HOST})
        else:
            response = self.http.post(f"{self.url}/token", headers={"Host": f"oidc.{region}.amazonaws.com"},
                                      json={"grantType": "refresh_token", "clientId": client_id,
                                            "clientSecret": client_secret, "refreshToken": refresh_token})
        if response.status_code != 200:
            self.log.event(path, "refresh-failed", status=response.status_code, spent=fp(refresh_token),
                           body=response.text[:200])
            return None
        answer = response.json()
        self.log.event(path, "refresh", spent=fp(refresh_token), got=fp(answer.get("refreshToken")))
        return answer

    def use(self, path: Path, access_token: str, profile_arn: str | None) -> None:
        params = {"origin": "AI_EDITOR", "resourceType": "AGENTIC_REQUEST"}
        if profile_arn:
            params["profileArn"] = profile_arn
        response = self.http.get(f"{self.url}/getUsageLimits", params=params,
                                 headers={"Host": "q.us-east-1.amazonaws.com",
                                          "Authorization": f"Bearer {access_token}"})
        self.log.event(path, "use" if response.status_code == 200 else "use-failed", status=response.status_code)


class Log:
    def __init__(self, path: Path, kind: str) -> None:
        self.handle = path.open("a", encoding="utf-8", buffering=1)
        self.kind = kind

    def event(self, path: Path, event: str, **fields: object) -> None:
        self.handle.write(json.dumps({"t": round(time.time(), 3), "kind": self.kind, "path": str(path),
                                      "event": event, **fields}) + "\n")


# -- the tools ---------------------------------------------------------------------------------

class Tool:
    """One login at one file, as one tool holds it."""

    def __init__(self, path: Path, service: Service, scale: float, use_every: float) -> None:
        self.path, self.service, self.scale, self.use_every = path, service, scale, use_every
        self.log = service.log
        self.next_use = time.time() + use_every

    def threshold(self, name: str) -> float:
        return REAL[name] * self.scale

    def load(self) -> None:
        raise NotImplementedError

    def tick(self, now: float) -> None:
        raise NotImplementedError

    def access(self) -> tuple[str, str | None]:
        raise NotImplementedError

    def maybe_use(self, now: float) -> None:
        if now >= self.next_use:
            self.next_use = now + self.use_every
            access, profile_arn = self.access()
            self.guarded(self.service.use, self.path, access, profile_arn)

    def guarded(self, step, *args):  # type: ignore[no-untyped-def]
        try:
            return step(*args)
        except BadFile as exc:
            self.log.event(self.path, "bad-file", error=str(exc))
        except (OSError, ValueError, KeyError, TypeError, sqlite3.Error, httpx.HTTPError) as exc:
            self.log.event(self.path, "error", error=f"{type(exc).__name__}: {exc}")
        return None


def _replace_atomically(path: Path, data: bytes, fsync: bool) -> None:
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)


class CliProxy(Tool):
    def load(self) -> None:
        self.signature = self._signature()
        self.record = self._read()
        self.next_sweep = time.time()
        self.log.event(self.path, "load", holds=fp(self.record["refresh_token"]))

    def _signature(self) -> tuple[int, int, int]:
        st = os.stat(self.path)
        return st.st_ino, st.st_mtime_ns, st.st_size

    def _read(self) -> dict:
        record = json.loads(self.path.read_bytes())
        if not isinstance(record, dict) or record.get("type") != "kiro":
            raise BadFile("not a kiro auth file")
        for name in ("access_token", "refresh_token", "expires_at"):
            if not isinstance(record.get(name), str) or not record[name]:
                raise BadFile(f"{name} missing")
        go_parse(record["expires_at"])
        if "last_refresh" in record:
            go_parse(record["last_refresh"])
        if os.stat(self.path).st_mode & 0o777 != 0o600:
            raise BadFile(f"mode {oct(os.stat(self.path).st_mode & 0o777)}")
        return record

    def tick(self, now: float) -> None:
        signature = self.guarded(self._signature)
        if signature is not None and signature != self.signature:  # fsnotify: reload the file
            self.signature = signature
            record = self.guarded(self._read)
            if record is not None:
                if record["refresh_token"] != self.record["refresh_token"]:
                    self.log.event(self.path, "reload", holds=fp(record["refresh_token"]))
                self.record = record
        if now >= self.next_sweep:
            self.next_sweep = now + max(0.25, self.threshold("cliproxy-sweep"))
            if go_parse(self.record["expires_at"]) - now < self.threshold("cliproxy"):
                self.guarded(self._refresh, now)
        self.maybe_use(now)

    def _refresh(self, now: float) -> None:
        record = self.record
        social = record.get("auth_method") == "social"
        answer = self.service.refresh(self.path, social=social, refresh_token=record["refresh_token"],
                                      client_id=record.get("client_id"), client_secret=record.get("client_secret"),
                                      region=record.get("region") or "us-east-1")
        if answer is None:
            return
        record = dict(record, access_token=answer["accessToken"], refresh_token=answer["refreshToken"],
                      expires_at=go_rfc3339(at(now + answer["expiresIn"])), last_refresh=go_rfc3339(at(now)))
        if answer.get("profileArn"):
            record["profile_arn"] = answer["profileArn"]
        _replace_atomically(self.path, go_marshal(record).encode(), fsync=False)
        self.record = record
        self.signature = self._signature()

    def access(self) -> tuple[str, str | None]:
        return self.record["access_token"], self.record.get("profile_arn") or None


class AiClient(Tool):
    def load(self) -> None:
        data = self._parse(self.path.read_bytes())
        for sibling in sorted(self.path.parent.glob("*.json")):  # every other *.json laid over it
            if sibling != self.path:
                other = json.loads(sibling.read_bytes())
                data.update({k: v for k, v in other.items() if k != "expiresAt"})
        self.creds = data
        self.expires = js_parse(data["expiresAt"])
        self.log.event(self.path, "load", holds=fp(data["refreshToken"]))

    @staticmethod
    def _parse(raw: bytes) -> dict:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise BadFile("not an object")
        for name in ("accessToken", "refreshToken", "expiresAt"):
            if not isinstance(data.get(name), str) or not data[name]:
                raise BadFile(f"{name} missing")
        js_parse(data["expiresAt"])
        return data

    def tick(self, now: float) -> None:
        if self.expires - now <= self.threshold("aiclient"):  # the expiry it holds, not the file's
            self.guarded(self._refresh, now)
        self.maybe_use(now)

    def _refresh(self, now: float) -> None:
        creds = self.creds
        social = creds.get("authMethod") == "social"
        answer = self.service.refresh(self.path, social=social, refresh_token=creds["refreshToken"],
                                      client_id=creds.get("clientId"), client_secret=creds.get("clientSecret"),
                                      region=creds.get("idcRegion") or creds.get("region") or "us-east-1")
        if answer is None:
            self.expires = now + 5 * 60 * self.scale  # it tries again later, with the same token
            return
        update = {"accessToken": answer["accessToken"], "refreshToken": answer["refreshToken"],
                  "expiresAt": js_iso(at(now + answer["expiresIn"]))}
        if answer.get("profileArn"):
            update["profileArn"] = answer["profileArn"]
        creds.update(update)
        self.expires = now + answer["expiresIn"]
        current = self._parse(self.path.read_bytes())  # the file as it is now, these four set
        current.update(update)
        _replace_atomically(self.path, js_stringify(current, 2).encode(), fsync=True)

    def access(self) -> tuple[str, str | None]:
        return self.creds["accessToken"], self.creds.get("profileArn")


TOKEN_KEYS = ("kirocli:social:token", "kirocli:odic:token", "codewhisperer:odic:token")


def _read_db(path: Path) -> tuple[str, dict, dict | None, str | None]:
    """(token key, token value, registration value, profile arn) from a kiro-cli-format database."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        rows = dict(conn.execute("SELECT key, value FROM auth_kv").fetchall())
        state = dict(conn.execute("SELECT key, value FROM state").fetchall())
    finally:
        conn.close()
    key = next((k for k in TOKEN_KEYS if k in rows), None)
    if key is None:
        raise BadFile("no token key")
    value = json.loads(rows[key])
    registration_key = key.replace(":token", ":device-registration")
    registration = json.loads(rows[registration_key]) if registration_key in rows else None
    profile = json.loads(state["api.codewhisperer.profile"]) if "api.codewhisperer.profile" in state else None
    arn = value.get("profile_arn") or (profile or {}).get("arn")
    return key, value, registration, arn


class GatewayDb(Tool):
    def load(self) -> None:
        self.key, value, self.registration, self.profile_arn = _read_db(self.path)
        self.token = value
        self.expires = py310_parse(value["expires_at"])
        self.log.event(self.path, "load", holds=fp(value["refresh_token"]))

    def tick(self, now: float) -> None:
        if self.expires - now <= self.threshold("gateway-db"):
            self.guarded(self._reload_or_refresh, now)
        self.maybe_use(now)

    def _reload_or_refresh(self, now: float) -> None:
        key, value, registration, arn = _read_db(self.path)  # SQLite mode: re-read before refreshing
        expires = py310_parse(value["expires_at"])
        if expires - now > self.threshold("gateway-db"):  # "SQLite reload provided fresh token"
            self.log.event(self.path, "took", holds=fp(value["refresh_token"]))
            self.key, self.token, self.registration = key, value, registration
            self.profile_arn, self.expires = arn, expires
            return
        social = "social" in key
        answer = self.service.refresh(self.path, social=social, refresh_token=value["refresh_token"],
                                      client_id=(registration or {}).get("client_id"),
                                      client_secret=(registration or {}).get("client_secret"),
                                      region=(registration or {}).get("region") or value.get("region") or "us-east-1")
        if answer is None:  # on a 400 it reloads the database and retries once
            key, value, registration, arn = _read_db(self.path)
            answer = self.service.refresh(self.path, social=social, refresh_token=value["refresh_token"],
                                          client_id=(registration or {}).get("client_id"),
                                          client_secret=(registration or {}).get("client_secret"),
                                          region=(registration or {}).get("region") or value.get("region")
                                          or "us-east-1")
        if answer is None:  # then it uses its access token until it expires, and gives up
            self.expires = now + 30 * self.scale
            return
        stored = at(now + answer["expiresIn"] - self.threshold("gateway-short"))
        # An older kiro-gateway: the whole value replaced with its own shape, no compare-and-swap.
        written = {"access_token": answer["accessToken"], "refresh_token": answer["refreshToken"],
                   "expires_at": stored.isoformat(), "region": value.get("region") or "us-east-1",
                   "scopes": value.get("scopes")}
        conn = sqlite3.connect(self.path, timeout=10)
        try:
            with conn:
                conn.execute("UPDATE auth_kv SET value = ? WHERE key = ?", (json.dumps(written), key))
        finally:
            conn.close()
        self.key, self.token, self.expires = key, written, stored.timestamp()
        if answer.get("profileArn"):
            self.profile_arn = answer["profileArn"]

    def access(self) -> tuple[str, str | None]:
        return self.token["access_token"], self.profile_arn


IDE_BUILDER_ID_START_URL = "https://view.awsapps.com/start"


def ide_client_id_hash(start_url: str) -> str:
    """The IDE's clientIdHash: sha1 of JSON.stringify({startUrl})."""
    return hashlib.sha1(js_stringify({"startUrl": start_url}).encode()).hexdigest()


class KiroIde(Tool):
    """The Kiro IDE, by the rules read from its extension code (issue 21): it polls its token
    file (`fs.watchFile`, 5 s) and takes what another program wrote; a loop every 60 s refreshes
    when under 10 minutes remain (the window has focus here, always); before using its token it
    refreshes on demand under 3 minutes. After refreshing it writes only if the refresh token on
    disk is still the one it started from. A refresh fails without a registration it can use
    (`<clientIdHash>.json`, the hash of the Builder ID start URL for a Builder ID login, valid
    for 15 more minutes); a failed refresh within 3 minutes of expiry logs it out HARD: the token
    file and the registration are deleted and a social login's refresh token is revoked (its
    /logout). A logged-out IDE does nothing more."""

    def load(self) -> None:
        self.data = self._read()
        self.signature = self._signature()
        self.next_poll = self.next_loop = time.time()
        self.logged_out = False
        self.log.event(self.path, "load", holds=fp(self.data["refreshToken"]))

    def _signature(self) -> tuple[int, int, int]:
        st = os.stat(self.path)
        return st.st_ino, st.st_mtime_ns, st.st_size

    def _read(self) -> dict:
        if self.path.is_symlink() or not self.path.is_file():
            raise BadFile("the IDE needs a regular file")
        raw = self.path.read_bytes()
        if raw.startswith(b"\xef\xbb\xbf"):
            raise BadFile("a byte order mark breaks the IDE's JSON.parse")
        data = json.loads(raw)
        for name in ("accessToken", "refreshToken", "expiresAt", "authMethod"):
            if not isinstance(data.get(name), str) or not data[name]:
                raise BadFile(f"{name} missing")
        if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", data["expiresAt"]):
            raise BadFile(f"expiresAt {data['expiresAt']!r} is not toISOString()")
        if data["authMethod"] == "IdC" and data.get("provider") == "BuilderId" \
                and data.get("clientIdHash") != ide_client_id_hash(IDE_BUILDER_ID_START_URL):
            raise BadFile(f"clientIdHash {data.get('clientIdHash')!r} is not the IDE's for Builder ID")
        if os.stat(self.path).st_mode & 0o777 != 0o600:
            raise BadFile(f"mode {oct(os.stat(self.path).st_mode & 0o777)}")
        return data

    def _registration(self, now: float) -> dict:
        path = self.path.parent / f"{self.data['clientIdHash']}.json"
        registration = json.loads(path.read_bytes())
        if not registration.get("clientId") or not registration.get("clientSecret"):
            raise BadFile("registration without a client")
        expires = registration.get("expiresAt")
        if expires and js_parse(expires) - now < self.threshold("kiro-ide-registration"):
            raise BadFile("registration expires within 15 minutes")
        return registration

    def tick(self, now: float) -> None:
        if self.logged_out:
            return
        if now >= self.next_poll:  # fs.watchFile
            self.next_poll = now + max(TICK, self.threshold("kiro-ide-poll"))
            signature = self.guarded(self._signature)
            if signature is not None and signature != self.signature:
                self.signature = signature
                data = self.guarded(self._read)
                if data is not None:
                    if data["refreshToken"] != self.data["refreshToken"]:
                        self.log.event(self.path, "took", holds=fp(data["refreshToken"]))
                    self.data = data
        if now >= self.next_loop:  # the refresh loop, under 10 minutes
            self.next_loop = now + max(TICK, self.threshold("kiro-ide-loop"))
            if js_parse(self.data["expiresAt"]) - now < self.threshold("kiro-ide"):
                self._refresh(now)
        if now >= self.next_use:
            self.next_use = now + self.use_every
            if js_parse(self.data["expiresAt"]) - now < self.threshold("kiro-ide-on-demand"):
                self._refresh(now)
            if not self.logged_out:
                self.guarded(self.service.use, self.path, self.data["accessToken"], self.data.get("profileArn"))

    def _refresh(self, now: float) -> None:
        data = self.data
        social = data["authMethod"] == "social"
        try:
            registration = {} if social else self._registration(now)
        except (OSError, ValueError, KeyError, BadFile) as exc:
            self.log.event(self.path, "refresh-failed", status=0, spent=fp(data["refreshToken"]),
                           body=f"no usable registration: {exc}")
            answer = None
        else:
            answer = self.service.refresh(self.path, social=social, refresh_token=data["refreshToken"],
                                          client_id=registration.get("clientId"),
                                          client_secret=registration.get("clientSecret"),
                                          region=data.get("region") or "us-east-1")
        if answer is None:
            if js_parse(data["expiresAt"]) - now < self.threshold("kiro-ide-on-demand"):
                self._log_out(data)
            return
        update = {"accessToken": answer["accessToken"], "refreshToken": answer["refreshToken"],
                  "expiresAt": js_iso(at(now + answer["expiresIn"]))}
        if social and answer.get("profileArn"):
            update["profileArn"] = answer["profileArn"]
        on_disk = json.loads(self.path.read_bytes())
        if on_disk.get("refreshToken") == data["refreshToken"]:  # still the one it started from
            on_disk.update(update)
            _replace_atomically(self.path, js_stringify(on_disk, 2).encode(), fsync=False)
            self.signature = self._signature()
        self.data = dict(data, **update)

    def _log_out(self, data: dict) -> None:
        """The IDE's hard logout after a failed refresh near expiry."""
        self.logged_out = True
        self.log.event(self.path, "logout", holds=fp(data["refreshToken"]))
        self.path.unlink(missing_ok=True)
        if data["authMethod"] == "social":  # POST /logout revokes the refresh token on the server
            self.service.http.post(f"{self.service.url}/_emulator/revoke", json={"refresh_token": data["refreshToken"]})
        elif data.get("clientIdHash"):
            (self.path.parent / f"{data['clientIdHash']}.json").unlink(missing_ok=True)

    def access(self) -> tuple[str, str | None]:
        return self.data["accessToken"], self.data.get("profileArn")


class KiroCli(Tool):
    def load(self) -> None:
        self.key, self.value, self.registration, self.profile_arn = _read_db(self.path)
        self.next_read = time.time()
        self.log.event(self.path, "load", holds=fp(self.value["refresh_token"]))

    def tick(self, now: float) -> None:
        if now >= self.next_read:  # every command re-reads the database
            self.next_read = now + 0.25
            self.guarded(self._read_and_maybe_refresh, now)
        self.maybe_use(now)

    def _read_and_maybe_refresh(self, now: float) -> None:
        key, value, registration, arn = _read_db(self.path)
        if value["refresh_token"] != self.value["refresh_token"]:
            self.log.event(self.path, "took", holds=fp(value["refresh_token"]))
        self.key, self.value, self.registration, self.profile_arn = key, value, registration, arn
        if rust_parse(value["expires_at"]) - now <= self.threshold("kiro-cli"):  # lazily, just before expiry
            self._refresh(now)

    def _refresh(self, now: float) -> None:
        value, registration = self.value, self.registration or {}
        answer = self.service.refresh(self.path, social="social" in self.key, refresh_token=value["refresh_token"],
                                      client_id=registration.get("client_id"),
                                      client_secret=registration.get("client_secret"),
                                      region=registration.get("region") or value.get("region") or "us-east-1")
        if answer is None:
            return
        value = dict(value, access_token=answer["accessToken"], refresh_token=answer["refreshToken"],
                     expires_at=rfc3339(at(now) + timedelta(seconds=answer["expiresIn"])))
        conn = sqlite3.connect(self.path, timeout=10)
        try:
            with conn:
                conn.execute("INSERT OR REPLACE INTO auth_kv (key, value) VALUES (?1, ?2)",
                             (self.key, json.dumps(value, separators=(",", ":"))))
        finally:
            conn.close()
        self.value = value

    def access(self) -> tuple[str, str | None]:
        return self.value["access_token"], self.profile_arn


def opencode_sync_from_kiro_cli(kiro_cli_db: Path, opencode_db: Path, email: str) -> list[str]:
    """opencode-kiro-auth's import of kiro-cli's logins (on start, and when left without a working
    account), as 1.5.1 does it: every `*:token` row becomes an `accounts` row with id
    sha256("{email}:{auth_method}:{client_id}:{profile_arn}") through an upsert whose conflict
    target is the refresh token. For a row it already has, with a new refresh token, that insert
    fails on the primary key ("UNIQUE constraint failed: accounts.id") and the plugin swallows it:
    the errors it swallowed are returned, the row keeps what it held."""
    _, value, registration, arn = _read_db(kiro_cli_db)
    conn = sqlite3.connect(f"file:{kiro_cli_db}?mode=ro", uri=True, timeout=10)
    try:
        keys = [key for (key,) in conn.execute("SELECT key FROM auth_kv") if ":token" in key]
    finally:
        conn.close()
    swallowed = []
    target = sqlite3.connect(opencode_db, timeout=10)
    try:
        for key in keys:
            method = "idc" if ("odic" in key or "oidc" in key) else "desktop"
            client_id = (registration or {}).get("client_id") if method == "idc" else None
            row = {"id": hashlib.sha256(f"{email}:{method}:{client_id or ''}:{arn or ''}".encode()).hexdigest(),
                   "email": email, "auth_method": method, "region": "us-east-1", "client_id": client_id,
                   "client_secret": (registration or {}).get("client_secret") if method == "idc" else None,
                   "profile_arn": arn, "refresh_token": value["refresh_token"], "access_token": value["access_token"],
                   "expires_at": int(rust_parse(value["expires_at"]) * 1000)}
            columns = ", ".join(row)
            updates = ", ".join(f"{name} = excluded.{name}" for name in row if name != "id")
            try:
                with target:
                    target.execute(f"INSERT INTO accounts ({columns}) VALUES ({', '.join('?' * len(row))}) "
                                   f"ON CONFLICT(refresh_token) DO UPDATE SET {updates}", tuple(row.values()))
            except sqlite3.IntegrityError as exc:  # swallowed by the plugin
                swallowed.append(str(exc))
    finally:
        target.close()
    return swallowed


TOOLS: dict[str, type[Tool]] = {"cliproxy": CliProxy, "aiclient": AiClient, "gateway-db": GatewayDb,
                                "kiro-ide": KiroIde, "kiro-cli": KiroCli}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="standins")
    parser.add_argument("kind", choices=sorted(TOOLS))
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--url", required=True)
    parser.add_argument("--ttl", type=float, required=True, help="the emulator's token lifetime, seconds")
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--use-every", type=float, default=2.0)
    args = parser.parse_args(argv)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    log = Log(args.log, args.kind)
    service = Service(args.url, log)
    tools = [TOOLS[args.kind](path, service, args.ttl / REAL_LIFETIME, args.use_every) for path in args.paths]
    for tool in tools:
        tool.load()
    print("ready", flush=True)
    while not stopping:
        now = time.time()
        for tool in tools:
            tool.guarded(tool.tick, now)
        time.sleep(TICK)
    log.event(Path("-"), "stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
