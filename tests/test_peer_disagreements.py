"""Issue 21's disagreements found by running the peers' code on kiro-tui's files: CLIProxyAPI
files with no `type`, the proxy's and kiro-gateway's limits told on link and export, and what
`list --json` says of a place a peer refreshed before kiro-tui's next pass."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kiro_tui.core.clock import ManualClock
from kiro_tui.core.config import Settings
from kiro_tui.core.engine import Engine
from kiro_tui.core.models import AuthMethod
from kiro_tui.core.places import FORMATS
from kiro_tui.core.store import AccountStore
from tests.support.engine import account_from_seed, at
from tests.support.places import IDC_PROFILES, IDC_START_URL, cliproxy_record, go_marshal, go_rfc3339, seed


@pytest.fixture
async def engine(tmp_path: Path, emulator, emulator_time, http, endpoints):
    with AccountStore.open(tmp_path / "store" / "accounts.db") as store:
        yield Engine(store, Settings(), ManualClock(at(emulator_time.now)), endpoints, None, http=http,
                     fetch_usage=False)


# -- 7. CLIProxyAPI loads a file with no "type" but a social / builder-id auth_method ----------

@pytest.mark.parametrize("kind", ["social", "builder-id"])
def test_a_cliproxy_file_with_no_type_is_a_kiro_login_as_the_proxy_takes_it(kind: str, emulator,
                                                                           tmp_path: Path) -> None:
    login = seed(emulator, kind)
    record = cliproxy_record(login)
    del record["type"]
    folder = tmp_path / ".cli-proxy-api"
    folder.mkdir()
    path = folder / f"kiro-{kind}-someone.json"
    path.write_text(go_marshal(record))
    os.chmod(path, 0o600)
    other = folder / "gemini-someone.json"  # another provider's file, no type either: not ours
    other.write_text(json.dumps({"access_token": "x", "refresh_token": "y", "email": "e@example.com"}))
    idc_without_type = folder / "kiro-idc-x.json"  # the proxy takes only social / builder-id untyped
    idc_without_type.write_text(json.dumps({**record, "auth_method": "idc"}))

    cliproxy = FORMATS["cliproxy"]
    assert cliproxy.discover(folder) == [path]
    (found,) = cliproxy.scan(path, at(0)).logins
    assert found.refresh_token == login.refresh_token
    assert found.auth_method is AuthMethod(kind)


# -- 3 and 4. what a tool cannot do with a login, said on link and export --------------------------

async def test_linking_an_idc_login_to_cliproxy_warns_and_keeps_it_fresh(engine: Engine, emulator,
                                                                         tmp_path: Path) -> None:
    account = account_from_seed(emulator.seed(kind="idc", email="team@acme.example", region="eu-west-1",
                                              start_url=IDC_START_URL, profiles=IDC_PROFILES), "acccpidc")
    engine.store.save(account)

    caveat = await engine.caveat(account.id, "cliproxy")
    place = await engine.link(account.id, "cliproxy", tmp_path / "proxy")

    assert caveat is not None and "cannot refresh this IdC login" in caveat and "pull 5111" in caveat
    assert place.state.value == "in-sync"  # linked all the same: kiro-tui refreshes it first
    written = json.loads(Path(place.path).read_text())
    assert (written["auth_method"], written["region"], written["start_url"]) == ("idc", "eu-west-1", IDC_START_URL)
    social = account_from_seed(emulator.seed(kind="social", email="s@example.com"), "acccpsoc")
    engine.store.save(social)
    assert await engine.caveat(social.id, "cliproxy") is None


async def test_a_gateway_json_for_an_idc_login_with_its_profile_elsewhere_recommends_gateway_db(
        engine: Engine, emulator) -> None:
    account = account_from_seed(emulator.seed(kind="idc", email="team@acme.example", region="eu-west-1",
                                              start_url=IDC_START_URL, profiles=IDC_PROFILES), "accgwidc")
    engine.store.save(account)

    caveat = await engine.caveat(account.id, "gateway")

    assert caveat is not None
    assert "eu-west-1" in caveat and "eu-central-1" in caveat and "gateway-db" in caveat
    assert '"api_region": "eu-central-1"' in caveat  # the per-account field its credentials.json reads
    assert await engine.caveat(account.id, "gateway-db") is None  # gets the API region from the profile
    same = account_from_seed(emulator.seed(kind="idc", email="us@acme.example", region="us-east-1",
                                           start_url=IDC_START_URL), "accgwsame")
    engine.store.save(same)
    assert await engine.caveat(same.id, "gateway") is None


def test_link_and_export_print_the_warning(kiro_tui_exe, isolated_dirs: Path, emulator) -> None:
    from tests.support.run import run_cli

    account = account_from_seed(emulator.seed(kind="idc", email="team@acme.example", region="eu-west-1",
                                              start_url=IDC_START_URL, profiles=IDC_PROFILES), "acc1c1dc")
    with AccountStore.open(isolated_dirs / "data" / "kiro-tui" / "accounts.db") as store:
        store.save(account)
    env = {"KIRO_TUI_ENDPOINT_URL": emulator.url}

    linked = run_cli(kiro_tui_exe, "link", "acc1", "--to", "gateway", "--path", str(isolated_dirs / "gw.json"),
                     env=env)
    exported = run_cli(kiro_tui_exe, "export", "acc1", "--to", "cliproxy", "--path", str(isolated_dirs / "proxy"),
                       env=env)

    assert linked.code == 0 and "kiro-tui: warning: kiro-gateway's JSON file has one region" in linked.err, linked.err
    assert exported.code == 0 and "kiro-tui: warning: CLIProxyAPIPlus" in exported.err, exported.err


# -- holds: a peer's write before kiro-tui's next pass ---------------------------------------------

async def test_a_token_the_next_pass_will_adopt_is_listed_as_newer(engine: Engine, emulator, tmp_path: Path) -> None:
    """CLIProxyAPI refreshed and wrote its file (Go's whole seconds, so its expiry reads a little
    before kiro-tui's): until the next pass, `list --json` says the place holds a `newer` token,
    the one the pass then adopts, not `other`."""
    from kiro_tui.core.aws.social import SocialClient

    account = account_from_seed(emulator.seed(kind="social", email="proxy@example.com"), "acccpnew")
    account.expires_at = account.expires_at.replace(microsecond=750000)
    engine.store.save(account)
    place = await engine.link(account.id, "cliproxy", tmp_path / "proxy")
    path = Path(place.path)
    rotated = await SocialClient(engine._http, engine.endpoints).refresh(account.refresh_token)
    record = json.loads(path.read_text())
    record.update(access_token=rotated.access_token, refresh_token=rotated.refresh_token,
                  expires_at=go_rfc3339(rotated.expires_at(engine.clock.now())))
    path.write_text(go_marshal(record))
    assert FORMATS["cliproxy"].read_entry(path, "", at(0)).expires_at < engine.store.get(account.id).expires_at

    views = (await engine.views([account.id])).views
    assert (await engine.holdings(views)).states == {place.address: "newer"}

    await engine.watch_pass()
    assert engine.store.get(account.id).refresh_token == rotated.refresh_token  # what "newer" promised
