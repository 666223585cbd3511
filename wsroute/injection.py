"""Signature analysis into a plan at registration; filling the plan per connection and event.

Every handler and dependency parameter is classified once, when the handler is
decorated. A parameter is either *connection-level* (Channel, Broker, the request, guards,
path/query/header/cookie values, connection-scoped dependencies), resolved once per
connection and kept, or *event-level* (the message, the leave status, event-scoped
dependencies), filled for each event.

Dependency scopes: a FastAPI ``Depends`` that yields (a database session) or that needs
an event-scoped dependency is **event**-scoped: run for each message, torn down after the
handler returns. Any other dependency is **connection**-scoped: run once at the
handshake (so its `HTTPException` refuses the connection), cached, torn down at leave.
``Depends(dep, scope="function")`` forces event scope, ``scope="request"`` connection scope.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from typing import Annotated, Any, Literal

import orjson
from fastapi import params as fastapi_params
from fastapi.concurrency import contextmanager_in_threadpool
from fastapi.security import SecurityScopes
from fastapi.security.base import SecurityBase
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import PydanticUndefined
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket

from wsroute.broker import Broker
from wsroute.channel import Channel
from wsroute.errors import RegistrationError
from wsroute.guards import (
    Forward,
    HandshakeRequest,
    Reject,
    guard_mistake,
    is_async_builder,
    is_guard,
    runs_in_thread,
)
from wsroute.messages import Data, Decoder, make_decoder, split_annotated
from wsroute.security import SecurityScheme
from wsroute.status import WebSocketStatus

EventKind = Literal["message", "join", "leave"]
Scope = Literal["connection", "event"]


class Context:
    """What resolution reads and keeps for one connection (or multiplexed topic).

    A session is its own context (`Session` subclasses this): one object less per socket
    for the cycle collector to walk.
    """

    __slots__ = ("_dependencies", "_exit_stack", "broker", "channel", "request")

    def __init__(self, request: HandshakeRequest, channel: Channel[Any], broker: Broker) -> None:
        self.request = request
        self.channel = channel
        self.broker = broker
        self._dependencies: dict[object, Any] | None = None
        # Made on first use: most connections have no connection-scoped teardown, and an
        # idle connection's memory is what a server with many of them pays for.
        self._exit_stack: AsyncExitStack | None = None

    @property
    def dependencies(self) -> dict[object, Any]:
        """Values of connection-scoped dependencies, made on first use (most handlers have none)."""
        if self._dependencies is None:
            self._dependencies = {}
        return self._dependencies

    @property
    def exit_stack(self) -> AsyncExitStack:
        """Teardown of connection-scoped generator dependencies, run at leave."""
        if self._exit_stack is None:
            self._exit_stack = AsyncExitStack()
        return self._exit_stack

    async def close_dependencies(self) -> None:
        """Run the connection-scoped teardowns (once)."""
        stack, self._exit_stack = self._exit_stack, None
        if stack is not None:
            await stack.aclose()


class EventState:
    """Per-event dependency cache and teardown stack (only for handlers that need them)."""

    __slots__ = ("cache", "stack")

    def __init__(self, stack: AsyncExitStack) -> None:
        self.cache: dict[object, Any] = {}
        self.stack = stack


# --- what a handler needs, as the AsyncAPI document reads it ---------------------------

ParamWhere = Literal["path", "query", "header", "cookie"]


@dataclasses.dataclass(frozen=True)
class RequestParam:
    """A value read from the handshake request: a path, query, header or cookie parameter."""

    where: ParamWhere
    key: str
    """Its name in the request: the alias, or the header name (``x-token`` for ``x_token``)."""
    adapter: TypeAdapter[Any]
    """Validates the raw value (with the marker's and ``Annotated`` constraints); its
    ``json_schema()`` describes it."""
    required: bool
    default: Any
    """The value when the request has none (meaningful only when not `required`)."""


@dataclasses.dataclass(frozen=True)
class SecurityRequirement:
    """Credentials checked at the handshake by a guard or a dependency.

    `scheme` is the guard's (or dependency's) `SecurityScheme`, or FastAPI's security
    dependency itself (``APIKeyHeader``, ``OAuth2PasswordBearer``…). `name` is the guard
    class's name, the dependency's, or FastAPI's ``scheme_name``: the scheme's key unless a
    `SecurityScheme` names its own. `scopes` are the OAuth2 scopes in effect for it (those
    of every enclosing ``Security``), empty for a guard.
    """

    scheme: SecurityScheme | SecurityBase
    name: str
    scopes: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Interface:
    """What a handler needs and gives, read from its signature and its dependencies'.

    `params` and `security` are in the order the handler's parameters declare them,
    each dependency's own before its sub-dependencies'. `message` is the message
    parameter's annotation as written (``Annotated`` metadata included), None without one;
    `sends` the types named by typed ``Channel[T]`` parameters; `reply` a message
    handler's return annotation (what it answers a request with), None when it returns None.
    """

    params: tuple[RequestParam, ...]
    security: tuple[SecurityRequirement, ...]
    message: Any
    sends: tuple[Any, ...]
    reply: Any = None


# --- sources: where one parameter's value comes from -----------------------------------


class Source:
    """Base of parameter sources."""

    scope: Scope = "connection"

    async def resolve(self, ctx: Context, event: EventState | None) -> Any:
        """The value for this parameter."""
        raise NotImplementedError

    def needs(self) -> Iterator[RequestParam | SecurityRequirement]:
        """What resolving it reads from the request or checks, for `Interface`."""
        return iter(())


class _ChannelSource(Source):
    async def resolve(self, ctx: Context, event: EventState | None) -> Any:
        return ctx.channel


class _BrokerSource(Source):
    async def resolve(self, ctx: Context, event: EventState | None) -> Any:
        return ctx.broker


class _RequestSource(Source):
    async def resolve(self, ctx: Context, event: EventState | None) -> Any:
        return ctx.request


class _SecurityScopesSource(Source):
    """The scopes of every ``Security`` enclosing the dependency that asks for them."""

    def __init__(self, scopes: list[str]) -> None:
        self.scopes = tuple(scopes)

    async def resolve(self, ctx: Context, event: EventState | None) -> Any:
        # A fresh object each time, as FastAPI gives: a dependency may change its list.
        return SecurityScopes(scopes=list(self.scopes))


# In the connection's cache in place of an optional guard that refused: its handlers get
# None without asking the guard again per message.
_REFUSED = object()
_MISSING = object()


class GuardSource(Source):
    """A guard class, built once per connection and kept in the local cache. An
    `optional` one (``user: User | None``) is None where the guard refuses or forwards."""

    def __init__(self, guard: type, *, optional: bool = False) -> None:
        self.guard = guard
        self.optional = optional
        self.is_async = is_async_builder(guard.from_request)  # type: ignore[attr-defined]
        self.in_thread = runs_in_thread(guard)
        # One key for every connection: a tuple made per connection would be kept by each.
        self.key = ("wsroute.guard", guard)

    async def resolve(self, ctx: Context, event: EventState | None) -> Any:
        cache = ctx.request._local
        key = self.key
        value = cache.get(key, _MISSING)
        if value is _REFUSED:
            if self.optional:
                return None
        elif value is not _MISSING:
            return value
        try:
            value = await self._build(ctx.request)
        except (Reject, Forward):
            if not self.optional:
                raise
            # Rocket's `Option<T>` guard. Only the refusal's fact is kept: a kept exception
            # would hold its traceback's frames, and through them this cache (a cycle). A
            # required declaration of the same guard asks it again, and is refused.
            cache[key] = _REFUSED
            return None
        cache[key] = value
        return value

    async def _build(self, request: HandshakeRequest) -> Any:
        build = self.guard.from_request  # type: ignore[attr-defined]
        try:
            if self.is_async:
                return await build(request)
            value = await run_in_threadpool(build, request) if self.in_thread else build(request)
            if inspect.isawaitable(value):
                value = await value
            return value
        except HTTPException as exc:
            raise Reject.from_http(exc) from exc

    def needs(self) -> Iterator[RequestParam | SecurityRequirement]:
        scheme = getattr(self.guard, "security", None)
        # An optional guard requires nothing: AsyncAPI reads an operation's `security` as
        # "one of these must be satisfied", and it has no way to say "may be".
        if isinstance(scheme, SecurityScheme) and not self.optional:
            yield SecurityRequirement(scheme, self.guard.__name__)


def _request_values(request: HandshakeRequest, where: ParamWhere) -> Any:
    """The request's values of one kind: path parameters, query, headers or cookies."""
    if where == "path":
        return request.path_params
    if where == "query":
        return request.query_params
    if where == "header":
        return request.headers
    return request.cookies


