"""Several writers, one credential (issue 14's proof): each tool that keeps a copy of a login
runs beside the installed `kiro-tui watch`, refreshing on its own threshold and writing its file
its own way (tests/support/standins.py), against the emulator with strict rotation and short
token lifetimes, for many rotations.

Every threshold is scaled to the short lifetime in the proportion of the real defaults (tokens
live 3,600 s): kiro-tui's window 600 s; CLIProxyAPI 300 s; kiro-gateway 600 s (kiro-tui refreshes
a gateway-db link earlier: `effective_window`); AIClient-2-API 1,800 s, longer than kiro-tui's
window, so kiro-tui must adopt what it writes and never refresh first; kiro-cli 60 s, lazily.

Goal: no refresh the service refused (`invalid_grant` / 400) in the emulator's request log, every
place ends holding the live token, and no rotation is lost (no account needs a login). Each group
also reports its cycle, refresh and adoption counts (`pytest -s` shows them).

The Kiro IDE's stand-in follows its extension code (issue 21): it polls its file every 5 s
(scaled), refreshes by itself under 10 minutes, and logs out HARD on a failed refresh near expiry
(deleting its file and registration, revoking a social token). kiro-tui refreshes a login linked
there first (its 15-minute lead), so the IDE never refreshes; the registrations of its Builder ID
and IdC logins are deleted before the run, and kiro-tui's first write puts them back. Goal: 0
logouts.

A sixth group, `combined`, is the common setup: a kiro-cli login (sync) linked to AIClient-2-API
and CLIProxyAPI at once. AIClient-2-API always refreshes first, so every other copy holds a spent
refresh token until kiro-tui passes the new one on. (The Kiro IDE is left out of it here: its
15-minute lead is absolute, 900 s, longer than these tokens live, so with the 30 s floor below
kiro-tui would refresh 3 s before AIClient-2-API's scaled 30 minutes, the order real tokens never
see: 15 minutes against 30.)

One `kiro-tui watch`, one emulator and one stand-in process per tool serve every group at once,
so the whole file takes about two minutes of wall time. The run waits on conditions (enough
rotations everywhere), never on exact speed; the margins between thresholds are several seconds.

Two of kiro-tui's numbers are absolute and do not scale: the one-minute lead over kiro-gateway
(`places.effective_window`: 660 s, longer than these tokens live) and the 30 s floor between two
refreshes (`models.MIN_REFRESH_GAP`). So a gateway-db link is refreshed at that floor here, half
a lifetime ahead (33 s before expiry, against the gateway's scaled 11 s), which is safe but not
the one-minute margin itself; and gateway-db is left out of `combined`, where that floor, not
AIClient-2-API's lead, would decide who refreshes.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kiro_tui.core.aws.endpoints import Endpoints
from kiro_tui.core.aws.transport import make_http_client
from kiro_tui.core.clock import SystemClock
from kiro_tui.core.config import Settings
from kiro_tui.core.engine import Engine
from kiro_tui.core.importer import new_account_id
from kiro_tui.core.models import Health, PlaceRole
from kiro_tui.core.places import place_format
from kiro_tui.core.store import AccountStore
from kiro_tui.demo import account_from_seed
from tests.support.kiro_cli_db import KiroCliDb
from tests.support.places import IDC_PROFILES, IDC_START_URL

# One worker for the whole module: its two-minute run is a module fixture, made once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("multi-writer")]

ROOT = Path(__file__).resolve().parent.parent

TTL = 66
"""Seconds an access token lives (the emulator's token_ttl). Long enough that kiro-tui's own
absolute floor between refreshes (30 s, models.MIN_REFRESH_GAP) never outweighs a scaled window."""
SCALE = TTL / 3600
WINDOW = round(600 * SCALE)  # kiro-tui's refresh_window, through its config file: 11 s
ACCOUNTS = ("social", "builder-id", "idc", "social")  # per single-tool group
COMBINED = ("social", "builder-id")
SINGLE = ("kiro-cli", "kiro-ide", "cliproxy", "aiclient", "gateway-db")
GROUPS = (*SINGLE, "combined")
COMBINED_LINKS = ("aiclient", "cliproxy")
"""A kiro-cli login (sync) linked to two tools at once: an adoption must reach every copy."""
MIN_ROTATIONS = 8  # per group
MIN_PER_ACCOUNT = 2
RUN_LIMIT = 240.0  # seconds; the run normally ends after about 100
AFTER_FAILURE = 20.0  # keep going this long after a refused refresh, for the counts, then stop
SETTLE = 15.0  # once the tools stop, how long kiro-tui may take to pass on a token one wrote last


@dataclass
class Account:
    group: str
    id: str
    email: str
    method: str
    places: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, path, entry)


@dataclass
class Group:
    name: str
    accounts: list[Account]
    rotations: int = 0  # refreshes the service accepted (each one rotates the refresh token)
    by_kiro_tui: int = 0
    adopted: int = 0
    kiro_tui_failed: int = 0
    by_tool: int = 0
    tool_failed: int = 0
    tool_took: int = 0  # the tool found kiro-tui's token (a reload, a re-read) and used it
    uses: int = 0
    uses_failed: int = 0
    logouts: int = 0  # the Kiro IDE's hard logouts (a failed refresh near expiry)
    bad_files: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    events: Counter = field(default_factory=Counter)  # (tool, event) -> how many
    failing: set[tuple[str, str]] = field(default_factory=set)  # (tool, file) that was refused once or more

    def counts(self) -> str:
        cycles = self.rotations / len(self.accounts)
        text = (f"{self.name}: {len(self.accounts)} accounts, {self.rotations} rotations ({cycles:.1f} cycles each); "
                f"kiro-tui refreshed {self.by_kiro_tui}, adopted {self.adopted}, failed {self.kiro_tui_failed}; "
                f"the tool refreshed {self.by_tool}, failed {self.tool_failed}, took kiro-tui's token "
                f"{self.tool_took} times, used its token {self.uses} times ({self.uses_failed} refused), "
                f"logged out {self.logouts} times")
        if self.name == "combined":
            text += "; by tool: " + ", ".join(f"{tool} {event} {n}" for (tool, event), n in sorted(self.events.items()))
        if self.failing:
            text += f"; copies that were refused: {sorted(tool for tool, _ in self.failing)}"
        return text


@dataclass
class Outcome:
    groups: dict[str, Group]
    refused: list[dict]  # refresh calls the emulator refused
    seconds: float
    final: list[dict]  # `kiro-tui refresh --all --json` after every tool stopped
    watch_log: str


def _is_refresh(request: dict) -> bool:
    return request["operation"] == "RefreshToken" or (
        request["operation"] == "CreateToken" and request["grant_type"] == "refresh_token")


def _env(home: Path, url: str) -> dict[str, str]:
    env = {**os.environ, "HOME": str(home), "KIRO_TUI_ENDPOINT_URL": url, "PYTHONPATH": str(ROOT)}
    for var, sub in (("XDG_DATA_HOME", "data"), ("XDG_CONFIG_HOME", "config"), ("XDG_STATE_HOME", "state"),
                     ("XDG_CACHE_HOME", "cache")):
        env[var] = str(home / sub)
    return env


def _seed(emulator, group: str, index: int, method: str, expires_in: int) -> dict:  # type: ignore[no-untyped-def]
    email = f"{group}-{index}@example.com"
    if method == "idc":
        return emulator.seed(kind="idc", email=email, region="eu-west-1", start_url=IDC_START_URL,
                             profiles=IDC_PROFILES, expires_in=expires_in)
    return emulator.seed(kind=method, email=email, expires_in=expires_in)


def _expires_in(group: str, index: int) -> int:
    """Staggered first expiries: each group's accounts come due a quarter of a cycle apart, and
    no tool is due before every stand-in has loaded its files."""
    cycle = TTL - WINDOW
    return min(TTL, WINDOW + 12 + GROUPS.index(group) + round(index * cycle / len(ACCOUNTS)))


async def _set_up(home: Path, url: str, emulator) -> list[Account]:  # type: ignore[no-untyped-def]
    """kiro-cli logins imported (sync), kiro-tui's own logins linked to each tool's file, in process."""
    settings = Settings(refresh_window=WINDOW)
    store_path = home / "data" / "kiro-tui" / "accounts.db"
    default_db = home / "data" / "kiro-cli" / "data.sqlite3"
    accounts: list[Account] = []
    async with make_http_client(timeout=10.0) as http:
        with AccountStore.open(store_path) as store:
            engine = Engine(store, settings, SystemClock(), Endpoints(override=url), default_db, http=http,
                            fetch_usage=False)
            for group in GROUPS:
                methods = COMBINED if group == "combined" else ACCOUNTS
                for index, method in enumerate(methods):
                    seeded = _seed(emulator, group, index, method, _expires_in(group, index))
                    if group in ("kiro-cli", "combined"):
                        db_path = default_db if (group, index) == ("kiro-cli", 0) else (
                            home / f"{group}-{index}" / "kiro-cli" / "data.sqlite3")
                        db = KiroCliDb(db_path)
                        for table in ("auth_kv", "state"):
                            for key, value in seeded[table].items():
                                db.set_json(table, key, value)
                        report = await engine.import_now(db_path, "kiro-cli")
                        (item,) = report.imported
                        account = Account(group, item.id, seeded["email"], method)
                    else:
                        own = account_from_seed(seeded, new_account_id(store.ids()))
                        own.last_refresh_at = own.expires_at - timedelta(seconds=TTL)  # as if just logged in
                        store.save(own)
                        account = Account(group, own.id, seeded["email"], method)
                    links = COMBINED_LINKS if group == "combined" else (() if group == "kiro-cli" else (group,))
                    for kind in links:
                        await engine.link(account.id, kind, _link_path(home, kind, group, index))
                        time.sleep(0.003)  # AIClient-2-API's folders are named by the millisecond
                    account.places = [(p.kind, p.path, p.entry) for p in store.places(account.id)]
                    if group == "kiro-ide" and method != "social":  # as if the IDE had lost it
                        _ide_registration(Path(account.places[0][1])).unlink()
                    accounts.append(account)
    return accounts


def _ide_registration(token_file: Path) -> Path:
    """The registration an IDE token file names by its clientIdHash."""
    return token_file.parent / f"{json.loads(token_file.read_text())['clientIdHash']}.json"


def _link_path(home: Path, kind: str, group: str, index: int) -> Path:
    if kind == "kiro-ide":  # one IDE home per login: its file name is fixed
        return home / f"ide-{group}-{index}" / ".aws" / "sso" / "cache" / "kiro-auth-token.json"
    if kind == "cliproxy":  # the proxy's one auth folder, a file per login
        return home / ".cli-proxy-api"
    if kind == "aiclient":  # AIClient-2-API's folder: configs/kiro/{ms}_kiro-auth-token/ per login
        return home / "AIClient-2-API"
    return home / f"gateway-{index}"  # gateway-db: a database per login, as credentials.json lists them


def _wait_ready(proc: subprocess.Popen, what: str, timeout: float = 30.0) -> None:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline().strip() if ready else ""
    assert line == "ready", f"{what} did not start: {line!r}, exit {proc.poll()}"


def _stop(proc: subprocess.Popen, timeout: float) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _rotations(requests: list[dict], emails: dict[str, str]) -> tuple[Counter, Counter, list[dict]]:
    per_group: Counter = Counter()
    per_email: Counter = Counter()
    refused = []
    for request in requests:
        if not _is_refresh(request):
            continue
        if request["status"] != 200:
            refused.append(request)
        elif request["email"] in emails:
            per_group[emails[request["email"]]] += 1
            per_email[request["email"]] += 1
    return per_group, per_email, refused


def _live(emulator, email: str) -> list[str]:  # type: ignore[no-untyped-def]
    with emulator.app.lock:
        return [token for token, grant in emulator.state.refresh_grants.items() if grant.email == email]


def _held(kind: str, path: str, entry: str) -> str | None:
    login = place_format(kind).read_entry(Path(path), entry, datetime.now(UTC))
    return login.refresh_token if login else None


def _chain(emulator, token: str) -> list[str]:  # type: ignore[no-untyped-def]
    """The live token and every one it replaced, newest first."""
    chain = [token]
    with emulator.app.lock:
        while chain[-1] in emulator.state.rotated_from and len(chain) < 1000:
            chain.append(emulator.state.rotated_from[chain[-1]])
    return chain


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    from kiro_tui.emulator import Emulator

    exe = str(Path(sys.executable).parent / "kiro-tui")
    tmp = tmp_path_factory.mktemp("multi-writer")
    home = tmp / "home"
    with Emulator(token_ttl=TTL) as emulator:  # wall clock; strict rotation (no grace) by default
        env = _env(home, emulator.url)
        config = home / "config" / "kiro-tui" / "config.toml"
        config.parent.mkdir(parents=True)
        config.write_text(f"refresh_window = {WINDOW}\nwatch_interval = 1.0\n")
        accounts = asyncio.run(_set_up(home, emulator.url, emulator))
        groups = {name: Group(name, [a for a in accounts if a.group == name]) for name in GROUPS}
        emails = {a.email: a.group for a in accounts}
        owner = {}  # a tool's path -> the account's group
        files: dict[str, list[str]] = {kind: [] for kind in SINGLE}
        for account in accounts:
            for kind, path, _ in account.places:
                files[kind].append(path)
                owner[path] = account.group

        logs = tmp / "logs"
        logs.mkdir()
        procs: list[subprocess.Popen] = []
        started = time.monotonic()
        try:
            for kind, paths in files.items():
                proc = subprocess.Popen(
                    [sys.executable, "-m", "tests.support.standins", kind, *paths, "--url", emulator.url,
                     "--ttl", str(TTL), "--log", str(logs / f"{kind}.jsonl")],
                    cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=(logs / f"{kind}.err").open("w"), text=True)
                procs.append(proc)
            for proc, kind in zip(procs, files, strict=True):
                _wait_ready(proc, f"the {kind} stand-in")
            watch = subprocess.Popen([exe, "watch"], env=env, stdout=subprocess.DEVNULL,
                                     stderr=(logs / "watch.err").open("w"), text=True)
            procs.append(watch)

            first_refusal = None
            while time.monotonic() - started < RUN_LIMIT:
                time.sleep(0.5)
                per_group, per_email, refused = _rotations(emulator.requests(), emails)
                if refused and first_refusal is None:
                    first_refusal = time.monotonic()
                enough = all(per_group[g] >= MIN_ROTATIONS for g in GROUPS) and all(
                    per_email[a.email] >= MIN_PER_ACCOUNT for a in accounts)
                if enough or (first_refusal and time.monotonic() - first_refusal > AFTER_FAILURE):
                    break
                assert watch.poll() is None, (logs / "watch.err").read_text()[-3000:]
            for proc in procs[:len(files)]:  # the tools first: they finish what they are writing
                _stop(proc, 10)
            # A tool may have refreshed just before it stopped: kiro-tui passes that on within a watch pass.
            settled = time.monotonic() + SETTLE
            while time.monotonic() < settled and not all(_places_hold_live(emulator, a) for a in accounts):
                time.sleep(0.25)
        finally:
            for proc in procs:
                _stop(proc, 30)
        seconds = time.monotonic() - started

        # -- what happened ---------------------------------------------------------------------
        per_group, per_email, refused = _rotations(emulator.requests(), emails)
        for name, group in groups.items():
            group.rotations = per_group[name]
        for kind in files:
            for line in (logs / f"{kind}.jsonl").read_text().splitlines():
                event = json.loads(line)
                group = groups.get(owner.get(event["path"], ""))
                if group is None:
                    continue
                name = event["event"]
                group.events[(kind, name)] += 1
                if name in ("refresh-failed", "use-failed"):
                    group.failing.add((kind, event["path"]))
                group.by_tool += name == "refresh"
                group.tool_failed += name == "refresh-failed"
                group.tool_took += name in ("took", "reload")
                group.uses += name == "use"
                group.uses_failed += name == "use-failed"
                group.logouts += name == "logout"
                if name in ("bad-file", "error"):
                    group.bad_files.append(f"{kind} {event['path']}: {event['error']}")
        store_path = home / "data" / "kiro-tui" / "accounts.db"
        with AccountStore.open(store_path) as store:
            for account in accounts:
                group = groups[account.group]
                history = Counter(entry.outcome for entry in store.refresh_history(account.id, 1000))
                group.by_kiro_tui += history["refreshed"]
                group.adopted += history["adopted"]
                group.kiro_tui_failed += history["failed"]
                _check_end_state(emulator, store, account, group)

        final = subprocess.run([exe, "refresh", "--all", "--json"], env=env, capture_output=True, text=True,
                               timeout=60)
        final_items = json.loads(final.stdout) if final.stdout.strip() else []
        with AccountStore.open(store_path) as store:
            for account in accounts:
                _check_converged(emulator, store, account, groups[account.group])
        return Outcome(groups, refused, seconds, final_items, (logs / "watch.err").read_text())


def _places_hold_live(emulator, account: Account) -> bool:  # type: ignore[no-untyped-def]
    live = _live(emulator, account.email)
    return len(live) == 1 and all(_held(kind, path, entry) == live[0] for kind, path, entry in account.places)


def _check_end_state(emulator, store: AccountStore, account: Account, group: Group) -> None:  # type: ignore[no-untyped-def]
    """With every tool stopped: every place holds the live token; kiro-tui's store holds it, or
    holds one it replaced while a place holds the live one (kiro-tui adopts it before it would
    spend anything); nothing needs a login."""
    live = _live(emulator, account.email)
    if len(live) != 1:
        group.problems.append(f"{account.email}: {len(live)} live refresh tokens at the emulator")
        return
    stored = store.get(account.id)
    assert stored is not None
    if stored.health is not Health.OK:
        group.problems.append(f"{account.email}: {stored.health.value}: {stored.last_error}")
    held = {(kind, path): _held(kind, path, entry) for kind, path, entry in account.places}
    for (kind, path), token in held.items():
        if kind == "kiro-ide" and account.method != "social" and not _ide_registration(Path(path)).is_file():
            group.problems.append(f"{account.email}: the IDE's registration beside {path} was not put back")
        if token != live[0]:
            where = "an older token" if token in _chain(emulator, live[0]) else "a token not of this lineage"
            group.problems.append(f"{account.email}: {kind} {path} ends holding {where}, not the live one")
    if stored.refresh_token != live[0]:
        behind = stored.refresh_token in _chain(emulator, live[0])
        if not (behind and live[0] in held.values()):
            group.problems.append(f"{account.email}: the live token is lost to kiro-tui (its store is "
                                  f"{'behind' if behind else 'off the lineage'} and no place holds the live one)")


def _check_converged(emulator, store: AccountStore, account: Account, group: Group) -> None:  # type: ignore[no-untyped-def]
    """After `kiro-tui refresh --all` with every tool stopped: store, places and service agree."""
    live = _live(emulator, account.email)
    stored = store.get(account.id)
    assert stored is not None
    if len(live) != 1 or stored.refresh_token != live[0] or stored.health is not Health.OK:
        group.problems.append(f"{account.email}: after the last refresh kiro-tui's store does not hold the live token")
        return
    for kind, path, entry in account.places:
        if _held(kind, path, entry) != live[0]:
            group.problems.append(f"{account.email}: after the last refresh {kind} {path} does not hold the live token")
    roles = {p.role for p in store.places(account.id)}
    if group.name == "kiro-cli" and roles != {PlaceRole.SOURCE}:
        group.problems.append(f"{account.email}: expected only its kiro-cli source place, found {roles}")


def test_no_refresh_anywhere_was_refused(outcome: Outcome) -> None:
    print(f"\nran {outcome.seconds:.0f} s, token lifetime {TTL} s, kiro-tui window {WINDOW} s")
    for group in outcome.groups.values():
        print("  " + group.counts())
    statuses = Counter((r["operation"], r["status"]) for r in outcome.refused)
    assert not outcome.refused, (f"{len(outcome.refused)} refreshes refused by the service {dict(statuses)}: "
                                 + "; ".join(g.counts() for g in outcome.groups.values()))


def test_the_last_refresh_after_the_tools_stopped_spent_no_dead_token(outcome: Outcome) -> None:
    kinds = Counter(item["outcome"] for item in outcome.final)
    print(f"\nkiro-tui refresh --all with every tool stopped: {dict(kinds)}")
    total = sum(len(g.accounts) for g in outcome.groups.values())
    assert len(outcome.final) == total and set(kinds) <= {"refreshed", "adopted"}, outcome.final


@pytest.mark.parametrize("name", GROUPS)
def test_each_tool_beside_kiro_tui(outcome: Outcome, name: str) -> None:
    group = outcome.groups[name]
    print("\n" + group.counts())
    counts = group.counts()
    assert group.rotations >= MIN_ROTATIONS, f"too few cycles to prove anything: {counts}"
    assert group.tool_failed == 0 and group.kiro_tui_failed == 0, counts
    assert group.logouts == 0, f"the Kiro IDE logged out: {counts}"
    assert group.uses > 0 and group.uses_failed == 0, f"a tool used a dead access token: {counts}"
    assert not group.bad_files, f"{group.bad_files[:5]}; {counts}"
    assert not group.problems, f"{group.problems[:8]}; {counts}"
    # Every rotation is accounted for: kiro-tui's history and the tool's log add up to the service's.
    assert group.by_kiro_tui + group.by_tool == group.rotations, counts
    if name in ("aiclient", "combined"):  # AIClient-2-API always refreshes first: kiro-tui adopts
        assert group.by_kiro_tui == 0 and group.adopted >= len(group.accounts), counts
    if name in ("kiro-ide", "cliproxy", "gateway-db", "kiro-cli"):
        assert group.by_kiro_tui > 0, counts
    if name == "kiro-ide":  # kiro-tui goes first (its 15-minute lead): the IDE's own loop never fires
        assert group.by_tool == 0 and group.by_kiro_tui == group.rotations, counts
    if name in ("cliproxy", "gateway-db", "kiro-ide", "kiro-cli"):
        assert group.tool_took > 0, f"the tool never picked up kiro-tui's token: {counts}"
