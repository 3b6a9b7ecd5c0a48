"""The place writes' own process: a burst of place writes runs there, on its threads, so that
their Python never takes the interpreter lock from the event loop.

Why a process: each place write is a few dozen system calls with Python between them (a JSON
file's compare-and-swap, a temporary file, fsyncs, a rename; a tool's SQLite database). On the
lane's threads in kiro-tui's own process, every one of those calls let the loop and the writers
take the interpreter lock from each other. With three links per account (`refresh_throughput
--links 3`, 1,000 accounts, on this project's 2-core machine) that cost 230-290 voluntary
thread switches a refresh against 40-70 with the writes here, and the run took 13.9-15.2 s
on threads against 8.5-11.2 s here (7.6-7.9 s with no links, the same evening).

The lane (core/lane.py) starts it for a burst only: when a job finds all the lane's threads
busy. Someone with a few accounts never has it. It ends after `IDLE_EXIT` seconds without a
job, and when the lane closes (once the jobs sent to it are done); it also ends by itself when
kiro-tui's process is gone (its socket closes), after finishing the write it is making: a kill
of kiro-tui never leaves a place half written by it. Ctrl-C and a closed terminal never reach
it (a session of its own), and it ignores SIGINT, SIGTERM and SIGHUP sent to it: they are
kiro-tui's to answer (it ends its own refreshes, then closes this).

A job is a picklable callable (a module-level function with its arguments); what it logs is
sent back with its answer and logged by kiro-tui's own loggers. It writes nothing on the
terminal (Textual draws there).
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

log = logging.getLogger("kiro_tui.places")

IDLE_EXIT = 60.0
"""Seconds without a job after which the process ends (started again by the next burst)."""

_CHILD = ("import signal, sys\n"
          "for name in ('SIGINT', 'SIGTERM', 'SIGHUP'): signal.signal(getattr(signal, name), signal.SIG_IGN)\n"
          "if sys.argv[3] not in sys.path: sys.path.insert(0, sys.argv[3])\n"
          "from kiro_tui.core.place_worker import serve\n"
          "serve(int(sys.argv[1]), int(sys.argv[2]))")
"""The process's program: signals ignored first of all (see the module's docstring). Run with
`-P`: the folder kiro-tui was started in is not searched for modules (a `socket.py` there would
run with the tokens). The folder kiro_tui was imported from comes first only when it is not
on the path already (a source checkout): an installed kiro-tui's site-packages keeps its place
behind the standard library."""
_READY = 0
"""The job id of the message the process sends once it is ready to take jobs."""


class PlaceWorkerGone(Exception):
    """The process ended (killed) before it answered this job, which may have been under way:
    its places stay pending and are written again later."""


class NotRun(PlaceWorkerGone):
    """The process never took this job (it ended, or never became ready, before it was sent
    or read): it can be run elsewhere."""


class PlaceWorker:
    """kiro-tui's side of the process: jobs are sent `writers` at a time once it is ready (the
    rest wait here, where a job not yet sent can still be taken back), answers are read on a
    thread of its own."""

    def __init__(self, writers: int, idle_exit: float = IDLE_EXIT) -> None:
        ours, theirs = socket.socketpair()
        root = str(Path(__file__).resolve().parents[2])  # the folder kiro_tui is imported from
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-P", "-c", _CHILD, str(theirs.fileno()), str(writers), root],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True)  # (the terminal's signals are not its)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._connection = Connection(ours.detach())
        self._writers, self._idle_exit = writers, idle_exit
        self._lock = threading.Lock()
        self._sent: dict[int, Future[Any]] = {}
        self._waiting: deque[tuple[int, bytes, Future[Any]]] = deque()
        self._next_id = _READY
        self._winding_down = False
        self.ready = False
        """It said it is ready: from then on it reads the jobs sent."""
        self.answered = 0
        """Jobs it answered."""
        self._reader = threading.Thread(target=self._read, name="kiro-tui place worker", daemon=True)
        try:
            self._reader.start()
        except BaseException:
            self._process.kill()
            self._connection.close()
            raise

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def winding_down(self) -> bool:
        """It takes no more jobs (idle, closed, or gone): the lane starts another if need be."""
        return self._winding_down

    def submit(self, job: Callable[[], Any]) -> Future[Any] | None:
        """Queue `job` for the process; None when it is ending (or gone) or `job` cannot be sent
        (not picklable): the caller runs it elsewhere."""
        try:
            payload = pickle.dumps(job)
        except (pickle.PicklingError, TypeError, AttributeError):
            return None
        future: Future[Any] = Future()
        with self._lock:
            if self._winding_down:
                return None
            self._next_id += 1
            self._waiting.append((self._next_id, payload, future))
            self._send_waiting()
        return future

    def close(self) -> None:
        """Send every waiting job, then tell the process no more will come: it ends once they
        are done (their answers are still read)."""
        with self._lock:
            if self._winding_down:
                return
            self._winding_down = True
            self._send_waiting(everything=True)
            self._stop_sending()

    def _send_waiting(self, everything: bool = False) -> None:
        """(Under the lock.) Once it is ready, send waiting jobs while fewer than `writers` are
        out (`everything`: all of them, ready or not: it reads them once it is)."""
        while self._waiting and (everything or (self.ready and len(self._sent) < self._writers)):
            job_id, payload, future = self._waiting.popleft()
            if not future.set_running_or_notify_cancel():
                continue  # taken back by its caller before it was sent: never made
            try:
                self._connection.send((job_id, payload))
            except OSError:  # the process is gone before it could read it
                future.set_exception(NotRun("kiro-tui's place writer process stopped before it took the job"))
                continue
            self._sent[job_id] = future

    def _stop_sending(self) -> None:
        try:
            with socket.socket(fileno=os.dup(self._connection.fileno())) as ours:
                ours.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _read(self) -> None:
        """Answers as they come; after `idle_exit` seconds with nothing out, the process is told
        to end. When it has ended, every job not answered fails (`_gone`)."""
        try:
            while True:
                if not self._connection.poll(None if self._sent or self._waiting else self._idle_exit):
                    with self._lock:
                        if not self._sent and not self._waiting and not self._winding_down:
                            self._winding_down = True
                            self._stop_sending()
                    continue
                job_id, answer = self._connection.recv()
                if job_id == _READY:
                    with self._lock:
                        self.ready = True
                        self._send_waiting(everything=self._winding_down)
                    continue
                self._answer(job_id, answer)
        except (EOFError, OSError):
            pass
        except Exception:  # a bug here must not leave callers waiting for ever
            log.exception("reading the place writer process's answers failed")
        finally:
            self._gone()

    def _answer(self, job_id: int, answer: bytes) -> None:
        try:
            ok, value, records = pickle.loads(answer)
        except Exception as exc:  # noqa: BLE001 - e.g. kiro-tui upgraded under a running process: this job's failure
            ok, value, records = False, f"its answer could not be read ({type(exc).__name__}: {exc})", []
        for record in records:
            logger = logging.getLogger(record.name)
            if logger.isEnabledFor(record.levelno):
                logger.handle(record)
        with self._lock:
            self.answered += 1
            future = self._sent.pop(job_id, None)
            self._send_waiting(everything=self._winding_down)
        if future is not None:
            if ok:
                future.set_result(value)
            else:
                future.set_exception(PlaceWorkerGone(f"kiro-tui's place writer process failed a job: {value}"))

    def _gone(self) -> None:
        with self._lock:
            self._winding_down = True
            sent, self._sent = list(self._sent.values()), {}
            waiting = [future for _, _, future in self._waiting if future.set_running_or_notify_cancel()]
            self._waiting.clear()
        self._connection.close()
        try:
            code = self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            code = self._process.wait()
        if not self.ready:
            log.warning("kiro-tui's place writer process did not start (exit code %s): place writes stay on "
                        "kiro-tui's own threads", code)
        elif sent:
            log.warning("kiro-tui's place writer process stopped (exit code %s) with %d job(s) under way: "
                        "their places stay pending and are written again", code, len(sent))
        for future in sent:  # read by the process once it was ready: perhaps under way
            future.set_exception(PlaceWorkerGone(f"kiro-tui's place writer process stopped (exit code {code})")
                                 if self.ready else NotRun("kiro-tui's place writer process did not start"))
        for future in waiting:
            future.set_exception(NotRun("kiro-tui's place writer process stopped before it took the job"))


# ---------------------------------------------------------------------- the process itself

_job_records = threading.local()


class _Collect(logging.Handler):
    """What a job logs, kept for its answer (the process has no terminal of its own to write)."""

    def emit(self, record: logging.LogRecord) -> None:
        records = getattr(_job_records, "records", None)
        if records is None:
            return
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg, record.args, record.exc_info = record.getMessage(), None, None
        records.append(record)


def serve(fd: int, writers: int) -> None:
    """The process's loop: say it is ready, run each job sent on a thread of `writers`, answer
    it; end when kiro-tui sends no more (its socket closed) once every job taken is answered."""
    root = logging.getLogger()
    root.handlers[:] = [_Collect()]
    root.setLevel(logging.INFO)
    connection = Connection(fd)
    answering = threading.Lock()
    connection.send((_READY, b""))
    with ThreadPoolExecutor(max_workers=writers, thread_name_prefix="kiro-tui places") as threads:
        while True:
            try:
                job_id, payload = connection.recv()
            except (EOFError, OSError):
                break
            threads.submit(_run, connection, answering, job_id, payload)
    connection.close()


def _run(connection: Connection, answering: threading.Lock, job_id: int, payload: bytes) -> None:
    records: list[logging.LogRecord] = []
    _job_records.records = records
    try:
        value, ok = pickle.loads(payload)(), True
    except BaseException as exc:  # a job's failure is told to kiro-tui, never left unanswered
        logging.getLogger("kiro_tui.places").exception("a place write job failed")
        value, ok = f"{type(exc).__name__}: {exc}", False
    finally:
        _job_records.records = None
    try:
        answer = pickle.dumps((ok, value, records))
    except BaseException as exc:  # noqa: BLE001 - an answer that cannot be sent is still an answer
        answer = pickle.dumps((False, f"its answer could not be sent ({type(exc).__name__}: {exc})", []))
    with answering:
        try:
            connection.send((job_id, answer))
        except OSError:  # kiro-tui is gone: what was written stays written
            pass


def available() -> bool:
    """Whether this platform can run the process (a POSIX system with a Python to start)."""
    return os.name == "posix" and bool(sys.executable)


