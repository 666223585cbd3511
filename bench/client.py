"""The load client: picows on uvloop, one process, pinned to its own core by the runner.

Run as ``python bench/client.py '<json spec>'``. It prints JSON lines on stdout:

* ``{"mark": "start"}`` / ``{"mark": "end"}`` around the measured window, so the runner can
  read the server's CPU time at the same instants (the client adds its own);
* ``{"mark": "ready", ...}`` in the idle scenario, when every connection is open (it then
  waits for a line on stdin before exiting), and twice in the reconnect scenario (before
  the runner restarts the server; after the recovery, for the server's memory);
* a last ``{"result": {...}}``.

Scenarios (``spec["scenario"]``): ``echo`` (closed-loop ping-pong per connection, or per
topic of one multiplexed socket; with ``request`` the topics ask for ``meta`` and each
round trip is a request ``topic·id=N·payload`` and its reply ``topic·reply=N·payload``),
``fanout`` (one publisher, N subscribers, a window of broadcasts in flight), ``connect``
(open → accepted → close cycles), ``idle`` (hold N connections open), ``storm`` (N
multiplexed clients resubscribe a topic with history at once, recovering with ``since``,
or not, or receiving the same publications live; see `run_storm`), ``handshake`` (N
connections opened, M handshakes in flight, held; or N SUBSCRIBEs on one multiplexed
socket), ``reconnect`` (N dedicated subscribers reconnecting after a server restart, with
the JS client's backoff or all at once, until each receives again). Every scenario is
bounded by a duration and by a count, and a stall (no progress for ``stall`` seconds) ends
it too. Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import threading
import time
from typing import Any

import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

perf_ns = time.perf_counter_ns
SEP = "\u00b7"
SEP_B = SEP.encode()
TEXT = WSMsgType.TEXT


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def runq_wait_seconds() -> float:
    """Seconds this thread spent runnable but waiting for a CPU (another process had it)."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def percentiles(values: list[int], points: tuple[float, ...] = (50, 90, 99, 99.9)) -> dict[str, float]:
    """Percentiles in microseconds of nanosecond samples (nearest rank)."""
    if not values:
        return {f"p{p:g}": float("nan") for p in points} | {"max": float("nan")}
    ordered = sorted(values)
    n = len(ordered)
    out = {f"p{p:g}": ordered[min(n - 1, int(p / 100 * n))] / 1000 for p in points}
    out["max"] = ordered[-1] / 1000
    return out


class Window:
    """The measured window: marks, client CPU and wall time."""

    def __init__(self) -> None:
        self.measuring = False
        self.t0 = self.t1 = 0
        self.cpu0 = self.cpu1 = 0.0
        self.wait0 = self.wait1 = 0.0

    def start(self) -> None:
        self.cpu0 = cpu_seconds()
        self.wait0 = runq_wait_seconds()
        self.t0 = perf_ns()
        self.measuring = True
        emit({"mark": "start"})

    def end(self) -> None:
        self.measuring = False
        self.t1 = perf_ns()
        self.cpu1 = cpu_seconds()
        self.wait1 = runq_wait_seconds()
        emit({"mark": "end"})

    @property
    def seconds(self) -> float:
        return (self.t1 - self.t0) / 1e9

    def report(self) -> dict[str, Any]:
        return {
            "window_s": self.seconds,
            "client_cpu_s": self.cpu1 - self.cpu0,
            "client_runq_wait_s": self.wait1 - self.wait0,
        }


async def connect_many(factory: Any, urls: list[str], concurrency: int, **options: Any) -> list[Any]:
    """Open one connection per URL, at most `concurrency` handshakes at a time."""
    sem = asyncio.Semaphore(concurrency)
    options.setdefault("websocket_handshake_timeout", 30)

    async def one(url: str) -> Any:
        async with sem:
            _transport, listener = await ws_connect(factory, url, **options)
            return listener

    return await asyncio.gather(*(one(url) for url in urls))


# --- echo ---------------------------------------------------------------------------------


class EchoState:
    def __init__(self, payload: bytes, max_msgs: int) -> None:
        self.payload = payload
        self.max_msgs = max_msgs
        self.window = Window()
        self.running = True
        self.count = 0
        self.total = 0
        self.rtts: list[int] = []
        self.in_flight = 0
        self.errors = 0
        self.drained = asyncio.get_running_loop().create_future()

    def stop(self) -> None:
        self.running = False
        if self.in_flight == 0 and not self.drained.done():
            self.drained.set_result(None)


class EchoListener(WSListener):
    """One connection: send, wait for the echo, send again (closed loop, one in flight)."""

    def __init__(self, state: EchoState) -> None:
        self.state = state
        self.transport: WSTransport | None = None
        self.sent_at = 0

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def fire(self) -> None:
        self.state.in_flight += 1
        self.sent_at = perf_ns()
        self.transport.send(TEXT, self.state.payload)  # type: ignore[union-attr]

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not TEXT:
            return
        self.completed(perf_ns())

    def completed(self, now: int) -> None:
        state = self.state
        state.in_flight -= 1
        state.total += 1
        if state.window.measuring:
            state.rtts.append(now - self.sent_at)
            state.count += 1
            if state.count >= state.max_msgs:
                state.window.end()
                state.stop()
        if state.running:
            self.fire()
        elif state.in_flight == 0 and not state.drained.done():
            state.drained.set_result(None)


class MuxTopic:
    """One topic of a multiplexed socket, driven like an `EchoListener`."""

    def __init__(self, owner: MuxListener, topic: str) -> None:
        self.owner = owner
        self.state = owner.state
        self.prefix = (topic + SEP).encode()
        self.sent_at = 0

    def fire(self) -> None:
        self.state.in_flight += 1
        self.sent_at = perf_ns()
        self.owner.transport.send(TEXT, self.prefix + self.state.payload)  # type: ignore[union-attr]

    def received(self, data: bytes, now: int) -> None:
        self.completed(now)

    completed = EchoListener.completed


class MuxRequestTopic:
    """One ``meta`` topic doing request/reply: sends ``topic·id=N·payload`` and expects
    exactly ``topic·reply=N·payload`` back (closed loop, one request in flight, N counting up)."""

    def __init__(self, owner: MuxListener, topic: str) -> None:
        self.owner = owner
        self.state = owner.state
        self.request_head = (topic + SEP + "id=").encode()
        self.reply_head = (topic + SEP + "reply=").encode()
        self.tail = SEP_B + self.state.payload
        self.next_id = 0
        self.expected: bytes | None = b""  # the whole reply to the request in flight
        self.sent_at = 0

    def fire(self) -> None:
        self.next_id += 1
        ident = b"%d" % self.next_id
        self.expected = self.reply_head + ident + self.tail
        self.state.in_flight += 1
        self.sent_at = perf_ns()
        self.owner.transport.send(TEXT, self.request_head + ident + self.tail)  # type: ignore[union-attr]

    def received(self, data: bytes, now: int) -> None:
        if data == self.expected:
            self.completed(now)
            return
        self.owner.bad.append(data)
        if self.expected is not None:
            # its request is answered (wrongly): this topic stops, the run ends
            self.expected = None
            self.state.in_flight -= 1
            self.state.stop()

    completed = EchoListener.completed


OK_SUBSCRIBE = SEP_B + b"OK" + SEP_B + b"SUBSCRIBE" + SEP_B
META_GRANTED = SEP_B + b"meta"