def _repeatable(where: ParamWhere, annotation: Any) -> bool:
    """Whether a parameter is read as every value its key has (``?id=1&id=2``): a sequence
    type, from the bare type (``Annotated[list[int], Query()]`` is one too), in the query or
    the headers (path parameters and cookies have one value)."""
    origin = typing.get_origin(_strip_optional(split_annotated(annotation)[0]))
    return where in ("query", "header") and origin in (list, set, tuple, frozenset)


def _refusal(exc: ValidationError, loc: Callable[[list[Any]], list[Any]]) -> Reject:
    """FastAPI's 422 for `exc`: each error with its `input` and `ctx`, in pydantic's own JSON
    form (a validator's exception in `ctx` becomes its message), its `loc` made by `loc`."""
    errors = orjson.loads(exc.json(include_url=False))
    for err in errors:
        err["loc"] = loc(err["loc"])
    return Reject(422, errors)


class ParamSource(Source):
    """A path, query, header or cookie value, validated with pydantic."""

    def __init__(
        self,
        where: ParamWhere,
        name: str,
        key: str,
        annotation: Any,
        default: Any,
        default_factory: Callable[[], Any] | None = None,
    ) -> None:
        self.where = where
        self.name = name
        self.key = key
        self.annotation = annotation
        self.default = default
        self.default_factory = default_factory
        self.required = default is PydanticUndefined and default_factory is None
        self.adapter: TypeAdapter[Any] = TypeAdapter(annotation)
        self.sequence = _repeatable(where, annotation)

    async def resolve(self, ctx: Context, event: EventState | None) -> Any:
        values = _request_values(ctx.request, self.where)
        raw: Any
        if self.sequence:
            raw = values.getlist(self.key) or PydanticUndefined
        else:
            raw = values.get(self.key, PydanticUndefined)
        if raw is PydanticUndefined:
            if self.required:
                missing = {
                    "type": "missing",
                    "loc": [self.where, self.key],
                    "msg": "Field required",
                    "input": None,
                }
                raise Reject(422, [missing])
            return self.default if self.default_factory is None else self.default_factory()
        try:
            return self.adapter.validate_python(raw)
        except ValidationError as exc:
            raise _refusal(exc, lambda loc: [self.where, self.key, *loc]) from exc

    def needs(self) -> Iterator[RequestParam | SecurityRequirement]:
        yield RequestParam(self.where, self.key, self.adapter, self.required, self.default)


