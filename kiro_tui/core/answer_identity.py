"""Is a refresh answer really this account's? A 200 carrying another account's tokens (a caching
proxy, a gateway mixing up sessions) must not become this account's token, nor reach its places.

Only what the answer itself says about whom it is for is compared: a profile ARN in another AWS
account, an id token (or an access token that is a JWT) naming another email. An answer that says
nothing about identity (Builder ID and IdC answers never do) is taken as it is.

The service rotated to get that answer, so its tokens are someone's only live copy: a refused
answer is kept, private, in a quarantine record beside the store for a person to look at.
"""

from __future__ import annotations

import base64
import json
import os
from datetime import datetime
from pathlib import Path

from kiro_tui.core.aws.tokens import TokenResult
from kiro_tui.core.identity import email_key
from kiro_tui.core.models import Account
from kiro_tui.core.timefmt import format_timestamp

_EMAIL_CLAIMS = ("email", "preferred_username", "upn", "unique_name")


def foreign_answer(account: Account, token: TokenResult) -> str | None:
    """Why `token` is another account's login, in words; None when nothing in it says so."""
    theirs, ours = _arn_account(token.profile_arn), _arn_account(account.profile_arn)
    if theirs and ours and theirs != ours:
        return f"its profile ARN is in AWS account {theirs}, this login's is in {ours}"
    known = email_key(account.email)
    if "@" not in known:
        return None
    for what, jwt in (("id token", token.id_token), ("access token", token.access_token)):
        named = _email_of(jwt_claims(jwt))
        if named and named != known:
            return f"its {what} names {named}, this login is {known}"
    return None


def jwt_claims(token: str | None) -> dict[str, object]:
    """The payload of a JWT, unverified (it only has to say whom it names); {} if not a JWT."""
    parts = (token or "").split(".")
    if len(parts) != 3 or len(parts[1]) > 16_384:
        return {}
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return {}
    return payload if isinstance(payload, dict) else {}


def _email_of(claims: dict[str, object]) -> str | None:
    for name in _EMAIL_CLAIMS:
        value = claims.get(name)
        if isinstance(value, str) and "@" in value:
            return email_key(value)
    return None


def _arn_account(arn: str | None) -> str | None:
    """The AWS account id of an ARN (arn:partition:service:region:ACCOUNT:resource)."""
    parts = (arn or "").split(":")
    return parts[4] if len(parts) >= 6 and parts[0] == "arn" and parts[4].isdigit() else None


def quarantine_dir(store_path: Path) -> Path:
    return store_path.with_name(store_path.name + ".quarantine")


def quarantine(store_path: Path, account: Account, token: TokenResult, reason: str, now: datetime) -> str:
    """Keep a refused answer (0600, in a 0700 folder beside the store) and say where, or that it
    could not be kept. The message is this account's failure, shown wherever its error is."""
    folder = quarantine_dir(store_path)
    record = {"account_id": account.id, "account": account.name, "reason": reason, "received_at": format_timestamp(now),
              "access_token": token.access_token, "refresh_token": token.refresh_token,
              "expires_in": token.expires_in, "profile_arn": token.profile_arn, "id_token": token.id_token}
    said = f"the service answered with another account's login ({reason}): not used, not written anywhere"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        target = folder / f"{account.id}-{now.strftime('%Y%m%dT%H%M%S.%fZ')}.json"
        fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(record, handle)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        return f"{said}; it could not be kept ({exc.strerror or exc}); retrying with this login's own token"
    return f"{said}; its tokens are kept for you in {target}; retrying with this login's own token"