class MuxListener(WSListener):
    """A ``rocket-multiplex`` socket carrying several echo topics.

    `oks_expected` is set before the socket opens: the connect topic's ``OK`` (when it asked
    for options in its URL) may arrive in the same read as the handshake's response."""

    def __init__(self, state: EchoState, oks_expected: int, meta: bool = False) -> None:
        self.state = state
        self.transport: WSTransport | None = None
        self.topics: dict[bytes, Any] = {}
        self.oks: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.oks_expected = oks_expected
        self.oks_seen = 0
        self.meta = meta
        self.replies: list[str] = []
        self.bad: list[bytes] = []  # frames a request topic did not expect
        if oks_expected == 0:
            self.oks.set_result(None)

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not TEXT:
            return
        now = perf_ns()
        data = frame.get_payload_as_bytes()
        cut = data.find(SEP_B)
        if cut > 0:
            topic = self.topics.get(data[:cut])
            if topic is not None:
                topic.received(data, now)
                return
        self.control(data)

    def control(self, data: bytes) -> None:
        """A control frame (``·OK·SUBSCRIBE·/topic[·meta]``) or something unexpected."""
        self.replies.append(data.decode(errors="replace"))
        if self.oks.done():
            return
        if data.startswith(OK_SUBSCRIBE) and (not self.meta or data.endswith(META_GRANTED)):
            self.oks_seen += 1
            if self.oks_seen == self.oks_expected:
                self.oks.set_result(None)
        else:
            self.oks.set_exception(RuntimeError(f"unexpected multiplex reply: {data!r}"))


async def run_echo(spec: dict[str, Any]) -> dict[str, Any]:
    base = spec["url"]
    payload = b"x" * spec.get("payload", 32)
    state = EchoState(payload, spec["max_msgs"])
    loop = asyncio.get_running_loop()
    mux = spec.get("mux_topics")
    units: list[Any]
    mux_listener: MuxListener | None = None
    if mux:
        # One socket, `mux` topics: the connect path is the first topic, the others are
        # subscribed by SUBSCRIBE. For request/reply every topic asks for the `meta` option
        # (the connect topic in its URL; the server answers it with an OK first).
        topics = [spec["topic_fmt"].format(i) for i in range(mux)]
        first_url, options, unit_cls = base + topics[0], "", MuxTopic
        factory: Any = lambda: MuxListener(state, len(topics) - 1)  # noqa: E731
        if spec.get("request"):
            first_url, options, unit_cls = first_url + "?rocket-multiplex=meta", f"{SEP}meta", MuxRequestTopic
            factory = lambda: MuxListener(state, len(topics), meta=True)  # noqa: E731
        (listener,) = await connect_many(
            factory, [first_url], 1, extra_headers={"Sec-WebSocket-Protocol": "rocket-multiplex"}
        )
        mux_listener = listener
        units = []
        for topic in topics:
            unit = unit_cls(listener, topic)
            listener.topics[topic.encode()] = unit
            units.append(unit)
        for topic in topics[1:]:
            listener.transport.send(TEXT, f"{SEP}SUBSCRIBE{SEP}{topic}{options}".encode())
        await asyncio.wait_for(listener.oks, 10)
    else:
        paths = (
            [spec["topic_fmt"].format(i) for i in range(spec["conns"])]
            if "topic_fmt" in spec
            else [spec.get("path", "/echo")] * spec["conns"]
        )
        units = await connect_many(lambda: EchoListener(state), [base + p for p in paths], 100)
    for unit in units:
        unit.fire()
    await asyncio.sleep(spec.get("warmup", 0.3))
    state.window.start()
    timer = loop.call_later(
        spec["duration"], lambda: (state.window.measuring and state.window.end(), state.stop())
    )
    # bounded: the duration, the count, and a stall guard
    last, deadline = -1, time.monotonic() + spec["duration"] + 30
    while state.running and time.monotonic() < deadline:
        await asyncio.sleep(min(spec["stall"], 1.0))
        if state.total == last:
            state.errors += 1
            break
        last = state.total
    timer.cancel()
    if state.window.measuring:
        state.window.end()
    state.stop()
    try:
        await asyncio.wait_for(state.drained, 5)
    except TimeoutError:
        state.errors += 1
    if mux_listener is not None and mux_listener.bad:
        bad = mux_listener.bad
        raise RuntimeError(f"{len(bad)} wrong replies, the first: {bad[0][:200]!r}")
    return {
        "msgs": state.count,
        "msg_per_s": state.count / state.window.seconds,
        "rtt_us": percentiles(state.rtts),
        "stalled": state.errors > 0,
        **state.window.report(),
    }


# --- fan-out ------------------------------------------------------------------------------


class Protocol:
    """How one peer frames subscribe, publish and deliver (plain WebSocket by default)."""

    def sub_path(self, room: str) -> str:
        return f"/fan/{room}"

    def pub_path(self, room: str) -> str:
        return f"/pub/{room}"

    def on_connected(self, transport: WSTransport, room: str, publisher: bool) -> None:
        pass

    def publish(self, transport: WSTransport, room: str, message: str) -> None:
        transport.send(TEXT, message.encode())

    def message(self, transport: WSTransport, text: str) -> str | None:
        return text


class SocketIO(Protocol):
    """Engine.IO 4 / Socket.IO 5 over a websocket-only transport (see apps/socketio_app.py)."""

    def sub_path(self, room: str) -> str:
        return "/socket.io/?EIO=4&transport=websocket"

    pub_path = sub_path

    def on_connected(self, transport: WSTransport, room: str, publisher: bool) -> None:
        transport.send(TEXT, b"40")
        if not publisher:
            transport.send(TEXT, json.dumps(["join", room]).join(["42", ""]).encode())

    def publish(self, transport: WSTransport, room: str, message: str) -> None:
        transport.send(TEXT, ("42" + json.dumps(["pub", room, message])).encode())

    def message(self, transport: WSTransport, text: str) -> str | None:
        if text.startswith('42["m","'):
            return text[8:-2]
        if text == "2":
            transport.send(TEXT, b"3")
        return None


class Multiplexed(Protocol):
    """Subscribers on ``rocket-multiplex`` sockets whose connect topic is the room, with
    subscription `options` in the URL (``meta,positions``: every broadcast arrives as
    ``/fan/room·offset=N[,epoch=E]·payload``); the publisher stays a plain socket. The
    connect topic's OK (first on the socket) and other control frames are skipped."""

    headers = {"Sec-WebSocket-Protocol": "rocket-multiplex"}  # noqa: RUF012

    def __init__(self, options: str) -> None:
        self.options = options

    def sub_path(self, room: str) -> str:
        return f"/fan/{room}?rocket-multiplex={self.options}"

    def message(self, transport: WSTransport, text: str) -> str | None:
        if text.startswith(SEP):
            return None
        return text.rpartition(SEP)[2]


class MultiplexedPresence(Multiplexed):
    """`Multiplexed` subscribers that asked for ``presence``: the member list after the OK
    (``/fan/room·presence=state·{…}``) and the diffs (``presence=diff``) are counted in
    `frames` and skipped; broadcasts arrive as ``/fan/room··payload``."""

    def __init__(self, options: str) -> None:
        super().__init__(options)
        self.frames = 0

    def message(self, transport: WSTransport, text: str) -> str | None:
        if text.startswith(SEP):
            return None
        _, _, rest = text.partition(SEP)
        if rest.startswith("presence="):
            self.frames += 1
            return None
        return rest.partition(SEP)[2]


PROTOCOLS: dict[str, Protocol] = {
    "plain": Protocol(),
    "socketio": SocketIO(),
    "mux_positions": Multiplexed("meta,positions"),
    "mux_meta": Multiplexed("meta"),
    "mux_presence": MultiplexedPresence("meta,presence"),
}


class FanState:
    def __init__(self, spec: dict[str, Any], subs: int) -> None:
        self.spec = spec
        self.subs = subs
        self.window_size = spec.get("window", 4)
        self.max_broadcasts = spec["max_broadcasts"]
        self.pad = "p" * max(0, spec.get("payload", 64) - 30)
        self.window = Window()
        self.running = True
        self.ready = 0
        self.ready_future = asyncio.get_running_loop().create_future()
        self.sent = 0
        self.counts: list[int] = []
        self.sent_at: list[int] = []
        self.done_at: list[int] = []
        self.completed = 0
        self.deliveries = 0  # every broadcast delivery (not probes), ever
        self.measured = 0  # deliveries received inside the measured window
        self.latencies: list[int] = []
        self.last_progress = time.monotonic()
        self.publisher: FanListener | None = None
        self.idle = asyncio.get_running_loop().create_future()
        self.unparsed = 0
        self.probe_deliveries = 0

    def send_next(self) -> None:
        seq = self.sent
        self.sent += 1
        self.counts.append(0)
        self.sent_at.append(perf_ns())
        pub = self.publisher
        assert pub is not None and pub.transport is not None
        pub.protocol.publish(pub.transport, pub.room, f"{seq} {perf_ns()} {self.pad}")

    def pump(self) -> None:
        while (
            self.running and self.sent - self.completed < self.window_size and self.sent < self.max_broadcasts
        ):
            self.send_next()
        if not self.running and self.sent == self.completed and not self.idle.done():
            self.idle.set_result(None)


