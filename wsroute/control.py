"""Server-side control: act on any client from anywhere (``Broker.disconnect``,
``Broker.unsubscribe``, ``Broker.subscribe``).

A command is published to every process sharing the backend; each one acts on the
connections it holds, found by client id (`Session.client_id`) or by user (the `user` its
presence gave it), and answers how many it affected; the caller gets the sum. Commands are
idempotent: a connection already closed, or a topic already left, counts 0.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import orjson

from wsroute import status

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
    return orjson.dumps({"op": op, **fields}).decode()


class Clients:
    """The sessions of this process that can be named: by client id (once it was read) and
    by user (once presence gave them one)."""

    def __init__(self) -> None:
        self._by_id: dict[str, Session] = {}
        self._by_user: dict[str, dict[Session, None]] = {}

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
        (for ``subscribe``: 1 when subscribed, minus the status when refused, else 0)."""
        try:
            cmd = orjson.loads(text)
            op = cmd["op"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            logger.warning("ignored a malformed control command %r", text[:200])
            return 0
        if op == "disconnect":
            sockets = {id(s.socket): s.socket for s in self.find(cmd.get("client_id"), cmd.get("user"))}
            for socket in sockets.values():
                if socket is not None:
                    await socket.close_socket(cmd.get("code", status.NORMAL), cmd.get("reason", ""))
            return len(sockets)
        if op == "unsubscribe":
            sessions = [
                s for s in self.find(cmd.get("client_id"), cmd.get("user")) if s.topic == cmd.get("topic")
            ]
            for session in sessions:
                await session.close(cmd.get("code", status.NORMAL), cmd.get("reason", ""))
            return len(sessions)
        if op == "subscribe":
            found = self.find(cmd.get("client_id"), None)
            subscribe = getattr(found[0].socket, "subscribe_topic", None) if found else None
            if subscribe is None:
                return 0  # not here, or not a multiplexed socket
            result: int = await subscribe(cmd["topic"])
            return 1 if result == 0 else -result
        logger.warning("ignored a control command with an unknown op %r", op)
        return 0
