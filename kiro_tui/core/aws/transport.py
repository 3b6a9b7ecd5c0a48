"""One HTTP exchange with a service: send, time out, parse JSON, classify failures."""

from __future__ import annotations

import json as jsonlib
import os
import ssl
import urllib.parse
import zlib
from collections.abc import Callable
from typing import Any

import httpx

from kiro_tui import __version__
from kiro_tui.core.aws.endpoints import Target
from kiro_tui.core.aws.errors import ErrorClass, ServiceError
from kiro_tui.core.errors import TlsSetupError

USER_AGENT = f"kiro-tui/{__version__}"
DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
MAX_ANSWER_BYTES = 512 * 1024
"""No answer of these services comes near this, decoded. A bigger one (a gzip bomb, a portal's
page) is not read further: the exchange fails as transient, memory stays bounded."""

# (status, error code, message, body) -> the error to raise
Classifier = Callable[[int, str, str, dict[str, Any]], ServiceError]


def make_http_client(timeout: httpx.Timeout | float = DEFAULT_TIMEOUT) -> httpx.AsyncClient:
    """The one AsyncClient kiro-tui uses: TLS verification always on, explicit timeouts."""
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
    try:
        return httpx.AsyncClient(timeout=timeout, verify=True, limits=limits, follow_redirects=False,
                                 headers={"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"})
    except (OSError, ssl.SSLError) as exc:  # SSLError is an OSError; named for the reader
        raise TlsSetupError(_tls_setup_message(exc)) from None


def offline_client(error: TlsSetupError) -> httpx.AsyncClient:
    """A client that sends nothing, for when TLS cannot be set up: every call fails with `error`."""
    return httpx.AsyncClient(transport=_NoNetwork(error))


class _NoNetwork(httpx.AsyncBaseTransport):
    """Stands in for a transport when TLS cannot be set up: nothing is ever sent."""

    def __init__(self, error: TlsSetupError) -> None:
        self.error = error

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(str(self.error), request=request)


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
    """The JSON object of a 2xx answer; otherwise a classified `ServiceError`.

    Only the service's own JSON error reaches `classify` (which alone may call a login dead);
    a redirect (never followed), a proxy's 407, a page that is not JSON, an answer too big
    to be the service's: each is transient, named by what answered."""
    all_headers = {"Accept": "application/json", **(headers or {})}
    if target.host:
        all_headers["Host"] = target.host
    try:
        async with http.stream(method, target.url, json=json, data=data, content=content, params=params,
                               headers=all_headers) as response:
            raw = await _read_capped(response, service)
    except httpx.TimeoutException as exc:
        raise ServiceError(f"{service}: timed out ({type(exc).__name__})", ErrorClass.TRANSIENT) from exc
    except httpx.UnsupportedProtocol as exc:
        raise ServiceError(f"{service}: {target.url[:80]!r} is not an http(s) URL", ErrorClass.FATAL_CONFIG) from exc
    except httpx.TransportError as exc:
        raise ServiceError(f"{service}: connection failed ({type(exc).__name__})", ErrorClass.TRANSIENT) from exc
    except (httpx.InvalidURL, ValueError, UnicodeError) as exc:  # a stored URL no request can be built from
        raise ServiceError(f"{service}: the URL {target.url[:80]!r} is not usable ({type(exc).__name__})",
                           ErrorClass.FATAL_CONFIG) from exc
    status = response.status_code
    try:
        body = jsonlib.loads(raw)
    except (ValueError, RecursionError):
        body = None
    if response.is_success:
        if not isinstance(body, dict):
            raise ServiceError(f"{service}: malformed response (HTTP {status}, not a JSON object)",
                               ErrorClass.TRANSIENT, status=status)
        return body
    in_the_way = _not_the_service(response, body)
    if in_the_way:
        error = ServiceError(f"{service}: {in_the_way}; retrying", ErrorClass.TRANSIENT, status=status)
    else:
        assert isinstance(body, dict)
        error = classify(status, error_code(response, body), error_message(body), body)
    if error.retry_after is None and "retry-after" in response.headers:
        try:
            error.retry_after = float(response.headers["retry-after"])
        except ValueError:
            pass
    raise error


def _not_the_service(response: httpx.Response, body: object) -> str | None:
    """What answered instead of the service, in words, when it was not the service's own JSON
    error: something in the way (a proxy, a portal, a gateway), never a verdict on the login."""
    status = response.status_code
    if response.is_redirect or 300 <= status < 400:
        where = urllib.parse.urlsplit(response.headers.get("location", "")).hostname
        return f"redirected{f' to {where}' if where else ''} (HTTP {status}, not followed)"
    if status == 407:
        return "a proxy asked for authentication (407)"
    if not isinstance(body, dict):
        kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        page = "an HTML page" if "html" in kind else (f"a {kind} answer" if kind else "an answer")
        return f"HTTP {status} with {page}, not the service's JSON"
    return None


async def _read_capped(response: httpx.Response, service: str) -> bytes:
    """The decoded body, decoded as it streams in and never past MAX_ANSWER_BYTES (a small
    gzip body can inflate to gigabytes: each piece is inflated only as far as the cap allows)."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        inflate = None
    elif encoding in ("gzip", "x-gzip"):
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        inflate = zlib.decompressobj()
    else:
        raise ServiceError(f"{service}: HTTP {response.status_code} in an encoding kiro-tui did not ask for "
                           f"({encoding[:40]!r}); retrying", ErrorClass.TRANSIENT, status=response.status_code)
    too_big = ServiceError(f"{service}: HTTP {response.status_code} with an answer larger than "
                           f"{MAX_ANSWER_BYTES // 1024} KB, which no answer of this service is; not read further, "
                           "retrying", ErrorClass.TRANSIENT, status=response.status_code)
    pieces: list[bytes] = []
    size = 0
    try:
        async for chunk in response.aiter_raw():
            while chunk:
                if inflate is None:
                    piece, chunk = chunk, b""
                else:
                    piece = inflate.decompress(chunk, MAX_ANSWER_BYTES + 1 - size)
                    chunk = inflate.unconsumed_tail
                    if not piece and chunk:  # no output for input: cannot happen with room left
                        break
                size += len(piece)
                if size > MAX_ANSWER_BYTES:
                    raise too_big
                pieces.append(piece)
    except httpx.StreamConsumed:  # built whole in memory (a MockTransport's answer): nothing to stream
        if len(response.content) > MAX_ANSWER_BYTES:
            raise too_big from None
        return response.content
    except zlib.error as exc:
        raise ServiceError(f"{service}: HTTP {response.status_code} with a body that does not decode as "
                           f"{encoding} ({exc}); retrying", ErrorClass.TRANSIENT, status=response.status_code) from exc
    return b"".join(pieces)


def require(body: dict[str, Any], name: str, kind: type, service: str, status: int = 200) -> Any:
    """A field of a success body, or a transient 'malformed response' error naming it."""
    value = body.get(name)
    if not isinstance(value, kind) or (kind is str and not value):
        raise ServiceError(f"{service}: malformed response (field {name!r} missing or wrong type)",
                           ErrorClass.TRANSIENT, status=status)
    return value