class FanListener(WSListener):
    def __init__(self, state: FanState, protocol: Protocol, room: str, publisher: bool) -> None:
        self.state = state
        self.protocol = protocol
        self.room = room
        self.publisher = publisher
        self.transport: WSTransport | None = None
        self.is_ready = False
        # multiplexed frames have `·` (UTF-8) in them; plain ones are read as ASCII
        self.utf8 = isinstance(protocol, Multiplexed) and not publisher

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.protocol.on_connected(transport, self.room, self.publisher)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not TEXT:
            return
        now = perf_ns()
        raw = frame.get_payload_as_bytes().decode() if self.utf8 else frame.get_payload_as_ascii_text()
        text = self.protocol.message(transport, raw)
        if text is None or self.publisher:
            return
        state = self.state
        try:
            sp = text.index(" ")
            seq = int(text[:sp])
        except ValueError:
            state.unparsed += 1
            return
        if seq < 0:  # a readiness probe
            state.probe_deliveries += 1
            if not self.is_ready:
                self.is_ready = True
                state.ready += 1
                if state.ready == state.subs and not state.ready_future.done():
                    state.ready_future.set_result(None)
            return
        state.deliveries += 1
        if state.window.measuring:
            state.measured += 1
            state.latencies.append(now - int(text[sp + 1 : text.index(" ", sp + 1)]))
        counts = state.counts
        counts[seq] += 1
        if counts[seq] == state.subs:
            state.done_at.append(seq)
            state.done_at.append(now)
            state.completed += 1
            state.last_progress = time.monotonic()
            state.pump()


async def run_fanout(spec: dict[str, Any]) -> dict[str, Any]:
    protocol = PROTOCOLS[spec.get("protocol", "plain")]
    room = spec.get("room", "bench")
    subs = spec["subs"]
    state = FanState(spec, subs)
    loop = asyncio.get_running_loop()
    sub_base = spec.get("sub_url", spec["url"])
    t_connect = perf_ns()
    factory = lambda: FanListener(state, protocol, room, False)  # noqa: E731
    # The first subscriber alone: encode/broadcaster loses concurrent *first* subscriptions
    # to a channel when its backend's subscribe awaits (Redis): each replaces the set.
    headers = getattr(protocol, "headers", None)
    options: dict[str, Any] = {"extra_headers": headers} if headers else {}
    await connect_many(factory, [sub_base + protocol.sub_path(room)], 1, **options)
    await asyncio.sleep(0.2)
    await connect_many(
        factory,
        [sub_base + protocol.sub_path(room)] * (subs - 1),
        spec.get("connect_concurrency", 100),
        **options,
    )
    connect_s = (perf_ns() - t_connect) / 1e9
    (publisher,) = await connect_many(
        lambda: FanListener(state, protocol, room, True), [spec["url"] + protocol.pub_path(room)], 1
    )
    state.publisher = publisher
    # Readiness: probes until every subscriber has received one (subscriptions are async).
    # A new probe only once the previous one has stopped arriving, so that a slow server
    # does not build a backlog of probes that would eat the measured window.
    deadline = time.monotonic() + spec.get("ready_timeout", 60)
    probe = 0
    while not state.ready_future.done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {state.ready}/{subs} subscribers ready after the probes")
        probe -= 1
        protocol.publish(publisher.transport, room, f"{probe} 0 probe")
        seen = -1
        while state.probe_deliveries != seen and not state.ready_future.done():
            seen = state.probe_deliveries
            await asyncio.wait([state.ready_future], timeout=0.1)
            if time.monotonic() > deadline:
                break
    # the last probe is still arriving at the subscribers that were ready before it
    seen = -1
    while state.probe_deliveries != seen and time.monotonic() < deadline:
        seen = state.probe_deliveries
        await asyncio.sleep(0.05)
    # Warm-up broadcasts (writer tasks created, caches warm), then the measured window.
    state.last_progress = time.monotonic()
    state.pump()
    await asyncio.sleep(spec.get("warmup", 0.3))
    state.window.start()
    stop = loop.call_later(spec["duration"], lambda: setattr(state, "running", False))
    stalled = False
    hard = time.monotonic() + spec["duration"] + 60
    while state.running:
        await asyncio.sleep(0.05)
        if state.sent >= state.max_broadcasts and state.completed >= state.sent:
            state.running = False
        if time.monotonic() - state.last_progress > spec.get("stall", 3.0) or time.monotonic() > hard:
            stalled = True
            state.running = False
    stop.cancel()
    state.window.end()
    # Drain: until every sent broadcast is fully delivered, or nothing arrived for `drain`
    # seconds (a slow server is still delivering; a lost message never arrives), capped.
    cap = time.monotonic() + spec.get("drain_cap", 60.0)
    last, last_at = state.deliveries, time.monotonic()
    while state.completed < state.sent and time.monotonic() < cap:
        await asyncio.sleep(0.05)
        if state.deliveries != last:
            last, last_at = state.deliveries, time.monotonic()
        elif time.monotonic() - last_at > spec.get("drain", 3.0):
            break
    expected = state.sent * subs
    if spec.get("trace"):
        with open(spec["trace"], "w") as f:  # noqa: ASYNC230
            for i in range(0, len(state.done_at), 2):
                seq, at = state.done_at[i], state.done_at[i + 1]
                f.write(
                    f"{seq} {(state.sent_at[seq] - state.window.t0) / 1e6:.2f} {(at - state.sent_at[seq]) / 1e6:.2f}\n"  # noqa: E501
                )
    return {
        "subs": subs,
        "broadcasts": state.sent,
        "deliveries": state.measured,
        "deliveries_per_s": state.measured / state.window.seconds,
        "expected_total": expected,
        "delivered_total": state.deliveries,
        "lost": expected - state.deliveries,
        "latency_us": percentiles(state.latencies),
        "connect_s": connect_s,
        "stalled": stalled,
        "unparsed": state.unparsed,
        "presence_frames": getattr(protocol, "frames", 0),
        **state.window.report(),
    }


# --- connection setup rate -----------------------------------------------------------------


