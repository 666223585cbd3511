"""wsroute: typed WebSocket event handlers for FastAPI — message, join, leave, topics, broadcasts."""

from wsroute.broker import Broker, BrokerBackend, MemoryBackend
from wsroute.channel import Channel
from wsroute.errors import (
    BrokerUnavailable,
    ChannelClosed,
    InvalidMessage,
    MessageError,
    MessageTooLarge,
    RateLimited,
    RegistrationError,
    Unhandled,
    UnsupportedFrame,
)
from wsroute.guards import Forward, Guard, HandshakeRequest, Reject
from wsroute.messages import Data, IntoMessage
from wsroute.routing import AppBroker, WsRouter
from wsroute.security import SecurityScheme
from wsroute.status import WebSocketStatus

__all__ = [
    "AppBroker",
    "Broker",
    "BrokerBackend",
    "BrokerUnavailable",
    "Channel",
    "ChannelClosed",
    "Data",
    "Forward",
    "Guard",
    "HandshakeRequest",
    "IntoMessage",
    "InvalidMessage",
    "MemoryBackend",
    "MessageError",
    "MessageTooLarge",
    "RateLimited",
    "RegistrationError",
    "Reject",
    "SecurityScheme",
    "Unhandled",
    "UnsupportedFrame",
    "WebSocketStatus",
    "WsRouter",
]
