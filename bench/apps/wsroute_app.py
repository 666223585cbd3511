"""wsroute, installed on a FastAPI app as a user would.

* ``/echo`` — the issue's echo: a typed ``str`` handler with ``Channel`` and one guard
  (built once per connection, then cached);
* ``/idle`` — same handler shape, for the idle-memory and connection-rate scenarios;
* ``/fan/{room}`` — subscribers (the topic is the URL path); ``/pub/{room}`` — every text
  message is published with ``Broker.broadcast_to("/fan/{room}", data)``;
* ``/mx/{n}`` — the echo handler again, for multiplexed (``rocket-multiplex``) sockets;
* ``/rq/{n}`` — request/reply: on a ``meta`` subscription of a multiplexed socket, the
  request ``/rq/n·id=N·payload`` is answered ``/rq/n·reply=N·payload`` (the return value).
* ``/hist/{room}`` — the reconnect storm's topic (subscribers only, on multiplexed sockets
  with ``meta,positions[,since=E:O]``); ``/hburst/{room}`` — the message ``N`` broadcasts
  ``N`` messages to ``/hist/{room}`` one after another, then answers ``done N``.

``BENCH_HISTORY=N`` switches history on (issue 16): ``ws.topic("/fan/{room}", history=N,
history_ttl=600.0)`` and the same for ``/hist/{room}``. ``BENCH_PRESENCE=1`` switches
presence on for ``/fan/{room}`` (``presence=True``, with the history options when both are
set) and adds a ``join`` handler there that names each connection
``PresenceInfo(user="u<n>", info={"name": "bench"})``: every subscriber is a member.
Without them no ``ws.topic`` and no ``join`` is configured, so the other scenarios measure
the app exactly as before.

``BENCH_EXPERIMENT`` applies bench-only patches (see ``bench/experiments.py``).
``BENCH_BROKER`` picks the broker URL (``memory://`` default; ``redis://127.0.0.1:6379/0``
for the cross-process scenario). ``BENCH_MAX_TOPICS=N`` sets ``max_topics`` (topics per
multiplexed socket; the handshake scenario subscribes 1000). ``BENCH_WSROUTE_BARE=1``
serves the ``WsRouter`` itself as the ASGI app (no FastAPI/Starlette middleware), to split
framework cost from wsroute's. ``BENCH_FASTAPI_TELEMETRY=off`` builds the app with
FastAPI's OpenTelemetry switched off (``bench/instructions.py``).
"""

from __future__ import annotations

import itertools
import os

from fastapi import FastAPI

import bench.apps._gcstats  # noqa: F401  (BENCH_GC_STATS=1: GC time in the server log)
from bench.experiments import apply_from_env
from wsroute import Broker, Channel, Guard, HandshakeRequest, PresenceInfo, WsRouter

EXPERIMENTS = apply_from_env()  # bench-only monkeypatches, see bench/experiments.py


class User(Guard):
    """A cheap async guard: built once per connection and kept in its local cache."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    async def from_request(cls, request: HandshakeRequest) -> User:
        return cls(request.query_params.get("user", "anon"))


# BENCH_MAX_TOPICS: topics per multiplexed socket (the handshake scenario's 1000 SUBSCRIBEs
# on one socket); unset, wsroute's default (64).
_MAX_TOPICS = os.environ.get("BENCH_MAX_TOPICS")
ws = WsRouter(
    broker=os.environ.get("BENCH_BROKER", "memory://"),
    **({"max_topics": int(_MAX_TOPICS)} if _MAX_TOPICS else {}),
)
HISTORY = int(os.environ.get("BENCH_HISTORY", "0"))
PRESENCE = os.environ.get("BENCH_PRESENCE") == "1"
if HISTORY:
    ws.topic("/fan/{room}", history=HISTORY, history_ttl=600.0, presence=PRESENCE)
    ws.topic("/hist/{room}", history=HISTORY, history_ttl=600.0)
elif PRESENCE:
    ws.topic("/fan/{room}", presence=True)


@ws.message("/echo")
async def echo(data: str, channel: Channel, user: User) -> None:
    await channel.send(data)


@ws.message("/idle")
async def idle(data: str, channel: Channel, user: User) -> None:
    await channel.send(data)


@ws.message("/fan/{room}")
async def subscriber(data: str) -> None:
    """Subscribers only listen; the topic is their URL path."""


if PRESENCE:
    _members = itertools.count(1)

    @ws.join("/fan/{room}")
    async def fan_join(room: str) -> PresenceInfo:
        """Presence on: each subscriber is a member with a user and a small info."""
        return PresenceInfo(user=f"u{next(_members)}", info={"name": "bench"})


@ws.message("/pub/{room}")
async def publish(data: str, room: str, broker: Broker) -> None:
    await broker.broadcast_to(f"/fan/{room}", data)


@ws.message("/mx/{n}")
async def mx_echo(data: str, channel: Channel, user: User) -> None:
    await channel.send(data)


@ws.message("/rq/{n}")
async def rq_answer(data: str) -> str:
    """A request's reply is the handler's return value (multiplex ``meta`` subscriptions)."""
    return data


@ws.message("/hist/{room}")
async def hist_subscriber(data: str) -> None:
    """The reconnect storm's subscribers only listen."""


@ws.message("/hburst/{room}")
async def hist_burst(data: str, room: str, broker: Broker, channel: Channel) -> None:
    """``N``: broadcast ``N`` messages to ``/hist/{room}`` (each stored), then ``done N``."""
    count = min(int(data), 10_000)
    topic = f"/hist/{room}"
    for i in range(count):
        await broker.broadcast_to(topic, f"{i} burst")
    await channel.send(f"done {count}")


async def _bare(scope, receive, send):  # type: ignore[no-untyped-def]
    """The router as the whole app: lifespan starts the broker, websockets go straight in."""
    if scope["type"] == "websocket":
        await ws(scope, receive, send)
        return
    if scope["type"] == "lifespan":
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await ws.broker.start()
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await ws.broker.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


if os.environ.get("BENCH_WSROUTE_BARE") == "1":
    app = _bare
else:
    # FastAPI's OpenTelemetry, every signal off (releases whose FastAPI() takes `telemetry=`):
    # its check of the providers no longer runs per connection (bench/instructions.py).
    off = os.environ.get("BENCH_FASTAPI_TELEMETRY") == "off"
    options = {"telemetry": {"tracing": False, "metrics": False, "logs": False}} if off else {}
    app = FastAPI(**options)  # type: ignore[arg-type,unused-ignore]
    ws.install(app)

if os.environ.get("BENCH_GC_FREEZE") == "1":
    # Everything built so far (modules, the app, its schemas) lives as long as the process:
    # move it out of the collector's generations, so a collection walks only what
    # connections allocated (gc.freeze; see docs/deployment.md).
    import gc

    gc.collect()
    gc.freeze()
