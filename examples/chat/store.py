"""The chat's small store: SQLite from the standard library, shared by every worker.

It keeps the **messages** of every room (chat messages and admin announcements), for the
history a client loads when it enters a room, and when each user was **last seen** in each
room (entered or left it), for the member list's offline part. Who is in a room right now is
not here: that is the broker's presence (see `rooms`), which knows every worker's connections
and forgets those of a worker that died.

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
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from examples.chat.config import temporary_database
from examples.chat.models import Announcement, ChatMessage, HistoryItem, User

T = TypeVar("T")

_BUSY_TIMEOUT = 10.0  # seconds a statement waits for another worker's lock
_WAL_RETRY = 0.005  # seconds between tries of the switch to WAL, within the busy timeout


def _use_wal(db: sqlite3.Connection) -> None:
    """Put the database in WAL mode, waiting out a worker that is doing the same.

    Switching the journal mode needs an exclusive lock, and SQLite answers "database is
    locked" at once, without its busy handler, while another connection holds one: two
    workers starting on a new database failed their startup this way (1 in 25 tries)."""
    tries = int(_BUSY_TIMEOUT / _WAL_RETRY)
    for attempt in range(tries):
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == tries - 1:
                raise
        time.sleep(_WAL_RETRY)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    room TEXT NOT NULL,
    kind TEXT NOT NULL,              -- 'message' or 'announcement'
    user_id TEXT,
    user_name TEXT,
    text TEXT NOT NULL,
    at REAL NOT NULL,                -- unix time
    ref TEXT                         -- the sender's Say.ref
);
CREATE INDEX IF NOT EXISTS messages_by_room ON messages (room, id);
CREATE TABLE IF NOT EXISTS seen (
    room TEXT NOT NULL,
    user_id TEXT NOT NULL,
    user_name TEXT NOT NULL,         -- the name they last used in the room
    at REAL NOT NULL,                -- unix time they last entered or left it
    PRIMARY KEY (room, user_id)
);
CREATE INDEX IF NOT EXISTS seen_by_room ON seen (room, at);
"""
_REFS = """
CREATE UNIQUE INDEX IF NOT EXISTS messages_by_room_ref ON messages (user_id, room, ref) WHERE ref IS NOT NULL;
"""


class StoreClosed(RuntimeError):
    """The store was used after `Store.close` (a handler still running while the app stops)."""


def _when(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


class Store:
    """The messages of every room, and who was last seen where, in one SQLite file (see the
    module docstring)."""

    def __init__(self, path: Path | None) -> None:
        """`path` None: a temporary file, made by `open` and removed by `close`."""
        self.path = path
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
        db = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
        _use_wal(db)
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(f"PRAGMA busy_timeout={int(_BUSY_TIMEOUT * 1000)}")
        # Two workers starting at once both run this: serialize it.
        # (executescript would commit first: one statement at a time.)
        db.execute("BEGIN IMMEDIATE")
        for statement in _SCHEMA.split(";"):
            db.execute(statement)
        columns = {row[1] for row in db.execute("PRAGMA table_info(messages)")}
        if "ref" not in columns:  # a database from before refs: they keep their messages
            db.execute("ALTER TABLE messages ADD COLUMN ref TEXT")
        db.execute(_REFS)
        db.execute("COMMIT")
        self._db = db

    async def close(self) -> None:
        """Close the database."""
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        with self._lock:  # after a transaction under way (a leave at shutdown), before any other
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
                    raise StoreClosed("the store is closed")
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

    async def add_message(
        self, room: str, user: User, text: str, ref: str | None = None
    ) -> tuple[ChatMessage, bool]:
        """Keep a chat message; returns it with its id and time, and whether it is new: a `ref`
        this user sent to this room before gives back that first message (a page resending
        what it could not see confirmed)."""
        at = time.time()

        def work(db: sqlite3.Connection) -> tuple[int, str, str, float, bool]:
            if ref is not None:
                row = db.execute(
                    "SELECT id, room, text, at FROM messages WHERE user_id = ? AND room = ? AND ref = ?",
                    (user.id, room, ref),
                ).fetchone()
                if row is not None:
                    return (*row, False)
            cursor = db.execute(
                "INSERT INTO messages (room, kind, user_id, user_name, text, at, ref) "
                "VALUES (?, 'message', ?, ?, ?, ?, ?)",
                (room, user.id, user.name, text, at, ref),
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid, room, text, at, True

        id_, room, text, at, new = await self._run(work)
        return ChatMessage(id=id_, room=room, user=user, text=text, at=_when(at), ref=ref), new

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

        Row = tuple[int, str, str | None, str | None, str, float, str | None]

        def work(db: sqlite3.Connection) -> list[Row]:
            rows = db.execute(
                "SELECT id, kind, user_id, user_name, text, at, ref FROM messages WHERE room = ? AND id < ? "
                "ORDER BY id DESC LIMIT ?",
                (room, 2**62 if before is None else before, limit),
            ).fetchall()
            return list(reversed(rows))

        items: list[HistoryItem] = []
        for id_, kind, user_id, user_name, text, at, ref in await self._run(work):
            if kind == "announcement" or user_id is None or user_name is None:
                items.append(Announcement(id=id_, room=room, text=text, at=_when(at)))
            else:
                user = User(id=user_id, name=user_name)
                items.append(ChatMessage(id=id_, room=room, user=user, text=text, at=_when(at), ref=ref))
        return items

    # --- who was seen where --------------------------------------------------------------

    async def saw(self, room: str, user: User, *, forget_before: float) -> None:
        """Note that `user` was in `room` just now (they entered or left it), and forget who
        was last seen there before unix time `forget_before`."""
        at = time.time()

        def work(db: sqlite3.Connection) -> None:
            # The later time wins: an entry written after a leave it preceded keeps the leave's.
            db.execute(
                "INSERT INTO seen (room, user_id, user_name, at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (room, user_id) DO UPDATE SET user_name = excluded.user_name, "
                "at = max(at, excluded.at)",
                (room, user.id, user.name, at),
            )
            db.execute("DELETE FROM seen WHERE room = ? AND at < ?", (room, forget_before))

        await self._run(work)

    async def last_seen(self, room: str, limit: int, since: float) -> list[tuple[User, datetime]]:
        """Up to `limit` users seen in `room` at or after unix time `since`, with when, latest first."""

        def work(db: sqlite3.Connection) -> list[tuple[str, str, float]]:
            return db.execute(
                "SELECT user_id, user_name, at FROM seen WHERE room = ? AND at >= ? ORDER BY at DESC LIMIT ?",
                (room, since, limit),
            ).fetchall()

        return [(User(id=id_, name=name), _when(at)) for id_, name, at in await self._run(work)]
