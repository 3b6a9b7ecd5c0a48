"""The emulator itself: botocore's own sso-oidc client, the CLI, the browser page, the control API."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sqlite3
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from kiro_tui.core.models import BUILDER_ID_START_URL
from tests.support.run import run_cli


@pytest.fixture
def boto_oidc(emulator):
    botocore_session = pytest.importorskip("botocore.session")
    from botocore.config import Config

    session = botocore_session.get_session()
    return session.create_client(
        "sso-oidc", region_name="us-east-1", endpoint_url=emulator.url,
        config=Config(retries={"max_attempts": 1}),
    )


def test_botocore_sso_oidc_client_works_against_the_emulator(boto_oidc, emulator, emulator_time) -> None:
    reg = boto_oidc.register_client(clientName="botocore-check", clientType="public",
                                    scopes=["codewhisperer:completions"])
    auth = boto_oidc.start_device_authorization(clientId=reg["clientId"], clientSecret=reg["clientSecret"],
                                                startUrl=BUILDER_ID_START_URL)
    grant = {"clientId": reg["clientId"], "clientSecret": reg["clientSecret"],
             "grantType": "urn:ietf:params:oauth:grant-type:device_code", "deviceCode": auth["deviceCode"]}
    with pytest.raises(boto_oidc.exceptions.AuthorizationPendingException) as pending:
        boto_oidc.create_token(**grant)
    assert pending.value.response["Error"]["Code"] == "AuthorizationPendingException"
    assert pending.value.response["error"] == "authorization_pending"
    with pytest.raises(boto_oidc.exceptions.SlowDownException):
        boto_oidc.create_token(**grant)
    emulator_time.advance(2)
    httpx.post(f"{emulator.url}/_emulator/approve", json={"user_code": auth["userCode"]}).raise_for_status()
    token = boto_oidc.create_token(**grant)
    assert token["accessToken"].startswith("aoa") and token["expiresIn"] == 3600
    refresh = {"clientId": reg["clientId"], "clientSecret": reg["clientSecret"], "grantType": "refresh_token"}
    renewed = boto_oidc.create_token(**refresh, refreshToken=token["refreshToken"])
    assert renewed["refreshToken"] != token["refreshToken"]
    with pytest.raises(boto_oidc.exceptions.InvalidGrantException):  # rotated away
        boto_oidc.create_token(**refresh, refreshToken=token["refreshToken"])
    httpx.post(f"{emulator.url}/_emulator/revoke", json={"refresh_token": renewed["refreshToken"]}).raise_for_status()
    with pytest.raises(boto_oidc.exceptions.InvalidGrantException):  # revoked
        boto_oidc.create_token(**refresh, refreshToken=renewed["refreshToken"])


def test_botocore_sees_expired_and_denied_and_bad_client(boto_oidc, emulator, emulator_time) -> None:
    reg = boto_oidc.register_client(clientName="x", clientType="public")
    base = {"clientId": reg["clientId"], "clientSecret": reg["clientSecret"],
            "grantType": "urn:ietf:params:oauth:grant-type:device_code"}
    denied = boto_oidc.start_device_authorization(clientId=reg["clientId"], clientSecret=reg["clientSecret"],
                                                  startUrl=BUILDER_ID_START_URL)
    httpx.post(f"{emulator.url}/_emulator/deny", json={"user_code": denied["userCode"]}).raise_for_status()
    with pytest.raises(boto_oidc.exceptions.AccessDeniedException):
        boto_oidc.create_token(**base, deviceCode=denied["deviceCode"])
    late = boto_oidc.start_device_authorization(clientId=reg["clientId"], clientSecret=reg["clientSecret"],
                                                startUrl=BUILDER_ID_START_URL)
    emulator_time.advance(700)
    with pytest.raises(boto_oidc.exceptions.ExpiredTokenException):
        boto_oidc.create_token(**base, deviceCode=late["deviceCode"])
    with pytest.raises(boto_oidc.exceptions.InvalidClientException):
        boto_oidc.create_token(**{**base, "clientSecret": "wrong"}, deviceCode=late["deviceCode"])


def test_verification_page_approves_like_a_browser(emulator) -> None:
    reg = httpx.post(f"{emulator.url}/client/register", json={"clientName": "p", "clientType": "public"}).json()
    auth = httpx.post(f"{emulator.url}/device_authorization", json={
        "clientId": reg["clientId"], "clientSecret": reg["clientSecret"], "startUrl": BUILDER_ID_START_URL}).json()
    page = httpx.get(auth["verificationUriComplete"])
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert auth["userCode"] in page.text and 'value="approve"' in page.text and 'value="deny"' in page.text
    action = re.search(r'action="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    done = httpx.post(emulator.url + action, data={"user_code": auth["userCode"], "action": "approve"})
    assert "approved" in done.text
    token = httpx.post(f"{emulator.url}/token", json={
        "clientId": reg["clientId"], "clientSecret": reg["clientSecret"],
        "grantType": "urn:ietf:params:oauth:grant-type:device_code", "deviceCode": auth["deviceCode"]})
    assert token.status_code == 200 and token.json()["accessToken"]
    used_up = page_forms(httpx.get(auth["verificationUriComplete"]).text)
    assert used_up.message == f"Code {auth['userCode']} was already used. Start a new login to get a new code."
    assert used_up.buttons == ["Submit"]


class PageForms(HTMLParser):
    """What a browser would offer on a page: its forms' fields and buttons, and the alert text."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []
        self.buttons: list[str] = []
        self.message = ""
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form":
            self.forms.append({"method": attributes.get("method", "get").upper(), "action": attributes["action"],
                               "fields": {}})
        elif tag == "input" and self.forms:
            self.forms[-1]["fields"][attributes["name"]] = attributes.get("value") or ""
        elif tag == "button":
            self._in = "button"
            self.buttons.append("")
        elif attributes.get("role") == "alert":
            self._in = "alert"

    def handle_endtag(self, tag: str) -> None:
        if tag == "button" or self._in == "alert":
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "button":
            self.buttons[-1] += data.strip()
        elif self._in == "alert":
            self.message += data.strip()


