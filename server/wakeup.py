"""Wake long-polling claimers when tasks become claimable, without a thread or connection each.

In process an asyncio.Event per "generation" does it; with Postgres, transactions that make tasks
claimable also `NOTIFY morphml_tasks` and every replica LISTENs, so replicas wake each other.
"""

from __future__ import annotations

import asyncio
import logging
import weakref

import psycopg
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

CHANNEL = "morphml_tasks"
log = logging.getLogger("morphml.server")


class ClaimWaker:
    """Waiters take `current()`, try to claim, then wait on it; `notify` sets it and starts anew."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event = asyncio.Event()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._event = asyncio.Event()

    def current(self) -> asyncio.Event:
        return self._event

    def notify(self) -> None:
        woken, self._event = self._event, asyncio.Event()
        woken.set()

    def notify_threadsafe(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.notify)


_WAKERS: weakref.WeakKeyDictionary[Engine, ClaimWaker] = weakref.WeakKeyDictionary()


def waker_for(engine: Engine) -> ClaimWaker:
    """The one waker of an engine (one app, one engine)."""
    waker = _WAKERS.get(engine)
    if waker is None:
        waker = _WAKERS[engine] = ClaimWaker()
    return waker


def announce_tasks(session: Session) -> None:
    """Call inside a transaction that made tasks claimable: waiters wake once it commits."""
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    if engine.dialect.name == "postgresql":
        session.execute(sa.text(f"NOTIFY {CHANNEL}"))
    if not session.info.get("announce"):
        session.info["announce"] = True
        event.listen(session, "after_commit", _wake_after_commit, once=True)


def _wake_after_commit(session: Session) -> None:
    session.info.pop("announce", None)
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    waker_for(engine).notify_threadsafe()


async def listen_forever(conninfo: str, waker: ClaimWaker) -> None:
    """LISTEN on Postgres and wake local waiters on every NOTIFY; reconnect on failure."""
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                waker.notify()  # anything announced while we were disconnected
                async for _ in conn.notifies():
                    waker.notify()
        except psycopg.Error as exc:
            log.warning("LISTEN %s lost (%s); reconnecting in 1 s", CHANNEL, exc)
            await asyncio.sleep(1.0)
