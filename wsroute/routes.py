"""Handlers, their paths and ranks, and the table that matches a path to handlers.

Paths use Starlette's syntax (``/rooms/{room}``, ``{rest:path}``). ``{_}`` is an
anonymous segment: it matches but is never injected, and may appear several times.
Handlers that match the same path are tried by `rank` (lower first), then in the order
they were registered. The default rank puts static paths (0) before paths with
parameters (1) before catch-all ``:path`` parameters (2).
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from starlette.convertors import Convertor
from starlette.routing import compile_path
from starlette.types import Scope

from wsroute.injection import EventKind, Plan, analyze
from wsroute.settings import check_rate_limit

_ANONYMOUS = re.compile(r"\{_(:[a-zA-Z_][a-zA-Z0-9_]*)?\}")

PATH_PARAM = re.compile(r"\{([a-zA-Z_][a-zA-Z0-9_]*)(?::([a-zA-Z_][a-zA-Z0-9_]*))?\}")
"""A parameter of a route path: group 1 its name (``_`` for an anonymous one), group 2 its
convertor without the colon (``path`` in ``{rest:path}``), or None."""


def _name_anonymous(path: str) -> str:
    counter = iter(range(1_000_000))
    return _ANONYMOUS.sub(lambda m: f"{{__anon{next(counter)}{m.group(1) or ''}}}", path)


def route_path(scope: Scope) -> str:
    """The path routes are matched against: the scope's path without the app's root_path."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :] or "/"
    return path


def default_rank(path: str) -> int:
    """0 for a static path, 1 with parameters, 2 with a catch-all ``:path`` parameter."""
    params = PATH_PARAM.findall(path)
    if not params:
        return 0
    return 2 if any(convertor == "path" for _, convertor in params) else 1


@dataclasses.dataclass(frozen=True)
class RouteOptions:
    """The options of a `message`, `join` or `leave` decorator (see `WsRouter.message`),
    checked when they are made.

    `decorator` (``"@message('/x')"``) only names the declaration in error messages. A
    `rate_limit` is normalized to a tuple, `sends` to a tuple.
    """

    data: str = "data"
    rank: int | None = None
    """None: `default_rank` of the path."""
    max_message_size: int | None = None
    """None: the router's."""
    rate_limit: tuple[int, float] | None = None
    """``(messages, seconds)`` for each connection this message handler takes; None: the router's."""
    http_fallback: bool = True
    query_in_topic: bool = False
    sends: Sequence[Any] = ()
    name: str | None = None
    """None: the function's name."""
    summary: str | None = None
    """None: the docstring's first line."""
    decorator: dataclasses.InitVar[str] = ""

    def __post_init__(self, decorator: str) -> None:
        check_rate_limit(self.rate_limit, f" on {decorator}" if decorator else "")
        if self.rate_limit is not None:
            object.__setattr__(self, "rate_limit", (self.rate_limit[0], self.rate_limit[1]))
        object.__setattr__(self, "sends", tuple(self.sends))


@dataclasses.dataclass(eq=False)
class Handler:
    """One registered `message`, `join` or `leave` handler and its route options."""

    kind: EventKind
    path: str
    fn: Callable[..., Any]
    plan: Plan
    options: RouteOptions
    rank: int
    """`options.rank`, or the path's `default_rank`."""
    name: str
    """`options.name`, or the function's name."""
    order: int
    regex: re.Pattern[str]
    convertors: dict[str, Convertor[Any]]
    localns: Mapping[str, Any] | None = dataclasses.field(default=None, repr=False)
    """The names that resolve the function's annotations, to analyze it again under
    another path prefix."""

    # What a connection reads of its handler (session.py), when it is accepted and on the
    # per-message path that is not the prepared fast call.
    @property
    def max_message_size(self) -> int | None:
        """`options.max_message_size`: None for the router's."""
        return self.options.max_message_size

    @property
    def rate_limit(self) -> tuple[int, float] | None:
        """`options.rate_limit`: None for the router's."""
        return self.options.rate_limit

    @property
    def query_in_topic(self) -> bool:
        """`options.query_in_topic`."""
        return self.options.query_in_topic

    @property
    def path_params(self) -> set[str]:
        """Names of the path's parameters (anonymous ``{_}`` ones included, renamed)."""
        return set(self.convertors)

    def match(self, path: str) -> dict[str, Any] | None:
        """The converted path parameters when `path` matches, else None."""
        found = self.regex.match(path)
        if found is None:
            return None
        convertors = self.convertors
        return {key: convertors[key].convert(value) for key, value in found.groupdict().items()}


_order = itertools.count()


def join_path(prefix: str, path: str) -> str:
    """``prefix + path`` without a doubled or trailing slash (``"/v1" + "/"`` is ``"/v1"``)."""
    prefix = prefix.rstrip("/")
    if prefix and path == "/":
        return prefix
    return prefix + path


def make_handler(
    kind: EventKind,
    path: str,
    fn: Callable[..., Any],
    options: RouteOptions,
    *,
    order: int | None = None,
    localns: Mapping[str, Any] | None = None,
) -> Handler:
    """Analyze `fn` for `path` and build its `Handler` (raises `RegistrationError`).

    `localns` resolves postponed annotations that name classes local to the function that
    declared the handler.
    """
    regex, convertors = compile_route(path)
    plan = analyze(fn, kind, set(convertors), options.data, localns)
    return Handler(
        kind=kind,
        path=path,
        fn=fn,
        plan=plan,
        options=options,
        rank=default_rank(path) if options.rank is None else options.rank,
        name=options.name or str(getattr(fn, "__name__", kind)),
        order=next(_order) if order is None else order,
        regex=regex,
        convertors=convertors,
        localns=localns,
    )


def compile_route(path: str) -> tuple[re.Pattern[str], dict[str, Convertor[Any]]]:
    """Compile a route path (with anonymous segments) into a regex and its convertors."""
    if not path.startswith("/"):
        raise ValueError(f"route path {path!r} must start with '/'")
    regex, _, convertors = compile_path(_name_anonymous(path))
    return regex, convertors


class RouteTable:
    """Every handler, by event kind, in try order; matches paths with a small cache."""

    def __init__(self) -> None:
        self.handlers: list[Handler] = []
        self._by_kind: dict[str, list[Handler]] = {"message": [], "join": [], "leave": []}
        self._cache: dict[tuple[str, str], list[tuple[Handler, dict[str, Any]]]] = {}

    def add(self, handler: Handler) -> None:
        """Register `handler`; try order is (rank, registration order)."""
        self.handlers.append(handler)
        bucket = self._by_kind[handler.kind]
        bucket.append(handler)
        bucket.sort(key=lambda h: (h.rank, h.order))
        self._cache.clear()

    def match(self, kind: str, path: str) -> list[tuple[Handler, dict[str, Any]]]:
        """Handlers of `kind` whose path matches, in try order, with their path parameters."""
        key = (kind, path)
        found = self._cache.get(key)
        if found is None:
            found = []
            for handler in self._by_kind[kind]:
                params = handler.match(path)
                if params is not None:
                    found.append((handler, params))
            if len(self._cache) > 4096:
                # Paths carry parameters (room names): bound the cache, not the paths.
                self._cache.clear()
            self._cache[key] = found
        return found

    def matches_any(self, path: str, *, http_fallback_only: bool = False) -> bool:
        """True when some handler of any kind matches `path`."""
        for handler in self.handlers:
            if http_fallback_only and not handler.options.http_fallback:
                continue
            if handler.regex.match(path):
                return True
        return False