class Quiet(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        pass


async def run_connect(spec: dict[str, Any]) -> dict[str, Any]:
    url = spec["url"] + spec.get("path", "/idle")
    window = Window()
    done = 0
    started = 0
    failed = 0
    handshake: list[int] = []
    cycle: list[int] = []
    running = True
    measuring_from = 0

    async def worker() -> None:
        nonlocal done, started, failed
        while running and started < spec["max_conns"]:
            started += 1
            t0 = perf_ns()
            try:
                transport, _ = await ws_connect(Quiet, url, websocket_handshake_timeout=10)
                t1 = perf_ns()
                transport.send_close()
                await asyncio.wait_for(transport.wait_disconnected(), 10)
            except Exception:
                failed += 1
                continue
            t2 = perf_ns()
            if window.measuring:
                done += 1
                handshake.append(t1 - t0)
                cycle.append(t2 - t0)

    workers = [asyncio.ensure_future(worker()) for _ in range(spec.get("concurrency", 8))]
    await asyncio.sleep(spec.get("warmup", 0.3))
    window.start()
    end_at = time.monotonic() + spec["duration"]
    while time.monotonic() < end_at and started < spec["max_conns"]:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    window.end()
    running = False
    await asyncio.wait(workers, timeout=15)
    del measuring_from
    return {
        "conns": done,
        "conns_per_s": done / window.seconds,
        "failed": failed,
        "handshake_us": percentiles(handshake),
        "cycle_us": percentiles(cycle),
        **window.report(),
    }


# --- idle connections (memory) -------------------------------------------------------------


async def run_idle(spec: dict[str, Any]) -> dict[str, Any]:
    url = spec["url"] + spec.get("path", "/idle")
    t0 = perf_ns()
    listeners = await connect_many(Quiet, [url] * spec["conns"], spec.get("connect_concurrency", 100))
    emit({"mark": "ready", "open": len(listeners), "connect_s": (perf_ns() - t0) / 1e9})
    # Hold the connections until the runner has read the server's memory (bounded wait).
    reader = asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await asyncio.wait_for(reader, spec.get("hold", 60))
    return {"open": len(listeners)}


# --- reconnect storm (history and recovery) ---------------------------------------------


class StormSocket(WSListener):
    """One client of the storm: a ``rocket-multiplex`` socket that (un)subscribes the storm
    topic with ``meta,positions`` (and ``since=E:O`` when it recovers) and checks what comes:
    the OK's items, and every replayed publication's offset and payload."""

    def __init__(self, storm: Storm) -> None:
        self.storm = storm
        self.transport: WSTransport | None = None
        self.items: dict[str, str] = {}  # the items of the last OK·SUBSCRIBE
        self.ok = False
        self.unsubscribed = False
        self.next_offset = 0  # the offset the next replayed publication must have
        self.replayed = 0
        self.bad: list[str] = []
        self.done = False

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def send(self, text: str) -> None:
        self.transport.send(TEXT, text.encode())  # type: ignore[union-attr]

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not TEXT:
            return
        text = frame.get_payload_as_bytes().decode()
        storm = self.storm
        if text.startswith(storm.ok_subscribe):
            self.items = dict(item.partition("=")[::2] for item in text[len(storm.ok_subscribe) :].split(","))
            self.ok = True
        elif text.startswith(storm.ok_unsubscribe):
            self.unsubscribed = True
        elif text.startswith(storm.topic_prefix):
            head, _, payload = text[len(storm.topic_prefix) :].partition(SEP)
            items = dict(item.partition("=")[::2] for item in head.split(","))
            offset = int(items.get("offset", "-1"))
            # the burst sent "i burst" as offset base+1+i
            if offset != self.next_offset or payload != f"{offset - storm.base - 1} burst":
                self.bad.append(text[:200])
            self.next_offset = offset + 1
            self.replayed += 1
        else:
            self.bad.append(text[:200])
        storm.check(self)


class Storm:
    def __init__(self, topic: str, clients: int) -> None:
        self.topic = topic
        self.clients = clients
        self.ok_subscribe = f"{SEP}OK{SEP}SUBSCRIBE{SEP}{topic}{SEP}"
        self.ok_unsubscribe = f"{SEP}OK{SEP}UNSUBSCRIBE{SEP}{topic}"
        self.topic_prefix = topic + SEP
        self.base = 0  # the stream's offset before the burst
        self.expect_replayed = 0
        self.pending = 0
        self.all_done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def arm(self, expect_replayed: int) -> None:
        self.expect_replayed = expect_replayed
        self.pending = self.clients
        self.all_done = asyncio.get_running_loop().create_future()

    def check(self, sock: StormSocket) -> None:
        if sock.done or not sock.ok or sock.replayed < self.expect_replayed:
            return
        sock.done = True
        self.pending -= 1
        if self.pending == 0 and not self.all_done.done():
            self.all_done.set_result(None)


async def run_storm(spec: dict[str, Any]) -> dict[str, Any]:
    """``clients`` multiplexed sockets subscribe a topic with history (positions), leave it,
    miss ``missed`` broadcasts, then all resubscribe at once. ``mode``: ``recover``, with
    ``since`` = the position each got (done when its OK said recovered=true and exactly
    ``missed`` publications were replayed, in order); ``plain``, a positions subscription
    without ``since`` (done at its OK). The measured window is the resubscription alone.
    ``live`` (for scale): the clients stay subscribed and the window is the ``missed``
    broadcasts published and delivered live to all of them."""
    base_url, clients, missed = spec["url"], spec["clients"], spec["missed"]
    mode = spec.get("mode", "recover")
    recover = mode == "recover"
    topic = f"/hist/{spec['room']}-{os.getpid()}"
    storm = Storm(topic, clients)
    mux = {"extra_headers": {"Sec-WebSocket-Protocol": "rocket-multiplex"}}
    socks: list[StormSocket] = await connect_many(
        lambda: StormSocket(storm),
        [base_url + "/mx/0"] * clients,
        spec.get("connect_concurrency", 100),
        **mux,
    )
    done_burst: asyncio.Queue[str] = asyncio.Queue()

    class Publisher(WSListener):
        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type is TEXT:
                done_burst.put_nowait(frame.get_payload_as_bytes().decode())

    pub_transport, _ = await ws_connect(Publisher, base_url + "/hburst/" + topic.rsplit("/", 1)[1])
    limit = spec.get("phase_timeout", 30.0)
    # 1. everyone subscribes (positions) and learns where the stream stands
    storm.arm(0)
    for sock in socks:
        sock.send(f"{SEP}SUBSCRIBE{SEP}{topic}{SEP}meta,positions")
    await asyncio.wait_for(storm.all_done, limit)
    positions = {(s.items.get("epoch"), s.items.get("offset")) for s in socks}
    if len(positions) != 1:
        raise RuntimeError(f"the subscribers start from different positions: {sorted(positions)[:5]}")
    ((epoch, offset),) = positions
    storm.base = int(offset or 0)
    if mode == "live":
        return await storm_live(spec, storm, socks, pub_transport, done_burst, epoch, offset)
    # 2. everyone leaves
    for sock in socks:
        sock.send(f"{SEP}UNSUBSCRIBE{SEP}{topic}")
    deadline = time.monotonic() + limit
    while not all(s.unsubscribed for s in socks) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    # 3. `missed` broadcasts nobody hears (each stored)
    pub_transport.send(TEXT, str(missed).encode())
    answer = await asyncio.wait_for(done_burst.get(), limit)
    if answer != f"done {missed}":
        raise RuntimeError(f"unexpected burst answer {answer!r}")
    # 4. the storm: all resubscribe at once
    for sock in socks:
        sock.ok, sock.done, sock.items, sock.replayed = False, False, {}, 0
        sock.next_offset = storm.base + 1
    storm.arm(missed if recover else 0)
    option = f"meta,positions,since={epoch}:{offset}" if recover else "meta,positions"
    frame = f"{SEP}SUBSCRIBE{SEP}{topic}{SEP}{option}".encode()
    window = Window()
    window.start()
    t0 = perf_ns()
    for sock in socks:
        sock.transport.send(TEXT, frame)  # type: ignore[union-attr]
    timed_out = False
    try:
        await asyncio.wait_for(storm.all_done, limit)
    except TimeoutError:
        timed_out = True
    storm_s = (perf_ns() - t0) / 1e9
    window.end()
    await asyncio.sleep(0.1)  # anything more (a duplicate, a stray publication) shows up as bad
    recovered = sum(1 for s in socks if s.items.get("recovered") == "true")
    exact = sum(1 for s in socks if s.replayed == (missed if recover else 0) and not s.bad)
    # recovering, the OK's offset is `since`'s (the replay follows); else the stream's head
    start_at = str(storm.base if recover else storm.base + missed)
    ok_offset = sum(1 for s in socks if s.items.get("offset") == start_at)
    bad = [b for s in socks for b in s.bad]
    pub_transport.disconnect()
    for sock in socks:
        sock.transport.disconnect()  # type: ignore[union-attr]
    return {
        "clients": clients,
        "conns": clients,  # server CPU per client (summary.cpu_per_op)
        "missed": missed,
        "mode": mode,
        "storm_s": storm_s,
        "storm_ms": storm_s * 1000,
        "clients_per_s": clients / storm_s,
        "recovered": recovered,
        "exact": exact,
        "ok_offset_right": ok_offset,
        "replayed_total": sum(s.replayed for s in socks),
        "bad": len(bad),
        "bad_first": bad[:3],
        "timed_out": timed_out,
        "start": f"{epoch}:{offset}",
        **window.report(),
    }


async def storm_live(
    spec: dict[str, Any],
    storm: Storm,
    socks: list[StormSocket],
    pub_transport: WSTransport,
    done_burst: asyncio.Queue[str],
    epoch: str,
    offset: str,
) -> dict[str, Any]:
    """The ``live`` mode of `run_storm`: the same publications, delivered as they happen."""
    clients, missed, limit = spec["clients"], spec["missed"], spec.get("phase_timeout", 30.0)
    for sock in socks:
        sock.done, sock.replayed, sock.next_offset = False, 0, storm.base + 1
    storm.arm(missed)
    window = Window()
    window.start()
    t0 = perf_ns()
    pub_transport.send(TEXT, str(missed).encode())
    timed_out = False
    try:
        await asyncio.wait_for(storm.all_done, limit)
    except TimeoutError:
        timed_out = True
    storm_s = (perf_ns() - t0) / 1e9
    window.end()
    answer = await asyncio.wait_for(done_burst.get(), limit)
    await asyncio.sleep(0.1)
    bad = [b for s in socks for b in s.bad]
    if answer != f"done {missed}":
        bad.append(answer)
    pub_transport.disconnect()
    for sock in socks:
        sock.transport.disconnect()  # type: ignore[union-attr]
    return {
        "clients": clients,
        "conns": clients,
        "missed": missed,
        "mode": "live",
        "storm_s": storm_s,
        "storm_ms": storm_s * 1000,
        "clients_per_s": clients / storm_s,
        "recovered": 0,
        "exact": sum(1 for s in socks if s.replayed == missed and not s.bad),
        "ok_offset_right": clients,
        "replayed_total": sum(s.replayed for s in socks),
        "bad": len(bad),
        "bad_first": bad[:3],
        "timed_out": timed_out,
        "start": f"{epoch}:{offset}",
        **window.report(),
    }


# --- presence churn ------------------------------------------------------------------------


class ChurnSocket(WSListener):
    """One churning client of ``run_churn``: a ``rocket-multiplex`` socket (connect topic
    ``/mx/0``) that SUBSCRIBEs the fan-out's topic and UNSUBSCRIBEs it, one step at a time
    (``free`` → ``joining`` → ``in`` → ``leaving`` → ``free``); the broadcasts it gets while
    in are counted inside the measured window, not checked. With ``Churn(frames_only=True)``
    it sends the same frames for a topic it never joins (each answered ``INVALID``), and with
    ``echo=True`` too, to a raw echo route that sends each back: the churn's wire cost
    without its subscriptions."""

    def __init__(self, churn: Churn) -> None:
        self.churn = churn
        self.transport: WSTransport | None = None
        self.step = "free"
        self.since = 0.0

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not TEXT:
            return
        churn = self.churn
        data = frame.get_payload_as_bytes()
        if data.startswith(churn.ok_subscribe) and self.step == "joining":
            self.step, self.since = "in", time.monotonic()
            churn.joined(self)
        elif data.startswith(churn.ok_unsubscribe) and self.step == "leaving":
            self.step = "free"
            churn.left(self)
        elif data.startswith(churn.topic_prefix):
            if not churn.measuring:
                pass
            elif data[len(churn.topic_prefix) :].startswith(b"presence="):
                churn.presence_frames += 1
            else:
                churn.deliveries += 1
        elif data.startswith(SEP_B + b"OK"):
            pass  # the connect topic's
        else:
            churn.errors.append(data[:200].decode(errors="replace"))


class Churn:
    """The churn's bookkeeping: which sockets are free, in (oldest first), and what was done
    inside the measured window (between the runner's ``go`` and ``stop``)."""

    def __init__(self, topic: str, options: str, frames_only: bool = False, echo: bool = False) -> None:
        self.topic = topic
        self.subscribe = f"{SEP}SUBSCRIBE{SEP}{topic}{options and SEP + options}".encode()
        self.unsubscribe = f"{SEP}UNSUBSCRIBE{SEP}{topic}".encode()
        self.ok_subscribe = f"{SEP}OK{SEP}SUBSCRIBE{SEP}{topic}".encode()
        self.ok_unsubscribe = f"{SEP}OK{SEP}UNSUBSCRIBE{SEP}{topic}".encode()
        if frames_only:
            # The same frames in and out, no subscription: a data frame for a topic the
            # socket is not on, answered `·INVALID·Not Subscribed` (the cheapest reply).
            self.subscribe, self.unsubscribe = (f"/nowhere{SEP}{step}".encode() for step in ("join", "leave"))
            self.ok_subscribe = self.ok_unsubscribe = f"{SEP}INVALID{SEP}".encode()
            if echo:
                # A plain socket to an echo server: each frame comes back as it was sent.
                self.ok_subscribe, self.ok_unsubscribe = self.subscribe, self.unsubscribe
        self.topic_prefix = (topic + SEP).encode()
        self.free: list[ChurnSocket] = []
        self.inside: list[ChurnSocket] = []  # subscribed, oldest first
        self.measuring = False
        self.joins = self.leaves = 0  # completed (their OK came back) inside the window
        self.issued = 0
        self.skipped = 0  # a step was due but no socket could take it (the server lags)
        self.deliveries = 0  # broadcasts the churners got inside the window
        self.presence_frames = 0
        self.errors: list[str] = []
        self.join_ns: list[int] = []  # SUBSCRIBE -> OK
        self.sent_at: dict[ChurnSocket, int] = {}

    def joined(self, sock: ChurnSocket) -> None:
        self.inside.append(sock)
        if self.measuring:
            self.joins += 1
            self.join_ns.append(perf_ns() - self.sent_at.pop(sock, perf_ns()))

    def left(self, sock: ChurnSocket) -> None:
        self.free.append(sock)
        if self.measuring:
            self.leaves += 1

    def step(self, occupancy: int) -> None:
        """One join or leave: leave with the oldest member once `occupancy` are in."""
        if self.inside and (len(self.inside) >= occupancy or not self.free):
            sock = self.inside.pop(0)
            sock.step = "leaving"
            sock.transport.send(TEXT, self.unsubscribe)  # type: ignore[union-attr]
        elif self.free:
            sock = self.free.pop()
            sock.step = "joining"
            self.sent_at[sock] = perf_ns()
            sock.transport.send(TEXT, self.subscribe)  # type: ignore[union-attr]
        else:
            self.skipped += 1
            return
        self.issued += 1


async def run_churn(spec: dict[str, Any]) -> dict[str, Any]:
    """Join/leave churn on a topic, paced, beside another client's fan-out: ``pool``
    multiplexed sockets, each subscribing the topic (``options``: ``presence`` to be sent
    the member list and the diffs, as a browser would ask) and unsubscribing it, at ``rate``
    joins + leaves per second in all, at most ``occupancy`` in at a time (each stays ~
    2 * occupancy / rate seconds; ``room_suffix`` puts it on another topic of the same
    pattern, beside the fan-out rather than in it). It connects, says ``ready``, churns from the runner's
    ``go`` line until its ``stop`` line, then leaves. ``frames_only``: the same frames, each
    answered, with no subscription (the churn's network cost alone); with ``echo`` as well,
    on plain sockets to ``/echo``, for a server that echoes them (the raw floor). Bounded:
    ``max_seconds`` and ``max_events`` as well."""
    topic = f"/fan/{spec['room']}{spec.get('room_suffix', '')}"
    echo = bool(spec.get("echo"))
    churn = Churn(topic, spec.get("options", ""), bool(spec.get("frames_only")) or echo, echo)
    rate, occupancy = float(spec["rate"]), int(spec.get("occupancy", 10))
    socks: list[ChurnSocket] = await connect_many(
        lambda: ChurnSocket(churn),
        [spec["url"] + ("/echo" if echo else "/mx/0")] * int(spec.get("pool", 64)),
        32,
        extra_headers={} if echo else {"Sec-WebSocket-Protocol": "rocket-multiplex"},
    )
    churn.free = list(socks)
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str] = asyncio.Queue()

    def read_stdin() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line.strip())
            if line.strip() == "stop":
                return
        loop.call_soon_threadsafe(lines.put_nowait, "stop")

    reader = loop.run_in_executor(None, read_stdin)
    emit({"mark": "ready", "pool": len(socks)})
    go = await asyncio.wait_for(lines.get(), spec.get("wait_go", 120))
    if go != "go":
        raise RuntimeError(f"churn: expected go, got {go!r}")
    window = Window()
    churn.measuring = True
    window.cpu0, window.wait0, window.t0 = cpu_seconds(), runq_wait_seconds(), perf_ns()
    t0 = time.monotonic()
    deadline = t0 + spec.get("max_seconds", 30.0)
    tick = 0.005
    stopped = asyncio.ensure_future(lines.get())
    max_events = spec.get("max_events", 100_000)
    while not stopped.done() and time.monotonic() < deadline and churn.issued < max_events:
        due = int((time.monotonic() - t0) * rate) - churn.issued - churn.skipped
        for _ in range(max(0, min(due, 100))):
            churn.step(occupancy)
        await asyncio.wait([stopped], timeout=tick)
    churn.measuring = False
    window.t1, window.cpu1, window.wait1 = perf_ns(), cpu_seconds(), runq_wait_seconds()
    if not stopped.done():
        stopped.cancel()
    # leave the topic everywhere, then close (bounded)
    end = time.monotonic() + 10
    while any(s.step != "free" for s in socks) and time.monotonic() < end:
        for sock in list(churn.inside):
            churn.inside.remove(sock)
            sock.step = "leaving"
            sock.transport.send(TEXT, churn.unsubscribe)  # type: ignore[union-attr]
        await asyncio.sleep(0.02)
    for sock in socks:
        sock.transport.disconnect()  # type: ignore[union-attr]
    reader.cancel()
    seconds = window.seconds
    return {
        "rate_asked": rate,
        "joins": churn.joins,
        "leaves": churn.leaves,
        "events_per_s": (churn.joins + churn.leaves) / seconds if seconds else 0.0,
        "issued": churn.issued,
        "issued_per_s": churn.issued / seconds if seconds else 0.0,
        "skipped": churn.skipped,
        "deliveries": churn.deliveries,
        "presence_frames": churn.presence_frames,
        "join_us": percentiles(churn.join_ns),
        "errors": len(churn.errors),
        "errors_first": churn.errors[:3],
        "window_s": seconds,
        "client_cpu_s": window.cpu1 - window.cpu0,
        "client_runq_wait_s": window.wait1 - window.wait0,
    }


