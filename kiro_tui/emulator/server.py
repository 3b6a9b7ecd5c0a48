"""HTTP/1.1 around `EmulatorState`: one base URL serves every emulated service.

Built on asyncio streams and h11 (a strict HTTP/1.1 state machine that httpx already uses),
so one process holds thousands of concurrent keep-alive connections on two cores. Runs
either in a background thread (`Emulator.start()` from tests and `kiro-tui demo`) or in the
foreground (`kiro-tui emulator`).

The region a request is for comes from its Host header (`oidc.eu-west-1.amazonaws.com`),
which kiro-tui's clients keep when KIRO_TUI_ENDPOINT_URL redirects them here; any other host
means us-east-1.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources

import h11

from kiro_tui.emulator.service import ApiError, EmulatorState, oidc_error, q_error, text_or_none
from kiro_tui.emulator.wire import Request, Response, read_request, reset, send

Q_TARGET_PREFIX = "AmazonCodeWhispererService."


@dataclass
class Fault:
    """Make the next `count` matching requests fail in one way."""

    path: str
    count: int
    status: int | None = None
    kind: str | None = None  # timeout | reset | malformed
    seconds: float = 30.0
    overrides: dict[str, object] = field(default_factory=dict)

    def matches(self, request: Request) -> bool:
        return self.path in (request.path, request.operation)


class EmulatorApp:
    """Routing, faults and the request log; all state changes happen under `lock`."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.lock = threading.RLock()
        self.faults: list[Fault] = []
        self.latency = 0.0
        self.log: list[dict[str, object]] = []

    # ---------------------------------------------------------------- dispatch

    async def handle(self, request: Request) -> Response | str:
        """A response, or "timeout" / "reset" for a fault that must break the connection."""
        started = time.time()
        if not request.path.startswith("/_emulator/") and self.latency:
            await asyncio.sleep(self.latency)
        with self.lock:
            fault = self._take_fault(request)
            subject = self._subject(request)
        if fault is not None and fault.kind in ("timeout", "reset"):
            self._record(request, started, fault.kind, subject)
            if fault.kind == "timeout":
                await asyncio.sleep(fault.seconds)
            return fault.kind
        if fault is not None and fault.kind == "malformed":
            response = Response(200, b'{"accessToken": "aoaAAAAAGtrunc', "application/json")
        elif fault is not None:
            response = Response.error(self._fault_error(request, fault))
        else:
            with self.lock:
                try:
                    response = self._route(request)
                except ApiError as exc:
                    response = Response.error(exc)
                if not subject:
                    subject = self._subject_after(request)
        self._record(request, started, response.status, subject)
        return response

    def _route(self, request: Request) -> Response:
        method, path, state = request.method, request.path, self.state
        if path.startswith("/_emulator/"):
            return self._control(request)
        if method == "GET" and path == "/device":
            return self._device_page(request.query.get("user_code", ""))
        if method == "POST" and path == "/device/decide":
            form = request.form()
            entered = form.get("user_code", "")
            problem = self._code_problem(entered)
            if problem:  # decided, expired or unknown since the page was shown
                return _html("device_form.html", user_code=entered, message=problem)
            device = state.decide(entered, form.get("action") == "approve")
            word = "approved" if device.state == "approved" else "denied"
            return self._page(f"Request {word}", f"Code {html.escape(device.user_code)} was {word}. "
                                                  "You can close this page and return to kiro-tui.")
        if method == "POST" and path.endswith("/token") and request.headers.get(
            "content-type", ""
        ).startswith("application/x-www-form-urlencoded"):
            return _ok_json(state.refresh_external(request.form()))
        if method == "POST" and path == "/client/register":
            return _ok_json(state.register_client(request.json(), request.region))
        if method == "POST" and path == "/device_authorization":
            return _ok_json(state.start_device_authorization(request.json(), request.region))
        if method == "POST" and path == "/token":
            return _ok_json(state.create_token(request.json(), request.region))
        if method == "POST" and path == "/refreshToken":
            return _ok_json(state.refresh_social(request.json()))
        return self._q_api(request)

    def _q_api(self, request: Request) -> Response:
        state = self.state
        target = request.headers.get("x-amz-target", "")
        if request.method == "POST" and request.path == "/" and target.startswith(Q_TARGET_PREFIX):
            if "rpc" not in state.flavours:
                raise q_error(400, "UnknownOperationException", "x-amz-target is not supported here")
            op = target[len(Q_TARGET_PREFIX):]
            if op == "ListAvailableProfiles":
                return _ok_json(state.list_available_profiles(request.bearer, request.region, request.json(),
                                                             request.headers.get("tokentype")))
            if op == "GetUsageLimits":
                params = {**request.query, **{k: str(v) for k, v in request.json().items()}}
                return _ok_json(state.get_usage_limits(request.bearer, params, request.headers.get("tokentype")))
            raise q_error(400, "UnknownOperationException", f"Unknown operation {op}")
        if request.operation in ("ListAvailableProfiles", "GetUsageLimits") and "rest" not in state.flavours:
            raise ApiError(404, "", {"message": "Not Found"})
        if request.method == "POST" and request.path == "/ListAvailableProfiles":
            return _ok_json(state.list_available_profiles(request.bearer, request.region, request.json(),
                                                             request.headers.get("tokentype")))
        if request.method == "GET" and request.path == "/getUsageLimits":
            return _ok_json(state.get_usage_limits(request.bearer, request.query, request.headers.get("tokentype")))
        raise ApiError(404, "", {"message": f"No route for {request.method} {request.path}"})

    # ---------------------------------------------------------------- control API

    def _control(self, request: Request) -> Response:
        state, name, method = self.state, request.path.removeprefix("/_emulator/"), request.method
        if name == "accounts" and method == "POST":
            spec = request.json()
            try:
                return Response.json(state.seed_account(spec), 201)
            except (ValueError, TypeError) as exc:
                raise ApiError(400, "", {"error": "bad_request", "error_description": str(exc)}) from exc
        if name == "accounts" and method == "GET":
            return Response.json([
                {"email": u.email, "kind": u.kind, "region": u.region, "start_url": u.start_url,
                 "suspended": u.suspended, "profiles": [{"arn": p.arn, "name": p.name} for p in u.profiles]}
                for u in state.users.values()
            ])
        if name in ("approve", "deny") and method == "POST":
            body = request.json()
            device = state.decide(str(body.get("user_code", "")), name == "approve", text_or_none(body, "email"))
            return Response.json({"user_code": device.user_code, "state": device.state, "email": device.email})
        if name == "revoke" and method == "POST":
            body = request.json()
            revoked = state.revoke(text_or_none(body, "refresh_token"), text_or_none(body, "email"))
            return Response.json({"revoked": revoked})
        if name == "suspend" and method == "POST":
            user = state.users.get(str(request.json().get("email", "")))
            if user is None:
                raise ApiError(404, "", {"error": "unknown_email"})
            user.suspended = bool(request.json().get("suspended", True))
            return Response.json({"email": user.email, "suspended": user.suspended})
        if name == "faults" and method == "POST":
            return Response.json(self._add_fault(request.json()), 201)
        if name == "faults" and method == "DELETE":
            self.faults.clear()
            self.latency = 0.0
            return Response.json({"faults": 0, "latency_ms": 0})
        if name == "requests" and method == "GET":
            return Response.json(list(self.log))
        if name == "requests" and method == "DELETE":
            self.log.clear()
            return Response.json({"requests": 0})
        if name == "config" and method == "POST":
            body = request.json()
            if "flavours" in body:
                state.flavours = set(body["flavours"])
            if "token_ttl" in body:
                state.token_ttl = int(body["token_ttl"])
            if "approve_after" in body:
                state.approve_after = body["approve_after"]
            if "rotation_grace" in body:
                state.rotation_grace = float(body["rotation_grace"])
            if "next_user_codes" in body:
                state.next_user_codes = [str(c) for c in body["next_user_codes"]]
            if "verification_uri" in body:
                state.verification_uri = text_or_none(body, "verification_uri")
            return Response.json({"flavours": sorted(state.flavours), "token_ttl": state.token_ttl,
                                  "approve_after": state.approve_after, "rotation_grace": state.rotation_grace})
        raise ApiError(404, "", {"error": "unknown_control", "error_description": f"{method} {request.path}"})

    def _add_fault(self, body: dict[str, object]) -> dict[str, object]:
        if "latency_ms" in body:
            # a control request's JSON: a value of the wrong type is the test's mistake (a 500 says so)
            self.latency = max(0.0, float(body["latency_ms"]) / 1000)  # type: ignore[arg-type]  # (see above)
        if "path" in body:
            kind = body.get("kind")
            if kind not in (None, "timeout", "reset", "malformed"):
                raise ApiError(400, "", {"error": "bad_fault", "error_description": f"unknown kind {kind!r}"})
            if kind is None and not isinstance(body.get("status"), int):
                raise ApiError(400, "", {"error": "bad_fault", "error_description": "give a status or a kind"})
            extra = {k: v for k, v in body.items() if k not in ("path", "count", "status", "kind", "seconds")}
            self.faults.append(Fault(
                path=str(body["path"]), count=int(body.get("count", 1)),  # type: ignore[call-overload]  # (test's JSON)
                status=body.get("status"), kind=kind,  # type: ignore[arg-type]  # (checked above)
                seconds=float(body.get("seconds", 30.0)), overrides=extra,  # type: ignore[arg-type]  # (test's JSON)
            ))
        return {"faults": len(self.faults), "latency_ms": round(self.latency * 1000)}

    def _take_fault(self, request: Request) -> Fault | None:
        if request.path.startswith("/_emulator/"):
            return None
        for fault in self.faults:
            if fault.matches(request):
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    @staticmethod
    def _fault_error(request: Request, fault: Fault) -> ApiError:
        status = fault.status or 500
        o = fault.overrides
        if request.path in ("/token", "/client/register", "/device_authorization"):
            throttled = status == 429
            exception = str(o.get("error_type") or ("SlowDownException" if throttled else "InternalServerException"))
            error = str(o.get("error") or ("slow_down" if throttled else "server_error"))
            description = "Rate exceeded" if throttled else "An internal error occurred"
            return oidc_error(status, exception, error, str(o.get("error_description") or description))
        if request.path == "/refreshToken":
            return ApiError(status, "", {"message": str(o.get("message") or "Internal server error")})
        exception = str(o.get("error_type") or {429: "ThrottlingException", 403: "AccessDeniedException",
                                                400: "ValidationException"}.get(status, "InternalServerException"))
        return q_error(status, exception, str(o.get("message") or "Injected fault"), text_or_none(o, "reason"))

    # ---------------------------------------------------------------- log

    def _subject(self, request: Request) -> str | None:
        """Whose call this is, by the refresh token it spends (looked up before it rotates)."""
        if request.path in ("/token", "/refreshToken") or request.path.endswith("/token"):
            try:
                body = request.json() if request.headers.get("content-type", "").startswith(
                    "application/json") else request.form()
            except ApiError:
                return None
            return self.state.subject_of(str(body.get("refreshToken") or body.get("refresh_token") or ""))
        if request.bearer:
            entry = self.state.access_tokens.get(request.bearer)
            return entry[0] if entry else None
        return None

    def _subject_after(self, request: Request) -> str | None:
        if request.path == "/token":
            with contextlib.suppress(ApiError):
                device = self.state.devices.get(str(request.json().get("deviceCode") or ""))
                return device.email if device else None
        return None

    def _record(self, request: Request, started: float, status: int | str, subject: str | None) -> None:
        if request.path.startswith("/_emulator/"):
            return
        grant = None
        if request.path == "/token" and request.body:
            with contextlib.suppress(ApiError):
                grant = request.json().get("grantType")
        self.log.append({
            "method": request.method,
            "path": request.path,
            "operation": request.operation or None,
            "region": request.region,
            "status": status,
            "time": round(started, 3),
            "duration_ms": round((time.time() - started) * 1000, 1),
            "email": subject,
            "grant_type": grant,
        })

    # ---------------------------------------------------------------- pages

    def _device_page(self, entered: str) -> Response:
        """AWS's verification page: a box to type the code in (the `verificationUri` people are
        told to open), then Approve / Deny for a code awaiting a decision (what
        `verificationUriComplete` opens directly). A code that cannot be decided brings the box
        back, with the code as typed and the reason."""
        if not entered.strip():
            return _html("device_form.html", user_code="", message="")
        problem = self._code_problem(entered)
        if problem:
            return _html("device_form.html", user_code=entered, message=problem)
        device = self.state.device_by_user_code(entered)
        assert device is not None
        return _html("device_page.html", user_code=device.user_code, start_url=device.start_url)

    def _code_problem(self, entered: str) -> str | None:
        """Why this code cannot be approved or denied now, in words for the person; None if it can."""
        device = self.state.device_by_user_code(entered)
        if device is None:
            return (f"Code {entered.strip()} was not found. Check the code your application shows "
                    "and enter it again.")
        if device.expires_at <= self.state.clock():
            return f"Code {device.user_code} has expired. Start a new login to get a new code."
        if device.state != "pending":
            return f"Code {device.user_code} was already {device.state}. Start a new login to get a new code."
        return None

    @staticmethod
    def _page(title: str, text: str) -> Response:
        body = (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
                f"<body><h1>{title}</h1><p>{text}</p></body></html>")
        return Response(200, body.encode(), "text/html; charset=utf-8")


