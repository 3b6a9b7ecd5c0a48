"""A stand-in of the Kiro IDE that refreshes its own login, for `kiro-tui use` (issue 23's proof).

What it does, as docs/places.md and ../shared/reference/peer-formats.md describe the IDE, with
its times scaled to a short token lifetime in the proportion of the real ones (3,600 s tokens):

- polls `kiro-auth-token.json` (fs.watchFile, about every 5 s) and re-reads it when another
  program rewrote it: the token, and for an IdC login the registration its `clientIdHash` names;
- a loop every 60 s refreshes when under 10 minutes remain (the expiry it holds), spending the
  refresh token it holds, and writes the answer back only if the refresh token on disk is still
  the one it started from;
- a refresh the service refuses logs it out hard: the token file is deleted;
- it uses its access token (GetUsageLimits) every `--use-every` seconds: a 403 means it was left
  holding a dead login.

Events go to a JSON-lines log (refresh tokens only as a 12-hex fingerprint); "ready" is printed
once the file is loaded. SIGTERM ends it.

Usage: python -m tests.support.ide_refresher PATH --url URL --ttl S --log FILE
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

REAL_LIFETIME = 3600.0
SOCIAL_HOST = "prod.us-east-1.auth.desktop.kiro.dev"


def fp(token: str | None) -> str | None:
    return hashlib.sha256(token.encode()).hexdigest()[:12] if token else None


def js_iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def js_parse(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Ide:
    def __init__(self, path: Path, url: str, ttl: float, log: Path, use_every: float) -> None:
        scale = ttl / REAL_LIFETIME
        self.path, self.url = path, url.rstrip("/")
        self.poll_every, self.loop_every, self.threshold = max(0.05, 5 * scale), 60 * scale, 600 * scale
        self.use_every = use_every
        self.http = httpx.Client(timeout=15.0)
        self.log_file = log.open("a", encoding="utf-8", buffering=1)
        self.data: dict | None = None
        self.registration: dict | None = None
        self.signature: tuple[int, int, int] | None = None
        self.next_loop = self.next_use = 0.0

    def event(self, event: str, **fields: object) -> None:
        self.log_file.write(json.dumps({"t": round(time.time(), 3), "event": event, **fields}) + "\n")

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def poll(self) -> None:
        signature = self._signature()
        if signature == self.signature:
            return
        self.signature = signature
        if signature is None:
            self.data = None
            return
        try:
            data = json.loads(self.path.read_bytes())
            registration = None
            if data.get("authMethod") == "IdC":
                registration = json.loads((self.path.parent / f"{data['clientIdHash']}.json").read_bytes())
        except (OSError, ValueError, KeyError) as exc:  # the IDE could not use the file as written
            self.event("bad-file", error=str(exc))
            return
        before = fp(self.data["refreshToken"]) if self.data else None
        self.data, self.registration = data, registration
        if fp(data["refreshToken"]) != before:
            self.event("took", holds=fp(data["refreshToken"]))

    def loop(self, now: float) -> None:
        """The IDE's refresh loop: under 10 minutes (scaled) left of what it holds, refresh."""
        if self.data is None or js_parse(self.data["expiresAt"]) - now > self.threshold:
            return
        spent = self.data["refreshToken"]
        if self.data.get("authMethod") == "social":
            response = self.http.post(f"{self.url}/refreshToken", json={"refreshToken": spent},
                                      headers={"Host": SOCIAL_HOST})
        else:
            assert self.registration is not None
            response = self.http.post(f"{self.url}/token", headers={"Host": "oidc.us-east-1.amazonaws.com"},
                                      json={"grantType": "refresh_token", "clientId": self.registration["clientId"],
                                            "clientSecret": self.registration["clientSecret"],
                                            "refreshToken": spent})
        if response.status_code != 200:  # logged out hard, as the IDE does
            self.event("refresh-failed", status=response.status_code, spent=fp(spent))
            self.path.unlink(missing_ok=True)
            self.data = None
            return
        answer = response.json()
        on_disk = json.loads(self.path.read_bytes()) if self.path.exists() else {}
        if on_disk.get("refreshToken") != spent:  # another program wrote it meanwhile: not ours to write
            self.event("refresh-discarded", spent=fp(spent), got=fp(answer["refreshToken"]))
            return
        data = dict(self.data, accessToken=answer["accessToken"], refreshToken=answer["refreshToken"],
                    expiresAt=js_iso(now + float(answer["expiresIn"])))
        fd, temp = tempfile.mkstemp(dir=self.path.parent)
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(data, indent=2))
        os.chmod(temp, 0o600)
        os.replace(temp, self.path)
        self.event("refresh", spent=fp(spent), got=fp(answer["refreshToken"]))
        self.poll()

    def use(self) -> None:
        if self.data is None:
            return
        params = {"origin": "AI_EDITOR", "resourceType": "AGENTIC_REQUEST"}
        if self.data.get("profileArn"):
            params["profileArn"] = self.data["profileArn"]
        response = self.http.get(f"{self.url}/getUsageLimits", params=params,
                                 headers={"Host": "q.us-east-1.amazonaws.com",
                                          "Authorization": f"Bearer {self.data['accessToken']}"})
        self.event("use" if response.status_code == 200 else "use-failed", status=response.status_code,
                   holds=fp(self.data["refreshToken"]))

    def run(self) -> None:
        self.poll()
        print("ready", flush=True)
        while True:
            now = time.time()
            self.poll()
            if now >= self.next_loop:
                self.next_loop = now + self.loop_every
                self.loop(now)
            if now >= self.next_use:
                self.next_use = now + self.use_every
                self.use()
            time.sleep(self.poll_every)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("path", type=Path)
    parser.add_argument("--url", required=True)
    parser.add_argument("--ttl", type=float, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--use-every", type=float, default=0.5)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    Ide(args.path, args.url, args.ttl, args.log, args.use_every).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

