"""Issue 19, the faces tests/test_exits.py does not run: `kiro-tui token`, which refreshes when
the token is due, ended each way (Ctrl-C typed in its terminal, SIGTERM, the terminal closed)
while its refresh request is held at a slow service; then every stored token is spent once:
0 lost, 0 tracebacks, 0 leases. The helpers (the emulator's gate, the pty) are test_exits.py's.
"""

from __future__ import annotations

import pytest

from tests import test_exits
from tests.test_exits import Terminal, World, _stop_cli, assert_quiet

world = test_exits.world  # the fixture: an emulator that can hold requests, kiro-cli, the store

pytestmark = pytest.mark.e2e  # real processes and terminals: run alone (see the README's test command)


@pytest.mark.parametrize("way", ["ctrl+c", "SIGTERM", "hangup"])
def test_token_interrupted_mid_refresh_waits_and_commits(world: World, way: str) -> None:
    ids = world.accounts(1)  # due: `token` refreshes before it answers
    gate = world.hold()
    term = Terminal([world.exe, "token", ids[0]], world.env)
    try:
        assert gate.arrived.wait(60), "the refresh never reached the emulator"
        _stop_cli(term, way)
        try:
            world.log_says("stopping: waiting for ", timeout=15)  # on its way out, the answer still to come
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nthe terminal:\n{term.text}") from None
        gate.release()
        code = term.end()
    finally:
        term.kill()
    assert code == 130, term.text
    if way != "hangup":  # after a hangup nothing is written to the terminal that went away
        assert f"stopping: waiting for 1 refresh under way to finish ({ids[0]})" in term.text, term.text
        assert "kiro-tui: interrupted (" in term.text, term.text
    assert_quiet(term.text)
    world.assert_nothing_lost(ids)
