"""The watch pass: what the engine looks at every `watch_interval` besides refreshing, and what it
remembers between two passes to notice a change.

A room of its own because it is the one part of the engine with a memory: how kiro-cli's
database and every place file looked, the store's data version and the accounts as they were
then (so another process's commit is told as the accounts it changed), whether the store took
a write again after a failure, and this process's runner row. Only the pass writes that memory;
what the engine shows a presenter (core/views.py) never touches it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from kiro_tui.core import imports, quota, runners
from kiro_tui.core.errors import KiroTuiError, StoreError
from kiro_tui.core.events import AccountsChanged, EngineNotice, ImportFailed, RunnersChanged
from kiro_tui.core.importer import import_snapshot
from kiro_tui.core.models import PlaceRole
from kiro_tui.core.places import place_format
from kiro_tui.core.places.base import PlaceSignature, place_signature
from kiro_tui.core.runners import Runner
from kiro_tui.core.store import damage_message

if TYPE_CHECKING:
    from kiro_tui.core.engine import Engine
    from kiro_tui.core.notify import Announcer

log = logging.getLogger("kiro_tui.engine")


class Watcher:
    """The watch pass of one engine, and what it knew at the last one."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.signature: PlaceSignature | None = None
        """How kiro-cli's database looked (its file and -wal) when last imported."""
        self.place_signatures: dict[tuple[str, str], PlaceSignature] = {}
        """How each other source place looked when last read, by (kind, path)."""
        self.looked: dict[str, PlaceSignature] | None = None
        """How every place file looks in the watch pass under way (one stat each), once looked at."""
        self.places_quiet: tuple[object, ...] | None = None
        """What `_check_places` last compared every source place with (the places' version,
        `PlaceSync.looks`, kiro-cli's database): while it holds, nothing there is new."""
        self.known: dict[str, int] | None = None
        """The accounts' rows as the pass last read them (`AccountStore.digests`): what another
        process's commit is compared with (None until the first pass has read them)."""
        self.usage = quota.UsageQueue()
        """The accounts whose quota figures the next passes fetch, a few a pass."""
        self.store_failed = False
        """A pass failed because the store would not take a write: not over until it takes one."""
        self.runner: Runner | None = None
        self.keepers: str | None = None
        self.announcer: Announcer | None = None
        self.runner_beat_at: datetime | None = None

    async def loop(self) -> None:
        engine = self.engine
        while not engine.stopping:
            await engine.watch_pass()
            await engine.clock.sleep(engine.settings.watch_interval)

    async def run_pass(self) -> None:
        """One pass: kiro-cli's database, held tokens, pending places, other processes' commits,
        quota. Each step is guarded on its own."""
        engine = self.engine
        await engine.start()
        failed = False
        self.looked = None
        store_failed = False
        for step in (self._check_store_file, self._check_kiro_cli, self._check_places, self._retry_held,
                     self._check_linked_places, self._retry_places, self._notice_others, self._fetch_some_usage,
                     self._announce, self._note_runners):
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failed = True
                store_failed = store_failed or isinstance(exc, StoreError)
                damaged = damage_message(engine.store.path, exc)
                if isinstance(exc, StoreError) or damaged:  # disk full, read-only, locked: in words, no traceback
                    log.warning("background step %s failed: %s", step.__name__, damaged or exc)
                else:
                    log.exception("background step %s failed", step.__name__)
                engine._set_problem(f"{step.__name__.strip('_').replace('_', ' ')} failed: {damaged or exc}")
        if store_failed:
            self.store_failed = True
        if not failed and engine.problem and (" failed: " in engine.problem
                                              or engine.problem.startswith("background refresh stopped")):
            if self._store_takes_writes():
                engine._set_problem(None)  # a whole pass went through: that failure (or restart) is over
        self._update_problem()

    def _store_takes_writes(self) -> bool:
        """After a pass failed on a write: a pass may write nothing, so the store must take a write
        again before that problem is over (never "all is well" while another program holds it)."""
        if self.store_failed and not self.engine.store.writable(wait=0.5):
            return False
        self.store_failed = False
        return True

    def _update_problem(self) -> None:
        engine = self.engine
        assert engine.refresher is not None
        if engine.network_error is not None:
            return
        held = engine.refresher.held
        if held:
            first = next(iter(held.values()))
            count = f"{len(held)} tokens" if len(held) > 1 else "1 token"
            engine._set_problem(f"{count} held in memory: {first.reason}")
        elif engine.refresher.store_problem:
            engine._set_problem(engine.refresher.store_problem)
        elif engine.problem and ("held in memory" in engine.problem or "not writable" in engine.problem) \
                and self._store_takes_writes():
            engine._set_problem(None)

    async def _check_kiro_cli(self) -> None:
        """Re-import when kiro-cli's database changed (mtime and size of it and its -wal)."""
        engine = self.engine
        db = engine.kiro_cli_db or imports.find_kiro_cli(engine)
        if db is None:
            return
        signature = place_signature(str(db), database=True)
        if signature == self.signature:
            return
        self.signature = signature
        if signature[0] is None:
            return
        try:
            await imports.import_kiro_cli(engine, db, automatic=True)
        except KiroTuiError as exc:
            engine.watch_error = str(exc)
            log.warning("re-import from kiro-cli failed: %s", exc)
            engine._emit(ImportFailed(str(exc), automatic=True))

    async def _check_places(self) -> None:
        """Re-import any other place an account was imported from, when its file changed: a
        tool there refreshed, logged in again, or logged out."""
        engine = self.engine
        assert engine.refresher is not None
        db = str(engine.kiro_cli_db) if engine.kiro_cli_db else None
        version = engine.store.places_version()
        every = engine.store.places()  # (kept in memory: no read unless someone committed)
        self.looked = looked = await engine.refresher.look_at_places()
        quiet = (version, engine.refresher.places.looks, db)
        if quiet == self.places_quiet:
            return  # the same places, looking as they did when all were compared: no step per place
        known = self.place_signatures
        places = {(p.kind, p.path) for p in every  # (one added or removed during the look: next pass)
                  if p.role is PlaceRole.SOURCE and p.path in looked and known.get((p.kind, p.path)) != looked[p.path]
                  and not (p.kind == imports.KIRO_CLI and p.path == db)}
        for kind, path in sorted(places):  # only those that look different: few, once the first pass is over
            signature = looked[path]
            first_look = (kind, path) not in known
            self.place_signatures[(kind, path)] = signature
            if first_look or signature[0] is None or engine.refresher.places.left_as_seen(path, signature):
                continue  # known as it is now (imported already, or written back by kiro-tui), or gone
            try:
                snapshot = await asyncio.to_thread(place_format(kind).scan, Path(path), engine.clock.now())
            except KiroTuiError as exc:
                log.warning("re-import from %s %s failed: %s", kind, path, exc)
                engine._emit(ImportFailed(f"{path}: {exc}", automatic=True))
                continue
            now = engine.clock.now()
            report = import_snapshot(engine.store, snapshot, now, engine.settings.default_import_mode, automatic=True,
                                     signature=repr(signature))  # taken before the scan: a later change differs
            imports.after_import(engine, report, automatic=True)
        self.places_quiet = quiet

    async def _check_store_file(self) -> None:
        """The store's file was replaced under us (a backup restored, a rename over it): reopen
        the file now at the path and carry the newer tokens held here into it, loudly."""
        engine = self.engine
        carried = engine.store.reopen_if_replaced()
        if carried is None:
            return
        text = (f"the account store {engine.store.path} was replaced while kiro-tui was running (a backup "
                f"restored?); reopened it and saved {len(carried)} newer token{'s' if len(carried) != 1 else ''} "
                "into it")
        log.warning("%s", text)
        engine._emit(EngineNotice(text, "Account store replaced"))
        await self._notice_others()  # (the store reopened: it answers "changed" once)
        engine._emit(AccountsChanged(None))

    async def _retry_held(self) -> None:
        engine = self.engine
        assert engine.refresher is not None
        if engine.refresher.held:
            ids = set(engine.refresher.held)
            try:
                await engine.refresher.commit_held()
            finally:  # (what was saved before a failure is rescheduled all the same)
                done = ids - set(engine.refresher.held)
                assert engine.scheduler is not None  # (built by start, with the refresher)
                for account_id in done:  # due by the stored token now (one that needed a login was off the schedule)
                    engine.scheduler.schedule(account_id)
            if done:
                engine.tell_saved_held()
                engine._emit(AccountsChanged(frozenset(done)))

    async def _check_linked_places(self) -> None:
        """A tool that refreshed by itself: its token is taken at once and passed on to the
        account's other places (not only when kiro-tui's own refresh comes due)."""
        engine = self.engine
        assert engine.refresher is not None
        adopted = await engine.refresher.adopt_from_changed_places(looked=self.looked)
        for account_id in adopted:
            assert engine.scheduler is not None  # (built by start, with the refresher)
            engine.scheduler.schedule(account_id)
        if adopted:
            engine._emit(AccountsChanged(frozenset(adopted)))

    async def _retry_places(self) -> None:
        assert self.engine.refresher is not None
        await self.engine.refresher.retry_pending_places()

    async def _notice_others(self) -> None:
        """Another kiro-tui process committed: reschedule, and say which accounts changed (those
        that differ from what the last pass read; every one when it has read none yet)."""
        engine = self.engine
        if not engine.store.others_committed():
            if self.known is None:  # what the next commit is compared with
                self.known = engine.store.digests()
            return
        rows = engine.store.digests()
        known = self.known or {}
        changed = {i for i in rows.keys() | known.keys() if rows.get(i) != known.get(i)}
        self.known = rows
        assert engine.scheduler is not None  # (built by start, before any pass)
        engine.scheduler.schedule_all()
        if changed:
            engine._emit(AccountsChanged(frozenset(changed)))

    async def _fetch_some_usage(self) -> None:
        await quota.fetch_some_usage(self.engine, self.usage)

    # ------------------------------------------------------------------ runners and notices

    def register_runner(self) -> None:
        engine = self.engine
        if engine.runner_kind is None:
            return
        try:
            self.runner = runners.register(engine.store, engine.runner_kind, engine.clock.now(),
                                           engine.settings.watch_interval)
        except StoreError as exc:
            log.warning("could not record this %s as a runner: %s", engine.runner_kind, exc)

    def unregister_runner(self) -> None:
        if self.runner is None:
            return
        try:
            runners.unregister(self.engine.store, self.runner)
        except StoreError as exc:  # it is not alive once its pid is gone
            log.warning("could not remove this %s from the runners: %s", self.engine.runner_kind, exc)
        self.runner = None

    async def _note_runners(self) -> None:
        """Record this pass (at most once per heartbeat) and say when who keeps the accounts
        fresh changed."""
        engine = self.engine
        now = engine.clock.now()
        if self.runner is not None and (self.runner_beat_at is None or
                                        (now - self.runner_beat_at).total_seconds() >= self.runner.interval):
            runners.record_pass(engine.store, self.runner, now)
            self.runner_beat_at = now
        if engine.runner_kind is None:
            return
        keepers = runners.describe_keepers(runners.runners(engine.store), now)
        if keepers != self.keepers:
            self.keepers = keepers
            engine._emit(RunnersChanged(keepers))

    async def _announce(self) -> None:
        if self.announcer is not None:
            await self.announcer.check()
