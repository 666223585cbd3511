"""The states of a socket and of a session, and the moves allowed between them.

A `BaseConnection` (one physical WebSocket) and a `Session` (one client on one topic: a
dedicated socket's only session, or one multiplexed topic) each keep a single state field.
Each class changes it in one method (``_to``), which checks the move against the table
here unless Python runs with ``-O`` (a few dozen nanoseconds per move, a handful of moves
per connection), so an impossible sequence fails where it happens instead of surfacing
later as a leaked subscription or a second leave.
docs/design.md draws both machines.
"""

from __future__ import annotations

from enum import IntEnum


class ConnectionState(IntEnum):
    """Where a physical WebSocket is in its life."""

    CONNECTING = 0
    """Waiting for the server's ``websocket.connect``."""
    HANDSHAKE = 1
    """Guards and dependencies decide: accept or deny."""
    DENIED = 2
    """Refused (or gone before it connected): nothing else happens to it."""
    OPEN = 3
    """Accepted: the receive loop runs."""
    CLOSING = 4
    """The server is closing it (``close_status`` says how): queued messages flush, then the
    close frame."""
    EVICTED = 5
    """A slow consumer: its task was cancelled to end it with 1008."""
    ENDED = 6
    """The receive loop is over; every session is then finished (leave runs once each)."""


class SessionState(IntEnum):
    """Where one client on one topic is in its life (the order matters: see `Session`)."""

    HANDSHAKE = 0
    """Guards and dependencies run: a handler may accept it."""
    REFUSED = 1
    """No handler accepted it: its connection-scoped dependencies are torn down."""
    ACCEPTED = 2
    """A handler accepted it; it is not subscribed to its topic yet."""
    OPEN = 3
    """Subscribed: messages go to the message handler as they arrive."""
    JOINING = 4
    """Subscribed, and the join body runs: messages wait in the session's queue."""
    CLOSING = 5
    """The server closed it (``close_status`` says how): sends fail, broadcasts are dropped,
    nothing more is handled."""
    LEAVING = 6
    """Unsubscribing, running the leave handler, tearing down: exactly once."""
    LEFT = 7
    """Done."""


_CONNECTION_MOVES: dict[ConnectionState, frozenset[ConnectionState]] = {
    ConnectionState.CONNECTING: frozenset({ConnectionState.HANDSHAKE, ConnectionState.DENIED}),
    ConnectionState.HANDSHAKE: frozenset({ConnectionState.OPEN, ConnectionState.DENIED}),
    ConnectionState.DENIED: frozenset(),
    ConnectionState.OPEN: frozenset(
        {ConnectionState.CLOSING, ConnectionState.EVICTED, ConnectionState.ENDED}
    ),
    # A close whose frame cannot reach its client (it never reads) gives up: EVICTED, so
    # that the loop ends with the close's code (an overflow meanwhile changes nothing).
    ConnectionState.CLOSING: frozenset({ConnectionState.EVICTED, ConnectionState.ENDED}),
    ConnectionState.EVICTED: frozenset({ConnectionState.ENDED}),
    ConnectionState.ENDED: frozenset(),
}

_SESSION_MOVES: dict[SessionState, frozenset[SessionState]] = {
    SessionState.HANDSHAKE: frozenset({SessionState.ACCEPTED, SessionState.REFUSED}),
    SessionState.REFUSED: frozenset(),
    # Straight to LEAVING when the subscription itself failed (a broker outage).
    SessionState.ACCEPTED: frozenset({SessionState.OPEN, SessionState.LEAVING}),
    SessionState.OPEN: frozenset({SessionState.JOINING, SessionState.CLOSING, SessionState.LEAVING}),
    SessionState.JOINING: frozenset({SessionState.OPEN, SessionState.CLOSING, SessionState.LEAVING}),
    SessionState.CLOSING: frozenset({SessionState.LEAVING}),
    SessionState.LEAVING: frozenset({SessionState.LEFT}),
    SessionState.LEFT: frozenset(),
}


class IllegalTransition(RuntimeError):
    """A socket or session was asked to move to a state it cannot reach from its own."""


def check_connection_move(old: ConnectionState, new: ConnectionState) -> None:
    """Raise `IllegalTransition` unless a socket may go from `old` to `new`."""
    if new not in _CONNECTION_MOVES[old]:
        raise IllegalTransition(f"connection: {old.name} -> {new.name}")


def check_session_move(old: SessionState, new: SessionState) -> None:
    """Raise `IllegalTransition` unless a session may go from `old` to `new`."""
    if new not in _SESSION_MOVES[old]:
        raise IllegalTransition(f"session: {old.name} -> {new.name}")
