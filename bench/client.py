"""The load client: picows on uvloop, one process, pinned to its own core by the runner.

Run as ``python bench/client.py '<json spec>'``. It prints JSON lines on stdout:

* ``{"mark": "start"}`` / ``{"mark": "end"}`` around the measured window, so the runner can
  read the server's CPU time at the same instants (the client adds its own);
* ``{"mark": "ready", ...}`` in the idle scenario, when every connection is open (it then
  waits for a line on stdin before exiting);
* a last ``{"result": {...}}``.

Scenarios (``spec["scenario"]``): ``echo`` (closed-loop ping-pong per connection, or per
topic of one multiplexed socket; with ``request`` the topics ask for ``meta`` and each
round trip is a request ``topic·id=N·payload`` and its reply ``topic·reply=N·payload``),
``fanout`` (one publisher, N subscribers, a window of broadcasts in flight), ``connect``
(open → accepted → close cycles), ``idle`` (hold N connections open). Every scenario is
bounded by a duration and by a count, and a stall (no progress for ``stall`` seconds) ends
it too. Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
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


PROTOCOLS: dict[str, Protocol] = {"plain": Protocol(), "socketio": SocketIO()}


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

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.protocol.on_connected(transport, self.room, self.publisher)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not TEXT:
            return
        now = perf_ns()
        text = self.protocol.message(transport, frame.get_payload_as_ascii_text())
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
    await connect_many(factory, [sub_base + protocol.sub_path(room)], 1)
    await asyncio.sleep(0.2)
    await connect_many(
        factory, [sub_base + protocol.sub_path(room)] * (subs - 1), spec.get("connect_concurrency", 100)
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


SCENARIOS = {"echo": run_echo, "fanout": run_fanout, "connect": run_connect, "idle": run_idle}


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