def page_forms(text: str) -> PageForms:
    parsed = PageForms()
    parsed.feed(text)
    return parsed


def start_device_login(emulator) -> dict:
    reg = httpx.post(f"{emulator.url}/client/register", json={"clientName": "p", "clientType": "public"}).json()
    return httpx.post(f"{emulator.url}/device_authorization", json={
        "clientId": reg["clientId"], "clientSecret": reg["clientSecret"], "startUrl": BUILDER_ID_START_URL}).json()


def submit_code(emulator, page: PageForms, typed: str) -> httpx.Response:
    """Type `typed` into the page's code box and press Submit, as a browser would."""
    (form,) = page.forms
    assert "user_code" in form["fields"]
    return httpx.request(form["method"], emulator.url + form["action"], params={**form["fields"], "user_code": typed})


def test_verification_page_without_a_code_asks_for_one_and_leads_to_approve(emulator) -> None:
    auth = start_device_login(emulator)
    blank = httpx.get(auth["verificationUri"])  # what people are told to open: no code in it
    assert blank.status_code == 200 and "text/html" in blank.headers["content-type"]
    form = page_forms(blank.text)
    assert form.buttons == ["Submit"] and form.message == "" and form.forms[0]["fields"] == {"user_code": ""}
    typed = auth["userCode"].lower().replace("-", " ")  # as people type it
    decide = page_forms(submit_code(emulator, form, typed).text)
    assert decide.buttons == ["Approve", "Deny"]
    (choice,) = decide.forms
    assert choice["fields"]["user_code"] == auth["userCode"]
    done = httpx.request(choice["method"], emulator.url + choice["action"],
                         data={**choice["fields"], "action": "approve"})
    assert "approved" in done.text
    assert emulator.state.device_by_user_code(auth["userCode"]).state == "approved"


@pytest.mark.parametrize("typed", ["ZZZZ-ZZZZ", "<b>ZZZZ</b>"])
def test_verification_page_shows_the_form_again_for_an_unknown_code(emulator, typed: str) -> None:
    auth = start_device_login(emulator)
    page = httpx.get(f"{emulator.url}/device", params={"user_code": typed})
    again = page_forms(page.text)
    assert again.buttons == ["Submit"] and again.forms[0]["fields"] == {"user_code": typed}
    assert again.message == (f"Code {typed} was not found. Check the code your application shows "
                             "and enter it again.")
    assert "<b>" not in page.text  # what was typed is text, never markup
    right = page_forms(submit_code(emulator, again, auth["userCode"]).text)
    assert right.buttons == ["Approve", "Deny"]


