"""Refresh one account in a loop until killed: the subject of the crash-safety test.

Usage: python -m tests.support.refresh_loop STORE_PATH ACCOUNT_ID ENDPOINT_URL
Prints "ready" after the first refresh, then refreshes as fast as it can.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from kiro_tui.core.aws.endpoints import Endpoints
from kiro_tui.core.aws.transport import make_http_client
from kiro_tui.core.clock import SystemClock
from kiro_tui.core.config import Settings
from kiro_tui.core.refresh import RefreshClients, Refresher
from kiro_tui.core.store import AccountStore


async def main(store_path: str, account_id: str, url: str) -> None:
    async with make_http_client(timeout=5.0) as http:
        with AccountStore.open(Path(store_path)) as store:
            clients = RefreshClients.create(http, Endpoints(override=url))
            refresher = Refresher(store, clients, SystemClock(), Settings())
            first = True
            while True:
                result = await refresher.refresh(account_id, force=True)
                if result.outcome not in ("refreshed", "busy"):
                    print(f"unexpected {result.outcome}: {result.message}", flush=True)
                    return
                if first:
                    print("ready", flush=True)
                    first = False


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
