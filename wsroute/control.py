"""Server-side control: act on any client from anywhere (``Broker.disconnect``,
``Broker.unsubscribe``, ``Broker.subscribe``).

A command is published to every process sharing the backend; each one acts on the
connections it holds, found by client id (`Session.client_id`) or by user (the `user` its
presence gave it), and answers how many it affected; the caller gets the sum. Commands are
idempotent: a connection already closed, or a topic already left, counts 0.

A process answers as soon as its closes have begun, and they go on without it: a close
flushes what the client has not read yet (up to ``close_timeout``), and a client that stops
reading must neither hold the answer past the caller's timeout nor hold up the closes of
the other connections it named.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import orjson

from wsroute import status
from wsroute.eager import run_eagerly
from wsroute.status import clip_reason

if TYPE_CHECKING:
    from wsroute.session import Session

logger = logging.getLogger("wsroute")

CONTROL_CODES = frozenset({1000, 1001, 1002, 1003, *range(1007, 1015), *range(3000, 5000)})
"""Close codes a command may carry (those a server may send)."""


def command(op: str, **fields: Any) -> str:
    """The JSON of a command: ``{"op": …, …}``; checks its close code and target."""
    code = fields.get("code")
    if code is not None and code not in CONTROL_CODES:
        raise ValueError(f"close code {code} cannot be sent: use 1000, 1001-1014 or 3000-4999")
    if op != "subscribe" and (fields.get("client_id") is None) == (fields.get("user") is None):
        raise ValueError("give exactly one of client_id= and user=")
    if "reason" in fields:
        fields["reason"] = clip_reason(fields["reason"])  # what a close frame can carry
    return orjson.dumps({"op": op, **fields}).decode()


class Clients:
    """The sessions of this process that can be named: by client id (once it was read) and
    by user (once presence gave them one)."""

    def __init__(self) -> None:
        self._by_id: dict[str, Session] = {}
        self._by_user: dict[str, dict[Session, None]] = {}
        # The closes that had to wait (a flush, a leave handler), kept until they end.
        self._closing: set[asyncio.Task[Any]] = set()

    def add(self, client_id: str, session: Session) -> None:
        self._by_id[client_id] = session

    def add_user(self, user: str, session: Session) -> None:
        self._by_user.setdefault(user, {})[session] = None

    def remove(self, session: Session) -> None:
        """Forget a session that is leaving."""
        self._by_id.pop(session.client_id_if_known() or "", None)
        member = session.present_as()
        if member is not None and member.user is not None:
            sessions = self._by_user.get(member.user)
            if sessions is not None:
                sessions.pop(session, None)
                if not sessions:
                    del self._by_user[member.user]

    def __len__(self) -> int:
        return len(self._by_id)

    def find(self, client_id: str | None, user: str | None) -> list[Session]:
        """The sessions a command names (open ones only)."""
        if client_id is not None:
            found = self._by_id.get(client_id)
            sessions = [] if found is None else [found]
        else:
            sessions = list(self._by_user.get(user or "", ()))
        return [s for s in sessions if not s.closed]

    async def handle(self, text: str) -> int:
        """Carry out a command on this process's sessions; how many connections it affected
        (for ``subscribe``: 1 when subscribed, minus the status when refused, else 0: not
        here, or subscribed already)."""
        try:
            cmd = orjson.loads(text)
            op = cmd["op"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            logger.warning("ignored a malformed control command %r", text[:200])
            return 0
        code, reason = cmd.get("code", status.NORMAL), cmd.get("reason", "")
        if op == "disconnect":
            found = self.find(cmd.get("client_id"), cmd.get("user"))
            sockets = {id(s.socket): s.socket for s in found if s.socket is not None}
            return sum(self._begin(socket.close_socket(code, reason)) for socket in sockets.values())
        if op == "unsubscribe":
            found = self.find(cmd.get("client_id"), cmd.get("user"))
            sessions = [s for s in found if s.topic == cmd.get("topic")]
            return sum(self._begin(session.try_close(code, reason)) for session in sessions)
        if op == "subscribe":
            found = self.find(cmd.get("client_id"), None)
            subscribe = getattr(found[0].socket, "subscribe_topic", None) if found else None
            if subscribe is None:
                return 0  # not here, or not a multiplexed socket
            result: int = await subscribe(cmd["topic"])
            return result
        logger.warning("ignored a control command with an unknown op %r", op)
        return 0

    def _begin(self, close: Coroutine[Any, Any, bool]) -> bool:
        """Start `close` (a socket's or a session's) and let it go on without the caller;
        whether it closed something. Each decides, and marks its socket or session closing,
        before it first waits: one that waits has closed something, and a command that comes
        meanwhile counts nothing twice."""
        try:
            task, closed = run_eagerly(close, name="wsroute control close")
        except Exception:
            logger.exception("a control command could not close a connection")
            return False
        if task is None:
            return closed is True
        self._closing.add(task)
        task.add_done_callback(self._closed)
        return True

    def _closed(self, task: asyncio.Task[Any]) -> None:
        self._closing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("a close begun by a control command failed", exc_info=task.exception())
