"""Exceptions shared by the modules of wsroute."""

from __future__ import annotations

from wsroute import status


class RegistrationError(TypeError):
    """A handler was declared in a way that cannot work; raised when it is decorated or installed."""


class SyncGuardWarning(UserWarning):
    """A guard's plain-`def` `from_request` does not say whether it may block: set the
    guard's `sync_to_thread` (False: it runs on the event loop; True: in the thread pool).
    Issued once per guard class, when a handler first uses it."""


class ChannelClosed(RuntimeError):
    """`send` was called on a connection (or multiplexed topic) that is already closed."""


class BrokerUnavailable(ConnectionError):
    """The broker backend cannot deliver right now (for example Redis is down); nothing was sent."""


class PositionLost(LookupError):
    """The stream no longer holds every publication after a position: its epoch changed
    (the stored stream may have lost data) or they were trimmed by size or age."""


class MessageError(Exception):
    """Base of the errors a received message can cause; `code` is the close code it maps to."""

    code: int = status.POLICY_VIOLATION

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidMessage(MessageError):
    """The message failed to parse or validate into the handler's type (close 1007)."""

    code = status.INVALID_PAYLOAD


class UnsupportedFrame(MessageError):
    """A binary frame reached a text-only handler or the reverse (close 1003)."""

    code = status.UNSUPPORTED_DATA


class MessageTooLarge(MessageError):
    """The message is larger than the route's `max_message_size` (close 1009)."""

    code = status.MESSAGE_TOO_BIG


class RateLimited(MessageError):
    """The connection sent more messages than its rate limit allows (close 1008).

    `text` or `data` is the message that was dropped, unread, so that a handler can name
    it to its client (an id the client put in it, say).
    """

    code = status.POLICY_VIOLATION

    def __init__(self, reason: str, text: str | None = None, data: bytes | None = None) -> None:
        super().__init__(reason)
        self.text = text
        self.data = data


class Unhandled(MessageError):
    """No message handler on this path accepted the message (close 1003)."""

    code = status.UNSUPPORTED_DATA
