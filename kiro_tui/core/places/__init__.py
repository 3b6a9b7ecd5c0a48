"""Places: where copies of a Kiro credential live (kiro-cli's database, other tools' files).

Every format has a module here with the same small interface (`PlaceFormat` in base.py), and
`FORMATS` finds it by kind. The refresh engine reads a place before spending a refresh token
(a tool there may have refreshed already) and writes it after a refresh (compare-and-swap on
the account's token lineage), so one rotation never kills another tool's copy.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from kiro_tui.core.models import Place, PlaceRole
from kiro_tui.core.places.aiclient import AiClientPlace
from kiro_tui.core.places.base import (
    DEFAULT_WRITE_TIMEOUT,
    Created,
    PlaceError,
    PlaceFormat,
    PlaceLogin,
    PlaceSnapshot,
    TokenCopy,
    WriteOutcome,
    WriteResult,
)
from kiro_tui.core.places.cliproxy import CliProxyPlace
from kiro_tui.core.places.gateway import (
    GatewayDbPlace,
    GatewayPlace,
    create_gateway_db,
    gateway_sqlite_paths,
)
from kiro_tui.core.places.kiro_cli import KiroCliPlace
from kiro_tui.core.places.kiro_ide import KiroIdePlace
from kiro_tui.core.places.opencode import OpencodePlace

# kiro-cli first: it is what most people have, and what opencode re-imports from.
FORMATS: dict[str, PlaceFormat] = {fmt.kind: fmt for fmt in (
    KiroCliPlace(), KiroIdePlace(), CliProxyPlace(), OpencodePlace(), AiClientPlace(), GatewayPlace(),
    GatewayDbPlace(),
)}


LINK_KINDS = tuple(kind for kind, fmt in FORMATS.items() if fmt.writable and kind != "kiro-cli")
"""Where a copy can be linked or exported (kiro-cli's login is kept fresh by the sync mode instead)."""

USE_KINDS = tuple(kind for kind, fmt in FORMATS.items() if fmt.writable)
"""Where `use` can put a login: every tool kiro-tui writes (not opencode's kiro.db)."""


def link_refusal(kind: str) -> str | None:
    """Why a copy cannot be linked or exported to a known kind, and what to do instead (None: it can)."""
    fmt = place_format(kind)
    if not fmt.writable:
        return (f"kiro-tui never writes {fmt.title}'s file (the tool saves over it); "
                "link kiro-cli instead: opencode re-imports kiro-cli's login")
    if kind not in LINK_KINDS:  # kiro-cli's database: the sync mode of an imported login
        return (f"kiro-tui does not link or export into {fmt.title}'s database: import its login "
                "and use the sync mode (`kiro-tui mode ID sync`)")
    return None
LEAD_MARGIN = timedelta(minutes=1)


_LINK = PlaceRole.LINK


def effective_window(window: timedelta, places: Iterable[Place]) -> timedelta:
    """The refresh window of an account with these places: the configured one, or earlier when
    a tool at one of its links re-reads and refreshes by itself inside it (one definition, used
    by the scheduler, the refresher and `list --json` alike)."""
    kinds = [p.kind for p in places if p.role is _LINK]
    if not kinds:  # most accounts (asked once per account listed)
        return window
    leads = [FORMATS[kind].rereads_before_refresh for kind in kinds if kind in FORMATS]
    longest = max((lead for lead in leads if lead is not None), default=None)
    return max(window, timedelta(seconds=longest) + LEAD_MARGIN) if longest is not None else window


def place_format(kind: str) -> PlaceFormat:
    try:
        return FORMATS[kind]
    except KeyError:
        raise PlaceError(f"kiro-tui does not know places of kind {kind!r}") from None


__all__ = ["DEFAULT_WRITE_TIMEOUT", "FORMATS", "LINK_KINDS", "USE_KINDS", "Created", "PlaceError", "PlaceFormat",
           "PlaceLogin", "PlaceSnapshot", "TokenCopy", "WriteOutcome", "WriteResult", "create_gateway_db",
           "effective_window", "gateway_sqlite_paths", "link_refusal", "place_format"]
