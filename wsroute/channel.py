"""`Channel`: this client on this topic — send, broadcast, close."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Generic, Protocol

from pydantic_core import core_schema
from starlette.types import Message
from typing_extensions import TypeVar

from wsroute import status
from wsroute.errors import RegistrationError
from wsroute.messages import encode

if TYPE_CHECKING:
    from pydantic import JsonValue

    from wsroute.guards import HandshakeRequest
    from wsroute.history import StreamPosition
    from wsroute.presence import Member

M = TypeVar("M", default=object)


class ChannelTarget(Protocol):
    """What a `Channel` drives: one connection, or one topic of a multiplexed socket."""

    @property
    def topic(self) -> str:
        """The broker topic of this connection."""
        ...

    @property
    def request(self) -> HandshakeRequest:
        """The handshake request."""
        ...

    @property
    def closed(self) -> bool:
        """True once the connection is closing or closed."""
        ...

    def send_event(self, event: Message) -> Coroutine[Any, Any, None]:
        """Send an encoded event to this client (the coroutine raises `ChannelClosed` when closed)."""
        ...

    async def broadcast_event(self, event: Message, exclude_self: bool) -> None:
        """Publish an encoded event to this connection's topic."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Close this connection (or this topic only, when multiplexed)."""
        ...

    async def stream_position(self) -> StreamPosition | None:
        """The current position of the topic's stream; None without history."""
        ...

    @property
    def client_id(self) -> str:
        """This connection's id in every process."""
        ...

    async def topic_presence(self) -> list[Member]:
        """The members of the topic, from every process."""
        ...

    async def update_presence(self, info: JsonValue) -> bool:
        """Replace this connection's presence `info`; False when it is no member."""
        ...


async def raise_when_awaited(exc: BaseException) -> None:
    """A coroutine that raises `exc`: an error of a coroutine-returning call, kept for the await."""
    raise exc


class Channel(Generic[M]):
    """Handle to *this* client on *this* topic, injected into handlers by annotation.

    `Channel[ChatMessage]` documents (and type-checks) what the handler sends; a bare
    `Channel` sends anything `IntoMessage` accepts.
    """

    __slots__ = ("_target",)

    def __init__(self, target: ChannelTarget) -> None:
        self._target = target

    @property
    def topic(self) -> str:
        """The topic: the URL path the client connected to (without the query by default)."""
        return self._target.topic

    @property
    def request(self) -> HandshakeRequest:
        """The handshake request (headers, query, cookies, path params, local cache)."""
        return self._target.request

    @property
    def closed(self) -> bool:
        """True once the connection is closing or closed; `send` would raise `ChannelClosed`."""
        return self._target.closed

    def send(self, message: M) -> Coroutine[Any, Any, None]:
        """Send `message` to this client only: ``await channel.send(message)``.

        Awaiting it raises `TypeError` for a type that cannot be sent and `ChannelClosed`
        when the connection is closed.
        """
        # Not a coroutine function: the outbox's send coroutine is returned as is, one
        # frame less on the hottest path (an echo handler does nothing else). Errors still
        # surface when awaited, as from any coroutine (gather, create_task).
        try:
            event = encode(message)
        except TypeError as exc:
            return raise_when_awaited(exc)
        return self._target.send_event(event)

    async def broadcast(self, message: M, *, exclude_self: bool = False) -> None:
        """Send `message` to every subscriber of this channel's topic, this client included
        unless `exclude_self` is true. The message is encoded once."""
        await self._target.broadcast_event(encode(message), exclude_self)

    @property
    def client_id(self) -> str:
        """This connection's id, unique across every process sharing the broker: what
        presence lists it as, and what ``broker.disconnect(client_id=…)`` takes."""
        return self._target.client_id

    async def presence(self) -> list[Member]:
        """The members of this topic, from every process (``ws.topic(pattern,
        presence=True)``; `ValueError` otherwise)."""
        return await self._target.topic_presence()

    async def update_presence(self, info: JsonValue) -> bool:
        """Replace the `info` this connection shows in its topic's presence (a status, "away",
        "typing…"); its client id and user stay. Every watcher gets it within one presence
        batch, as a join of the same client id (the browser client lists it in its
        `presence` event's `joins`, and replaces the client in place).

        Returns False when the connection is no member: its `join` has not returned yet (a
        join names its member by returning `PresenceInfo`), made none, or the connection is
        leaving. Raises `ValueError` on a topic without presence, and `TypeError` for an
        `info` JSON cannot encode, as `PresenceInfo` does."""
        return await self._target.update_presence(info)

    async def position(self) -> StreamPosition | None:
        """The current position of this topic's stream (its epoch and last offset), or None
        when the topic has no history (``ws.topic(pattern, history=N)``)."""
        return await self._target.stream_position()

    async def close(self, code: int = status.NORMAL, reason: str = "") -> None:
        """Close the connection with `code` and `reason` (in a multiplexed socket: this topic only).

        Messages already queued are sent first; the `leave` handler sees this code.
        """
        await self._target.close(code, reason)

    def __repr__(self) -> str:
        return f"Channel(topic={self.topic!r})"

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> core_schema.CoreSchema:
        # FastAPI builds a schema for every HTTP route parameter: fail there, at
        # registration, with the fix instead of an obscure pydantic error.
        raise RegistrationError(
            "Channel can only be used in wsroute WebSocket handlers (message/join/leave); "
            "in an HTTP route or a FastAPI @app.websocket endpoint, use the Broker: "
            "`broker: AppBroker` and `await broker.broadcast_to(topic, message)`"
        )