def test_verification_page_says_when_a_code_expired_or_was_decided_meanwhile(emulator, emulator_time) -> None:
    auth = start_device_login(emulator)
    decide = page_forms(httpx.get(auth["verificationUriComplete"]).text)
    (choice,) = decide.forms
    httpx.post(f"{emulator.url}/_emulator/deny", json={"user_code": auth["userCode"]}).raise_for_status()
    late = page_forms(httpx.post(emulator.url + choice["action"], data={**choice["fields"], "action": "approve"}).text)
    assert late.message == f"Code {auth['userCode']} was already denied. Start a new login to get a new code."
    assert late.buttons == ["Submit"]
    stale = start_device_login(emulator)
    emulator_time.advance(601)
    expired = page_forms(httpx.get(stale["verificationUriComplete"]).text)
    assert expired.message == f"Code {stale['userCode']} has expired. Start a new login to get a new code."
    assert expired.buttons == ["Submit"]


def test_seeded_account_has_kiro_cli_shapes(emulator, tmp_path) -> None:
    from kiro_tui.core.places.kiro_cli import read_kiro_cli
    from tests.support.kiro_cli_db import KiroCliDb

    seeded = httpx.post(f"{emulator.url}/_emulator/accounts", json={
        "kind": "idc", "email": "team@example.com", "region": "eu-west-1",
        "start_url": "https://d-5555555555.awsapps.com/start",
        "profiles": [{"arn": "arn:aws:codewhisperer:eu-central-1:3:profile/P1", "name": "Team"}],
        "expires_in": 900}).json()
    assert seeded["token_key"] == "kirocli:odic:token"
    assert set(seeded["token"]) == {"access_token", "expires_at", "refresh_token", "region", "start_url",
                                    "oauth_flow", "scopes"}
    assert set(seeded["device_registration"]) == {"client_id", "client_secret", "client_secret_expires_at",
                                                  "region", "oauth_flow", "scopes"}
    assert seeded["profile"] == {"arn": "arn:aws:codewhisperer:eu-central-1:3:profile/P1", "profile_name": "Team"}
    db = KiroCliDb(tmp_path / "kiro" / "data.sqlite3")
    for key, value in seeded["auth_kv"].items():
        db.set_json("auth_kv", key, value)
    for key, value in seeded["state"].items():
        db.set_json("state", key, value)
    from datetime import UTC, datetime

    (login,) = read_kiro_cli(db.path, datetime.fromtimestamp(emulator.state.clock(), UTC)).logins
    assert (login.auth_method.value, login.region, login.profile_name) == ("idc", "eu-west-1", "Team")
    assert login.needs_login is None


