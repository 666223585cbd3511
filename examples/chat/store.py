"""The chat's small store: SQLite from the standard library, shared by every worker.

It keeps two things:

* **messages** of every room (chat messages and admin announcements), for the history a
  client loads when it enters a room;
* **presence**: one row per open connection to a room, tagged with the worker process
  that holds it. Workers write a heartbeat every few seconds; rows of a worker that
  stopped beating (killed without a chance to clean up) are ignored, then purged.

Each change to a room's presence increments the room's ``version`` in the same
transaction that reads the member list, so the (version, members) pairs that workers
broadcast are totally ordered even when their broadcasts cross on the way.

SQLite calls are short and run in a worker thread (`asyncio.to_thread`) so the event
loop never waits on the file lock another process holds. The database runs in WAL mode,
so readers never block the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TypeVar

from examples.chat.config import temporary_database
from examples.chat.models import Announcement, ChatMessage, HistoryItem, Presence, User

T = TypeVar("T")

HEARTBEAT_EVERY = 5.0
"""Seconds between a worker's heartbeats."""
STALE_AFTER = 20.0
"""A worker silent this long is considered gone, and its presence rows with it."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    room TEXT NOT NULL,
    kind TEXT NOT NULL,              -- 'message' or 'announcement'
    user_id TEXT,
    user_name TEXT,
    text TEXT NOT NULL,
    at REAL NOT NULL                 -- unix time
);
CREATE INDEX IF NOT EXISTS messages_by_room ON messages (room, id);
CREATE TABLE IF NOT EXISTS workers (
    id TEXT PRIMARY KEY,
    seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS presence (
    connection TEXT PRIMARY KEY,
    room TEXT NOT NULL,
    user_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    worker TEXT NOT NULL,
    since REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS presence_by_room ON presence (room, user_id);
CREATE TABLE IF NOT EXISTS rooms (
    room TEXT PRIMARY KEY,
    version INTEGER NOT NULL
);
"""


