"""Where each service lives: real AWS hosts by region, or one loopback base URL for all.

`KIRO_TUI_ENDPOINT_URL=http://127.0.0.1:PORT` sends every call to that base URL (the emulator)
while keeping the real host name in the Host header, so the emulator knows the region.
Plain http:// is refused unless the host is loopback: tokens never cross a network in clear.
"""

from __future__ import annotations

import ipaddress
import os
import re
import urllib.parse
from dataclasses import dataclass

from kiro_tui.core.errors import ConfigError

ENDPOINT_ENV = "KIRO_TUI_ENDPOINT_URL"
PROFILE_REGIONS = ("us-east-1", "eu-central-1")
_REGION = re.compile(r"^[a-z]{2}(?:-gov)?-[a-z]+-\d$")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_base_url(url: str, where: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigError(f"{where}: {url!r} is not an http(s) URL")
    if parsed.scheme == "http" and not is_loopback(parsed.hostname):
        raise ConfigError(
            f"{where}: plain http:// is only allowed to a loopback address (127.0.0.1, ::1, localhost); "
            "use https://"
        )
    return url.rstrip("/")


def valid_region(region: str) -> bool:
    return bool(_REGION.match(region or ""))


@dataclass(frozen=True)
class Target:
    url: str
    host: str | None  # Host header to send when redirected to the override base URL


@dataclass(frozen=True)
class Endpoints:
    override: str | None = None

    @classmethod
    def from_env(cls) -> Endpoints:
        value = os.environ.get(ENDPOINT_ENV)
        return cls(check_base_url(value, ENDPOINT_ENV) if value else None)

    def _target(self, real_base: str, path: str) -> Target:
        if self.override:
            return Target(self.override + path, urllib.parse.urlsplit(real_base).netloc)
        return Target(real_base + path, None)

    def oidc(self, region: str, path: str) -> Target:
        return self._target(f"https://oidc.{region}.amazonaws.com", path)

    def social(self, region: str, path: str) -> Target:
        return self._target(f"https://prod.{region}.auth.desktop.kiro.dev", path)

    def q(self, region: str, path: str) -> Target:
        return self._target(f"https://q.{region}.amazonaws.com", path)

    def absolute(self, url: str) -> Target:
        """A URL stored in a token (an external IdP's token endpoint): its path on the override."""
        try:
            parsed = urllib.parse.urlsplit(url)
            if self.override:
                return Target(self.override + (parsed.path or "/"), parsed.netloc)
            return Target(check_base_url(url, "token endpoint"), None)
        except ValueError as exc:
            raise ConfigError(f"token endpoint {url[:80]!r} is not a URL") from exc
