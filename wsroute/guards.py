"""The handshake request, its local cache, and guards: `Guard`, `Reject`, `Forward`.

A guard is any class with a classmethod ``from_request(cls, request)`` (sync or async)
that returns an instance, rejects with `Reject` (or FastAPI's `HTTPException`), or passes
the event to the next matching handler with `Forward`. Guards are built once per
connection and kept in the connection's local cache. A guard that could not be built
that way is refused when the handler is decorated (`guard_mistake`).
"""

from __future__ import annotations

import contextlib
import inspect
import warnings
import weakref
from collections.abc import Awaitable, Callable, Hashable
from http import HTTPStatus
from typing import Any, ClassVar, Self, TypeVar

from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.types import Scope

from wsroute.errors import SyncGuardWarning
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

    @classmethod
    def from_http(cls, exc: HTTPException) -> Reject:
        """The refusal that FastAPI's (or Starlette's) `HTTPException` means at a handshake:
        the same status, detail and headers. Raise it ``from exc``."""
        return cls(exc.status_code, exc.detail, dict(exc.headers or {}))


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

    @property
    def query_params(self) -> QueryParams:
        """The query string's parameters (Starlette's `QueryParams`), parsed on first use."""
        # getattr with a default: a caught AttributeError would cost more than the parse.
        params: QueryParams | None = getattr(self, "_query_params", None)
        if params is None:
            params = self._query_params = parse_query(self.scope["query_string"])
        return params

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


# Shared: `QueryParams` is immutable, and most handshakes carry no query string.
_NO_QUERY = QueryParams()


def parse_query(raw: bytes) -> QueryParams:
    """`raw` parsed as Starlette parses a query string (latin-1, blank values kept).

    Guards read the query at every handshake (a token, a user name), and Starlette's
    parse (``urllib.parse.parse_qsl``) costs about as much as the rest of a guard's work.
    A string with nothing to decode (no ``%``, no ``+``) is split here instead, with the
    same result; anything else goes to Starlette.
    """
    if not raw:
        return _NO_QUERY
    text = raw.decode("latin-1")
    if "%" in text or "+" in text:
        return QueryParams(text)
    pairs = []
    for field in text.split("&"):
        if field:
            name, _, value = field.partition("=")
            pairs.append((name, value))
    return QueryParams(pairs)


# Starlette's lazily parsed views of the scope, cached on the request object.
_PARSED_VIEWS = ("_headers", "_query_params", "_cookies", "_url", "_base_url")