def _html(template: str, **values: str) -> Response:
    """A page from this package's templates; every value is HTML-escaped (a typed code is the
    visitor's own text)."""
    body = resources.files("kiro_tui.emulator").joinpath(template).read_text("utf-8")
    for name, value in values.items():
        body = body.replace("{{" + name + "}}", html.escape(value))
    return Response(200, body.encode(), "text/html; charset=utf-8")


def _ok_json(data: dict[str, object]) -> Response:
    return Response.json(data, 200, [("x-amzn-RequestId", _request_id())])


def _request_id() -> str:
    return str(uuid.uuid4())


class Emulator:
    """The emulator server. `start()` runs it in a background thread; `serve()` in this loop."""

    _send = staticmethod(send)
    """How one response goes out (a test wraps it to note when an answer has left)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        token_ttl: int = 3600,
        approve_after: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.host, self.port = host, port
        self.state = EmulatorState(token_ttl=token_ttl, approve_after=approve_after, clock=clock)
        self.app = EmulatorApp(self.state)
        self._server: asyncio.base_events.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._stopped: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ---------------------------------------------------------------- lifecycle

    async def start_async(self) -> str:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._server = await asyncio.start_server(self._serve_connection, self.host, self.port, backlog=4096)
        self.port = self._server.sockets[0].getsockname()[1]
        self.state.base_url = self.url
        return self.url

    async def stop_async(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None
        if self._stopped is not None:
            self._stopped.set()

    async def serve_until_stopped(self) -> None:
        assert self._stopped is not None
        await self._stopped.wait()

    def start(self) -> str:
        """Run in a daemon thread; returns the base URL once it is listening."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start_async())
            except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_until_complete(self.serve_until_stopped())
            loop.close()

        self._thread = threading.Thread(target=run, name="kiro-tui-emulator", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self.url

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            asyncio.run_coroutine_threadsafe(self.stop_async(), self._loop).result(timeout=10)
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- direct use from tests

    def seed(self, **spec: object) -> dict[str, object]:
        with self.app.lock:
            return self.state.seed_account(spec)

    def requests(self) -> list[dict[str, object]]:
        with self.app.lock:
            return list(self.app.log)

    def open_connections(self) -> int:
        """Connections still being served: a client that died is done with once this is 0."""
        return len(self._connections)

    # ---------------------------------------------------------------- HTTP/1.1

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request = await read_request(conn, reader, writer)
                if request is None:
                    break
                outcome = await self.app.handle(request)
                if outcome == "reset":
                    reset(writer)
                    return
                if outcome == "timeout":
                    break
                assert isinstance(outcome, Response)
                await self._send(conn, writer, outcome)
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    break
                try:
                    conn.start_next_cycle()
                except h11.LocalProtocolError:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, h11.ProtocolError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._connections.discard(task)
            with contextlib.suppress(Exception):
                writer.close()
