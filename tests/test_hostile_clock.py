"""The clock (issue 20, item 8): a laptop resuming from suspend (the wall clock jumps forward) or
a clock set back must neither leave expired logins unrefreshed nor let tokens die in the service
while kiro-tui thinks they are fresh, nor start a storm of refreshes.

First with an injected clock (`ManualClock.jump` moves only the wall clock), then the real
thing: `kiro-tui watch` under an LD_PRELOAD shim that shifts only CLOCK_REALTIME."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from kiro_tui.core.clock import ManualClock
from kiro_tui.core.config import Settings
from kiro_tui.core.models import Outcome
from kiro_tui.core.refresh import RefreshClients, Refresher
from kiro_tui.core.scheduler import RECHECK, RefreshScheduler
from kiro_tui.core.store import AccountStore
from tests.support.engine import account_from_seed, at

ACCOUNTS = 4


@pytest.fixture
async def loop_rig(tmp_path: Path, emulator, emulator_time, http, endpoints):
    clock = ManualClock(at(emulator_time.now))
    with AccountStore.open(tmp_path / "accounts.db") as store:
        for number in range(ACCOUNTS):
            seeded = emulator.seed(kind="social", email=f"clock{number}@example.com")
            store.save(account_from_seed(seeded, f"clk{number}"))
        refresher = Refresher(store, RefreshClients.create(http, endpoints), clock, Settings(), rng=random.Random(1))
        scheduler = RefreshScheduler(store, refresher, clock, Settings())
        scheduler.keep_results = True
        task = asyncio.create_task(scheduler.run())
        await settle(scheduler)
        try:
            yield store, scheduler, clock
        finally:
            scheduler._stopping = True
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def settle(scheduler: RefreshScheduler) -> None:
    """Let the loop run and every refresh it started finish (they talk HTTP to the emulator)."""
    for _ in range(5):
        for _ in range(20):
            await asyncio.sleep(0)
        await scheduler.wait_idle()


async def let_time_pass(scheduler: RefreshScheduler, clock: ManualClock, seconds: float, step: float = 5.0) -> None:
    passed = 0.0
    while passed < seconds:
        clock.advance(step)
        passed += step
        await settle(scheduler)


def refreshed(scheduler: RefreshScheduler) -> Counter[str]:
    return Counter(r.account_id for r in scheduler.results if r.outcome is Outcome.REFRESHED)


async def test_a_jump_forward_refreshes_every_expired_login_within_the_recheck(loop_rig) -> None:
    store, scheduler, clock = loop_rig
    assert not refreshed(scheduler)  # every token fresh for the next hour: nothing to do yet

    clock.jump(2 * 3600)  # resumed from two hours of suspend: no monotonic time passed
    await let_time_pass(scheduler, clock, RECHECK + 1)

    assert refreshed(scheduler) == Counter({f"clk{n}": 1 for n in range(ACCOUNTS)})
    assert all(a.expires_at > clock.now() for a in store.accounts())


async def test_after_a_jump_back_tokens_are_refreshed_before_they_die_and_nothing_storms(loop_rig) -> None:
    store, scheduler, clock = loop_rig
    really_expire = {a.id: a.expires_at for a in store.accounts()}  # on the clock as it was
    clock.jump(-3600)  # set back an hour: every stored expiry is now an hour later than the truth
    window = Settings().window.total_seconds()

    await let_time_pass(scheduler, clock, 3600 - window + RECHECK + 5)  # the truth: they are due now

    assert refreshed(scheduler) == Counter({f"clk{n}": 1 for n in range(ACCOUNTS)})
    first = {r.account_id: r for r in scheduler.results if r.outcome is Outcome.REFRESHED}
    for account_id, result in first.items():
        # refreshed at t on the clock as it is now, t + 1 h on the clock the old expiry was counted on;
        # the new token lives 1 h from t: so t + 1 h before the old expiry means the old token still lived
        assert result.expires_at < really_expire[account_id], account_id

    await let_time_pass(scheduler, clock, 2 * 3600, step=30)  # two more hours: a refresh per token life

    counts = refreshed(scheduler)
    assert all(2 <= counts[f"clk{n}"] <= 4 for n in range(ACCOUNTS)), counts


# ---------------------------------------------------------------- the real clock, shifted

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <sys/time.h>

/* Shift CLOCK_REALTIME (only) by the seconds written in $FAKE_REALTIME_OFFSET_FILE. */
static int (*real_clock_gettime)(clockid_t, struct timespec *);
static time_t checked;
static long offset;

static void read_offset(time_t now) {
    if (now == checked) return;
    checked = now;
    const char *name = getenv("FAKE_REALTIME_OFFSET_FILE");
    FILE *file = name ? fopen(name, "r") : NULL;
    if (file) { if (fscanf(file, "%ld", &offset) != 1) offset = 0; fclose(file); }
}

int clock_gettime(clockid_t id, struct timespec *ts) {
    if (!real_clock_gettime) real_clock_gettime = dlsym(RTLD_NEXT, "clock_gettime");
    int result = real_clock_gettime(id, ts);
    if (result == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) {
        struct timespec mono;
        real_clock_gettime(CLOCK_MONOTONIC_COARSE, &mono);
        read_offset(mono.tv_sec);
        ts->tv_sec += offset;
    }
    return result;
}

int gettimeofday(struct timeval *tv, void *tz) {
    struct timespec ts;
    int result = clock_gettime(CLOCK_REALTIME, &ts);
    if (result == 0 && tv) { tv->tv_sec = ts.tv_sec; tv->tv_usec = ts.tv_nsec / 1000; }
    return result;
}

time_t time(time_t *out) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (out) *out = ts.tv_sec;
    return ts.tv_sec;
}
"""


