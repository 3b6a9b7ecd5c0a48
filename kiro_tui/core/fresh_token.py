"""A token handed to another program (`kiro-tui token`): the account's, valid long enough,
refreshed first when it is not.

A room of its own because handing a token out has rules a background refresh does not: the
live token may be one held in memory, a refresh another process has under way is waited for
(never followed by a second one), and only a login can help an account that needs one.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from kiro_tui.core.errors import KiroTuiError, NeedsLoginError, StoreError
from kiro_tui.core.models import Account, Health, Outcome, Status
from kiro_tui.core.timefmt import shift

if TYPE_CHECKING:
    from kiro_tui.core.engine import Engine

TOKEN_WAIT = 30.0
"""Seconds `kiro-tui token` waits for another process already refreshing the account."""


async def fresh_token(engine: Engine, account_id: str, min_valid: float, wait: float = TOKEN_WAIT) -> Account:
    """The account with a token valid `min_valid` seconds more, refreshed first through the
    usual path (lease, commit, places) when it is not; another process already refreshing it
    is waited for (up to `wait` s), never followed by a second refresh. `NeedsLoginError`
    when only a login can help."""
    await engine.start()
    assert engine.refresher is not None
    waited, tried = 0.0, False
    while True:
        account = engine.store.get(account_id)
        if account is None:
            raise StoreError(f"no account with id {account_id!r}; `kiro-tui list` shows the ids")
        held = engine.refresher.held.get(account_id)
        if held is not None:  # the store would not take the new token: the live one is here
            account.access_token, account.refresh_token, account.expires_at = (
                held.access_token, held.refresh_token, held.expires_at)
        now = engine.clock.now()
        if account.health is Health.NEEDS_LOGIN:
            raise NeedsLoginError(f"{account.id} ({account.name}) needs a login: `kiro-tui login`, or log in "
                                  "with kiro-cli and `kiro-tui import`")
        if account.health is Health.SUSPENDED:
            raise KiroTuiError(f"{account.id} ({account.name}) is suspended by AWS; no token to give")
        if account.expires_at > shift(now, min_valid) or (tried and account.expires_at > now):
            return account  # (after a refresh, the freshest there is, even if it lives less)
        if tried:
            raise KiroTuiError(f"{account.id} ({account.name}): no valid token after refreshing"
                               + (f" ({account.last_error})" if account.last_error else ""))
        engine._network()
        # through the scheduler: a stop (Ctrl-C, SIGTERM, SIGHUP) waits for it to commit
        assert engine.scheduler is not None  # (built by start)
        (result,) = await engine.scheduler.refresh_now(
            [account_id], force=False, unless_valid_for=timedelta(seconds=min_valid))
        if result.outcome is Outcome.BUSY:
            if waited >= wait:
                raise KiroTuiError(f"another kiro-tui process has been refreshing {account_id} for "
                                   f"{wait:g} s; try again")
            await engine.clock.sleep(0.25)
            waited += 0.25
            continue
        if result.outcome is Outcome.FAILED and result.status is not Status.NEEDS_LOGIN:
            raise KiroTuiError(f"could not refresh {account_id} ({account.name}): {result.message}")
        tried = not (result.outcome is Outcome.SKIPPED and result.message == "still valid")