class ModelParamSource(Source):
    """A pydantic model whose fields are parameters of one kind, as FastAPI's parameter
    models (``filters: Annotated[Filters, Query()]``): each field read by its alias (a
    header's with ``-`` for ``_``), every other parameter of that kind passed along too
    (``extra="forbid"`` refuses them), the whole validated as the model."""

    def __init__(self, where: ParamWhere, model: type[BaseModel], convert_underscores: bool) -> None:
        self.where = where
        self.model = model
        # (key in the request, key the model validates by, read as a list)
        self.fields: list[tuple[str, str, bool]] = []
        self.params: list[RequestParam] = []
        for name, info in model.model_fields.items():
            alias = info.validation_alias if isinstance(info.validation_alias, str) else None
            by = alias or info.alias or name
            key = by
            if where == "header":
                key = (name.replace("_", "-") if by == name and convert_underscores else by).lower()
            self.fields.append((key, by, _repeatable(where, info.annotation)))
            default = None if info.default is PydanticUndefined else info.default
            adapter: TypeAdapter[Any] = TypeAdapter(info.rebuild_annotation())
            self.params.append(RequestParam(where, key, adapter, info.is_required(), default))
        self.keys = {by: key for key, by, _ in self.fields if by != key}

    async def resolve(self, ctx: Context, event: EventState | None) -> Any:
        source = _request_values(ctx.request, self.where)
        values: dict[str, Any] = {}
        taken = set()
        for key, by, sequence in self.fields:
            value = source.getlist(key) if sequence else source.get(key)
            if value is not None and value != []:
                values[by] = value
            taken.add(key)
            taken.add(by)
        for key, value in source.items():
            if key not in taken:
                values[key] = value
        try:
            return self.model.model_validate(values)
        except ValidationError as exc:
            raise _refusal(exc, self._loc) from exc

    def _loc(self, loc: list[Any]) -> list[Any]:
        # The request's key, as FastAPI's error names it (``x-token``, not ``x_token``).
        return [self.where, self.keys.get(loc[0], loc[0]), *loc[1:]] if loc else [self.where]

    def needs(self) -> Iterator[RequestParam | SecurityRequirement]:
        yield from self.params


