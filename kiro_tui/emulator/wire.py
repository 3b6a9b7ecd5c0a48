"""The emulator's HTTP/1.1 plumbing: one request read and one response sent over h11, and a
reset as a crashed peer gives; the routes (server.py) see only `Request` and `Response`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import struct
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import h11

from kiro_tui.emulator.service import ApiError

MAX_BODY = 1 << 20
_HOST_REGION = re.compile(
    r"^(?:oidc|oidc-fips|q|q-fips|codewhisperer|prod|management|runtime)\.([a-z]{2}(?:-gov)?-[a-z]+-\d)\."
)

_OPERATIONS = {
    ("POST", "/client/register"): "RegisterClient",
    ("POST", "/device_authorization"): "StartDeviceAuthorization",
    ("POST", "/token"): "CreateToken",
    ("POST", "/refreshToken"): "RefreshToken",
    ("POST", "/ListAvailableProfiles"): "ListAvailableProfiles",
    ("GET", "/getUsageLimits"): "GetUsageLimits",
}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:  # JSON a test sent: checked where used
        if not self.body:
            return {}
        try:
            data = json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, "SerializationException", {"message": "Request body is not valid JSON"}) from exc
        if not isinstance(data, dict):
            raise ApiError(400, "SerializationException", {"message": "Request body must be a JSON object"})
        return data

    def form(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(self.body.decode("utf-8", "replace")))

    @property
    def region(self) -> str:
        match = _HOST_REGION.match(self.headers.get("host", ""))
        return match.group(1) if match else "us-east-1"

    @property
    def bearer(self) -> str | None:
        value = self.headers.get("authorization", "")
        return value[7:] if value.lower().startswith("bearer ") else None

    @property
    def operation(self) -> str:
        target = self.headers.get("x-amz-target", "")
        if target:
            return target.rsplit(".", 1)[-1]
        return _OPERATIONS.get((self.method, self.path), "")


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, data: object, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
        return cls(status, json.dumps(data).encode(), "application/json", headers or [])

    @classmethod
    def error(cls, exc: ApiError) -> Response:
        headers = [("x-amzn-ErrorType", exc.header)] if exc.error_type else []
        return cls.json(exc.body, exc.status, headers)


async def read_request(
    conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> Request | None:
    head: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await reader.read(65536)
            conn.receive_data(data)
            if not data and conn.their_state is h11.IDLE:
                return None
            continue
        if isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_BODY:
                await send(conn, writer, Response.json({"message": "Request too large"}, 413))
                return None
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            target = head.target.decode("latin-1")
            parsed = urllib.parse.urlsplit(target)
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in head.headers}
            return Request(
                method=head.method.decode("ascii"),
                path=parsed.path or "/",
                query=dict(urllib.parse.parse_qsl(parsed.query)),
                headers=headers,
                body=bytes(body),
            )
        elif isinstance(event, h11.ConnectionClosed):
            return None

async def send(conn: h11.Connection, writer: asyncio.StreamWriter, response: Response) -> None:
    headers = [
        ("Content-Type", response.content_type),
        ("Content-Length", str(len(response.body))),
        *response.headers,
    ]
    data = conn.send(h11.Response(status_code=response.status, headers=headers, reason=b""))
    data += conn.send(h11.Data(data=response.body)) if response.body else b""
    data += conn.send(h11.EndOfMessage())
    writer.write(data)
    await writer.drain()


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST, as a crashed peer or a middlebox would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