@pytest.fixture(scope="module")
def realtime_shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None or os.name != "posix":
        pytest.skip("no C compiler here to build the CLOCK_REALTIME shim (LD_PRELOAD); the injected-clock tests "
                    "above cover the scheduler")
    folder = tmp_path_factory.mktemp("shim")
    (folder / "shim.c").write_text(SHIM)
    built = subprocess.run([compiler, "-shared", "-fPIC", "-O1", "-o", str(folder / "shim.so"), str(folder / "shim.c"),
                            "-ldl"], capture_output=True, text=True)
    if built.returncode != 0:
        pytest.skip(f"the CLOCK_REALTIME shim did not build: {built.stderr.strip()[:200]}")
    return folder / "shim.so"


def test_the_shim_shifts_only_the_wall_clock(realtime_shim: Path, tmp_path: Path) -> None:
    offset = tmp_path / "offset"
    offset.write_text("7200")
    probe = ("import time; w, m = time.time(), time.monotonic(); "
             "import datetime; print(w, m, datetime.datetime.now().timestamp())")
    env = {**os.environ, "LD_PRELOAD": str(realtime_shim), "FAKE_REALTIME_OFFSET_FILE": str(offset)}
    wall, mono, now = map(float, subprocess.run([os.sys.executable, "-c", probe], env=env, capture_output=True,
                                                text=True, check=True).stdout.split())
    assert 7190 < wall - time.time() < 7210 and 7190 < now - time.time() < 7210
    assert abs(mono - time.monotonic()) < 60
@pytest.mark.slow


def test_watch_refreshes_every_expired_login_within_30_s_of_a_two_hour_jump_and_no_storm_after_a_jump_back(
        realtime_shim: Path, kiro_tui_exe: str, emulator, emulator_time, tmp_path: Path) -> None:
    from kiro_tui.core import paths
    from tests.support.watch import Watch

    emulator_time.now = time.time()  # tokens that expire an hour from the real now
    accounts = 6
    with AccountStore.open(paths.store_file()) as store:
        for number in range(accounts):
            seeded = emulator.seed(kind="social", email=f"shim{number}@example.com")
            store.save(account_from_seed(seeded, f"shim{number}"))
    offset = tmp_path / "offset"
    offset.write_text("0")
    env = {"LD_PRELOAD": str(realtime_shim), "FAKE_REALTIME_OFFSET_FILE": str(offset),
           "KIRO_TUI_ENDPOINT_URL": emulator.url}
    watch = Watch(kiro_tui_exe, env)
    try:
        watch.wait_for_line("watching 6 accounts")
        time.sleep(2)

        def refreshes() -> int:
            return len([r for r in emulator.requests() if r["path"] == "/refreshToken" and r["status"] == 200])

        assert refreshes() == 0  # fresh for an hour: nothing due
        offset.write_text(str(2 * 3600))  # resumed after two hours
        jumped = time.monotonic()
        while refreshes() < accounts and time.monotonic() - jumped < 30:
            time.sleep(0.2)
        assert refreshes() == accounts, f"{refreshes()} of {accounts} refreshed within 30 s:\n{watch.err}"
        assert "jumped forward" in watch.err

        offset.write_text(str(3600))  # and back an hour: the new tokens still live ~1 h on the clock as it is
        time.sleep(RECHECK + 5)
        assert refreshes() == accounts, f"a storm after the jump back:\n{watch.err}"
        assert "jumped back" in watch.err
    finally:
        watch.kill()
