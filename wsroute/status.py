"""Close codes and `WebSocketStatus`, the value a `leave` handler receives."""

from __future__ import annotations

from dataclasses import dataclass

NORMAL = 1000
GOING_AWAY = 1001
UNSUPPORTED_DATA = 1003
NO_STATUS = 1005
ABNORMAL = 1006
INVALID_PAYLOAD = 1007
POLICY_VIOLATION = 1008
MESSAGE_TOO_BIG = 1009
INTERNAL_ERROR = 1011
SERVICE_RESTART = 1012
TRY_AGAIN_LATER = 1013

# RFC 6455 §5.5.1: a close reason is at most 123 bytes (125 minus the code).
MAX_REASON_BYTES = 123


@dataclass(frozen=True, slots=True)
class WebSocketStatus:
    """How a connection ended: the close `code` and `reason` as seen by the server.

    A dropped TCP connection is reported as 1006, a server shutdown as the code the
    server sent (1001, or 1012 under uvicorn).
    """

    code: int = NORMAL
    reason: str = ""


SLOW_CONSUMER = WebSocketStatus(POLICY_VIOLATION, "slow consumer")
"""How a socket evicted for not reading (its queue overflowed) ends."""


def clip_reason(reason: str) -> str:
    """Shorten `reason` to what fits in a close frame (123 UTF-8 bytes), on a character boundary."""
    raw = reason.encode()
    if len(raw) <= MAX_REASON_BYTES:
        return reason
    return raw[: MAX_REASON_BYTES - 3].decode(errors="ignore") + "..."