# --- handshake rate ------------------------------------------------------------------------


class Held(WSListener):
    """A socket held open; what it receives is ignored."""

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        pass


async def close_all(transports: list[WSTransport], limit: float) -> tuple[float, int]:
    """Send a close frame on every socket and wait until they have ended, at most `limit`
    seconds (the rest are dropped): the seconds it took, and how many had to be dropped."""
    t0 = perf_ns()
    for transport in transports:
        if not transport.is_disconnected:
            transport.send_close()
    waits = [asyncio.ensure_future(t.wait_disconnected()) for t in transports]
    dropped = 0
    if waits:
        _done, pending = await asyncio.wait(waits, timeout=limit)
        for wait in pending:
            wait.cancel()
        for transport in transports:
            if not transport.is_disconnected:
                dropped += 1
                transport.disconnect(graceful=False)
    return (perf_ns() - t0) / 1e9, dropped


async def run_handshake(spec: dict[str, Any]) -> dict[str, Any]:
    """Handshake rate: open ``conns`` connections to ``url + path``, at most ``concurrency``
    handshakes in flight, and keep them open; the measured window spans from the first
    connect to the last handshake's end (the last accept when none failed). Then every
    socket is closed, outside the window (bounded). ``warmup_conns`` connections are opened
    and closed first. With ``mux``, `handshake_mux`: SUBSCRIBEs on one multiplexed socket."""
    if spec.get("mux"):
        return await handshake_mux(spec)
    url = spec["url"] + spec.get("path", "/idle")
    conns, concurrency = int(spec.get("conns", 1000)), int(spec.get("concurrency", 100))
    timeout = float(spec.get("handshake_timeout", 10.0))
    warm = int(spec.get("warmup_conns", 20))
    if warm:
        opened = await asyncio.gather(
            *(ws_connect(Held, url, websocket_handshake_timeout=timeout) for _ in range(warm))
        )
        await close_all([t for t, _ in opened], 10)
    sem = asyncio.Semaphore(concurrency)
    transports: list[WSTransport] = []
    latencies: list[int] = []
    errors: list[str] = []

    async def one() -> None:
        async with sem:
            t0 = perf_ns()
            try:
                transport, _ = await ws_connect(Held, url, websocket_handshake_timeout=timeout)
            except Exception as exc:
                errors.append(repr(exc)[:200])
                return
            latencies.append(perf_ns() - t0)
            transports.append(transport)

    window = Window()
    window.start()
    tasks = [asyncio.ensure_future(one()) for _ in range(conns)]
    _done, pending = await asyncio.wait(tasks, timeout=spec.get("max_seconds", 60.0))
    window.end()
    for task in pending:
        task.cancel()
    close_s, dropped = await close_all(transports, spec.get("close_timeout", 15.0))
    return {
        "mode": "dedicated",
        "conns": len(transports),
        "conns_per_s": len(transports) / window.seconds,
        "failed": len(errors) + len(pending),
        "errors_first": errors[:3],
        "handshake_us": percentiles(latencies),
        "close_s": close_s,
        "close_dropped": dropped,
        **window.report(),
    }


