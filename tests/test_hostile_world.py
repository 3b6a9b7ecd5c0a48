"""A hostile world (issue 20): a server of our own on 127.0.0.1 in front of the emulator answers
as proxies, portals and broken gateways do. Nothing in the way costs a login or a secret."""

from __future__ import annotations

import base64
import json
import os
import random
import stat
import subprocess
import time
import tracemalloc
from pathlib import Path

import pytest

from kiro_tui.core.answer_identity import foreign_answer, quarantine_dir
from kiro_tui.core.aws.endpoints import Endpoints
from kiro_tui.core.clock import ManualClock
from kiro_tui.core.config import Settings
from kiro_tui.core.importer import is_dead_refresh_token
from kiro_tui.core.masking import fingerprint
from kiro_tui.core.models import Health, Outcome, Place, PlaceRole, PlaceState, Status
from kiro_tui.core.refresh import RefreshClients, Refresher
from kiro_tui.core.store import AccountStore
from tests.support import hostile
from tests.support.engine import account_from_seed, at, calls
from tests.support.hostile import HostileServer
from tests.support.places import login_of, write_cliproxy
from tests.support.run import run_cli


@pytest.fixture
def world(emulator):
    with HostileServer(emulator.url) as server:
        yield server


@pytest.fixture
async def rig(tmp_path: Path, emulator, emulator_time, http, world):
    clock = ManualClock(at(emulator_time.now))
    with AccountStore.open(tmp_path / "store" / "accounts.db") as store:
        refresher = Refresher(store, RefreshClients.create(http, Endpoints(override=world.url)), clock, Settings(),
                              rng=random.Random(3))
        yield store, refresher, clock


def add(store: AccountStore, emulator, kind: str, email: str) -> str:
    seeded = emulator.seed(kind=kind, email=email)
    account = account_from_seed(seeded, f"acct-{len(store.ids()) + 1}")
    store.save(account)
    return account.id


REFRESH_PATHS = {"social": "/refreshToken", "builder-id": "/token", "external-idp": "/token"}


def in_the_way(world: HostileServer) -> list[tuple[str, hostile.Trick, str]]:
    followed = f"{world.url}/followed-a-redirect"
    return [
        ("302 to a portal", hostile.redirect(302), "redirected to login.example.invalid"),
        ("307 to a loopback page", hostile.redirect(307, followed), "redirected to 127.0.0.1"),
        ("407 from a proxy", hostile.proxy_auth(), "a proxy asked for authentication (407)"),
        ("403 HTML", hostile.html(403), "HTTP 403 with an HTML page"),
        ("404 HTML", hostile.html(404), "HTTP 404 with an HTML page"),
        ("400 HTML", hostile.html(400), "HTTP 400 with an HTML page"),
        ("401 HTML", hostile.html(401), "HTTP 401 with an HTML page"),
        ("400 broken JSON", hostile.not_json(400), "HTTP 400 with a application/json answer, not the service's JSON"),
        ("502 HTML", hostile.html(502), "HTTP 502 with an HTML page"),
        ("400 JSON the service never says", hostile.answer({"message": "Request blocked by WAF"}, 400), "retrying"),
    ]


@pytest.mark.parametrize("kind", ["social", "builder-id", "external-idp"])
async def test_nothing_in_the_way_is_taken_for_a_dead_login(rig, emulator, world, kind: str) -> None:
    store, refresher, clock = rig
    account_id = add(store, emulator, kind, f"{kind}@example.com")
    for name, trick, shown in in_the_way(world):
        trick.path = REFRESH_PATHS[kind]
        world.queue(trick)

        result = await refresher.refresh(account_id, force=True)

        account = store.get(account_id)
        assert result.outcome is Outcome.FAILED and result.classification == "transient", (name, result.message)
        assert account.health is Health.REFRESH_FAILING and result.status is Status.REFRESH_FAILING, name
        assert shown in (result.message or ""), (name, result.message)
        assert not is_dead_refresh_token(account), name
        assert result.retry_in is not None, name
    assert not [path for path, _ in world.played if "followed" in path]
    assert not [r for r in emulator.requests() if "followed" in str(r.get("path"))]

    result = await refresher.refresh(account_id, force=True)  # the way is clear again: the login was live

    assert (result.outcome, result.status) == (Outcome.REFRESHED, Status.FRESH)
    assert store.get(account_id).health is Health.OK


