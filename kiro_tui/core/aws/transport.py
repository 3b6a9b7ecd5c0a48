"""One HTTP exchange with a service: send, time out, parse JSON, classify failures."""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable
from typing import Any

import httpx

from kiro_tui import __version__
from kiro_tui.core.aws.endpoints import Target
from kiro_tui.core.aws.errors import ErrorClass, ServiceError
from kiro_tui.core.errors import TlsSetupError

USER_AGENT = f"kiro-tui/{__version__}"
DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)

# (status, error code, message, body) -> the error to raise
Classifier = Callable[[int, str, str, dict[str, Any]], ServiceError]


def make_http_client(timeout: httpx.Timeout | float = DEFAULT_TIMEOUT) -> httpx.AsyncClient:
    """The one AsyncClient kiro-tui uses: TLS verification always on, explicit timeouts."""
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
    try:
        return httpx.AsyncClient(timeout=timeout, verify=True, limits=limits, headers={"User-Agent": USER_AGENT})
    except (OSError, ssl.SSLError) as exc:  # SSLError is an OSError; named for the reader
        raise TlsSetupError(_tls_setup_message(exc)) from None


def _tls_setup_message(exc: Exception) -> str:
    """Which setting points at unusable certificates, and what to do about it."""
    reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
    reason = reason.replace("_", " ").lower() if reason.isupper() else reason  # NO_CERTIFICATE_OR_CRL_FOUND
    for variable in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
        if os.environ.get(variable):
            return (f"cannot load the certificates to verify AWS with: {variable}={os.environ[variable]}: "
                    f"{reason}; point it at a PEM bundle, or unset it")
    return f"cannot load the certificates to verify AWS with: {reason}; reinstall kiro-tui (certifi)"


def error_code(response: httpx.Response, body: dict[str, Any]) -> str:
    """The error's name: body `error` (OAuth), else x-amzn-ErrorType / `__type` / `code`, bare."""
    if isinstance(body.get("error"), str):
        return body["error"]
    raw = response.headers.get("x-amzn-errortype") or body.get("__type") or body.get("code") or ""
    return str(raw).split(":")[0].split("#")[-1]


def error_message(body: dict[str, Any]) -> str:
    for name in ("error_description", "message", "Message", "errorMessage"):
        if isinstance(body.get(name), str) and body[name]:
            return str(body[name])[:300]
    return ""


async def exchange(
    http: httpx.AsyncClient,
    method: str,
    target: Target,
    *,
    service: str,
    classify: Classifier,
    json: dict[str, Any] | None = None,
    data: dict[str, str] | None = None,
    content: bytes | None = None,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The JSON object of a 2xx answer; otherwise a classified `ServiceError`."""
    all_headers = {"Accept": "application/json", **(headers or {})}
    if target.host:
        all_headers["Host"] = target.host
    try:
        response = await http.request(
            method, target.url, json=json, data=data, content=content, params=params, headers=all_headers
        )
    except httpx.TimeoutException as exc:
        raise ServiceError(f"{service}: timed out ({type(exc).__name__})", ErrorClass.TRANSIENT) from exc
    except httpx.UnsupportedProtocol as exc:
        raise ServiceError(f"{service}: {target.url[:80]!r} is not an http(s) URL", ErrorClass.FATAL_CONFIG) from exc
    except httpx.TransportError as exc:
        raise ServiceError(f"{service}: connection failed ({type(exc).__name__})", ErrorClass.TRANSIENT) from exc
    except (httpx.InvalidURL, ValueError, UnicodeError) as exc:  # a stored URL no request can be built from
        raise ServiceError(f"{service}: the URL {target.url[:80]!r} is not usable ({type(exc).__name__})",
                           ErrorClass.FATAL_CONFIG) from exc
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.is_success:
        if not isinstance(body, dict):
            raise ServiceError(f"{service}: malformed response (HTTP {response.status_code}, not a JSON object)",
                               ErrorClass.TRANSIENT, status=response.status_code)
        return body
    body = body if isinstance(body, dict) else {}
    error = classify(response.status_code, error_code(response, body), error_message(body), body)
    if error.retry_after is None and "retry-after" in response.headers:
        try:
            error.retry_after = float(response.headers["retry-after"])
        except ValueError:
            pass
    raise error


def require(body: dict[str, Any], name: str, kind: type, service: str, status: int = 200) -> Any:
    """A field of a success body, or a transient 'malformed response' error naming it."""
    value = body.get(name)
    if not isinstance(value, kind) or (kind is str and not value):
        raise ServiceError(f"{service}: malformed response (field {name!r} missing or wrong type)",
                           ErrorClass.TRANSIENT, status=status)
    return value