class SubscribeState:
    """The SUBSCRIBEs of `handshake_mux` on one socket: at most `concurrency` unanswered,
    the next sent as each ``OK`` (or ``ERR``) comes back."""

    def __init__(self, topics: list[str], concurrency: int) -> None:
        self.topics = topics
        self.concurrency = concurrency
        self.transport: WSTransport | None = None
        self.sent = self.answered = self.ok = 0
        self.sent_at: dict[str, int] = {}
        self.latencies: list[int] = []
        self.errors: list[str] = []
        self.unexpected: list[str] = []
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def pump(self) -> None:
        assert self.transport is not None
        while self.sent < len(self.topics) and self.sent - self.answered < self.concurrency:
            topic = self.topics[self.sent]
            self.sent += 1
            self.sent_at[topic] = perf_ns()
            self.transport.send(TEXT, f"{SEP}SUBSCRIBE{SEP}{topic}".encode())

    def reply(self, data: bytes) -> None:
        now = perf_ns()
        fields = data.decode(errors="replace").split(SEP)
        # ·OK·SUBSCRIBE·topic[·granted] / ·ERR·reason·SUBSCRIBE·topic
        if fields[:3] == ["", "OK", "SUBSCRIBE"] and len(fields) > 3:
            topic = fields[3]
            self.ok += 1
        elif fields[:2] == ["", "ERR"] and len(fields) > 4 and fields[3] == "SUBSCRIBE":
            topic = fields[4]
            self.errors.append(SEP.join(fields)[:200])
        else:
            self.unexpected.append(SEP.join(fields)[:200])
            return
        sent = self.sent_at.pop(topic, None)
        if sent is None:
            self.unexpected.append(SEP.join(fields)[:200])
            return
        self.latencies.append(now - sent)
        self.answered += 1
        if self.answered == len(self.topics):
            if not self.done.done():
                self.done.set_result(None)
        else:
            self.pump()


class SubscribeSocket(WSListener):
    def __init__(self, state: SubscribeState) -> None:
        self.state = state

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.state.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is TEXT:
            self.state.reply(frame.get_payload_as_bytes())