_CallKind = Literal["async_generator", "generator", "coroutine", "function"]


def _call_kind(call: Callable[..., Any]) -> _CallKind:
    """How calling a dependency gives its value: it yields (async or not), it is awaited, or
    it returns. The one place that decides both a dependency's scope (one that yields is
    event-scoped) and how it is run.

    As FastAPI decides: by the callable itself, then by a callable instance's ``__call__``;
    a class builds an instance, so its instances' ``__call__`` is not what runs.
    """
    targets: list[Any] = [call]
    if not isinstance(call, type):
        targets.append(getattr(call, "__call__", None))  # noqa: B004 - a callable instance's method
    if any(inspect.isasyncgenfunction(target) for target in targets):
        return "async_generator"
    if any(inspect.isgeneratorfunction(target) for target in targets):
        return "generator"
    if any(inspect.iscoroutinefunction(target) for target in targets):
        return "coroutine"
    return "function"


class DependencySource(Source):
    """A FastAPI-style dependency (`Depends` or `Security`), with its own parameters.

    `scopes` are the OAuth2 scopes in effect for it: those of every enclosing ``Security``,
    outermost first, as FastAPI computes them. When the dependency depends on its scopes
    (it or a sub-dependency takes `SecurityScopes`, is a security scheme, or declares
    scopes), its cached value is kept per set of scopes, as FastAPI keys its cache: the
    same dependency under two ``Security`` with different scopes runs for each.
    """

    def __init__(
        self,
        call: Callable[..., Any],
        use_cache: bool,
        scope: Scope,
        params: list[tuple[str, Source]],
        scopes: Sequence[str] = (),
        uses_scopes: bool = False,
    ) -> None:
        self.call = call
        self.use_cache = use_cache
        self.scope = scope
        self.params = params
        self.scopes = tuple(scopes)
        self.uses_scopes = uses_scopes
        self.key: object
        if not use_cache:
            self.key = object()
        elif uses_scopes:
            self.key = (call, tuple(sorted(set(self.scopes))))
        else:
            self.key = call
        kind = _call_kind(call)
        self.is_async_gen = kind == "async_generator"
        self.is_gen = kind == "generator"
        self.is_async = kind == "coroutine"

    async def resolve(self, ctx: Context, event: EventState | None) -> Any:
        connection_scoped = self.scope == "connection"
        if connection_scoped:
            cache = ctx.dependencies
        else:
            assert event is not None, "event-scoped dependency resolved outside an event"
            cache = event.cache
        try:
            return cache[self.key]
        except KeyError:
            pass
        kwargs = {name: await source.resolve(ctx, event) for name, source in self.params}
        try:
            if self.is_async_gen or self.is_gen:
                # Only a generator needs the exit stack (made on first use per connection).
                if connection_scoped:
                    stack = ctx.exit_stack
                else:
                    assert event is not None
                    stack = event.stack
                if self.is_async_gen:
                    value = await stack.enter_async_context(asynccontextmanager(self.call)(**kwargs))
                else:
                    value = await stack.enter_async_context(
                        contextmanager_in_threadpool(contextmanager(self.call)(**kwargs))
                    )
            elif self.is_async:
                value = await self.call(**kwargs)
            else:
                value = await run_in_threadpool(self.call, **kwargs)
        except HTTPException as exc:
            raise Reject.from_http(exc) from exc
        cache[self.key] = value
        return value

    def needs(self) -> Iterator[RequestParam | SecurityRequirement]:
        call = self.call
        if isinstance(call, SecurityBase):
            yield SecurityRequirement(call, call.scheme_name, self.scopes)
        else:
            scheme = getattr(call, "security", None)
            if isinstance(scheme, SecurityScheme):
                name = getattr(call, "__name__", type(call).__name__)
                yield SecurityRequirement(scheme, name, self.scopes)
        for _, source in self.params:
            yield from source.needs()


# --- plans -------------------------------------------------------------------------------