@pytest.mark.parametrize("kind", ["social", "builder-id", "external-idp"])
async def test_the_services_own_verdict_still_ends_a_dead_login(rig, emulator, kind: str) -> None:
    """The other side of the rule: the service's JSON saying the token is dead is believed."""
    store, refresher, _ = rig
    account_id = add(store, emulator, kind, f"dead-{kind}@example.com")
    assert (await refresher.refresh(account_id, force=True)).outcome is Outcome.REFRESHED
    stale = store.get(account_id)
    # spend the stored token behind kiro-tui's back: the service now answers invalid_grant / 400 JSON
    if kind == "social":
        await refresher.clients.social.refresh(stale.refresh_token)
    elif kind == "external-idp":
        await refresher.clients.external.refresh(stale.token_endpoint, stale.client_id, stale.refresh_token)
    else:
        await refresher.clients.oidc.refresh(stale.region, stale.client_id, stale.client_secret, stale.refresh_token)

    result = await refresher.refresh(account_id, force=True)

    assert (result.outcome, result.status, result.classification) == (Outcome.FAILED, Status.NEEDS_LOGIN,
                                                                      "needs-login")


async def test_a_gzip_bomb_is_a_transient_failure_in_bounded_memory(rig, emulator, world) -> None:
    store, refresher, _ = rig
    account_id = add(store, emulator, "social", "bomb@example.com")
    bomb = hostile.gzip_bomb(300)
    bomb.path = "/refreshToken"
    assert len(bomb.body) < 1024 * 1024  # small on the wire
    world.queue(bomb)

    tracemalloc.start()
    try:
        result = await refresher.refresh(account_id, force=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert result.outcome is Outcome.FAILED and result.classification == "transient"
    assert "larger than 512 KB" in result.message
    assert peak < 16 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
    assert (await refresher.refresh(account_id, force=True)).outcome is Outcome.REFRESHED
    assert calls(emulator, "bomb@example.com")


def jwt(claims: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJlLW5vdC1jaGVja2Vk"


SWAPS = {
    "social": ({"accessToken": "aoaSWAPPEDACCESS" + "x" * 40, "refreshToken": "aorSWAPPEDREFRESH" + "y" * 40,
                "profileArn": "arn:aws:codewhisperer:us-east-1:999988887777:profile/SOMEONEELSE", "expiresIn": 3600},
               "AWS account 999988887777"),
    "external-idp": ({"access_token": "aoaSWAPPEDACCESS" + "x" * 40, "refresh_token": "aorSWAPPEDREFRESH" + "y" * 40,
                      "id_token": jwt({"sub": "b", "email": "Mallory@Example.com"}), "expires_in": 3600},
                     "names mallory@example.com"),
}


@pytest.mark.parametrize("kind", sorted(SWAPS))
async def test_an_answer_carrying_another_accounts_login_is_refused_and_kept(rig, emulator, world, kind: str,
                                                                            tmp_path: Path) -> None:
    store, refresher, _ = rig
    account_id = add(store, emulator, kind, f"swap-{kind}@example.com")
    before = store.get(account_id)
    body, named = SWAPS[kind]
    swap = hostile.answer(body)
    swap.path = REFRESH_PATHS[kind]
    world.queue(swap)

    result = await refresher.refresh(account_id, force=True)

    after = store.get(account_id)
    assert result.outcome is Outcome.FAILED and result.classification == "transient"
    assert "another account's login" in result.message and named in result.message
    assert (after.access_token, after.refresh_token) == (before.access_token, before.refresh_token)
    assert not store.in_lineage(account_id, fingerprint(body.get("refreshToken") or body.get("refresh_token")))
    kept = list(quarantine_dir(store.path).iterdir())
    assert len(kept) == 1 and str(kept[0]) in result.message
    assert stat.S_IMODE(kept[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(quarantine_dir(store.path).stat().st_mode) == 0o700
    record = json.loads(kept[0].read_text())
    assert record["refresh_token"] == body.get("refreshToken", body.get("refresh_token"))  # the rotated token is kept
    assert "aorSWAPPED" not in result.message  # named, never shown

    again = await refresher.refresh(account_id, force=True)  # its own token was never spent: still live

    assert (again.outcome, again.status) == (Outcome.REFRESHED, Status.FRESH)


def test_the_identity_rule() -> None:
    from datetime import UTC, datetime

    from kiro_tui.core.aws.tokens import TokenResult
    from kiro_tui.core.models import Account, AuthMethod

    account = Account("a1", AuthMethod.SOCIAL, "aoa", datetime(2026, 1, 1, tzinfo=UTC), "aor", email="Me@Example.com",
                      profile_arn="arn:aws:codewhisperer:us-east-1:111122223333:profile/MINE")
    same_account_other_profile = TokenResult("aoa2", "aor2", 3600,
                                             profile_arn="arn:aws:codewhisperer:us-east-1:111122223333:profile/NEW")
    assert foreign_answer(account, same_account_other_profile) is None
    assert foreign_answer(account, TokenResult("aoa2", None, 3600)) is None  # says nothing of identity
    assert foreign_answer(account, TokenResult(jwt({"email": "me@example.com"}), None, 3600)) is None
    assert "444455556666" in foreign_answer(account, TokenResult(
        "aoa2", "aor2", 3600, profile_arn="arn:aws:codewhisperer:us-east-1:444455556666:profile/X"))
    assert "you@example.com" in foreign_answer(account, TokenResult(jwt({"upn": "you@example.com"}), None, 3600))
    assert "x@y.z" in foreign_answer(account, TokenResult("aoa2", None, 3600, id_token=jwt({"email": "x@y.z"})))
    assert foreign_answer(account, TokenResult("not.a.jwt", None, 3600, id_token="a.%%%.c")) is None


def link_cliproxy(store: AccountStore, emulator, folder: Path, email: str) -> tuple[str, Path]:
    """A social account with a CLIProxyAPI file in `folder` linked to it (kiro-tui keeps it fresh)."""
    seeded = emulator.seed(kind="social", email=email)
    account = account_from_seed(seeded, f"acct-{len(store.ids()) + 1}")
    store.save(account)
    folder.mkdir(parents=True, exist_ok=True)
    path = write_cliproxy(folder, login_of(seeded))
    with store.transaction() as tx:
        store.save_place(tx, Place(account.id, "cliproxy", str(path), role=PlaceRole.LINK))
    return account.id, path


async def test_a_link_planted_in_a_shared_folder_never_receives_a_token(rig, emulator, tmp_path: Path) -> None:
    store, refresher, _ = rig
    mallory = tmp_path / "mallory"
    mallory.mkdir()
    planted_target = mallory / "readable.json"
    shared = tmp_path / "shared"  # world-writable, not sticky: anyone may swap a file in it for a link
    account_id, path = link_cliproxy(store, emulator, shared, "shared@example.com")
    shared.chmod(0o777)
    planted_target.write_bytes(path.read_bytes())
    planted_target.chmod(0o666)
    path.unlink()
    path.symlink_to(planted_target)
    before = planted_target.read_bytes()

    result = await refresher.refresh(account_id, force=True)

    assert result.outcome is Outcome.REFRESHED  # the login itself is fine
    new_token = store.get(account_id).refresh_token
    assert planted_target.read_bytes() == before and new_token.encode() not in planted_target.read_bytes()
    place = store.places(account_id)[0]
    assert place.state is PlaceState.ERROR and "symbolic link" in place.detail

    path.unlink()  # the link gone, the folder is still one anyone can write: still no token goes there
    path.write_bytes(before)
    await refresher.write_places(store.get(account_id))
    assert new_token.encode() not in path.read_bytes()
    place = store.places(account_id)[0]
    assert place.state is PlaceState.ERROR and "writable by every user" in place.detail
    assert not [p for p in shared.iterdir() if p.name.endswith(".kiro-tui.tmp")]


async def test_sticky_folders_only_of_ones_own_and_a_token_file_is_private_after_a_write(rig, emulator,
                                                                                       tmp_path: Path,
                                                                                       caplog) -> None:
    store, refresher, _ = rig
    mine = tmp_path / "mine"  # sticky and the person's own: fine
    account_id, path = link_cliproxy(store, emulator, mine, "sticky@example.com")
    mine.chmod(0o1777)
    path.chmod(0o644)

    with caplog.at_level("WARNING", logger="kiro_tui"):
        assert (await refresher.refresh(account_id, force=True)).outcome is Outcome.REFRESHED

    assert store.get(account_id).refresh_token.encode() in path.read_bytes()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "was mode 0644, readable by others; it is 0600 now" in caplog.text

    if os.geteuid() != 0:
        return  # giving a folder to another user needs root; the rest is shown above
    theirs = tmp_path / "theirs"  # sticky but someone else's: they can still swap files in it
    other_id, other_path = link_cliproxy(store, emulator, theirs, "theirs@example.com")
    theirs.chmod(0o1777)
    os.chown(theirs, 65534, 65534)
    before = other_path.read_bytes()
    assert (await refresher.refresh(other_id, force=True)).outcome is Outcome.REFRESHED
    assert other_path.read_bytes() == before
    assert "belongs to another user (uid 65534)" in store.places(other_id)[0].detail


def test_export_makes_missing_folders_private_and_a_start_removes_stale_temporary_copies(
        kiro_tui_exe: str, emulator, tmp_path: Path) -> None:
    from kiro_tui.core import paths

    with AccountStore.open(paths.store_file()) as store:
        account_id, linked = link_cliproxy(store, emulator, tmp_path / "proxy", "export@example.com")
    stale = linked.with_name(f".{linked.name}.a1b2c3.kiro-tui.tmp")  # a kill mid-write left it
    young = linked.with_name(f".{linked.name}.d4e5f6.kiro-tui.tmp")  # another process is writing it now
    theirs = linked.with_name("notes.tmp")  # not kiro-tui's naming: never touched
    for path in (stale, young, theirs):
        path.write_text('{"refresh_token": "aorLEFTOVER"}')
    old = time.time() - 3600
    os.utime(stale, (old, old))
    os.utime(theirs, (old, old))
    offline = {"KIRO_TUI_ENDPOINT_URL": "http://127.0.0.1:9"}

    result = run_cli(kiro_tui_exe, "refresh", "--all", env=offline)

    assert not stale.exists() and young.exists() and theirs.exists()
    assert f"removed {stale}" in paths.log_dir().joinpath("kiro-tui.log").read_text()

    target = tmp_path / "new" / "deeper" / "still" / "kiro.json"
    result = run_cli(kiro_tui_exe, "export", account_id, "--to", "cliproxy", "--path", str(target), env=offline)

    assert result.code == 0, result.err
    for folder in (tmp_path / "new", tmp_path / "new" / "deeper", tmp_path / "new" / "deeper" / "still"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


async def test_the_compare_and_swap_takes_only_the_token_last_written_there_or_a_newer_one(rig, emulator,
                                                                                         tmp_path: Path) -> None:
    store, refresher, _ = rig
    account_id, path = link_cliproxy(store, emulator, tmp_path / "proxy", "cas@example.com")
    assert (await refresher.refresh(account_id, force=True)).outcome is Outcome.REFRESHED
    backup = path.read_bytes()  # holds T1, which kiro-tui wrote there
    assert (await refresher.refresh(account_id, force=True)).outcome is Outcome.REFRESHED
    assert store.places(account_id)[0].state is PlaceState.IN_SYNC  # T2 written over T1

    path.write_bytes(backup)  # an old copy put back: T1, spent, of this very login
    assert (await refresher.refresh(account_id, force=True)).outcome is Outcome.REFRESHED

    assert path.read_bytes() == backup  # T3 never went into a file that held a token already replaced there
    place = store.places(account_id)[0]
    assert place.state is PlaceState.ERROR and "older one of this login" in place.detail

    # a place that missed writes (missing meanwhile) still holds the last token written there: taken
    other_id, other = link_cliproxy(store, emulator, tmp_path / "proxy2", "missed@example.com")
    assert (await refresher.refresh(other_id, force=True)).outcome is Outcome.REFRESHED
    last_written = other.read_bytes()
    other.unlink()
    for _ in range(2):
        assert (await refresher.refresh(other_id, force=True)).outcome is Outcome.REFRESHED
    assert store.places(other_id)[0].state is PlaceState.PENDING
    other.write_bytes(last_written)
    await refresher.retry_pending_places()
    assert store.places(other_id)[0].state is PlaceState.IN_SYNC
    assert store.get(other_id).refresh_token.encode() in other.read_bytes()


def test_refresh_through_everything_in_the_way_loses_no_login_in_bounded_memory(kiro_tui_exe: str, emulator,
                                                                                 world) -> None:
    """The proof end to end: the installed `kiro-tui refresh --all` through the hostile server,
    a gzip bomb among its answers; then the way clears and every login is still live."""
    from kiro_tui.core import paths

    with AccountStore.open(paths.store_file()) as store:
        ids = [add(store, emulator, kind, f"e2e-{kind}@example.com") for kind in ("social", "builder-id", "external-idp")]
    bomb = hostile.gzip_bomb(300)
    bomb.path = "/refreshToken"
    world.queue(bomb)
    for trick in (hostile.proxy_auth(), hostile.redirect(307)):
        trick.path = "/token"
        world.queue(trick)
    env = {**os.environ, "KIRO_TUI_ENDPOINT_URL": world.url}

    proc = subprocess.Popen([kiro_tui_exe, "refresh", "--all"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.returncode = os.waitstatus_to_exitcode(status)

    assert proc.returncode == 1, (out, err)  # failures, none of them "needs login" (that is 3)
    peak_mb = usage.ru_maxrss / 1024
    assert peak_mb < 150, f"peak {peak_mb:.0f} MB"  # the bomb inflates to 300 MB; kiro-tui itself takes ~60
    print(f"kiro-tui refresh --all through a 300 MB gzip bomb: peak {peak_mb:.0f} MB")
    assert "Traceback" not in err
    assert "a proxy asked for authentication (407)" in out and "redirected to login.example.invalid" in out
    assert "larger than 512 KB" in out
    listed = run_cli(kiro_tui_exe, "list", "--json", env={"KIRO_TUI_ENDPOINT_URL": world.url}).json()
    assert sorted(a["id"] for a in listed) == sorted(ids)
    assert not [a for a in listed if a["status"] == "needs-login"]

    again = run_cli(kiro_tui_exe, "refresh", "--all", env={"KIRO_TUI_ENDPOINT_URL": world.url})

    assert again.code == 0, again.out + again.err
    assert [line.split()[0] for line in again.out.splitlines()] == ["refreshed"] * 3