def _when(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


class Store:
    """Messages and presence in one SQLite file (see the module docstring)."""

    def __init__(self, path: Path | None, *, stale_after: float = STALE_AFTER) -> None:
        """`path` None: a temporary file, made by `open` and removed by `close`."""
        self.path = path
        self.stale_after = stale_after
        self._temporary: Path | None = None
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    # --- plumbing ----------------------------------------------------------------------

    async def open(self) -> None:
        """Open (and create, if needed) the database."""
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        if self.path is None:
            self.path = self._temporary = temporary_database()
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=10000")
        # Two workers starting at once both run this: serialize it.
        db.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}COMMIT;")
        self._db = db

    async def close(self) -> None:
        """Close the database."""
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()
        temporary, self._temporary = self._temporary, None
        if temporary is not None:
            self.path = None
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(OSError):
                    Path(f"{temporary}{suffix}").unlink()

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` in one transaction, in a thread."""

        def transaction() -> T:
            with self._lock:
                db = self._db
                if db is None:
                    raise RuntimeError("the store is closed")
                db.execute("BEGIN IMMEDIATE")
                try:
                    result = work(db)
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
                return result

        return await asyncio.to_thread(transaction)

    # --- messages ----------------------------------------------------------------------

    async def add_message(self, room: str, user: User, text: str) -> ChatMessage:
        """Keep a chat message; returns it with its id and time."""
        at = time.time()

        def work(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "INSERT INTO messages (room, kind, user_id, user_name, text, at) "
                "VALUES (?, 'message', ?, ?, ?, ?)",
                (room, user.id, user.name, text, at),
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid

        return ChatMessage(id=await self._run(work), room=room, user=user, text=text, at=_when(at))

    async def add_announcement(self, room: str, text: str) -> Announcement:
        """Keep an admin announcement; returns it with its id and time."""
        at = time.time()

        def work(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "INSERT INTO messages (room, kind, text, at) VALUES (?, 'announcement', ?, ?)",
                (room, text, at),
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid

        return Announcement(id=await self._run(work), room=room, text=text, at=_when(at))

    async def history(self, room: str, limit: int, before: int | None = None) -> list[HistoryItem]:
        """The last `limit` messages of `room` (with an id below `before`, if given), oldest first."""

        def work(db: sqlite3.Connection) -> list[tuple[int, str, str | None, str | None, str, float]]:
            rows = db.execute(
                "SELECT id, kind, user_id, user_name, text, at FROM messages WHERE room = ? AND id < ? "
                "ORDER BY id DESC LIMIT ?",
                (room, 2**62 if before is None else before, limit),
            ).fetchall()
            return list(reversed(rows))

        items: list[HistoryItem] = []
        for id_, kind, user_id, user_name, text, at in await self._run(work):
            if kind == "announcement" or user_id is None or user_name is None:
                items.append(Announcement(id=id_, room=room, text=text, at=_when(at)))
            else:
                user = User(id=user_id, name=user_name)
                items.append(ChatMessage(id=id_, room=room, user=user, text=text, at=_when(at)))
        return items

    # --- presence ----------------------------------------------------------------------

    def _members(self, db: sqlite3.Connection, room: str, now: float) -> list[User]:
        rows = db.execute(
            "SELECT p.user_id, MIN(p.user_name) FROM presence AS p JOIN workers AS w ON p.worker = w.id "
            "WHERE p.room = ? AND w.seen > ? GROUP BY p.user_id ORDER BY MIN(p.since), p.user_id",
            (room, now - self.stale_after),
        ).fetchall()
        return [User(id=user_id, name=name) for user_id, name in rows]

    def _connections_of(self, db: sqlite3.Connection, room: str, user_id: str, now: float) -> int:
        row = db.execute(
            "SELECT COUNT(*) FROM presence AS p JOIN workers AS w ON p.worker = w.id "
            "WHERE p.room = ? AND p.user_id = ? AND w.seen > ?",
            (room, user_id, now - self.stale_after),
        ).fetchone()
        return int(row[0])

    def _beat(self, db: sqlite3.Connection, worker: str, now: float) -> None:
        db.execute(
            "INSERT INTO workers (id, seen) VALUES (?, ?) "
            "ON CONFLICT (id) DO UPDATE SET seen = excluded.seen",
            (worker, now),
        )

    def _bump(self, db: sqlite3.Connection, room: str) -> int:
        row = db.execute(
            "INSERT INTO rooms (room, version) VALUES (?, 1) "
            "ON CONFLICT (room) DO UPDATE SET version = version + 1 RETURNING version",
            (room,),
        ).fetchone()
        return int(row[0])

    def _presence(
        self,
        db: sqlite3.Connection,
        room: str,
        now: float,
        change: Literal["joined", "left"] | None,
        user: User | None,
    ) -> Presence:
        version = self._bump(db, room)
        return Presence(
            room=room, change=change, user=user, members=self._members(db, room, now), version=version
        )

    async def enter(self, room: str, connection: str, user: User, worker: str) -> Presence:
        """Record that `connection` of `user` (held by `worker`) is in `room`."""

        def work(db: sqlite3.Connection) -> Presence:
            now = time.time()
            self._beat(db, worker, now)
            first = self._connections_of(db, room, user.id, now) == 0
            db.execute(
                "INSERT OR REPLACE INTO presence (connection, room, user_id, user_name, worker, since) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (connection, room, user.id, user.name, worker, now),
            )
            return self._presence(db, room, now, "joined" if first else None, user)

        return await self._run(work)

    async def exit(self, connection: str) -> Presence | None:
        """Forget `connection`; None when it was not recorded (or was purged already)."""

        def work(db: sqlite3.Connection) -> Presence | None:
            now = time.time()
            row = db.execute(
                "DELETE FROM presence WHERE connection = ? RETURNING room, user_id, user_name", (connection,)
            ).fetchone()
            if row is None:
                return None
            room, user_id, user_name = row
            last = self._connections_of(db, room, user_id, now) == 0
            return self._presence(db, room, now, "left" if last else None, User(id=user_id, name=user_name))

        return await self._run(work)

    async def heartbeat(self, worker: str) -> list[Presence]:
        """Mark `worker` alive; purge the rows of workers gone silent.

        Returns a presence event for each room that lost someone that way, to broadcast.
        """

        def work(db: sqlite3.Connection) -> list[Presence]:
            now = time.time()
            self._beat(db, worker, now)
            gone = db.execute(
                "DELETE FROM presence WHERE worker NOT IN (SELECT id FROM workers WHERE seen > ?) "
                "RETURNING room, user_id, user_name",
                (now - self.stale_after,),
            ).fetchall()
            db.execute("DELETE FROM workers WHERE seen <= ?", (now - self.stale_after,))
            return self._after_purge(db, gone, now)

        return await self._run(work)

    async def retire(self, worker: str) -> list[Presence]:
        """`worker` is shutting down: drop it and whatever presence it still holds."""

        def work(db: sqlite3.Connection) -> list[Presence]:
            now = time.time()
            gone = db.execute(
                "DELETE FROM presence WHERE worker = ? RETURNING room, user_id, user_name", (worker,)
            ).fetchall()
            db.execute("DELETE FROM workers WHERE id = ?", (worker,))
            return self._after_purge(db, gone, now)

        return await self._run(work)

    def _after_purge(
        self, db: sqlite3.Connection, gone: Iterable[tuple[str, str, str]], now: float
    ) -> list[Presence]:
        events: list[Presence] = []
        seen: set[tuple[str, str]] = set()
        for room, user_id, user_name in gone:
            if (room, user_id) in seen:
                continue
            seen.add((room, user_id))
            left = self._connections_of(db, room, user_id, now) == 0
            user = User(id=user_id, name=user_name)
            events.append(self._presence(db, room, now, "left" if left else None, user))
        return events
