"""The store's writer (core/store/writer.py): jobs queued while a commit is under way share the next
commit; a job's own failure is its own, a write the store will not take is the whole group's; a
caller cancelled while its job waits takes it back unless it must see the job through; closing
commits what is queued; and the watch still tells another process's commit from the writer's."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kiro_tui.core.errors import StoreWriteError
from kiro_tui.core.store import AccountStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[AccountStore]:
    with AccountStore.open(tmp_path / "accounts.db") as opened:
        yield opened


def put(key: str, size: int = 1) -> Callable[[sqlite3.Connection], str]:
    def work(tx: sqlite3.Connection) -> str:
        tx.execute("INSERT INTO preferences (key, value) VALUES (?, ?)", (key, "x" * size))
        return key
    return work


def stored(store: AccountStore) -> set[str]:
    """The keys put, as another process reads them from the file."""
    with sqlite3.connect(store.path) as conn:
        return {key for (key,) in conn.execute("SELECT key FROM preferences WHERE key LIKE 'k%'")}


class Blocker:
    """A first job that keeps the writer busy until let go: what is queued meanwhile is one group."""

    def __init__(self, store: AccountStore) -> None:
        self.running, self.go = threading.Event(), threading.Event()

        def block(tx: sqlite3.Connection) -> None:
            self.running.set()
            assert self.go.wait(10)

        self.future = store.writer.submit(block, durable=False)
        assert self.running.wait(10)


def test_jobs_queued_during_a_commit_share_the_next_one(store: AccountStore) -> None:
    blocker = Blocker(store)
    futures = [store.writer.submit(put(f"k{n}"), durable=n == 0) for n in range(5)]
    groups = store.writer.groups
    blocker.go.set()
    assert [future.result(10) for future in futures] == [f"k{n}" for n in range(5)]
    assert store.writer.groups - groups == 2  # the blocker's, then one for all five
    assert stored(store) == {f"k{n}" for n in range(5)}


def test_a_job_that_raises_fails_alone_and_leaves_no_trace(store: AccountStore) -> None:
    def half_then_fail(tx: sqlite3.Connection) -> None:
        put("k-half")(tx)
        raise ValueError("a bug in this job")

    def bad_statement(tx: sqlite3.Connection) -> None:
        put("k-before-the-typo")(tx)
        tx.execute("SELECT * FROM no_such_table")

    blocker = Blocker(store)
    before = store.writer.submit(put("k-before"))
    failing = store.writer.submit(half_then_fail)
    duplicate = store.writer.submit(put("k-before"))  # its own IntegrityError, rolled back alone
    typo = store.writer.submit(bad_statement)  # SQLite's error, but the job's own: not "not writable"
    after = store.writer.submit(put("k-after"))
    blocker.go.set()
    assert before.result(10) == "k-before" and after.result(10) == "k-after"
    with pytest.raises(ValueError, match="a bug in this job"):
        failing.result(10)
    with pytest.raises(sqlite3.IntegrityError):
        duplicate.result(10)
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        typo.result(10)
    assert stored(store) == {"k-before", "k-after"}

    alone = store.writer.submit(half_then_fail)  # a group of its own: rolled back whole
    with pytest.raises(ValueError, match="a bug in this job"):
        alone.result(10)
    assert store.writer.submit(put("k-next")).result(10) == "k-next"
    assert stored(store) == {"k-before", "k-after", "k-next"}


def test_a_write_the_store_will_not_take_fails_the_whole_group_and_the_next_goes_through(
        store: AccountStore) -> None:
    pages = store.connection.execute("PRAGMA page_count").fetchone()[0]
    store.writer.submit(lambda tx: tx.execute(f"PRAGMA max_page_count = {pages + 2}").fetchall(), durable=False).result(10)
    blocker = Blocker(store)
    small = store.writer.submit(put("k-small"))
    big = store.writer.submit(put("k-big", size=64 * 1024))  # more pages than the file may grow by
    blocker.go.set()
    for future in (small, big):
        with pytest.raises(StoreWriteError) as caught:
            future.result(10)
        assert caught.value.reason == "disk full" and str(store.path) in str(caught.value)
    assert stored(store) == set()  # the small one was in the same transaction: rolled back with it

    store.writer.submit(lambda tx: tx.execute("PRAGMA max_page_count = 1073741823").fetchall(), durable=False).result(10)
    assert store.writer.submit(put("k-later")).result(10) == "k-later"
    assert stored(store) == {"k-later"}


async def test_a_caller_cancelled_while_queued_takes_its_job_back(store: AccountStore) -> None:
    blocker = Blocker(store)
    task = asyncio.create_task(store.writer.run(put("k-taken-back")))
    await asyncio.sleep(0.05)  # queued behind the blocker
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    blocker.go.set()
    assert store.writer.submit(put("k-next")).result(10) == "k-next"
    assert stored(store) == {"k-next"}


async def test_a_job_seen_through_commits_despite_a_cancel_and_the_cancel_still_comes(
        store: AccountStore) -> None:
    blocker = Blocker(store)
    reached: list[str] = []

    async def commit_then_go_on() -> None:
        reached.append(await store.writer.run(put("k-token"), see_through=True))
        await asyncio.sleep(10)  # the cancel is delivered here, at the next await
        reached.append("not cancelled")

    task = asyncio.create_task(commit_then_go_on())
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.sleep(0.05)
    assert not task.done()  # still waiting for its commit
    blocker.go.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    assert reached == ["k-token"]
    assert stored(store) == {"k-token"}


def test_closing_commits_what_is_queued_and_refuses_what_comes_after(tmp_path: Path) -> None:
    store = AccountStore.open(tmp_path / "accounts.db")
    blocker = Blocker(store)
    queued = [store.writer.submit(put(f"k{n}")) for n in range(3)]
    closing = threading.Thread(target=store.close)
    closing.start()
    blocker.go.set()
    closing.join(10)
    assert not closing.is_alive()
    assert [future.result(0) for future in queued] == ["k0", "k1", "k2"]
    late = store.writer.submit(put("k-late"))
    with pytest.raises(StoreWriteError, match="closed"):
        late.result(0)
    assert stored(store) == {"k0", "k1", "k2"}


def test_the_writers_commits_are_ours_another_processes_are_not(store: AccountStore) -> None:
    assert store.others_committed()  # the first look: nothing seen yet
    assert not store.others_committed()
    store.writer.submit(put("k-ours")).result(10)
    with store.transaction() as tx:
        put("k-ours-too")(tx)
    assert not store.others_committed()

    with AccountStore.open(store.path) as other:  # another kiro-tui process
        with other.transaction() as tx:
            put("k-theirs")(tx)
    store.writer.submit(put("k-ours-again")).result(10)
    assert store.others_committed()
    assert not store.others_committed()

    with sqlite3.connect(store.path) as conn:  # a program that counts no generation
        put("k-foreign")(conn)
    assert store.others_committed()


def test_if_the_writer_itself_fails_every_caller_hears_at_once(store: AccountStore) -> None:
    """A failure of the thread (not of a job: a job's exceptions are answered) must not leave a
    refresh waiting for ever on a job nobody will run."""
    class Escapes(BaseException):
        pass

    def escape(tx: sqlite3.Connection) -> None:
        raise Escapes

    blocker = Blocker(store)
    dying = store.writer.submit(escape)
    queued = store.writer.submit(put("k-queued"))
    blocker.go.set()
    for future in (dying, queued):
        with pytest.raises(StoreWriteError, match="its writer stopped"):
            future.result(10)
    with pytest.raises(StoreWriteError):
        store.writer.submit(put("k-later")).result(10)
    assert stored(store) == set()


def test_a_reopened_store_gets_what_the_writer_had_queued_for_the_old_file(tmp_path: Path) -> None:
    """The file is replaced (a backup restored) while the writer has a new token queued: it
    lands in the old file before the reopen reads it, and is carried into the new one."""
    from tests.test_store import NOW, make_account

    path = tmp_path / "accounts.db"
    with AccountStore.open(path) as store:
        account = make_account()
        store.save(account)
        replacement = tmp_path / "restored.db"
        with sqlite3.connect(path) as source, sqlite3.connect(replacement) as copy:
            source.backup(copy)

        def new_token(tx: sqlite3.Connection) -> None:
            store.update(account.id, tx, refresh_token="aorNEWTOKEN")
            store.add_lineage(tx, account.id, [account.refresh_token, "aorNEWTOKEN"], NOW)

        blocker = Blocker(store)
        committed = store.writer.submit(new_token)
        os.replace(replacement, path)
        reopening = threading.Thread(target=store.reopen_if_replaced)
        reopening.start()
        reopening.join(0.2)
        assert reopening.is_alive()  # waiting for the writer's work to land first
        blocker.go.set()
        reopening.join(10)
        committed.result(0)
        assert store.get(account.id).refresh_token == "aorNEWTOKEN"  # type: ignore[union-attr]
    with sqlite3.connect(path) as conn:  # the file now at the path, as the next process reads it
        assert conn.execute("SELECT refresh_token FROM accounts").fetchall() == [("aorNEWTOKEN",)]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads the open files from /proc")
def test_a_groups_savepoints_make_no_scratch_file(store: AccountStore) -> None:
    """Savepoints past 64 KiB used to spill into a file SQLite creates and deletes in /var/tmp:
    an inode and a syscall round inside the wait of every token in the group."""
    def scratch_files(tx: sqlite3.Connection) -> list[str]:  # (open until the transaction ends)
        targets = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                targets.append(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:  # the listing's own descriptor, closed by now
                continue
        return [target for target in targets if "etilqs" in target]  # SQLite's temporary files

    blocker = Blocker(store)
    big = [store.writer.submit(put(f"k{n}", size=200_000)) for n in range(3)]
    updates = store.writer.submit(lambda tx: tx.execute("UPDATE preferences SET value = value || 'y'").rowcount)
    probe = store.writer.submit(scratch_files)
    blocker.go.set()
    assert updates.result(10) >= 3 and [future.result(10) for future in big] == ["k0", "k1", "k2"]
    assert probe.result(10) == []
