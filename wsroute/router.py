"""`WsRouter`: the decorators, the route table, and attaching it all to an app.

``router.install(app)`` is the one way to attach: it adds the WebSocket entry point, the
426 fallback for plain HTTP requests, and starts/stops the broker with the app's lifespan.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import Depends
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.routing import Mount, Router
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from wsroute.broker import Broker, BrokerBackend
from wsroute.connection import BaseConnection, Connection, deny
from wsroute.errors import RegistrationError
from wsroute.guards import Reject
from wsroute.history import DEFAULT_RECOVERY_LIMIT, TopicOptions
from wsroute.injection import EventKind
from wsroute.multiplex import MultiplexConnection, negotiate_subprotocol
from wsroute.outbox import SlowConsumerPolicy
from wsroute.routes import RouteOptions, RouteTable, compile_route, join_path, make_handler, route_path
from wsroute.settings import ExceptionHandler, Settings

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
H = TypeVar("H", bound=Callable[[Any, Any], Awaitable[None]])


STATIC_DIR = Path(__file__).parent / "static"
"""The package's browser files: ``multiplex.js`` (the rocket-multiplex client, which imports
``multiplex-codec.js`` and ``retry-timer.js``) and its ``.d.ts``."""


class DocsMount(Protocol):
    """What `WsRouter.install` calls to serve the AsyncAPI document and its page
    (``wsroute.asyncapi.page.mount_docs``)."""

    def __call__(
        self,
        app: Starlette,
        router: WsRouter,
        *,
        json_url: str | None,
        docs_url: str | None,
        cdn: str | None,
        multiplex_client: str | None,
    ) -> None:
        """Append the docs routes of `router` to `app`."""


_docs_mount: DocsMount | None = None


def serve_docs_with(mount: DocsMount) -> None:
    """Make `mount` what `WsRouter.install` calls to serve the AsyncAPI docs.

    The docs read routers, so they sit below this module and it cannot import them; the
    package root (``wsroute/__init__.py``), above both, connects them when ``wsroute`` is
    imported, which any import of this module does first.
    """
    global _docs_mount
    _docs_mount = mount


class WsRouter:
    """A set of WebSocket event handlers and the broker they publish through.

    ```python
    ws = WsRouter()

    @ws.message("/echo")
    async def echo(data: str, channel: Channel) -> None:
        await channel.send(data)

    app = FastAPI()
    ws.install(app)
    ```

    `broker` is a URL (``"memory://"``, the default, or ``"redis://127.0.0.1:6379/0"``),
    a `BrokerBackend` or a `Broker`. `title`, `version` and `description` head the AsyncAPI
    document (by default the app's own). The other keyword arguments are the limits
    described in `Settings`.
    """

    def __init__(
        self,
        *,
        broker: str | BrokerBackend | Broker = "memory://",
        prefix: str = "",
        max_message_size: int = Settings.max_message_size,
        max_queue: int = Settings.max_queue,
        max_queue_bytes: int | None = None,
        slow_consumer: SlowConsumerPolicy = "disconnect",
        rate_limit: tuple[int, float] | None = None,
        allowed_origins: Sequence[str] = (),
        max_topics: int = Settings.max_topics,
        close_timeout: float = Settings.close_timeout,
        multiplex: bool = True,
        title: str | None = None,
        version: str | None = None,
        description: str | None = None,
    ) -> None:
        self.title = title
        self.version = version
        self.description = description
        self.broker: Broker = broker if isinstance(broker, Broker) else Broker(broker)
        self.prefix = prefix.rstrip("/")
        self.settings = Settings(
            max_message_size=max_message_size,
            max_queue=max_queue,
            max_queue_bytes=max_queue_bytes,
            slow_consumer=slow_consumer,
            rate_limit=rate_limit,
            allowed_origins=allowed_origins,
            max_topics=max_topics,
            close_timeout=close_timeout,
            multiplex=multiplex,
        )
        self.table = RouteTable()
        self._installed: Any = None

    # --- decorators -------------------------------------------------------------------------

    def message(
        self,
        path: str,
        *,
        data: str = "data",
        rank: int | None = None,
        max_message_size: int | None = None,
        rate_limit: tuple[int, float] | None = None,
        http_fallback: bool = True,
        query_in_topic: bool = False,
        sends: Sequence[Any] = (),
        name: str | None = None,
        summary: str | None = None,
    ) -> Callable[[F], F]:
        """Register a handler for every message received on `path`.

        The message goes to the parameter named `data` (or annotated `Data`): `str` for
        text, `bytes` for binary, a pydantic model or other type for JSON. `sends` lists
        the types the handler sends, and `summary` (default: the docstring's first line)
        heads it, in the AsyncAPI document.

        `max_message_size` and `rate_limit` (``(messages, seconds)`` per connection, a
        multiplexed topic being one) replace the router's limits for this handler.
        """
        options = RouteOptions(
            data=data,
            rank=rank,
            max_message_size=max_message_size,
            rate_limit=rate_limit,
            http_fallback=http_fallback,
            query_in_topic=query_in_topic,
            sends=sends,
            name=name,
            summary=summary,
            decorator=f"@message({path!r})",
        )
        return self._register("message", path, options)

    def join(
        self,
        path: str,
        *,
        rank: int | None = None,
        http_fallback: bool = True,
        query_in_topic: bool = False,
        sends: Sequence[Any] = (),
        name: str | None = None,
        summary: str | None = None,
    ) -> Callable[[F], F]:
        """Register a handler that runs when a client connects to `path`.

        Its guards and dependencies decide whether the connection is accepted; its body
        runs after the client is subscribed to its topic. It has no message parameter.
        """
        options = RouteOptions(
            rank=rank,
            http_fallback=http_fallback,
            query_in_topic=query_in_topic,
            sends=sends,
            name=name,
            summary=summary,
            decorator=f"@join({path!r})",
        )
        return self._register("join", path, options)

    def leave(
        self,
        path: str,
        *,
        rank: int | None = None,
        http_fallback: bool = True,
        name: str | None = None,
        summary: str | None = None,
    ) -> Callable[[F], F]:
        """Register a handler that runs once when a connection to `path` ends.

        Annotate a parameter `WebSocketStatus` to get the close code and reason.
        """
        options = RouteOptions(
            rank=rank, http_fallback=http_fallback, name=name, summary=summary, decorator=f"@leave({path!r})"
        )
        return self._register("leave", path, options)

    def topic(
        self,
        pattern: str,
        *,
        history: int = 0,
        history_ttl: float | None = None,
        recovery_limit: int = DEFAULT_RECOVERY_LIMIT,
        presence: bool = False,
    ) -> TopicOptions:
        """Configure every topic of a route pattern, once for its message, join and leave
        handlers: ``ws.topic("/rooms/{room}", history=100, history_ttl=600.0)``.

        `history` publications are kept per topic (0: none), each for at most `history_ttl`
        seconds (None: until pushed out); a client resubscribing after a disconnect is
        replayed what it missed, up to `recovery_limit` publications (docs/history.md).
        `presence=True` makes every subscriber a member, listed by `Broker.presence` and
        announced to subscribers that ask for joins and leaves (docs/presence.md).
        `pattern` must be the path of a handler of this router (with its prefix); it is
        checked when the router is installed.
        """
        return self.broker.topic(
            join_path(self.prefix, pattern),
            history=history,
            history_ttl=history_ttl,
            recovery_limit=recovery_limit,
            presence=presence,
        )

    def _check_topics(self) -> None:
        paths = {handler.path for handler in self.table.handlers}
        for options in self.broker.topics:
            if options.pattern not in paths:
                known = ", ".join(sorted(map(repr, paths))) or "none"
                raise RegistrationError(
                    f"ws.topic({options.pattern!r}) names no route pattern of this router "
                    f"(its handlers' paths: {known})"
                )

    def _register(self, kind: EventKind, path: str, options: RouteOptions) -> Callable[[F], F]:
        full_path = join_path(self.prefix, path)
        compile_route(full_path)  # a malformed path fails at the decorator call

        def decorator(fn: F) -> F:
            # The decorating frame's locals resolve postponed annotations that name
            # classes local to an app factory.
            caller = sys._getframe(1)
            localns = dict(caller.f_locals)
            del caller
            self.table.add(make_handler(kind, full_path, fn, options, localns=localns))
            return fn

        return decorator

    def exception_handler(self, exc_class: type[BaseException]) -> Callable[[H], H]:
        """Register ``async def handler(channel, exc)`` for `exc_class` (and subclasses).

        It replaces the default close code for that error; it may send an error message
        and keep the connection open, or close it itself.
        """

        def decorator(fn: H) -> H:
            handler: ExceptionHandler = fn
            self.settings.exception_handlers[exc_class] = handler
            return fn

        return decorator

    def include_router(self, other: WsRouter, *, prefix: str = "") -> None:
        """Add every handler and exception handler of `other` (with an optional path prefix).

        With a prefix each handler is analyzed again, so parameters of the prefix
        (``"/{tenant}"``) are path parameters and ranks follow the new path.
        """
        for handler in other.table.handlers:
            if prefix:
                handler = make_handler(
                    handler.kind,
                    join_path(prefix, handler.path),
                    handler.fn,
                    handler.options,
                    order=handler.order,
                    localns=handler.localns,
                )
            self.table.add(handler)
        for exc_class, fn in other.settings.exception_handlers.items():
            self.settings.exception_handlers.setdefault(exc_class, fn)
        if other.broker is not self.broker:
            for topic in other.broker.topics:
                self.broker.topic(
                    join_path(prefix, topic.pattern) if prefix else topic.pattern,
                    history=topic.history,
                    history_ttl=topic.history_ttl,
                    recovery_limit=topic.recovery_limit,
                    presence=topic.presence,
                )

    # --- ASGI ---------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point for a WebSocket scope (`install` routes them here)."""
        await self.connect(scope, receive, send)

    def connect(self, scope: Scope, receive: Receive, send: Send) -> Coroutine[Any, Any, None]:
        """The coroutine that serves one WebSocket scope, for the server's task to await.

        A client that offers the ``rocket-multiplex`` subprotocol gets a multiplexed socket.
        """
        offered = scope.get("subprotocols")
        connection: BaseConnection
        if offered and self.settings.multiplex and (token := negotiate_subprotocol(offered)):
            connection = MultiplexConnection(
                self.table, self.settings, self.broker, scope, receive, send, token
            )
        else:
            connection = Connection(self.table, self.settings, self.broker, scope, receive, send)
        # Run in the server's task, not one of our own: a task costs ~0.5 KB and ~7 µs per
        # connection, while what it saved — resuming the frames above on each message — is
        # two frames (FastAPI's and Starlette's `__call__`) once `_front_door` skips the rest.
        return connection.run()

    def install(
        self,
        app: Starlette,
        *,
        static_path: str | None = "/wsroute",
        asyncapi_url: str | None = "/asyncapi.json",
        asyncapi_docs_url: str | None = "/asyncapi",
        asyncapi_cdn: str | None = None,
    ) -> None:
        """Attach to a FastAPI or Starlette `app`: WebSocket routes, 426 fallback, lifespan, docs.

        WebSocket connections to a registered path reach these handlers; a plain HTTP
        request to such a path gets 426 Upgrade Required only when no HTTP route of the
        app matches it (HTTP routes added later still win). The browser client is served
        at ``{static_path}/multiplex.js`` (``None`` serves nothing).

        The AsyncAPI 3.0 document of the handlers is served at `asyncapi_url`, and an HTML
        page rendering it at `asyncapi_docs_url` (``None`` turns either off). The page loads
        its viewer from the app itself (works offline); `asyncapi_cdn` (e.g.
        ``wsroute.asyncapi.UNPKG``) loads it from that CDN instead. An HTTP route of the app
        at the same path wins over these.
        """
        if app.middleware_stack is not None:
            raise RegistrationError(
                "the app has already started: call router.install(app) before serving it"
            )
        if getattr(app.state, "wsroute", None) is not None:
            raise RegistrationError(
                "a WsRouter is already installed on this app; combine routers with "
                "router.include_router(other) and install one"
            )
        self._check_topics()
        app.state.wsroute = self
        app.state.wsroute_broker = self.broker
        router = app.router
        app.user_middleware.append(Middleware(_WebSocketEntry, ws=self, app_router=router))
        if static_path is not None:
            router.routes.append(Mount(static_path.rstrip("/"), app=StaticFiles(directory=STATIC_DIR)))
        if asyncapi_url is not None or asyncapi_docs_url is not None:
            assert _docs_mount is not None, "set by wsroute/__init__.py, which any import runs first"
            _docs_mount(
                app,
                self,
                json_url=asyncapi_url,
                docs_url=asyncapi_docs_url,
                cdn=asyncapi_cdn,
                multiplex_client=None if static_path is None else f"{static_path.rstrip('/')}/multiplex.js",
            )
        router.default = _UpgradeRequiredFallback(self, router.default)
        original = router.lifespan_context
        broker = self.broker

        @contextlib.asynccontextmanager
        async def lifespan(app_: Any) -> AsyncIterator[Any]:
            # The stack is built by now: the lifespan event came through it.
            _front_door(app, self)
            await broker.start()
            try:
                async with original(app_) as state:
                    yield state
            finally:
                await broker.stop()

        router.lifespan_context = lifespan
        self._installed = app


class _WebSocketEntry:
    """Sends WebSocket scopes for the router's paths straight to it; everything else on.

    It sits innermost among the app's middleware: middleware the user added sees every
    socket, while Starlette's exception middleware and routing (wsroute handles its own
    errors and matching) stay out of the way. Each would hold a frame for every open
    connection and wrap every send. At startup a second one may go in front of the stack
    (`_front_door`).
    """

    def __init__(self, app: ASGIApp, ws: WsRouter, app_router: Router) -> None:
        self.app = app
        self.ws = ws
        self.app_router = app_router

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] == "websocket" and self.ws.table.matches_any(route_path(scope)):
            # As Starlette's router would: `url_for` on the handshake request needs it.
            scope.setdefault("router", self.app_router)
            # Returned, not awaited: a frame of ours here would be one more per open socket.
            return self.ws.connect(scope, receive, send)
        return self.app(scope, receive, send)


# Layers that hand a WebSocket scope to the next app untouched (checked by class, exactly:
# a subclass may do more). Named, not imported: some exist only in newer releases.
_PASS_THROUGH = frozenset(
    {
        ("starlette.middleware.errors", "ServerErrorMiddleware"),  # HTTP only
        ("fastapi.telemetry._asgi", "ExceptionTelemetryMiddleware"),  # exceptions (none escape)
        ("fastapi._body_limit", "AppBodyLimitMiddleware"),  # HTTP request bodies only
    }
)


def _front_door(app: Starlette, ws: WsRouter) -> None:
    """Put a second entry in front of the app's middleware stack when every layer above
    the installed one only passes WebSocket scopes through.

    Each such layer holds a coroutine frame (and its cells) for every open socket: with
    FastAPI's three that is about 1 KB per idle connection, and objects the cycle collector
    walks on every full pass. Middleware the user added stops the walk, so it still sees
    every socket; so does any layer not known to be a pass-through.
    """
    stack = app.middleware_stack
    layer: Any = stack
    while (type(layer).__module__, type(layer).__qualname__) in _PASS_THROUGH:
        layer = layer.app
    if stack is not None and layer is not stack and isinstance(layer, _WebSocketEntry) and layer.ws is ws:
        app.middleware_stack = _WebSocketEntry(stack, ws, layer.app_router)


class _UpgradeRequiredFallback:
    """Runs when no route of the app matched.

    A plain HTTP request to a WebSocket path gets 426; a WebSocket handshake to a path
    nobody serves gets a real 404 (Starlette's default would close it, seen as 403).
    """

    def __init__(self, router: WsRouter, default: ASGIApp) -> None:
        self.router = router
        self.default = default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.router.table.matches_any(
            route_path(scope), http_fallback_only=True
        ):
            response = JSONResponse(
                {"detail": "This is a WebSocket endpoint: connect with a WebSocket client."},
                status_code=426,
                headers={"Upgrade": "websocket", "Connection": "Upgrade"},
            )
            await response(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await deny(scope, send, Reject(404, f"no WebSocket handler for {route_path(scope)}"))
            return
        await self.default(scope, receive, send)


def _app_broker(connection: HTTPConnection) -> Broker:
    broker = getattr(connection.app.state, "wsroute_broker", None)
    if broker is None:
        raise RuntimeError("no WsRouter is installed on this app: call router.install(app)")
    assert isinstance(broker, Broker)
    return broker


AppBroker = Annotated[Broker, Depends(_app_broker)]
"""The app's `Broker` as a FastAPI dependency, for HTTP routes:

```python
@app.post("/rooms/{room}/announce")
async def announce(room: str, text: str, broker: AppBroker) -> None:
    await broker.broadcast_to(f"/rooms/{room}", text)
```
"""
