"""Group commit off the event loop: the answers that rest on a first sight (or make a
notice due, or enter an IMEI automatically) leave only once those rows are on disk, and
no database write ever stalls the answers that do not.

``GroupCommit.wait()`` gives an answer a future that is True once every durable row
queued so far is committed. One task writes batch after batch. On a SQLite file a batch's
statements run on the loop (a millisecond or two; they never wait for another process's
lock: they fail at once and are retried) and its COMMIT, the fsync and SQLite's
checkpoints, in a worker thread with the Recorder's own writer connection; a batch of more
than ``STAGED_ROWS`` rows, and every batch elsewhere (PostgreSQL), runs whole in the
thread. So other peers' answers go on while the database waits for the disk. The
periodic ``flush`` writes the sights kept in memory through the same task, so there is
one writer and one order.

When the database refuses writes (another process holds the lock, a read-only file, a
full disk) the rows stay queued and are retried every ``RETRY_SECONDS``; an answer that
waited ``timeout`` seconds (``limits.commit_timeout``) gets ``False``: the interface
answers that it cannot comply (S13 5012 DIAMETER_UNABLE_TO_COMPLY, MAP systemFailure),
so the MME or MSC applies its own fallback, and no white or grey answer ever rests on a
first sight that is not on disk. Each is counted; the Recorder logs the write failures at
most once every ten seconds. Answers' deadlines are on the event loop's clock: a wait for
the disk is real time, whatever calendar time the registry's clock says (a lab clock that
jumps 30 days must not expire them).

While the registry cannot be read (agent/dbhealth.py: ``health``) nothing is written: the
answers still waiting get False at once, the rows stay queued. When it answers a probe
again, the sights kept meanwhile are written first (in the order made, ``BACKLOG_BATCH``
pairs a transaction; the health reads again once they are all on disk), then the rows
queued as always. On PostgreSQL a write's waits end ``WRITE_SECONDS`` after it began
(registry/bounded.py): a server that stopped answering fails the write, which is retried.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from registry.deadline import within
from registry.observations import Batch, Recorder

if TYPE_CHECKING:
    from agent.dbhealth import DatabaseHealth

log = logging.getLogger("eir.durable")
A = TypeVar("A")
T = TypeVar("T")
COMMIT_TIMEOUT = 1.0  # seconds an answer waits for its rows to be on disk before 5012 / systemFailure
RETRY_SECONDS = 0.05  # between attempts while the database refuses writes
STAGED_ROWS = 512  # rows a batch may have for its statements to run on the loop (about 12 ms); more: all in the thread
SWITCH_INTERVAL = 0.0005  # seconds a thread may keep the GIL while the writer waits for it
WRITE_SECONDS = 5.0  # a write's waits on a network database end this long after it began
UNREACHABLE_EXIT_SECONDS = 1.0  # at exit, while the registry is unreachable: one last try, this long


class GroupCommit:
    """One writer of the Recorder's batches, off the event loop."""

    def __init__(self, recorder: Recorder, timeout: float = COMMIT_TIMEOUT, *,
                 health: DatabaseHealth | None = None) -> None:
        self.recorder = recorder
        self.timeout = timeout
        self.health = health
        if health is not None:
            health.on_return(self.flush)
            health.on_down(self._refuse_waiting)
        self.loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="eir-commit") if recorder.threaded else None
        if self._executor is not None:
            # The writer thread needs the GIL back between its statements and after each
            # fsync; at the default 5 ms switch interval a busy event loop kept it waiting
            # that long each time, and every answer held for the commit with it.
            sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
        self._waiters: list[tuple[float, asyncio.Future[bool]]] = []
        self._in_flight: list[tuple[float, asyncio.Future[bool]]] = []  # the waiters of the write in progress
        self._flush_due = False
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.unrecorded = 0  # answers that waited longer than ``timeout``: refused
        self.waiting_peak = 0

    @property
    def waiting(self) -> int:
        """Answers waiting for a commit now."""
        return len(self._waiters)

    def wait(self) -> asyncio.Future[bool]:
        """A future: True once every durable row queued so far is on disk, False when that
        took longer than ``timeout`` (the rows stay queued and are written later)."""
        future: asyncio.Future[bool] = self.loop.create_future()
        self._waiters.append((self.loop.time() + self.timeout, future))
        self.waiting_peak = max(self.waiting_peak, len(self._waiters))
        self._start()
        return future

    def flush(self) -> None:
        """Write the sights kept in memory with the next batch (the agent: every 0.2 s)."""
        self._flush_due = True
        self._start()

    def _start(self) -> None:
        if self._task is None and not self._closing:
            self._task = self.loop.create_task(self._run())

    async def _run(self) -> None:
        try:
            while (self._waiters or self._flush_due) and not self._closing:
                if not await self._registry_ready():
                    break
                waiters, self._waiters = self._waiters, []
                self._in_flight = waiters
                batch = self.recorder.take(later=self._flush_due)
                self._flush_due = False
                error = await self._write(batch)
                if self.recorder.settle(batch, error):
                    _resolve(waiters, True)
                    continue
                self._waiters = self._expire(waiters) + self._waiters
                await asyncio.sleep(RETRY_SECONDS)
        finally:
            self._task = None

    async def _registry_ready(self) -> bool:
        """Whether to write now: not while the registry is unreachable (the answers waiting
        get False at once; the rows stay queued until it returns). When it is returning,
        the sights kept meanwhile are written first."""
        health = self.health
        if health is None:
            return True
        if not health.writable:
            self._refuse_waiting()
            return False
        while health.returning and health.backlog and not self._closing:
            rows = health.backlog.take()
            error = await self._write(Batch(later=rows))
            if error is not None:
                health.backlog.put_back(rows)
                health.write_failed(error)
                return False
            self.recorder.registry.renew()
        health.written()
        return True

    async def _write(self, batch: Batch) -> BaseException | None:
        if not batch:
            return None
        try:
            if self._executor is None:
                self.recorder.write(batch)
            elif self.recorder.stages and len(batch) <= STAGED_ROWS:
                self.recorder.stage(batch)  # on the loop, a millisecond or two; never waits for a lock
                await self.loop.run_in_executor(self._executor, self.recorder.commit_staged)
            else:
                await self.loop.run_in_executor(self._executor, _bounded, self.recorder.write, batch)
        except Exception as error:  # any refusal of the database: the rows are kept and retried
            return error
        return None

    def _refuse_waiting(self) -> None:
        """Every answer waiting gets False now, those of the write in flight too: the registry
        is unreachable (the rows stay queued)."""
        waiting = [(deadline, future) for deadline, future in (*self._in_flight, *self._waiters) if not future.done()]
        self.unrecorded += len(waiting)
        _resolve(waiting, False)
        self._waiters = []

    def _expire(self, waiters: list[tuple[float, asyncio.Future[bool]]]) -> list[tuple[float, asyncio.Future[bool]]]:
        """Answer False to the waiters whose time is up; the others wait for the next attempt."""
        now = self.loop.time()
        waiters = [(deadline, future) for deadline, future in waiters if not future.done()]
        late = [(deadline, future) for deadline, future in waiters if deadline <= now]
        if late:
            self.unrecorded += len(late)
            _resolve(late, False)
        return [(deadline, future) for deadline, future in waiters if deadline > now]

    async def close(self) -> bool:
        """Let the write in progress settle, then write everything queued on this thread;
        True when nothing was left unwritten. Answers still waiting get False."""
        self._closing = True
        _resolve(self._waiters, False)
        self._waiters = []
        if self._task is not None:
            await asyncio.wait({self._task})  # the write in progress: at most the writer's busy timeout
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        unreachable = self.health is not None and not self.health.writable
        with within(UNREACHABLE_EXIT_SECONDS if unreachable else WRITE_SECONDS):  # a hung server must not hold the exit
            kept = self._write_kept()
            return self.recorder.close() and kept

    def _write_kept(self) -> bool:
        """At exit: the sights kept while the registry was unreachable, on this thread; True
        when none is left (those that are stay counted in the health's backlog)."""
        health = self.health
        while health is not None and health.backlog:
            rows = health.backlog.take()
            try:
                self.recorder.write(Batch(later=rows))
            except Exception as error:  # the registry is still unreachable
                health.backlog.put_back(rows)
                log.error("%d sights kept while the registry was unreachable are not written at exit: %s",
                          len(health.backlog), error)
                return False
        return True


def _bounded(call: Any, *args: Any) -> None:
    """``call(*args)`` on a writer thread, its database waits ending after WRITE_SECONDS."""
    with within(WRITE_SECONDS):
        call(*args)


def _resolve(waiters: list[tuple[float, asyncio.Future[bool]]], value: bool) -> None:
    for _, future in waiters:
        if not future.done():
            future.set_result(value)


def then(waited: asyncio.Future[A], answer: Callable[[A], T]) -> asyncio.Future[T]:
    """A future of ``answer(result)``, once ``waited`` is done (a ``GroupCommit.wait()``, or
    another ``then``)."""
    result: asyncio.Future[T] = waited.get_loop().create_future()

    def done(future: asyncio.Future[A]) -> None:
        try:
            result.set_result(answer(future.result()))
        except Exception as error:  # a bug in the answer: the transport logs it, the request is released
            result.set_exception(error)

    waited.add_done_callback(done)
    return result
