"""A hostile thing in the way, on 127.0.0.1, in front of the emulator: it passes requests on
unless a trick is queued, and then answers as a proxy, a portal or a broken gateway would."""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HTML = b"<!doctype html><html><head><title>Access denied</title></head><body>Blocked by policy</body></html>"


@dataclass
class Trick:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    path: str = ""
    """Only requests whose path ends with this (the refresh endpoints) meet the trick."""
    count: int = 1


def redirect(status: int = 302, to: str = "https://login.example.invalid/portal?next=kiro") -> Trick:
    return Trick(status, [("Location", to), ("Content-Type", "text/html")], HTML)


def proxy_auth() -> Trick:
    return Trick(407, [("Proxy-Authenticate", 'Basic realm="corp"'), ("Content-Type", "text/html")], HTML)


def html(status: int) -> Trick:
    return Trick(status, [("Content-Type", "text/html; charset=utf-8")], HTML)


def not_json(status: int) -> Trick:
    return Trick(status, [("Content-Type", "application/json")], b"{'error': 'invalid_grant'")  # broken JSON


def gzip_bomb(inflated_mb: int = 300) -> Trick:
    """A small gzip body that inflates to `inflated_mb` MB of JSON-looking bytes, compressed a
    megabyte at a time (this process never holds the inflated whole: a child started from it
    would inherit that peak in its own maximum resident size)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    pieces = [compressor.compress(b'{"accessToken": "')]
    megabyte = b"A" * (1024 * 1024)
    pieces += [compressor.compress(megabyte) for _ in range(inflated_mb)]
    pieces += [compressor.compress(b'"}'), compressor.flush()]
    return Trick(200, [("Content-Type", "application/json"), ("Content-Encoding", "gzip")], b"".join(pieces))


def answer(body: dict[str, object], status: int = 200) -> Trick:
    return Trick(status, [("Content-Type", "application/json")], json.dumps(body).encode())


class HostileServer:
    """ThreadingHTTPServer on a free loopback port; `url` is what KIRO_TUI_ENDPOINT_URL points at."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        self.tricks: list[Trick] = []
        self.played: list[tuple[str, int]] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                trick = server._take(self.path)
                if trick is not None:
                    self.send_response(trick.status)
                    for name, value in trick.headers:
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(trick.body)))
                    self.end_headers()
                    self.wfile.write(trick.body)
                    return
                status, headers, data = server._forward(self.command, self.path, dict(self.headers), body)
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _any

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client that stops reading (a bomb refused) resets the connection: expected

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def queue(self, trick: Trick) -> None:
        with self.lock:
            self.tricks.append(trick)

    def _take(self, path: str) -> Trick | None:
        with self.lock:
            for trick in self.tricks:
                if urllib.parse.urlsplit(path).path.endswith(trick.path):
                    trick.count -= 1
                    if trick.count <= 0:
                        self.tricks.remove(trick)
                    self.played.append((path, trick.status))
                    return trick
        return None

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes):
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=30)
        try:
            headers = {k: v for k, v in headers.items() if k.lower() not in ("connection", "accept-encoding")}
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()

    def __enter__(self) -> HostileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