async def subscribe_many(
    spec: dict[str, Any], topics: list[str], window: Window | None
) -> tuple[SubscribeState, float, int]:
    """One ``rocket-multiplex`` socket (connect topic ``path_fmt`` of 0), then a SUBSCRIBE
    to each of `topics`, at most ``concurrency`` unanswered; `window` (when given) spans
    from the first SUBSCRIBE to the last answer. Then the socket is closed (bounded)."""
    fmt = spec.get("path_fmt", "/mx/{}")
    state = SubscribeState(topics, int(spec.get("concurrency", 100)))
    transport, _ = await ws_connect(
        lambda: SubscribeSocket(state),
        spec["url"] + fmt.format(0),
        websocket_handshake_timeout=float(spec.get("handshake_timeout", 10.0)),
        extra_headers={"Sec-WebSocket-Protocol": "rocket-multiplex"},
    )
    if window is not None:
        window.start()
    state.pump()
    await asyncio.wait([state.done], timeout=spec.get("max_seconds", 60.0))
    if window is not None:
        window.end()
    close_s, dropped = await close_all([transport], spec.get("close_timeout", 15.0))
    return state, close_s, dropped


async def handshake_mux(spec: dict[str, Any]) -> dict[str, Any]:
    """The ``mux`` mode of `run_handshake`: ``conns`` SUBSCRIBEs to distinct topics
    (``path_fmt`` of 1 … conns) on ONE ``rocket-multiplex`` socket, at most ``concurrency``
    unanswered; the window spans from the first SUBSCRIBE to the last ``OK``, and
    ``conns_per_s`` is subscriptions per second. ``warmup_conns`` topics are subscribed on
    another socket, closed, first."""
    fmt = spec.get("path_fmt", "/mx/{}")
    conns = int(spec.get("conns", 1000))
    warm = int(spec.get("warmup_conns", 20))
    if warm:
        await subscribe_many(spec, [fmt.format(i) for i in range(1, warm + 1)], None)
    window = Window()
    state, close_s, dropped = await subscribe_many(spec, [fmt.format(i) for i in range(1, conns + 1)], window)
    if state.unexpected:
        raise RuntimeError(f"{len(state.unexpected)} unexpected frames, the first: {state.unexpected[0]!r}")
    return {
        "mode": "mux",
        "conns": state.ok,
        "conns_per_s": state.ok / window.seconds,
        "failed": conns - state.ok,
        "errors_first": state.errors[:3],
        "handshake_us": percentiles(state.latencies),
        "close_s": close_s,
        "close_dropped": dropped,
        **window.report(),
    }


# --- reconnect storm (server restart) ------------------------------------------------------

MASK64 = (1 << 64) - 1


def jitter(seed: int, client: int, attempt: int) -> float:
    """A uniform draw in [0, 1), fixed by (seed, client, attempt) (splitmix64): the raw and
    the wsroute runs of a round see the same delays whatever order things happen in.

    >>> jitter(1, 2, 3) == jitter(1, 2, 3), 0 <= jitter(1, 2, 3) < 1, jitter(1, 2, 3) != jitter(1, 2, 4)
    (True, True, True)
    """
    x = (seed * 0x9E3779B97F4A7C15 + client * 0xBF58476D1CE4E5B9 + attempt * 0x94D049BB133111EB + 1) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    x ^= x >> 31
    return (x >> 11) / float(1 << 53)


class StormClient:
    """One client of `run_reconnect`: a dedicated socket to ``/fan/<room>``, reconnected
    after the restart. ``state``: ``open``, ``down`` (its socket ended), ``waiting`` (a
    backoff delay), ``connecting``, ``gave_up``."""

    __slots__ = ("attempt", "index", "received", "room", "state", "transport", "url")

    def __init__(self, index: int, room: str, url: str) -> None:
        self.index = index
        self.room = room
        self.url = url
        self.transport: WSTransport | None = None
        self.state = "new"
        self.attempt = 0  # connection attempts since the socket was lost
        self.received = False


class StormClientSocket(WSListener):
    def __init__(self, storm: Restart, client: StormClient) -> None:
        self.storm = storm
        self.client = client

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is TEXT:
            self.storm.received(self.client)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.storm.lost(self.client, transport)


class StormPublisher(WSListener):
    def __init__(self) -> None:
        self.transport: WSTransport | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        pass


class Restart:
    """The bookkeeping of `run_reconnect`: which clients are open and which have received a
    message in the current phase (before the restart, after it), the connection attempts,
    their failures and the backoff."""

    def __init__(self, spec: dict[str, Any], clients: list[StormClient]) -> None:
        self.loop = asyncio.get_running_loop()
        self.mode = spec.get("mode", "backoff")
        self.seed = int(spec.get("seed", 0))
        self.base = float(spec.get("backoff_base", 250.0))  # ms, as multiplex.js
        self.cap = float(spec.get("backoff_cap", 10_000.0))
        self.timeout = float(spec.get("handshake_timeout", 10.0))
        self.max_attempts = int(spec.get("max_attempts", 30))
        self.clients = clients
        self.up = False  # the runner said the new server listens
        self.finished = False
        self.tasks: set[asyncio.Task[None]] = set()
        self.errors: list[str] = []
        self.begin()

    def begin(self) -> None:
        """A new phase: nobody has received anything yet."""
        self.open = sum(1 for c in self.clients if c.state == "open")
        self.unreceived = len(self.clients)
        self.room_pending: dict[str, int] = {}
        for client in self.clients:
            client.received = False
            self.room_pending[client.room] = self.room_pending.get(client.room, 0) + 1
        self.all_open: asyncio.Future[None] = self.loop.create_future()
        self.all_received: asyncio.Future[None] = self.loop.create_future()
        self.attempts = self.failures = self.retries = self.gave_up = self.lost_again = 0
        self.last_open = self.last_received = 0
        self.connect_ns: list[int] = []

    def received(self, client: StormClient) -> None:
        if client.received or self.finished:
            return
        client.received = True
        self.unreceived -= 1
        self.room_pending[client.room] -= 1
        self.last_received = perf_ns()
        if self.unreceived == 0 and not self.all_received.done():
            self.all_received.set_result(None)

    def lost(self, client: StormClient, transport: WSTransport) -> None:
        if self.finished or client.transport is not transport or client.state != "open":
            return
        client.state = "down"
        self.open -= 1
        if client.received:  # it was receiving, and is not any more
            client.received = False
            self.unreceived += 1
            self.room_pending[client.room] += 1
        if self.up:
            self.lost_again += 1
            self.schedule(client)

    def delay(self, client: StormClient) -> float:
        """Seconds before `client`'s next attempt: ``random() * min(cap, base * 2**n)`` ms
        (full jitter, multiplex.js's defaults); none for the first attempt at once."""
        n = client.attempt
        if self.mode == "at_once" and n == 0:
            return 0.0
        return jitter(self.seed, client.index, n) * min(self.cap, self.base * 2**n) / 1000

    def schedule(self, client: StormClient) -> None:
        client.state = "waiting"
        delay = self.delay(client)
        if delay <= 0:
            self.spawn(client)
        else:
            self.loop.call_later(delay, self.spawn, client)

    def spawn(self, client: StormClient) -> None:
        if self.finished:
            return
        task = self.loop.create_task(self.connect(client))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def connect(self, client: StormClient) -> None:
        client.state = "connecting"
        self.attempts += 1
        t0 = perf_ns()
        try:
            transport, _ = await ws_connect(
                lambda: StormClientSocket(self, client), client.url, websocket_handshake_timeout=self.timeout
            )
        except Exception as exc:
            self.failures += 1
            if len(self.errors) < 3:
                self.errors.append(repr(exc)[:200])
            client.attempt += 1
            if client.attempt >= self.max_attempts or self.finished:
                client.state = "gave_up"
                self.gave_up += 1
            else:
                self.retries += 1
                self.schedule(client)
            return
        if self.finished:
            transport.disconnect()
            return
        now = perf_ns()
        self.connect_ns.append(now - t0)
        client.transport, client.state, client.attempt = transport, "open", 0
        self.open += 1
        self.last_open = now
        if self.open == len(self.clients) and not self.all_open.done():
            self.all_open.set_result(None)


