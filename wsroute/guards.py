"""The handshake request, its local cache, and guards: `Guard`, `Reject`, `Forward`.

A guard is any class with a classmethod ``from_request(cls, request)`` (sync or async)
that returns an instance, rejects with `Reject` (or FastAPI's `HTTPException`), or passes
the event to the next matching handler with `Forward`. Guards are built once per
connection and kept in the connection's local cache.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from http import HTTPStatus
from typing import Any, ClassVar, Self, TypeVar

from starlette.requests import HTTPConnection
from starlette.types import Scope

from wsroute.security import SecurityScheme

T = TypeVar("T")


class Reject(Exception):
    """Refuse the connection with an HTTP `status_code` and a JSON `detail`.

    Raised in a guard or dependency during the handshake, the client gets that status
    (401, 403, …) instead of a WebSocket. Same meaning as FastAPI's `HTTPException`.
    """

    def __init__(
        self,
        status_code: int = 403,
        detail: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if detail is None:
            detail = HTTPStatus(status_code).phrase
        super().__init__(status_code, detail)
        self.status_code = status_code
        self.detail = detail
        self.headers = headers


class Forward(Exception):
    """Pass this event to the next handler that matches the path (by rank).

    When no handler is left, the handshake is refused with 404, or a message is unhandled.
    """


class HandshakeRequest(HTTPConnection):
    """The request that opened the WebSocket, as guards and dependencies see it.

    It has Starlette's `headers`, `query_params`, `cookies`, `path_params`, `url`,
    `client`, `app` and `state`, plus `local_cache`. In a multiplexed socket every topic
    has its own copy, with the topic as its URL.
    """

    def __init__(self, scope: Scope) -> None:
        super().__init__(scope)
        self._local: dict[Hashable, Any] = {}

    def local_cache(self, key: Hashable, factory: Callable[[], T]) -> T:
        """Return the value stored under `key` for this connection, computing it once with `factory`.

        Expensive work (decoding a token, a database lookup) done here runs once per
        connection, not once per message.
        """
        try:
            value: T = self._local[key]
        except KeyError:
            value = self._local[key] = factory()
        return value


# Starlette's lazily parsed views of the scope, cached on the request object.
_PARSED_VIEWS = ("_headers", "_query_params", "_cookies", "_url", "_base_url")


def forget_parsed(request: HandshakeRequest) -> None:
    """Drop the request's parsed headers, query and URL; they are rebuilt on next use.

    Called once the handshake is decided: guards and connection dependencies have read
    what they need, and an idle socket should not keep half a kilobyte of parsed views.
    """
    for name in _PARSED_VIEWS:
        request.__dict__.pop(name, None)


class Guard:
    """Optional base class for guards; any class with `from_request` is a guard.

    Example:

    ```python
    class User(Guard):
        def __init__(self, name: str) -> None:
            self.name = name

        @classmethod
        async def from_request(cls, request: HandshakeRequest) -> "User":
            token = request.query_params.get("token")
            if token is None:
                raise Reject(401, "missing token")
            return cls(await lookup(token))
    ```

    `security` describes the guard's credentials in the AsyncAPI document, e.g.
    ``security = SecurityScheme.api_key("token", "query")`` (``from wsroute import SecurityScheme``);
    any guard class, subclass of `Guard` or not, may set it.
    """

    security: ClassVar[SecurityScheme | None] = None

    @classmethod
    def from_request(cls, request: HandshakeRequest) -> Self | Awaitable[Self]:
        """Build the guard from the handshake request, or raise `Reject` / `Forward`."""
        raise NotImplementedError(f"{cls.__qualname__} must implement from_request")


def is_guard(annotation: object) -> bool:
    """True when `annotation` is a class that builds itself with `from_request`."""
    return isinstance(annotation, type) and callable(getattr(annotation, "from_request", None))
