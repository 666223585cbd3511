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

_ANONYMOUS = re.compile(r"\{_(:[a-zA-Z_][a-zA-Z0-9_]*)?\}")
_PARAM = re.compile(r"\{([a-zA-Z_][a-zA-Z0-9_]*)(:[a-zA-Z_][a-zA-Z0-9_]*)?\}")


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
    params = _PARAM.findall(path)
    if not params:
        return 0
    return 2 if any(conv == ":path" for _, conv in params) else 1


@dataclasses.dataclass(eq=False)
class Handler:
    """One registered `message`, `join` or `leave` handler and its route options."""

    kind: EventKind
    path: str
    fn: Callable[..., Any]
    plan: Plan
    rank: int
    order: int
    regex: re.Pattern[str]
    convertors: dict[str, Convertor[Any]]
    max_message_size: int | None = None
    rate_limit: tuple[int, float] | None = None
    """``(messages, seconds)`` for each connection this message handler takes; None: the router's."""
    http_fallback: bool = True
    query_in_topic: bool = False
    sends: tuple[Any, ...] = ()
    name: str = ""
    summary: str | None = None
    options: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)
    """The decorator's arguments (and the names that resolve its annotations), to rebuild it
    under another path prefix."""

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
    *,
    order: int | None = None,
    data: str = "data",
    rank: int | None = None,
    max_message_size: int | None = None,
    rate_limit: tuple[int, float] | None = None,
    http_fallback: bool = True,
    query_in_topic: bool = False,
    sends: Sequence[Any] = (),
    name: str | None = None,
    summary: str | None = None,
    localns: Mapping[str, Any] | None = None,
) -> Handler:
    """Analyze `fn` for `path` and build its `Handler` (raises `RegistrationError`)."""
    regex, convertors = compile_route(path)
    plan = analyze(fn, kind, set(convertors), data, localns)
    options: dict[str, Any] = {
        "data": data,
        "rank": rank,
        "max_message_size": max_message_size,
        "rate_limit": rate_limit,
        "http_fallback": http_fallback,
        "query_in_topic": query_in_topic,
        "sends": sends,
        "name": name,
        "summary": summary,
        "localns": localns,
    }
    return Handler(
        kind=kind,
        path=path,
        fn=fn,
        plan=plan,
        rank=default_rank(path) if rank is None else rank,
        order=next(_order) if order is None else order,
        regex=regex,
        convertors=convertors,
        max_message_size=max_message_size,
        rate_limit=None if rate_limit is None else (rate_limit[0], rate_limit[1]),
        http_fallback=http_fallback,
        query_in_topic=query_in_topic,
        sends=tuple(sends),
        name=name or str(getattr(fn, "__name__", kind)),
        summary=summary,
        options=options,
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
            if http_fallback_only and not handler.http_fallback:
                continue
            if handler.regex.match(path):
                return True
        return False