async def open_publishers(url: str, rooms: list[str], restart: Restart, limit: float) -> dict[str, Any]:
    """One publisher socket per room (``/pub/<room>``), retried (backoff, bounded by
    `limit` seconds): {room: its listener}, and the failed attempts under ``"failures"``."""
    publishers: dict[str, Any] = {}
    failures = 0
    deadline = time.monotonic() + limit

    async def one(i: int, room: str) -> None:
        nonlocal failures
        for attempt in range(restart.max_attempts):
            try:
                _t, listener = await ws_connect(
                    StormPublisher, f"{url}/pub/{room}", websocket_handshake_timeout=restart.timeout
                )
            except Exception:
                failures += 1
                ceiling = min(restart.cap, restart.base * 2**attempt)
                wait = jitter(restart.seed, -1 - i, attempt) * ceiling / 1000
                if time.monotonic() + wait > deadline:
                    return
                await asyncio.sleep(wait)
                continue
            publishers[room] = listener
            return

    await asyncio.gather(*(one(i, room) for i, room in enumerate(rooms)))
    return {"publishers": publishers, "failures": failures}


async def publish_until_received(
    restart: Restart, publishers: dict[str, Any], every: float, limit: float
) -> int:
    """Every `every` seconds, one short message to each room that has a client which has
    not received one yet, until every client has (or `limit` seconds): the ticks sent."""
    deadline = time.monotonic() + limit
    tick = 0
    while not restart.all_received.done() and time.monotonic() < deadline:
        tick += 1
        for room, pending in restart.room_pending.items():
            pub = publishers.get(room)
            transport = pub.transport if pub is not None else None
            if pending > 0 and transport is not None and not transport.is_disconnected:
                transport.send(TEXT, f"t{tick}".encode())
        await asyncio.wait([restart.all_received], timeout=every)
    return tick


async def run_reconnect(spec: dict[str, Any]) -> dict[str, Any]:
    """The reconnect storm after a server restart (see ``scenarios.scenario_reconnect``).

    ``clients`` dedicated sockets to ``/fan/r<k>`` (``rooms`` rooms, round robin) connect,
    ``connect_concurrency`` in flight, and each receives a message from its room's publisher
    (``/pub/r<k>``); then ``{"mark": "ready", "phase": "connected"}``. The runner restarts
    the server on the same port and writes a line: "up". From there (the measured window)
    every client whose socket ended reconnects, ``mode`` ``backoff``: attempt n after
    ``random() * min(cap, base * 2**n)`` ms (full jitter, multiplex.js's 250 ms and 10 s),
    ``at_once``: the first attempt at once, failures retried with that backoff. A publisher
    per room connects at "up" too. Once every client is open (or ``accept_timeout``), each
    room that has a client which has not received a message since it reconnected gets one
    every ``publish_every`` s, until every client has (or ``receive_timeout``): the window
    ends there. ``{"mark": "ready", "phase": "recovered"}``, the runner reads the server's
    memory and writes a line; every socket is closed."""
    url, n, rooms_n = spec["url"], int(spec["clients"]), int(spec.get("rooms", 50))
    rooms = [f"r{k}" for k in range(rooms_n)]
    clients = [StormClient(i, rooms[i % rooms_n], f"{url}/fan/{rooms[i % rooms_n]}") for i in range(n)]
    restart = Restart(spec, clients)
    loop = asyncio.get_running_loop()
    every, receive_limit = float(spec.get("publish_every", 0.05)), float(spec.get("receive_timeout", 30.0))
    # 1. everyone connects and receives once: the steady state before the restart
    t0 = perf_ns()
    sem = asyncio.Semaphore(int(spec.get("connect_concurrency", 100)))

    async def first(client: StormClient) -> None:
        async with sem:
            transport, _ = await ws_connect(
                lambda: StormClientSocket(restart, client), client.url, websocket_handshake_timeout=30
            )
            client.transport, client.state = transport, "open"

    await asyncio.wait_for(asyncio.gather(*(first(c) for c in clients)), spec.get("connect_timeout", 60.0))
    connect_s = (perf_ns() - t0) / 1e9
    restart.begin()
    pubs = await open_publishers(url, rooms, restart, 10.0)
    await publish_until_received(restart, pubs["publishers"], every, receive_limit)
    if not restart.all_received.done():
        raise RuntimeError(f"before the restart, {restart.unreceived}/{n} clients received nothing")
    initial_receive_s = (perf_ns() - t0) / 1e9 - connect_s
    lines: asyncio.Queue[str] = asyncio.Queue()

    def read_stdin() -> None:
        for _ in range(2):
            line = sys.stdin.readline()
            loop.call_soon_threadsafe(lines.put_nowait, line.strip())
            if not line:
                return

    threading.Thread(target=read_stdin, daemon=True).start()
    emit({"mark": "ready", "phase": "connected", "open": n, "connect_s": connect_s})
    await asyncio.wait_for(lines.get(), spec.get("wait_up", 120.0))
    # 2. the storm: from "up" (the new server listens) until every client receives again
    window = Window()
    window.start()
    up = perf_ns()
    # Every socket of the old server is dead: those whose end was not noticed yet are
    # dropped here (their `lost` is then ignored), so that all reconnect from this instant.
    down_at_up = sum(1 for c in clients if c.state == "down")
    for client in clients:
        if client.state == "open":
            client.state = "down"
            if client.transport is not None:
                client.transport.disconnect(graceful=False)
    restart.begin()
    restart.up = True
    for client in clients:
        restart.schedule(client)
    pub_task = asyncio.ensure_future(open_publishers(url, rooms, restart, spec.get("accept_timeout", 30.0)))
    await asyncio.wait([restart.all_open], timeout=spec.get("accept_timeout", 30.0))
    accepted_s = (restart.last_open - up) / 1e9 if restart.all_open.done() else None
    pubs = await pub_task
    ticks = await publish_until_received(restart, pubs["publishers"], every, receive_limit)
    window.end()
    recovered = restart.all_received.done()
    recovered_s = (restart.last_received - up) / 1e9 if recovered else None
    never_open = sum(1 for c in clients if c.state != "open")
    never_received = restart.unreceived
    emit({"mark": "ready", "phase": "recovered", "recovered_s": recovered_s})
    await asyncio.wait_for(lines.get(), spec.get("wait_up", 120.0))
    restart.finished = True
    for task in list(restart.tasks):
        task.cancel()
    open_transports = [c.transport for c in clients if c.state == "open" and c.transport is not None]
    open_transports += [p.transport for p in pubs["publishers"].values() if p.transport is not None]
    await close_all(open_transports, 15.0)
    out: dict[str, Any] = {
        "clients": n,
        "conns": n,  # server CPU per client (summary.cpu_per_op)
        "rooms": rooms_n,
        "mode": restart.mode,
        "seed": restart.seed,
        "connect_s": connect_s,
        "initial_receive_s": initial_receive_s,
        "down_at_up": down_at_up,
        "accepted_s": accepted_s,
        "recovered_s": recovered_s,
        "attempts": restart.attempts,
        "failures": restart.failures,
        "retries": restart.retries,
        "gave_up": restart.gave_up,
        "lost_again": restart.lost_again,
        "never_open": never_open,
        "never_received": never_received,
        "publishers": len(pubs["publishers"]),
        "publisher_failures": pubs["failures"],
        "publish_ticks": ticks,
        "connect_us": percentiles(restart.connect_ns),
        "errors_first": restart.errors,
        **window.report(),
    }
    if recovered_s is not None:
        out["recovered_ms"] = recovered_s * 1000
        out["clients_per_s"] = n / recovered_s
    return out


SCENARIOS = {
    "echo": run_echo,
    "fanout": run_fanout,
    "connect": run_connect,
    "idle": run_idle,
    "storm": run_storm,
    "churn": run_churn,
    "handshake": run_handshake,
    "reconnect": run_reconnect,
}


def main() -> None:
    spec = json.loads(sys.argv[1])
    if "cpu" in spec:
        os.sched_setaffinity(0, {spec["cpu"]})
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    spec.setdefault("stall", 3.0)
    result = uvloop.run(SCENARIOS[spec["scenario"]](spec))
    emit({"result": result})


if __name__ == "__main__":
    main()