def docs_example(heading: str) -> str:
    """The Python example under `## heading` in docs/emulator.md."""
    text = (Path(__file__).parents[1] / "docs" / "emulator.md").read_text("utf-8")
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n", 1)[1].split("\n```", 1)[0]


@pytest.mark.parametrize("made_by", ["kiro-cli", "nobody yet"])
def test_docs_example_writes_a_seeded_login_kiro_cli_can_read(emulator, tmp_path, made_by: str) -> None:
    from datetime import UTC, datetime

    from kiro_tui.core.places.kiro_cli import read_kiro_cli
    from tests.support.kiro_cli_db import KiroCliDb

    db_path = tmp_path / "kiro-cli" / "data.sqlite3"
    if made_by == "kiro-cli":
        KiroCliDb(db_path)  # kiro-cli's own migrations: the example must fit its tables
    code, replaced = re.subn(r'^EMULATOR = "[^"]*"', f"EMULATOR = {emulator.url!r}", docs_example(
        "A seeded login in a kiro-cli database"), flags=re.M)
    code, also = re.subn(r"^DB = Path\(\"[^\"]*\"\)", f"DB = Path({str(db_path)!r})", code, flags=re.M)
    assert (replaced, also) == (1, 1)
    exec(compile(code, "docs/emulator.md", "exec"), {})
    with sqlite3.connect(db_path) as conn:
        kinds = conn.execute("SELECT typeof(value) FROM auth_kv UNION ALL SELECT typeof(value) FROM state").fetchall()
    assert kinds == [("text",), ("text",)]  # the token, and the profile in `state`
    (login,) = read_kiro_cli(db_path, datetime.fromtimestamp(emulator.state.clock(), UTC)).logins
    assert (login.auth_method.value, login.profile_name) == ("social", "Social_Default_Profile")
    assert login.needs_login is None
    assert emulator.state.subject_of(login.refresh_token) == "me@example.com"  # a live token of the seeded user


def test_request_log_counts_calls_and_holds_no_secret(emulator) -> None:
    seeded = emulator.seed(kind="social", email="log@example.com")
    httpx.post(f"{emulator.url}/refreshToken", json={"refreshToken": seeded["token"]["refresh_token"]})
    httpx.post(f"{emulator.url}/refreshToken", json={"refreshToken": seeded["token"]["refresh_token"]})
    log = httpx.get(f"{emulator.url}/_emulator/requests").json()
    assert [(r["operation"], r["status"], r["email"]) for r in log] == [
        ("RefreshToken", 200, "log@example.com"), ("RefreshToken", 400, None)]
    text = json.dumps(log)
    assert seeded["token"]["refresh_token"] not in text and seeded["token"]["access_token"] not in text


def test_fault_and_latency_controls(emulator) -> None:
    httpx.post(f"{emulator.url}/_emulator/faults", json={"latency_ms": 50}).raise_for_status()
    httpx.post(f"{emulator.url}/_emulator/faults", json={"path": "/client/register", "status": 500, "count": 2})
    body = {"clientName": "f", "clientType": "public"}
    statuses = [httpx.post(f"{emulator.url}/client/register", json=body).status_code for _ in range(3)]
    assert statuses == [500, 500, 200]
    assert all(r["duration_ms"] >= 45 for r in emulator.requests())
    httpx.delete(f"{emulator.url}/_emulator/faults").raise_for_status()
    bad = httpx.post(f"{emulator.url}/_emulator/faults", json={"path": "/token", "kind": "explode"})
    assert bad.status_code == 400


async def test_holds_a_thousand_concurrent_requests(emulator) -> None:
    """1,000 connections open at once, each waiting on 200 ms of injected latency.

    Raw sockets rather than httpx: httpx's pool slows down badly at 1,000 connections, and
    this test is about the emulator.
    """
    httpx.post(f"{emulator.url}/_emulator/faults", json={"latency_ms": 200}).raise_for_status()
    body = json.dumps({"clientName": "load", "clientType": "public"}).encode()
    head = (f"POST /client/register HTTP/1.1\r\nHost: oidc.us-east-1.amazonaws.com\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n")

    async def register() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", emulator.port)
        writer.write(head.encode() + body)
        await writer.drain()
        reply = await reader.read()
        writer.close()
        return reply.split(b" ", 2)[1]

    statuses = await asyncio.gather(*(register() for _ in range(1000)))
    assert statuses.count(b"200") == 1000
    assert len(emulator.requests()) == 1000


def test_emulator_command_serves_and_exits_cleanly_on_sigterm(kiro_tui_exe: str) -> None:
    proc = subprocess.Popen([kiro_tui_exe, "emulator", "--port", "0", "--token-ttl", "120"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        match = re.fullmatch(r"kiro-tui emulator listening on (http://127\.0\.0\.1:\d+)", first)
        assert match, first
        url = match.group(1)
        seeded = httpx.post(f"{url}/_emulator/accounts", json={"kind": "social"}).json()
        refreshed = httpx.post(f"{url}/refreshToken", json={"refreshToken": seeded["token"]["refresh_token"]})
        assert refreshed.json()["expiresIn"] == 120
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")
    finally:
        if proc.poll() is None:
            proc.kill()


def test_emulator_command_approve_after(kiro_tui_exe: str) -> None:
    proc = subprocess.Popen([kiro_tui_exe, "emulator", "--approve-after", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().split()[-1]  # type: ignore[union-attr]
        reg = httpx.post(f"{url}/client/register", json={"clientName": "a", "clientType": "public"}).json()
        auth = httpx.post(f"{url}/device_authorization", json={
            "clientId": reg["clientId"], "clientSecret": reg["clientSecret"], "startUrl": BUILDER_ID_START_URL}).json()
        token = httpx.post(f"{url}/token", json={
            "clientId": reg["clientId"], "clientSecret": reg["clientSecret"],
            "grantType": "urn:ietf:params:oauth:grant-type:device_code", "deviceCode": auth["deviceCode"]})
        assert token.status_code == 200, token.text
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize(("option", "value", "reason"), [
    ("--port", "99999", "is out of range"),
    ("--port", "http", "is not a port number"),
    ("--token-ttl", "-5", "is out of range"),
    ("--token-ttl", "0", "is out of range"),
    ("--approve-after", "-1", "is out of range"),
])
def test_emulator_command_refuses_a_bad_number_in_one_line(kiro_tui_exe: str, option: str, value: str,
                                                         reason: str) -> None:
    """Exit 2 before serving anything (a timeout here means it started serving instead)."""
    result = run_cli(kiro_tui_exe, "emulator", option, value, timeout=20)
    assert (result.code, result.out) == (2, "")
    errors = [line for line in result.err.splitlines() if "error" in line]
    assert errors == [result.err.splitlines()[-1]]  # after argparse's usage lines, one line says what is wrong
    assert errors[0].startswith(f"kiro-tui emulator: error: argument {option}: ")
    assert value in errors[0] and reason in errors[0]