def forget_parsed(request: HandshakeRequest) -> None:
    """Drop the request's parsed headers, query and URL; they are rebuilt on next use.

    Called once the handshake is decided: guards and connection dependencies have read
    what they need, and an idle socket should not keep half a kilobyte of parsed views.
    """
    for name in _PARSED_VIEWS:
        # Not through `__dict__`: reading it makes CPython build a dict for the object's
        # attributes, one more object per socket for the collector to walk.
        if hasattr(request, name):
            delattr(request, name)


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

    `sync_to_thread` says where a plain-`def` `from_request` runs: ``False`` on the event
    loop (it only reads the request and memory: a signed token, a header; about 140 µs
    less per handshake), ``True`` in the thread pool (it blocks: a database, a file, an
    HTTP call). Left unset, it runs in the thread pool and a `SyncGuardWarning` asks you to
    choose. Ignored for an ``async def`` one.
    """

    security: ClassVar[SecurityScheme | None] = None
    sync_to_thread: ClassVar[bool | None] = None

    @classmethod
    def from_request(cls, request: HandshakeRequest) -> Self | Awaitable[Self]:
        """Build the guard from the handshake request, or raise `Reject` / `Forward`."""
        raise NotImplementedError(f"{cls.__qualname__} must implement from_request")


def is_guard(annotation: object) -> bool:
    """True when `annotation` is a class meant to be a guard.

    That is a class with a callable `from_request`, a subclass of `Guard`, or a class that
    declares a `security` scheme; `guard_mistake` says whether it can actually be built.
    """
    if not isinstance(annotation, type):
        return False
    return (
        callable(getattr(annotation, "from_request", None))
        or issubclass(annotation, Guard)
        or isinstance(getattr(annotation, "security", None), SecurityScheme)
    )


_warned: weakref.WeakSet[type] = weakref.WeakSet()


def runs_in_thread(guard: type) -> bool:
    """Whether `guard.from_request` is called in the thread pool: a plain `def` one unless
    the guard sets ``sync_to_thread = False``. One left unset gets a `SyncGuardWarning`
    (once per class), pointing at its `from_request`."""
    build = guard.from_request  # type: ignore[attr-defined]
    if is_async_builder(build):
        return False
    choice = getattr(guard, "sync_to_thread", None)
    if choice is None and guard not in _warned:
        function = inspect.unwrap(getattr(build, "__func__", build))
        call = getattr(type(build), "__call__", None)  # noqa: B004 - a callable object's method
        code = getattr(function, "__code__", None) or getattr(call, "__code__", None)
        warnings.warn_explicit(
            f"{guard.__qualname__}.from_request is a plain def, so every handshake runs it in the "
            "thread pool. Say whether it blocks: `sync_to_thread = False` on the class if it only "
            "reads the request and memory (it then runs on the event loop, ~140 µs less per "
            "handshake), `sync_to_thread = True` if it does I/O.",
            SyncGuardWarning,
            filename=code.co_filename if code is not None else guard.__module__,
            lineno=code.co_firstlineno if code is not None else 0,
            module=guard.__module__,
        )
        _warned.add(guard)  # after: with the warning made an error, every use raises it
    return choice is not False


def is_async_builder(build: object) -> bool:
    """Whether calling `build` gives a coroutine: an ``async def``, or an object whose
    ``__call__`` is one."""
    return inspect.iscoroutinefunction(build) or inspect.iscoroutinefunction(
        getattr(type(build), "__call__", None)  # noqa: B004 - the class's method, not callability
    )


def _raw_from_request(guard: type) -> object | None:
    # The attribute as the class body defined it (function, classmethod, staticmethod…):
    # `guard.from_request` has already bound it, hiding a missing @classmethod.
    for klass in guard.__mro__:
        if "from_request" in klass.__dict__:
            raw: object = klass.__dict__["from_request"]
            return raw
    return None


def _bare(signature: inspect.Signature) -> str:
    # Names and defaults only: annotations (often strings) make the message hard to read.
    empty = inspect.Parameter.empty
    parameters = [p.replace(annotation=empty) for p in signature.parameters.values()]
    return str(signature.replace(parameters=parameters, return_annotation=empty))


def guard_mistake(guard: type) -> tuple[str, str] | None:
    """Why `guard` cannot be built as ``guard.from_request(request)``, and the fix; None if it can.

    Checked when a handler is decorated: each of these mistakes otherwise fails every
    handshake with a 500, or (a `from_request` that yields) lets every client in with a
    generator instead of the guard, its checks never run.
    """
    name = guard.__qualname__
    raw = _raw_from_request(guard)
    build = getattr(guard, "from_request", None)
    if guard is Guard:
        return (
            "wsroute.Guard is the base class and has no from_request",
            "annotate it with your subclass of Guard, which defines "
            "`@classmethod def from_request(cls, request)`",
        )
    if raw is Guard.__dict__["from_request"] or not callable(build):
        why = "subclasses wsroute.Guard" if issubclass(guard, Guard) else "declares a security scheme"
        return (
            f"{name} {why}, so it is a guard, but it has no from_request to build it",
            f"in {name}, define `@classmethod def from_request(cls, request: HandshakeRequest) "
            f"-> {name}` (or `async def`) returning an instance",
        )
    if inspect.isfunction(raw):
        return (
            f"{name}.from_request is a plain method, but guards are built with "
            f"{name}.from_request(request), without an instance",
            "decorate it with @classmethod: `@classmethod def from_request(cls, request)`",
        )
    # A callable instance yields through its __call__ (a function's is a method-wrapper).
    call = getattr(build, "__call__", None)  # noqa: B004 - a callable instance's method
    if inspect.isasyncgenfunction(build) or inspect.isasyncgenfunction(call):
        kind = "an async generator"
    elif inspect.isgeneratorfunction(build) or inspect.isgeneratorfunction(call):
        kind = "a generator"
    else:
        kind = ""
    if kind:
        return (
            f"{name}.from_request is {kind} (it yields): its body would never run, so no "
            "check in it could refuse a client, and the handler would get the generator",
            "`return` the instance instead of yielding it; a guard has no teardown "
            "(a Depends that yields has one)",
        )
    choice = getattr(guard, "sync_to_thread", None)
    if choice is not None and not isinstance(choice, bool):
        return (
            f"{name}.sync_to_thread is {choice!r}",
            "set it to False (from_request only reads the request: it runs on the event loop) "
            "or True (it blocks: it runs in the thread pool)",
        )
    try:
        signature = inspect.signature(build)
    except (TypeError, ValueError):
        # A callable without a readable signature (a builtin, a C extension): trusted.
        return None
    try:
        signature.bind(None)
    except TypeError:
        shown = _bare(signature)
        if isinstance(raw, classmethod):
            # Shown as written, with cls: the bound signature would hide it.
            with contextlib.suppress(TypeError, ValueError):
                shown = _bare(inspect.signature(raw.__func__))
        first = next(iter(signature.parameters), None)
        if isinstance(raw, staticmethod) and first == "cls":
            return (
                f"{name}.from_request{shown} is a staticmethod, so nothing passes it the class",
                "make it a @classmethod: `@classmethod def from_request(cls, request)`",
            )
        return (
            f"{name}.from_request{shown} cannot be called as {name}.from_request(request)",
            "take exactly one parameter, the request, after cls; give any other parameter "
            "a default, or read it from the request (request.app.state, request.local_cache)",
        )
    return None
