"""Wake long-polling claimers when tasks become claimable, without a thread or connection each.

Each claimer parks one future; a transaction that made `n` tasks claimable wakes `n` of them
(waking every claimer for one task makes all but one run a claim for nothing). A woken claimer
that finds nothing it can run passes the wakeup on, at most once round the current claimers, so a
task that fits only some workers still reaches one. With Postgres, such transactions also
`NOTIFY morphml_tasks, '<origin>:<n>'` and every replica LISTENs, so replicas wake each other.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from collections import deque

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

CHANNEL = "morphml_tasks"
log = logging.getLogger("morphml.server")
# A wakeup's value: how many more claimers it may be passed to before it is dropped.
Hops = int


class ClaimWaker:
    """Claimers `park()` before trying to claim, then await the future; `notify(n)` wakes n."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: deque[asyncio.Future[Hops]] = deque()
        # Our own NOTIFYs come back through LISTEN; this tells them apart (already woken locally).
        self.origin = uuid.uuid4().hex

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiters = deque()

    def park(self) -> asyncio.Future[Hops]:
        waiter: asyncio.Future[Hops] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return waiter

    def unpark(self, waiter: asyncio.Future[Hops]) -> None:
        """Leave the queue; a wakeup this waiter already got but did not use goes to the next."""
        if waiter.done() and not waiter.cancelled():
            self.pass_on(waiter.result())
            return
        waiter.cancel()
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass

    def notify(self, count: int = 1) -> None:
        for _ in range(count):
            if not self._wake_one(len(self._waiters)):
                return

    def notify_all(self) -> None:
        self.notify(len(self._waiters))

    def pass_on(self, hops: Hops) -> None:
        if hops > 0:
            self._wake_one(hops - 1)

    def _wake_one(self, hops: Hops) -> bool:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(hops)
                return True
        return False

    def notify_threadsafe(self, count: int) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.notify, count)


_WAKERS: weakref.WeakKeyDictionary[Engine, ClaimWaker] = weakref.WeakKeyDictionary()


def waker_for(engine: Engine) -> ClaimWaker:
    """The one waker of an engine (one app, one engine)."""
    waker = _WAKERS.get(engine)
    if waker is None:
        waker = _WAKERS[engine] = ClaimWaker()
    return waker


# Key in the DBAPI connection's `info` dict: tasks this transaction made claimable.
_ANNOUNCED = "morphml_announced"


def announce_tasks(target: Session | Connection, count: int = 1) -> None:
    """Call inside a unit of work (`server.db.unit` / `transaction`) that made `count` tasks
    claimable: claimers wake once it commits, other replicas through NOTIFY."""
    connection = target.connection() if isinstance(target, Session) else target
    connection.info[_ANNOUNCED] = connection.info.get(_ANNOUNCED, 0) + count


def notify_replicas(connection: Connection) -> int:
    """Before commit: one NOTIFY carrying the total (Postgres); returns the count to wake."""
    count: int = connection.info.pop(_ANNOUNCED, 0)
    if count and connection.dialect.name == "postgresql":
        payload = f"{waker_for(connection.engine).origin}:{count}"
        connection.execute(sa.select(sa.func.pg_notify(CHANNEL, payload)))
    return count


def forget_announced(connection: Connection) -> None:
    """On rollback: nothing became claimable."""
    connection.info.pop(_ANNOUNCED, None)


def wake_claimers(engine: Engine, count: int) -> None:
    """After commit: wake `count` of this process's claimers."""
    if count:
        waker_for(engine).notify_threadsafe(count)


def _on_notify(waker: ClaimWaker, payload: str) -> None:
    origin, _, count = payload.partition(":")
    if origin != waker.origin:
        waker.notify(int(count) if count.isdigit() else 1)


async def listen_forever(conninfo: str, waker: ClaimWaker) -> None:
    """LISTEN on Postgres, wake local waiters on other replicas' NOTIFYs; reconnect on failure."""
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                waker.notify_all()  # anything announced while we were disconnected
                async for notice in conn.notifies():
                    _on_notify(waker, notice.payload)
        except psycopg.Error as exc:
            log.warning("LISTEN %s lost (%s); reconnecting in 1 s", CHANNEL, exc)
            await asyncio.sleep(1.0)