@dataclasses.dataclass(eq=False)
class Plan:
    """How to call one handler: built once when it is decorated."""

    fn: Callable[..., Awaitable[Any]]
    connection_params: list[tuple[str, Source]]
    event_params: list[tuple[str, Source]]
    message_param: str | None = None
    decoder: Decoder | None = None
    message_annotation: Any = None
    """The message parameter's annotation as written, ``Annotated`` metadata included."""
    status_param: str | None = None
    sends: tuple[Any, ...] = ()
    """Types named by a typed ``Channel[T]`` parameter: what the handler sends (for docs)."""
    reply: Any = None
    """A message handler's return annotation: the reply to a request (None: it returns None)."""
    positional: tuple[str, ...] = ()
    """The parameters that can be given by position, in order: the per-message call passes
    them so (a call by keyword costs about 0.2 µs more per message). Empty for a wrapped
    function: the wrapper is what is called, and many take keyword arguments only."""
    positional_only: int = 0
    """How many of `positional` are positional-only: every call gives those by position."""

    @functools.cached_property
    def interface(self) -> Interface:
        """What the handler needs and gives, for the AsyncAPI document (made on first use)."""
        params: list[RequestParam] = []
        security: list[SecurityRequirement] = []
        for _, source in (*self.connection_params, *self.event_params):
            for need in source.needs():
                if isinstance(need, RequestParam):
                    params.append(need)
                else:
                    security.append(need)
        return Interface(tuple(params), tuple(security), self.message_annotation, self.sends, self.reply)

    @functools.cached_property
    def call_layout(self) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], str | None]:
        """The per-message call's shape, made once for every connection: the connection
        values given by position before the message and after it, those given by name,
        and the message's own name when it goes by name (None when by position)."""
        order, param = self.positional, self.message_param
        head: tuple[str, ...] = order
        tail: tuple[str, ...] = ()
        by_name_param = param
        if param is not None and param in order:
            at = order.index(param)
            head, tail, by_name_param = order[:at], order[at + 1 :], None
        by_name = tuple(name for name, _ in self.connection_params if name not in order)
        return head, tail, by_name, by_name_param

    @functools.cached_property
    def handshake_checks(self) -> tuple[Source, ...]:
        """The connection-scoped sources inside the event-scoped dependencies (a guard or an
        auth dependency that a `yield` dependency takes): they run at the handshake too, so
        that their refusal refuses the connection rather than its first message."""
        found: list[Source] = []

        def walk(source: Source) -> None:
            if isinstance(source, DependencySource) and source.scope == "event":
                for _, inner in source.params:
                    if inner.scope == "event":
                        walk(inner)
                    else:
                        found.append(inner)

        for _, source in self.event_params:
            walk(source)
        return tuple(found)

    async def connection_values(self, ctx: Context) -> dict[str, Any]:
        """Resolve the connection-level parameters (guards, params, cached dependencies)."""
        values = {name: await source.resolve(ctx, None) for name, source in self.connection_params}
        for source in self.handshake_checks:
            await source.resolve(ctx, None)  # cached per connection: the event reuses it
        return values


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, _UnionType)


def _strip_optional(annotation: Any) -> Any:
    if _is_union(annotation):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


_UnionType = type(int | str)


def _describe(fn: Callable[..., Any]) -> str:
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    module = getattr(fn, "__module__", None)
    return f"{module}.{name}" if module else name


def _hints(fn: Callable[..., Any], localns: Mapping[str, Any] | None = None) -> dict[str, Any]:
    target: Any = fn
    while isinstance(target, functools.partial):
        target = target.func  # its signature is the function's, less what the partial binds
    if isinstance(target, type):
        # A pydantic model's __init__ takes **data: its fields carry the annotations.
        target = target if issubclass(target, BaseModel) else target.__init__
    elif not (inspect.isfunction(target) or inspect.ismethod(target)):
        target = type(target).__call__
    try:
        return typing.get_type_hints(target, localns=dict(localns) if localns else None, include_extras=True)
    except Exception as exc:
        raise RegistrationError(
            f"{_describe(fn)}: cannot resolve its type annotations ({exc}); "
            "import the names it uses at module level"
        ) from exc


def _is_channel(annotation: Any) -> bool:
    return annotation is Channel or typing.get_origin(annotation) is Channel


def _is_non_scalar(annotation: Any) -> bool:
    inner = _strip_optional(annotation)
    if isinstance(inner, type):
        return (issubclass(inner, BaseModel | Mapping) or dataclasses.is_dataclass(inner)) and not issubclass(
            inner, str
        )
    return typing.get_origin(inner) in (dict, Mapping)


