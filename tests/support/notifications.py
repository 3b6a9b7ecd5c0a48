"""A real D-Bus session bus (`dbus-daemon --session`) with a small org.freedesktop.Notifications
server of our own on it (dbus-fast) that records every notification it is sent, and a loopback
HTTP server that records every webhook POST.

(No `from __future__ import annotations` here: dbus-fast reads the D-Bus signatures from the
method annotations as written.)
"""

import asyncio
import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface, method


class _Notifications(ServiceInterface):
    def __init__(self, received: list) -> None:
        super().__init__("org.freedesktop.Notifications")
        self.received = received

    @method()
    def Notify(self, app_name: "s", replaces_id: "u", app_icon: "s", summary: "s", body: "s",
               actions: "as", hints: "a{sv}", expire_timeout: "i") -> "u":
        self.received.append({"app_name": app_name, "summary": summary, "body": body})
        return len(self.received)

    @method()
    def GetCapabilities(self) -> "as":
        return ["body"]

    @method()
    def GetServerInformation(self) -> "ssss":
        return ["kiro-tui-tests", "kiro-tui", "1.0", "1.2"]

    @method()
    def CloseNotification(self, notification_id: "u") -> None:
        return None


class SessionBus:
    """`dbus-daemon --session` on a socket in `folder`, and the notification server on it."""

    def __init__(self, folder: Path) -> None:
        self.socket = folder / "bus"
        self.received: list[dict] = []
        self.daemon: subprocess.Popen[str] | None = None
        self.address = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._bus: MessageBus | None = None

    def __enter__(self) -> "SessionBus":
        self.daemon = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address",
                                        f"--address=unix:path={self.socket}"],
                                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.daemon.stdout is not None
        self.address = self.daemon.stdout.readline().strip()
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        return self

    async def _serve(self) -> None:
        self._bus = await MessageBus(bus_address=self.address).connect()
        self._bus.export("/org/freedesktop/Notifications", _Notifications(self.received))
        await self._bus.request_name("org.freedesktop.Notifications")

    def __exit__(self, *exc: object) -> None:
        if self._bus is not None:
            self._loop.call_soon_threadsafe(self._bus.disconnect)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        assert self.daemon is not None
        self.daemon.terminate()
        self.daemon.wait(10)


class WebhookServer:
    """http://127.0.0.1:PORT/hook: every POST's JSON body is kept in `received`."""

    def __init__(self) -> None:
        received: list[dict] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                received.append({"path": self.path, "content_type": self.headers.get("Content-Type"),
                                 "body": json.loads(self.rfile.read(length))})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "WebhookServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
