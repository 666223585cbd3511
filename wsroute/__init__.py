"""wsroute: typed WebSocket event handlers for FastAPI — message, join, leave, topics, broadcasts."""

from wsroute.asyncapi.page import mount_docs as _mount_docs
from wsroute.broker import Broker, BrokerBackend, MemoryBackend
from wsroute.channel import Channel
from wsroute.errors import (
    BrokerUnavailable,
    ChannelClosed,
    InvalidMessage,
    MessageError,
    MessageTooLarge,
    PositionLost,
    RateLimited,
    RegistrationError,
    SyncGuardWarning,
    Unhandled,
    UnsupportedFrame,
)
from wsroute.guards import Forward, Guard, HandshakeRequest, Reject
from wsroute.history import Publication, StreamPosition, TopicOptions
from wsroute.messages import Data, IntoMessage
from wsroute.presence import Member, PresenceChange, PresenceInfo, PresenceStats
from wsroute.router import AppBroker, WsRouter, serve_docs_with
from wsroute.security import SecurityScheme
from wsroute.status import WebSocketStatus

# The AsyncAPI docs sit below routing in the module layering (they read routers): the
# package root, above both, gives `WsRouter.install` the docs it serves.
serve_docs_with(_mount_docs)

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
    "Member",
    "MemoryBackend",
    "MessageError",
    "MessageTooLarge",
    "PositionLost",
    "PresenceChange",
    "PresenceInfo",
    "PresenceStats",
    "Publication",
    "RateLimited",
    "RegistrationError",
    "Reject",
    "SecurityScheme",
    "StreamPosition",
    "SyncGuardWarning",
    "TopicOptions",
    "Unhandled",
    "UnsupportedFrame",
    "WebSocketStatus",
    "WsRouter",
]