class Analyzer:
    """Classifies the parameters of one handler and of its dependencies."""

    def __init__(
        self,
        handler: Callable[..., Any],
        kind: EventKind,
        path_params: set[str],
        data: str,
        localns: Mapping[str, Any] | None = None,
    ) -> None:
        self.localns = localns
        self.handler = handler
        self.kind = kind
        self.path_params = path_params
        self.data = data
        self.where = _describe(handler)
        # While a dependency's parameters are analyzed: the scopes of the Security
        # declarations above them, concatenated (FastAPI's parent_oauth_scopes for its
        # sub-dependencies), and the scopes in effect for the dependency itself.
        self._scope_chain: list[str] = []
        self._scopes: list[str] = []

    def fail(self, param: str, problem: str, fix: str) -> RegistrationError:
        """A registration error naming the function, the parameter and the fix."""
        return RegistrationError(f"{self.where}: parameter {param!r}: {problem}. Fix: {fix}")

    def plan(self) -> Plan:
        """Analyze the handler into a `Plan`."""
        fn = self.handler
        if not inspect.iscoroutinefunction(fn):
            raise RegistrationError(
                f"{self.where}: a WebSocket {self.kind} handler must be `async def` "
                "(it awaits channel.send); make it a coroutine function"
            )
        hints = _hints(fn, self.localns)
        plan = Plan(fn=fn, connection_params=[], event_params=[])
        returns = hints.get("return")
        if self.kind == "message" and returns is not None and returns is not type(None):
            plan.reply = returns
        message_params: list[str] = []
        # inspect.signature shows a wrapper (functools.wraps) with its wrapped function's
        # parameters; the wrapper, called with them, may take keyword arguments only.
        by_position = inspect.unwrap(fn) is fn and not hasattr(fn, "__signature__")
        for param in inspect.signature(fn).parameters.values():
            name = param.name
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise self.fail(name, "*args/**kwargs cannot be injected", "remove it")
            if param.kind is param.POSITIONAL_ONLY:
                plan.positional += (name,)
                plan.positional_only += 1
            elif param.kind is param.POSITIONAL_OR_KEYWORD and by_position:
                plan.positional += (name,)
            if name not in hints:
                raise self.fail(
                    name,
                    "it has no type annotation, so nothing knows what to inject",
                    f"annotate it, e.g. `{name}: str`"
                    + ("" if name == self.data else f" or `{name}: Channel`"),
                )
            annotation, metadata = split_annotated(hints[name])
            if annotation is Data or (
                self.kind != "leave"
                and name == self.data
                and not _marker(metadata, param.default)
                and not _depends(metadata, param.default)
            ):
                if self.kind == "join":
                    raise self.fail(
                        name,
                        "a join handler has no message",
                        "remove the message parameter, or handle messages in a @router.message handler",
                    )
                if self.kind == "leave":
                    raise self.not_a_message(name)
                message_params.append(name)
                if len(message_params) > 1:
                    raise self.fail(
                        name,
                        f"two message parameters ({message_params[0]!r} and {name!r})",
                        "keep one: the message goes to the parameter named by data= "
                        "(default 'data') or annotated Data",
                    )
                plan.message_param = name
                # The full annotation, in the decoder and the docs alike: Annotated keeps
                # its constraints and a union its discriminator.
                plan.message_annotation = hints[name]
                plan.decoder = make_decoder(hints[name])
                continue
            if annotation is WebSocketStatus:
                if self.kind != "leave":
                    raise self.fail(
                        name,
                        f"WebSocketStatus is only given to leave handlers, not {self.kind}",
                        "move it to a @router.leave handler",
                    )
                plan.status_param = name
                continue
            if _is_channel(annotation) and typing.get_args(annotation):
                plan.sends += typing.get_args(annotation)
            source = self.source(name, annotation, metadata, param.default, of_handler=True)
            if source.scope == "event":
                plan.event_params.append((name, source))
            else:
                plan.connection_params.append((name, source))
        if self.kind == "message" and self.data != "data" and plan.message_param is None:
            raise RegistrationError(
                f"{self.where}: data={self.data!r} names no parameter. Fix: add a parameter "
                f"`{self.data}: str` (or bytes, a model, Data) or correct data="
            )
        if self.kind == "leave" and plan.message_param is None:
            for name, src in plan.connection_params:
                if name == self.data and isinstance(src, ParamSource):
                    raise self.not_a_message(name)
        return plan

    def not_a_message(self, name: str) -> RegistrationError:
        """The error for a leave handler's data parameter, which is not its close status."""
        return self.fail(
            name,
            "a leave handler receives the close status, not a message",
            f"annotate it `{name}: WebSocketStatus`",
        )

    def source(
        self, name: str, annotation: Any, metadata: list[Any], default: Any, *, of_handler: bool = False
    ) -> Source:
        """Classify one parameter (of the handler itself when `of_handler`, else of a dependency)."""
        depends = _depends(metadata, default)
        if depends is not None:
            return self.dependency(name, depends, annotation)
        if _is_channel(annotation):
            return _ChannelSource()
        if annotation is Broker:
            return _BrokerSource()
        if annotation is SecurityScopes:
            return _SecurityScopesSource(self._scopes)
        if isinstance(annotation, type) and issubclass(annotation, WebSocket):
            raise self.fail(
                name,
                "the raw starlette WebSocket is owned by wsroute",
                "use `Channel` to send and close, and `HandshakeRequest` to read the request",
            )
        if isinstance(annotation, type) and issubclass(annotation, HTTPConnection):
            return _RequestSource()
        guard = _strip_optional(annotation)
        if guard is annotation and _is_union(annotation) and any(map(is_guard, typing.get_args(annotation))):
            raise self.fail(
                name,
                "a union of a guard and another type is not a guard",
                "declare each guard as its own parameter (`user: User | None, staff: Staff | None`)",
            )
        if is_guard(guard):
            mistake = guard_mistake(guard)
            if mistake is not None:
                raise self.fail(name, *mistake)
            return GuardSource(guard, optional=guard is not annotation)
        if annotation is WebSocketStatus or annotation is Data:
            raise self.fail(
                name,
                f"{annotation.__name__} cannot be used in a dependency",
                "take it in the handler itself",
            )
        body = next((m for m in [*metadata, default] if isinstance(m, fastapi_params.Body)), None)
        if body is not None:
            raise self.fail(
                name,
                f"{type(body).__name__}() has no meaning in a WebSocket handler",
                "the message is the body: read it from the message parameter",
            )
        marker = _marker(metadata, default)
        if marker is not None:
            where = marker.in_.value
            if where not in ("path", "query", "header", "cookie"):
                raise self.fail(
                    name,
                    f"{type(marker).__name__}() has no meaning in a WebSocket handler",
                    "use Query, Path, Header or Cookie, or read the message parameter",
                )
            # The name to read, as FastAPI picks it: validation_alias, then alias.
            alias = marker.validation_alias if isinstance(marker.validation_alias, str) else None
            alias = alias or marker.alias
            key = alias or name
            if where == "header" and alias is None and getattr(marker, "convert_underscores", True):
                key = name.replace("_", "-")
            if where == "path" and key not in self.path_params:
                raise self.fail(
                    name,
                    f"Path() parameter {key!r} is not in the route's path",
                    f"add {{{key}}} to the path, or make it a query parameter",
                )
            if where != "path" and name in self.path_params:
                raise self.fail(
                    name,
                    f"{type(marker).__name__}() on {name!r}, which is a path parameter of the route",
                    f"use Path(), or give the {where} parameter another name (alias= for the key)",
                )
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                if where == "path":
                    raise self.fail(
                        name,
                        "a Path() parameter model is not supported (FastAPI has none either)",
                        "declare each path parameter on its own",
                    )
                convert = bool(getattr(marker, "convert_underscores", True))
                return ModelParamSource(where, annotation, convert)  # type: ignore[arg-type]
            fallback = marker.default if marker.default is not ... else PydanticUndefined
            if default is not inspect.Parameter.empty and default is not marker:
                fallback = default
            factory = marker.default_factory if fallback is PydanticUndefined else None
            # Validate with the marker's constraints (Query(ge=1), max_length, …) and every
            # other item of Annotated (Gt(0), AfterValidator…), as FastAPI does.
            extra = [m for m in metadata if m is not marker]
            with_marker: Any = Annotated[(annotation, *extra, marker)]
            return ParamSource(where, name, key, with_marker, fallback, factory)  # type: ignore[arg-type]
        value_default = PydanticUndefined if default is inspect.Parameter.empty else default
        # Validate with pydantic constraints given in Annotated (StringConstraints, Field, …).
        constrained: Any = Annotated[(annotation, *metadata)] if metadata else annotation
        if name in self.path_params:
            return ParamSource("path", name, name, constrained, value_default)
        if _is_non_scalar(annotation):
            if of_handler and self.kind == "leave" and name == self.data:
                # A model there is a message by habit; a dependency's `data` could not take
                # the status, so only the handler's own parameter gets this advice.
                raise self.not_a_message(name)
            if self.kind == "message":
                raise self.fail(
                    name,
                    f"a structured type can only be the message, and the message parameter is {self.data!r}",
                    f"rename it to {self.data!r}, or pass data={name!r} to the decorator",
                )
            raise self.fail(
                name,
                "a structured type cannot come from the query string",
                "take it from the message (message handlers) or build it in a dependency",
            )
        return ParamSource("query", name, name, constrained, value_default)

    def dependency(self, name: str, depends: fastapi_params.Depends, annotation: Any) -> DependencySource:
        """Analyze a `Depends` into a `DependencySource`, recursively."""
        call = depends.dependency if depends.dependency is not None else annotation
        if not callable(call):
            raise self.fail(name, "Depends() has nothing to call", "pass the dependency: Depends(get_x)")
        hints = _hints(call, self.localns)
        own = list(depends.scopes or ()) if isinstance(depends, fastapi_params.Security) else []
        # As FastAPI: the scopes in effect are the enclosing ones, then this Security's own
        # not already among them; its sub-dependencies inherit both, concatenated.
        scopes = [*self._scope_chain]
        scopes.extend(scope for scope in dict.fromkeys(own) if scope not in self._scope_chain)
        outer = self._scope_chain, self._scopes
        self._scope_chain, self._scopes = [*self._scope_chain, *own], scopes
        params: list[tuple[str, Source]] = []
        try:
            for param in inspect.signature(call).parameters.values():
                if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                    continue
                if param.name not in hints:
                    raise RegistrationError(
                        f"{self.where}: dependency {_describe(call)}: parameter {param.name!r} has no "
                        f"type annotation. Fix: annotate it"
                    )
                sub_annotation, sub_metadata = split_annotated(hints[param.name])
                params.append(
                    (param.name, self.source(param.name, sub_annotation, sub_metadata, param.default))
                )
        finally:
            self._scope_chain, self._scopes = outer
        uses_scopes = (
            bool(own)
            or isinstance(call, SecurityBase)
            or any(
                isinstance(source, _SecurityScopesSource)
                or (isinstance(source, DependencySource) and source.uses_scopes)
                for _, source in params
            )
        )
        needs_event = any(source.scope == "event" for _, source in params)
        is_generator = _call_kind(call) in ("generator", "async_generator")
        declared = getattr(depends, "scope", None)
        scope: Scope
        if declared == "request":
            if needs_event:
                raise self.fail(
                    name,
                    f"dependency {_describe(call)} is connection-scoped (scope='request') but "
                    "needs an event-scoped dependency",
                    "drop scope='request', or make its sub-dependencies connection-scoped",
                )
            scope = "connection"
        elif declared == "function" or needs_event or is_generator:
            scope = "event"
        else:
            scope = "connection"
        return DependencySource(call, depends.use_cache, scope, params, scopes, uses_scopes)


def _depends(metadata: list[Any], default: Any) -> fastapi_params.Depends | None:
    for item in metadata:
        if isinstance(item, fastapi_params.Depends):
            return item
    return default if isinstance(default, fastapi_params.Depends) else None


def _marker(metadata: list[Any], default: Any) -> fastapi_params.Param | None:
    for item in metadata:
        if isinstance(item, fastapi_params.Param):
            return item
    if isinstance(default, fastapi_params.Param):
        return default
    return None


def analyze(
    handler: Callable[..., Any],
    kind: EventKind,
    path_params: set[str],
    data: str = "data",
    localns: Mapping[str, Any] | None = None,
) -> Plan:
    """Build the resolution plan of `handler`; raises `RegistrationError` on any misuse.

    `localns` resolves string annotations that name local classes of the function that
    declared the handler (a guard defined inside an app factory).
    """
    return Analyzer(handler, kind, path_params, data, localns).plan()
