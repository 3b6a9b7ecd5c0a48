"""The person hears when a login needs them: a desktop notification, a command, a webhook.

Every watch pass (of `watch` or the TUI's engine) gathers what needs a person with three small
queries: accounts that need a login or are suspended, accounts over quota, places in error.
Only when that set differs from the last pass is the store asked what was announced already
(the `notices` table, under the write lock): a condition not there is claimed and announced, so
it is announced once even with two runners at once and across restarts; an account with no
condition left (healthy again) has its notices cleared, so the next failure is announced again.

Channels (config `notify`): `desktop` through desktop-notifier (D-Bus on Linux, the notification
centre on macOS; with no session bus it is logged once, never an error), `command` (an argv
list, no shell, placeholders and KIRO_TUI_* variables), `webhook` (a JSON POST). Each has 10 s;
a failure is logged and never stops the engine. Nothing announced ever holds a token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from kiro_tui.core.aws.errors import redact
from kiro_tui.core.config import Settings
from kiro_tui.core.errors import StoreError
from kiro_tui.core.places import place_format
from kiro_tui.core.store import AccountStore
from kiro_tui.core.timefmt import format_timestamp

log = logging.getLogger("kiro_tui.notify")
DESKTOP, COMMAND, WEBHOOK = "desktop", "command", "webhook"
CHANNELS = (DESKTOP, COMMAND, WEBHOOK)
TIME_LIMIT = 10.0
NEEDS_LOGIN, SUSPENDED, OVER_QUOTA, PLACE_ERROR = "needs-login", "suspended", "over-quota", "place-error"
_WHAT_TO_DO = {
    NEEDS_LOGIN: "its login died; log in again: `kiro-tui login`, or log in with kiro-cli and `kiro-tui import`",
    SUSPENDED: "AWS suspended this account; kiro-tui stopped refreshing it (see your AWS console)",
    OVER_QUOTA: "it is over its monthly quota",
}


@dataclass(frozen=True)
class Notice:
    """One thing a person should hear about one account."""

    account_id: str
    label: str
    status: str
    message: str

    @property
    def title(self) -> str:
        return f"kiro-tui: {self.label}"

    @property
    def text(self) -> str:
        return f"kiro-tui: {self.label}: {self.message}"


Conditions = dict[tuple[str, str], str]
"""(account id, condition) -> what the condition is about (a place's path and why, or '')."""


def current_conditions(store: AccountStore) -> Conditions:
    """What needs a person now, read with three small queries (cheap every pass)."""
    db = store.connection
    found: Conditions = {}
    for account_id, health in db.execute(
            "SELECT id, health FROM accounts WHERE health IN (?, ?)", (NEEDS_LOGIN, SUSPENDED)):
        found[(account_id, health)] = ""
    for (account_id,) in db.execute(
            "SELECT usage.account_id FROM usage JOIN accounts ON accounts.id = usage.account_id"
            " WHERE accounts.health = 'ok' AND usage.usage_limit > 0 AND usage.used >= usage.usage_limit"):
        found[(account_id, OVER_QUOTA)] = ""
    for account_id, kind, path, entry, detail in db.execute(
            "SELECT account_id, kind, path, entry, detail FROM places WHERE state = 'error'"):
        found[(account_id, f"{PLACE_ERROR}\t{kind}\t{path}\t{entry}")] = detail or ""
    return found


def describe(store: AccountStore, account_id: str, condition: str, detail: str) -> Notice:
    account = store.get(account_id)
    label = account.name if account else account_id
    if condition.startswith(PLACE_ERROR):
        _, kind, path, _entry = condition.split("\t", 3)
        try:
            title = place_format(kind).title
        except KeyError:
            title = kind
        why = f": {redact(detail)}" if detail else ""
        return Notice(account_id, label, PLACE_ERROR,
                      f"the copy in {title} ({path}) could not be kept fresh{why}")
    return Notice(account_id, label, condition, _WHAT_TO_DO[condition])


class Announcer:
    """Finds what changed since the last pass and announces each new condition once."""

    def __init__(self, store: AccountStore, settings: Settings, http: httpx.AsyncClient | None,
                 now: Callable[[], datetime]) -> None:
        self.store, self.settings, self.http, self._now = store, settings, http, now
        self._last: Conditions | None = None
        self._looked_at: tuple[int, int] | None = None
        """The store's version when `_last` was found: until it changes, so do not the conditions."""
        self.desktop = DesktopChannel()
        self.sent: list[Notice] = []

    async def check(self) -> list[Notice]:
        version = self.store.version()  # read first: a commit after it is looked at next pass
        if version == self._looked_at:
            return []  # nothing committed here or elsewhere since the last look (three scans at 10,000)
        found = current_conditions(self.store)
        if found == self._last:
            self._looked_at = version
            return []
        notices = self._claim(found)
        if notices is None:  # not recorded: tried again next pass
            return []
        self._last, self._looked_at = found, version
        for notice in notices:
            await self.announce(notice)
        return notices

    def _claim(self, found: Conditions) -> list[Notice] | None:
        """Under the write lock: conditions nobody announced yet become ours to announce; the
        notices of accounts with nothing wrong any more are cleared. None when that could not
        be recorded."""
        stamp = format_timestamp(self._now())
        flagged = {account_id for account_id, _ in found}
        new: list[tuple[str, str, str]] = []
        try:
            recorded = set(self.store.connection.execute("SELECT account_id, condition FROM notices"))
            if found.keys() <= recorded and {a for a, _ in recorded} <= flagged:
                return []  # all recorded already: no write lock taken, no commit (which the next pass would see)
            with self.store.transaction(durable=False) as tx:
                known = {(a, c) for a, c in tx.execute("SELECT account_id, condition FROM notices")}
                for account_id, condition in sorted(found.keys() - known):
                    tx.execute("INSERT OR IGNORE INTO notices (account_id, condition, at) VALUES (?, ?, ?)",
                               (account_id, condition, stamp))
                    new.append((account_id, condition, found[(account_id, condition)]))
                for account_id in {a for a, _ in known} - flagged:
                    tx.execute("DELETE FROM notices WHERE account_id = ?", (account_id,))
        except (StoreError, sqlite3.Error) as exc:
            log.warning("could not record notifications: %s", exc)
            return None
        notices = []
        for account_id, condition, detail in new:
            try:
                notices.append(describe(self.store, account_id, condition, detail))
            except StoreError as exc:
                log.warning("cannot describe %s of %s: %s", condition, account_id, exc)
        return notices

    async def announce(self, notice: Notice) -> None:
        log.warning("%s", notice.text.removeprefix("kiro-tui: "))
        self.sent.append(notice)
        for channel in self.settings.notify:
            try:
                if channel == DESKTOP:
                    await asyncio.wait_for(self.desktop.send(notice), TIME_LIMIT)
                elif channel == COMMAND and self.settings.notify_command:
                    await run_command(self.settings.notify_command, notice)
                elif channel == WEBHOOK and self.settings.notify_webhook:
                    await post_webhook(self.http, self.settings.notify_webhook, notice)
            except asyncio.CancelledError:
                raise
            except TimeoutError:
                log.warning("notification by %s took over %g s; gave up", channel, TIME_LIMIT)
            except Exception as exc:  # noqa: BLE001 - a notification never stops the engine
                log.warning("notification by %s failed: %s", channel, redact(f"{type(exc).__name__}: {exc}"))


# ------------------------------------------------------------------ channels


class DesktopChannel:
    """desktop-notifier, loaded on the first notice; no session bus is said once in the log."""

    def __init__(self) -> None:
        self._notifier: Any = None  # a DesktopNotifier, imported only when first used
        self._unavailable_said = False

    def _no_session_bus(self) -> bool:
        if not sys.platform.startswith("linux"):
            return False
        if os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
            return False
        return not Path(f"/run/user/{os.getuid()}/bus").exists()

    def _unavailable(self, why: str) -> None:
        if not self._unavailable_said:
            self._unavailable_said = True
            log.info("no desktop notifications: %s; notices go to the log (and any command or webhook)", why)

    async def send(self, notice: Notice) -> None:
        if self._no_session_bus():
            self._unavailable("no D-Bus session bus")
            return
        if self._notifier is None:
            try:
                quiet = logging.getLogger("desktop_notifier")  # it logs failures with a traceback itself
                quiet.addHandler(logging.NullHandler())
                quiet.propagate = False
                from desktop_notifier import DesktopNotifier

                self._notifier = DesktopNotifier(app_name="kiro-tui", app_icon=None)
            except Exception as exc:  # noqa: BLE001 - not installed, or no backend for this platform
                self._unavailable(f"{type(exc).__name__}: {exc}")
                return
        dispatched = asyncio.Event()
        await self._notifier.send(title=notice.title, message=notice.message,
                                  on_dispatched=dispatched.set)
        if not dispatched.is_set():
            self._unavailable("the notification service did not take it")
            self._notifier = None  # connect again next time (the service may start later)


def _fill(word: str, notice: Notice) -> str:
    """The placeholders, replaced literally (no format(): braces in a label are just text)."""
    for name, value in (("{id}", notice.account_id), ("{label}", notice.label), ("{status}", notice.status),
                        ("{message}", notice.message)):
        word = word.replace(name, value)
    return word


async def run_command(argv: tuple[str, ...], notice: Notice) -> None:
    env = {**os.environ, "KIRO_TUI_ACCOUNT_ID": notice.account_id, "KIRO_TUI_LABEL": notice.label,
           "KIRO_TUI_STATUS": notice.status, "KIRO_TUI_MESSAGE": notice.message}
    try:
        process = await asyncio.create_subprocess_exec(*(_fill(word, notice) for word in argv), env=env,
                                                       stdin=asyncio.subprocess.DEVNULL,
                                                       stdout=asyncio.subprocess.DEVNULL,
                                                       stderr=asyncio.subprocess.PIPE)
    except OSError as exc:
        raise RuntimeError(f"cannot run notify_command {argv[0]!r}: {exc.strerror or exc}") from None
    try:
        _, err = await asyncio.wait_for(process.communicate(), TIME_LIMIT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        last = err.decode("utf-8", "replace").strip().splitlines()[-1:] if err else []
        raise RuntimeError(f"notify_command {argv[0]!r} exited {process.returncode}"
                           + (f": {last[0][:200]}" if last else ""))


async def post_webhook(http: httpx.AsyncClient | None, url: str, notice: Notice) -> None:
    body = {"text": notice.text, "content": notice.text, "account_id": notice.account_id,
            "label": notice.label, "status": notice.status, "message": notice.message}
    if http is None:
        async with httpx.AsyncClient() as client:
            response = await client.post(url, content=json.dumps(body), timeout=TIME_LIMIT,
                                         headers={"Content-Type": "application/json"})
    else:
        response = await http.post(url, content=json.dumps(body), timeout=TIME_LIMIT,
                                   headers={"Content-Type": "application/json"})
    if response.status_code >= 300:
        raise RuntimeError(f"the webhook answered HTTP {response.status_code}")
