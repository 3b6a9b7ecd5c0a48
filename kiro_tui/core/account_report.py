"""`kiro-tui show ID`: one account, readably, and what to do about anything wrong with it.

The JSON is `list --json`'s object with three more fields (`history`, `registration_expires_in_seconds`,
`advice`); the text is the same facts in lines a person reads top to bottom.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from kiro_tui.core.models import AccountView, Health, Mode, PlaceRole, PlaceState, Status
from kiro_tui.core.places import place_format
from kiro_tui.core.store import RefreshLogEntry
from kiro_tui.core.summary import account_json, describe_expiry, describe_usage
from kiro_tui.core.timefmt import format_timestamp, seconds_until

REGISTRATION_WARNING = timedelta(days=7)


def advice(view: AccountView, now: datetime, window: timedelta, holds: dict[tuple[str, str, str], str]) -> list[str]:
    """What a person should do, one line per thing wrong (nothing when all is well)."""
    account, status, todo = view.account, view.status(now, window), []
    login_again = ("run `kiro-cli login`, then `kiro-tui import`" if account.mode is not Mode.OWN and account.source
                   else f"log in again: `kiro-tui login{_portal(account.start_url)}` (or L in the TUI)")
    if account.health is Health.NEEDS_LOGIN:
        todo.append(f"its login is dead ({account.last_error or 'refresh refused'}): {login_again}")
    elif account.health is Health.SUSPENDED:
        todo.append(f"AWS suspended this account ({account.last_error or 'suspended'}); only AWS support can lift it")
    elif account.health is Health.REFRESH_FAILING:
        when = describe_expiry(account.next_refresh_at, now) if account.next_refresh_at else "soon"
        todo.append(f"refreshing keeps failing ({account.last_error}); kiro-tui tries again {when}, "
                    f"`kiro-tui refresh {account.id}` tries now")
    elif status is Status.EXPIRED and account.mode is Mode.FOLLOW:
        todo.append("expired, and follow mode waits for kiro-cli to refresh it: run kiro-cli once, or "
                    f"`kiro-tui mode {account.id} own` to have kiro-tui refresh it")
    elif status is Status.EXPIRED:
        todo.append(f"expired: `kiro-tui refresh {account.id}` (or keep `kiro-tui watch` or the TUI running)")
    if view.held:
        todo.append(f"a new token is only in memory: {view.held}; free disk space or fix the store's folder")
    expiry = account.client_secret_expires_at
    if expiry is not None and expiry <= now + REGISTRATION_WARNING:
        todo.append(f"the client registration {'expired' if expiry <= now else 'expires'} "
                    f"{describe_expiry(expiry, now)}: {login_again} before it stops every refresh")
    for place in view.places:
        title = place_format(place.kind).title if place.kind else place.kind
        if place.state is PlaceState.ERROR:
            fix = (f"`kiro-tui use {account.id} --in {place.kind} --path {place.path}` puts this login back "
                   f"(what is there is kept), or `kiro-tui unlink {account.id} {place.path}`"
                   if place.role is PlaceRole.LINK else f"`kiro-tui mode {account.id} own` stops writing it")
            todo.append(f"{title} {place.path}: {place.detail or 'in error'}; {fix}")
        elif place.state is PlaceState.PENDING:
            todo.append(f"{title} {place.path} is not written yet ({place.detail or 'pending'}); "
                        "kiro-tui tries again every pass")
        elif holds.get(place.address) == "missing":
            todo.append(f"{title} {place.path} is gone or unreadable; `kiro-tui unlink {account.id} {place.path}` "
                        "if it was removed on purpose")
    if status is Status.OVER_QUOTA:
        todo.append("over its quota: it works again when the quota resets" + (
            f" ({describe_expiry(view.usage.resets_at, now)})" if view.usage and view.usage.resets_at else ""))
    return todo


def _portal(start_url: str | None) -> str:
    return f" --start-url {start_url}" if start_url else ""


def show_json(view: AccountView, now: datetime, window: timedelta, history: list[RefreshLogEntry],
              holds: dict[tuple[str, str, str], str], holders: dict[tuple[str, str, str], str | None],
              counts: tuple[int, int] = (0, 0)) -> dict[str, object]:
    data = account_json(view, now, window, counts=counts, holds=holds, holders=holders)
    data["registration_expires_in_seconds"] = (seconds_until(view.account.client_secret_expires_at, now)
                                               if view.account.client_secret_expires_at else None)
    data["history"] = [{"at": format_timestamp(e.at), "outcome": e.outcome, "classification": e.classification,
                        "duration_ms": e.duration_ms, "message": e.message} for e in history]
    data["advice"] = advice(view, now, window, holds)
    return data


def show_lines(view: AccountView, now: datetime, window: timedelta, history: list[RefreshLogEntry],
               holds: dict[tuple[str, str, str], str], holders: dict[tuple[str, str, str], str | None],
               names: dict[str, str]) -> list[str]:
    account = view.account
    status = view.status(now, window)
    lines = [f"{account.name}  ({account.id})",
             f"  status        {status.label}",
             f"  expires       {describe_expiry(account.expires_at, now)}",
             f"  kind          {account.auth_method.title}, {account.region}"
             + (f", {account.start_url}" if account.start_url else ""),
             f"  email         {account.email or 'not known yet'}",
             f"  profile       {account.profile_label or 'none'}",
             f"  mode          {account.mode.value}",
             f"  usage         {describe_usage(view.usage)}"]
    if account.client_secret_expires_at:
        lines.append(f"  registration  expires {describe_expiry(account.client_secret_expires_at, now)}")
    lines.append("places")
    if not view.places:
        lines.append("  none: kiro-tui's own login (`kiro-tui use` puts it in a tool)")
    for place in view.places:
        holder = holders.get(place.address, "")
        held = (f", the tool uses {names.get(holder, holder)}" if holder and holder != account.id
                else ", the tool uses this account" if holder == account.id else "")
        what = holds.get(place.address)
        lines.append(f"  {place.kind:<11} {place.role.value:<6} {place.state.value:<8} {place.path}"
                     + (f" ({place.entry})" if place.entry else "") + (f" — holds {what}" if what else "") + held)
    lines.append("last refreshes")
    if not history:
        lines.append("  none yet")
    for entry in history:
        lines.append(f"  {entry.at:%Y-%m-%d %H:%M:%S}  {entry.outcome:<10} {entry.message or ''}".rstrip())
    todo = advice(view, now, window, holds)
    lines.append("to do")
    if not todo:
        lines.append("  nothing: all is well")
    lines += [f"  - {line}" for line in todo]
    return lines
