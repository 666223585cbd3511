"""The Redis broker backend against a real Redis and real uvicorn servers.

Tests that need Redis use the shared one at 127.0.0.1:6379 (skipped when it is down,
failed when CI=true), each under its own channel prefix so they never see each other's
messages. Outages are made on private redis-server instances on free ports, never on the
shared one. All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from redis.asyncio.connection import parse_url
from starlette.types import Message
from websockets.asyncio.client import ClientConnection

from apps.redis_chat import create_app
from support.clients import assert_silent, http, recv, ws_connect
from support.processes import HOST, TESTS_DIR, free_port, uvicorn_processes
from support.redis_server import client, connections_named, private_redis, require_redis
from wsroute import Broker, BrokerUnavailable, WsRouter
from wsroute.broker.redis import RedisBackend, decode_envelope, encode_envelope, safe_url, split_url
from wsroute.history import StreamPosition
from wsroute.messages import bytes_event, text_event
from wsroute.multiplex.codec import DataFrame, Ok, encode_subscribe
from wsroute.testing import MultiplexClient, eventually, serve

CHAT_APP = "apps.redis_chat:app"


@pytest.fixture
def redis_url() -> str:
    """The shared Redis (skip, or fail in CI, when it is not running)."""
    return require_redis()


@pytest.fixture
def prefix() -> str:
    """A channel prefix of this test's own."""
    return f"wsroute-test-{uuid.uuid4().hex[:12]}:"


class Recorder:
    """A `deliver` callback that records what a backend hands to the broker."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Message, str | None]] = []
        self.positions: list[StreamPosition | None] = []

    def __call__(
        self, topic: str, event: Message, exclude: str | None, position: StreamPosition | None
    ) -> None:
        self.calls.append((topic, event, exclude))
        self.positions.append(position)

    def texts(self) -> list[str]:
        return [event["text"] for _, event, _ in self.calls if "text" in event]


@contextlib.asynccontextmanager
async def started(*backends: tuple[RedisBackend, Recorder]) -> AsyncIterator[None]:
    """Start the backends; stop them all afterwards."""
    try:
        for backend, recorder in backends:
            await backend.start(recorder)
        yield
    finally:
        for backend, _ in backends:
            await backend.stop()


def numsub(channel: str, port: int = 6379) -> int:
    """Subscribers of a Redis channel (PUBSUB NUMSUB)."""
    with client(port) as r:
        return int(r.pubsub_numsub(channel)[0][1])


def count_logs(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(1 for r in caplog.records if r.name == "wsroute" and text in r.getMessage())


async def delivered_again(port: int, room: str, ws: ClientConnection, timeout: float = 10.0) -> None:
    """Broadcast to `room` over HTTP until `ws` receives one (Redis just came back)."""
    deadline = time.monotonic() + timeout
    async with http(port) as h:
        for attempt in range(1000):
            response = await h.post(f"/rooms/{room}/broadcast", content=f"after-{attempt}")
            if response.status_code == 200:
                with contextlib.suppress(AssertionError):
                    message = await recv(ws, 0.2)
                    assert isinstance(message, str) and message.startswith("after-"), message
                    return
            else:
                await asyncio.sleep(0.05)
            if time.monotonic() > deadline:
                break
    raise AssertionError(f"no broadcast reached /rooms/{room} within {timeout}s of Redis coming back")


# --- wire format and configuration (no Redis needed) --------------------------------------


def test_envelope_round_trips_text_binary_and_exclude() -> None:
    cases: list[tuple[Message, str | None]] = [
        (text_event("hi"), None),
        (text_event(""), None),
        (text_event("héllo ☃"), "a1b2c3/s7"),
        (bytes_event(b"\x00\x01\xff"), None),
        (bytes_event(b""), "n/s1"),
    ]
    for event, exclude in cases:
        assert decode_envelope(encode_envelope(event, exclude)) == (event, exclude)
    assert encode_envelope(text_event("hi")) == b"\x10hi"
    assert encode_envelope(bytes_event(b"\x00\x01")) == b"\x11\x00\x01"
    assert encode_envelope(text_event("é"), "n/s1") == b"\x12\x04n/s1\xc3\xa9"
    # The echo tag (a broadcast its publisher also delivered itself) rides in the exclude id,
    # so readers of the documented v1 format need nothing new.
    tagged = encode_envelope(text_event("é"), "n/#7")
    assert tagged == b"\x12\x04n/#7\xc3\xa9"
    assert decode_envelope(tagged) == (text_event("é"), "n/#7")


def test_envelope_rejects_what_wsroute_did_not_write() -> None:
    for junk in (b"", b"hello", b"\x00hi", b"\x20hi", b"\x14hi", b"\x12\x09ab", b"\x10\xff\xfe"):
        with pytest.raises(ValueError):
            decode_envelope(junk)
    with pytest.raises(ValueError, match="too long"):
        encode_envelope(text_event("x"), "n/" + "s" * 300)


# (URL as the user writes it, the URL handed to redis-py, the channel prefix)
URL_TABLE = [
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0", None),
    ("redis://127.0.0.1:6379/0?channel_prefix=app:", "redis://127.0.0.1:6379/0", "app:"),
    ("redis://:pw@127.0.0.1:6379/2?channel_prefix=a%2Fb", "redis://:pw@127.0.0.1:6379/2", "a/b"),
    ("redis://user:p%40ss@cache:6380/1?protocol=3&db=1", "redis://user:p%40ss@cache:6380/1?db=1", None),
    ("rediss://app:pw@cache:6380/1?ssl_cert_reqs=none&channel_prefix=x",
     "rediss://app:pw@cache:6380/1?ssl_cert_reqs=none", "x"),
    ("rediss://cache:6380", "rediss://cache:6380", None),
    ("unix:///run/redis.sock", "unix:///run/redis.sock", None),
    ("unix:///run/redis.sock?db=0&channel_prefix=x", "unix:///run/redis.sock?db=0", "x"),
    ("unix:///run/redis.sock?channel_prefix=x", "unix:///run/redis.sock", "x"),
    ("unix://:pw@/run/redis.sock?db=3&channel_prefix=x&password=pw2",
     "unix://:pw@/run/redis.sock?db=3&password=pw2", "x"),
    ("unix://user:pw@/run/redis.sock?db=3", "unix://user:pw@/run/redis.sock?db=3", None),
]


@pytest.mark.parametrize(("url", "for_redis", "prefix"), URL_TABLE)
def test_split_url_keeps_the_url_redis_py_is_given_in_its_form(
    url: str, for_redis: str, prefix: str | None
) -> None:
    assert split_url(url) == (for_redis, prefix)
    # redis-py takes what we hand it (8.2 refuses "unix:/path", the form urlunsplit made).
    parse_url(for_redis)


def test_urls_hide_passwords_and_carry_the_channel_prefix() -> None:
    assert safe_url("redis://:hunter2@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert safe_url("rediss://app:hunter2@cache:6380/1") == "rediss://app:***@cache:6380/1"
    assert safe_url("unix:///run/redis.sock?db=0&password=hunter2") == "unix:///run/redis.sock?db=0&password=***"
    assert safe_url("unix://:hunter2@/run/redis.sock?db=0") == "unix://:***@/run/redis.sock?db=0"
    assert safe_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    backend = RedisBackend("redis://127.0.0.1:6379/0?channel_prefix=app1:&protocol=3")
    assert backend.channel_prefix == "app1:"
    assert backend.url == "redis://127.0.0.1:6379/0"
    assert RedisBackend(channel_prefix="x:").channel_prefix == "x:"


# --- failing fast at startup ----------------------------------------------------------


async def test_start_with_nothing_listening_fails_fast_naming_the_url() -> None:
    port = free_port()
    before = asyncio.all_tasks()
    started_at = time.monotonic()
    with pytest.raises(BrokerUnavailable) as caught:
        async with Broker(f"redis://:hunter2@127.0.0.1:{port}/0"):
            pass
    assert time.monotonic() - started_at < 2
    assert f"redis://:***@127.0.0.1:{port}/0" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    assert asyncio.all_tasks() == before


async def test_start_against_a_silent_server_fails_within_the_connect_timeout() -> None:
    # Accepts TCP (the kernel completes the handshake) but never answers: a hung Redis.
    with socket.socket() as silent:
        silent.bind((HOST, 0))
        silent.listen(8)
        url = f"redis://{HOST}:{silent.getsockname()[1]}/0"
        backend = RedisBackend(url, connect_timeout=0.5)
        started_at = time.monotonic()
        with pytest.raises(BrokerUnavailable, match=url):
            await backend.start(Recorder())
        assert time.monotonic() - started_at < 1.5


def test_uvicorn_startup_with_unreachable_redis_fails_fast() -> None:
    url = f"redis://{HOST}:{free_port()}/0"
    started_at = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "uvicorn", CHAT_APP, "--app-dir", str(TESTS_DIR), "--host", HOST,
         "--port", str(free_port())],
        env={**os.environ, "WSROUTE_TEST_BROKER": url},
        capture_output=True,
        timeout=30,
    )
    assert result.returncode != 0
    err = result.stderr.decode(errors="replace")
    assert "BrokerUnavailable" in err and url in err, err
    assert time.monotonic() - started_at < 10


# --- the backend against the shared Redis ---------------------------------------------


async def test_backends_exchange_text_and_binary_and_exclude_only_in_the_origin(
    redis_url: str, prefix: str
) -> None:
    a, b = RedisBackend(redis_url, channel_prefix=prefix), RedisBackend(redis_url, channel_prefix=prefix)
    got_a, got_b = Recorder(), Recorder()
    async with started((a, got_a), (b, got_b)):
        await a.subscribe("/t")
        await b.subscribe("/t")
        await a.publish("/t", text_event("hi"), exclude="s1")
        await b.publish("/t", bytes_event(b"\x00\xff"))
        await eventually(lambda: len(got_a.calls) == 2 and len(got_b.calls) == 2, what="two messages each")
        # Subscriber ids are per process: "s1" is skipped in the publishing process only.
        assert got_a.calls == [("/t", text_event("hi"), "s1"), ("/t", bytes_event(b"\x00\xff"), None)]
        assert got_b.calls == [("/t", text_event("hi"), None), ("/t", bytes_event(b"\x00\xff"), None)]

        # Concurrent publishes from one process reach Redis in call order.
        await asyncio.gather(*(a.publish("/t", text_event(str(i))) for i in range(300)))
        await eventually(lambda: len(got_b.calls) == 302, what="300 messages")
        assert got_b.texts()[1:] == [str(i) for i in range(300)]


async def test_subscription_changes_apply_in_call_order(redis_url: str, prefix: str) -> None:
    sub, pub = RedisBackend(redis_url, channel_prefix=prefix), RedisBackend(redis_url, channel_prefix=prefix)
    got = Recorder()
    async with started((sub, got), (pub, Recorder())):
        # While the listener is still connecting…
        await asyncio.gather(
            sub.subscribe("/x"), sub.unsubscribe("/x"), sub.subscribe("/x"),
            sub.subscribe("/y"), sub.unsubscribe("/y"),
        )
        # …and on a live connection.
        await asyncio.gather(sub.unsubscribe("/x"), sub.subscribe("/x"))
        await asyncio.gather(sub.subscribe("/z"), sub.unsubscribe("/z"))
        assert numsub(prefix + "/x") == 1
        await eventually(
            lambda: numsub(prefix + "/y") == 0 and numsub(prefix + "/z") == 0, what="unsubscribed"
        )
        for topic in ("/y", "/z", "/x"):
            await pub.publish(topic, text_event(topic))
        await eventually(lambda: got.calls != [], what="a message on /x")
        await asyncio.sleep(0.1)
        assert got.calls == [("/x", text_event("/x"), None)]


async def test_subscribe_returns_once_redis_confirmed_it(redis_url: str, prefix: str) -> None:
    # A broadcast sent right after subscribe returns (e.g. after a join) must arrive:
    # on the first subscribe (the listener connects) and on a live connection alike.
    pub = RedisBackend(redis_url, channel_prefix=prefix)
    async with started((pub, Recorder())):
        for round_ in range(5):
            sub, got = RedisBackend(redis_url, channel_prefix=prefix), Recorder()
            async with started((sub, got)):
                await sub.subscribe(f"/first{round_}")
                await pub.publish(f"/first{round_}", text_event("first"))
                for i in range(20):
                    await sub.subscribe(f"/live{round_}-{i}")
                    await pub.publish(f"/live{round_}-{i}", text_event(str(i)))
                await eventually(lambda: len(got.calls) == 21, what="21 messages")  # noqa: B023


async def test_write_only_publisher_holds_one_connection(redis_url: str, prefix: str) -> None:
    backend = RedisBackend(redis_url, channel_prefix=prefix)
    before = asyncio.all_tasks()
    async with Broker(backend) as broker:
        await broker.broadcast_to("/t", "text")
        await broker.broadcast_to("/t", b"binary")
        await asyncio.gather(*(broker.broadcast_to("/t", {"n": i}) for i in range(50)))
        assert connections_named(backend.client_name) == 1
        assert asyncio.all_tasks() == before  # no listener: it starts on the first subscribe
    await eventually(lambda: connections_named(backend.client_name) == 0, what="connection closed")


async def test_stop_leaves_no_task_and_no_connection(redis_url: str, prefix: str) -> None:
    class Sink:
        subscriber_id = "sink"

        def __init__(self) -> None:
            self.events: list[Message] = []

        def deliver(self, event: Message) -> None:
            self.events.append(event)

    backend = RedisBackend(redis_url, channel_prefix=prefix)
    broker = Broker(backend)
    before = asyncio.all_tasks()
    for _ in range(2):  # and a stopped backend starts again cleanly
        sink = Sink()
        await broker.start()
        await broker.add_subscriber("/a", sink)
        await broker.add_subscriber("/b", sink)
        await broker.broadcast_to("/a", "one")
        await eventually(lambda: sink.events == [text_event("one")], what="delivery")  # noqa: B023
        assert connections_named(backend.client_name) == 2
        assert numsub(prefix + "/a") == 1
        await broker.stop()
        assert asyncio.all_tasks() == before
        await eventually(lambda: connections_named(backend.client_name) == 0, what="connections closed")
        assert numsub(prefix + "/a") == 0 and numsub(prefix + "/b") == 0


async def test_unix_socket_url(prefix: str) -> None:
    with tempfile.TemporaryDirectory(prefix="wsr", dir="/tmp") as directory:
        path = f"{directory}/redis.sock"
        with private_redis(unix_socket=path):
            url = f"unix://{path}?db=0&channel_prefix={prefix}"
            a, b = RedisBackend(url), RedisBackend(url)
            got = Recorder()
            async with started((a, got), (b, Recorder())):
                await a.subscribe("/u")
                await b.publish("/u", text_event("over a unix socket"))
                await eventually(lambda: got.texts() == ["over a unix socket"], what="delivery")


# --- real servers -----------------------------------------------------------------------


async def test_two_uvicorn_processes_share_broadcasts(redis_url: str, prefix: str) -> None:
    env = {"WSROUTE_TEST_BROKER": f"{redis_url}?channel_prefix={prefix}"}
    with uvicorn_processes(CHAT_APP, env, count=2) as (port_a, port_b):
        async with (
            ws_connect(port_a, "/rooms/r") as a1,
            ws_connect(port_b, "/rooms/r") as b1,
            ws_connect(port_b, "/rooms/other") as b2,
            http(port_b) as on_b,
        ):
            pids = {await recv(a1), await recv(b1), await recv(b2)}
            assert len(pids) == 2

            # A client on A broadcasts: both A and B receive.
            await a1.send("hello from A")
            assert await recv(a1) == "hello from A"
            assert await recv(b1) == "hello from A"

            # An HTTP route on B reaches clients on A.
            response = await on_b.post("/rooms/r/broadcast", content="from an HTTP route on B")
            assert response.status_code == 200
            assert await recv(a1) == "from an HTTP route on B"
            assert await recv(b1) == "from an HTTP route on B"

            # exclude_self skips the sender only. a1 and b1 are the first subscribers of
            # their processes, so they have the same process-local subscriber id.
            await a1.send("quiet: to the others")
            assert await recv(b1) == "quiet: to the others"
            await assert_silent(a1)

            # Topic isolation across processes.
            await assert_silent(b2)


async def test_write_only_publisher_script_reaches_a_client(redis_url: str, prefix: str) -> None:
    url = f"{redis_url}?channel_prefix={prefix}"
    script = textwrap.dedent(
        """
        import asyncio, sys
        from wsroute import Broker

        async def main():
            async with Broker(sys.argv[1]) as broker:
                await broker.broadcast_to("/rooms/news", "from a cron job")
                await broker.broadcast_to("/rooms/news", b"binary too")

        asyncio.run(main())
        """
    )
    with uvicorn_processes(CHAT_APP, {"WSROUTE_TEST_BROKER": url}) as [port]:
        async with ws_connect(port, "/rooms/news") as ws, ws_connect(port, "/rooms/sports") as other:
            await recv(ws)
            await recv(other)
            result = await asyncio.to_thread(
                subprocess.run, [sys.executable, "-c", script, url], capture_output=True, timeout=30
            )
            assert result.returncode == 0, result.stderr.decode(errors="replace")
            assert await recv(ws) == "from a cron job"
            assert await recv(ws) == b"binary too"
            await assert_silent(other)


async def test_uvicorn_workers_chat_with_each_other(redis_url: str, prefix: str) -> None:
    env = {"WSROUTE_TEST_BROKER": f"{redis_url}?channel_prefix={prefix}"}
    with uvicorn_processes(CHAT_APP, env, workers=2) as [port]:
        async with contextlib.AsyncExitStack() as stack:
            by_pid: dict[str | bytes, ClientConnection] = {}
            deadline = time.monotonic() + 20
            # The kernel picks the worker for each connection: keep connecting until two
            # clients sit on different workers (bounded in time).
            while len(by_pid) < 2 and time.monotonic() < deadline:
                ws = await stack.enter_async_context(ws_connect(port, "/rooms/w"))
                pid = await recv(ws)
                if pid in by_pid:
                    await ws.close()
                    await asyncio.sleep(0.02)
                else:
                    by_pid[pid] = ws
            assert len(by_pid) == 2, "every connection landed on the same worker"
            x, y = by_pid.values()
            await x.send("hello from worker X")
            assert await recv(y) == "hello from worker X"
            assert await recv(x) == "hello from worker X"
            await y.send("hello from worker Y")
            assert await recv(x) == "hello from worker Y"
            assert await recv(y) == "hello from worker Y"


# --- outages (private redis-server instances) ---------------------------------------------


async def test_redis_restart_raises_then_recovers_without_restarting_anything(
    prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wsroute")
    with private_redis() as redis_server:
        backend = RedisBackend(redis_server.url, channel_prefix=prefix, connect_timeout=1, reconnect_max=0.5)
        async with serve(create_app(backend)) as address:
            port = int(address.rpartition(":")[2])
            async with (
                http(port) as h,
                ws_connect(port, "/rooms/r") as room,
                ws_connect(port, "/echo") as echo,
            ):
                await recv(room)
                assert (await h.post("/rooms/r/broadcast", content="before")).status_code == 200
                assert await recv(room) == "before"

                redis_server.kill()

                # Publishers get a clear error naming the URL; nothing is dropped silently.
                response = await h.post("/rooms/r/broadcast", content="during")
                assert response.status_code == 503
                assert redis_server.url in response.text
                await room.send("a chat message during the outage")
                reply = await recv(room)
                assert isinstance(reply, str) and reply.startswith("error: ") and redis_server.url in reply
                # The server keeps serving its connections.
                await echo.send("still here")
                assert await recv(echo) == "still here"

                # A client joining during the outage is subscribed once Redis is back.
                async with ws_connect(port, "/rooms/late") as late:
                    await recv(late)
                    redis_server.start()
                    await delivered_again(port, "r", room)
                    await delivered_again(port, "late", late)
    # Outage and recovery are logged once each, not once per retry or per failed publish.
    assert count_logs(caplog, "subscription connection lost") == 1
    assert count_logs(caplog, "subscription connection restored") == 1
    assert count_logs(caplog, "cannot publish") == 1
    assert count_logs(caplog, "publishing again") == 1


async def race_the_resubscribe(redis_server: Any, prefix: str) -> tuple[list[str], collections.Counter[str]]:
    """Subscribe, restart Redis, then publish from 4 tasks at once while the listener
    resubscribes; what was accepted, and how often each text was delivered here."""
    got: collections.Counter[str] = collections.Counter()

    def deliver(topic: str, event: Message, exclude: str | None, position: StreamPosition | None) -> None:
        got[event["text"]] += 1

    backend = RedisBackend(
        redis_server.url, channel_prefix=prefix, reconnect_min=0.2, reconnect_max=0.2,
        timeout=0.5, connect_timeout=0.5,
    )  # fmt: skip
    accepted: list[str] = []

    async def publisher(k: int) -> None:
        for i in range(40):
            with contextlib.suppress(BrokerUnavailable):
                await backend.publish("/t", text_event(f"{k}-{i}"))
                accepted.append(f"{k}-{i}")
            await asyncio.sleep(0.001)

    await backend.start(deliver)
    try:
        await backend.subscribe("/t")
        redis_server.kill()
        with contextlib.suppress(BrokerUnavailable):
            await backend.publish("/t", text_event("during the outage"))
        await asyncio.sleep(0.3)
        redis_server.start()
        await asyncio.gather(*(publisher(k) for k in range(4)))
        await eventually(lambda: all(got[m] for m in accepted), what="every accepted broadcast")
        await asyncio.sleep(0.2)  # a late duplicate would show up by now
    finally:
        await backend.stop()
    return accepted, got


async def test_broadcasts_published_while_resubscribing_arrive_exactly_once(prefix: str) -> None:
    """Right after Redis restarts, publishers in this process race the listener's SUBSCRIBE:
    every broadcast Redis accepted reaches this process's subscribers once — delivered here
    while the subscription is not confirmed, and the copy Redis may still bring back dropped."""
    accepted_total = 0
    with private_redis() as redis_server:
        for trial in range(10):
            accepted, got = await race_the_resubscribe(redis_server, f"{prefix}{trial}:")
            assert accepted, "nothing was accepted after the restart"
            assert [m for m in accepted if got[m] != 1] == [], f"trial {trial}: lost or duplicated"
            assert set(got) <= set(accepted), "a broadcast that failed was delivered"
            accepted_total += len(accepted)
    assert accepted_total >= 10 * 40


async def test_killed_pubsub_connection_is_resubscribed(
    prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wsroute")
    with private_redis() as redis_server:
        sub = RedisBackend(redis_server.url, channel_prefix=prefix, reconnect_max=0.5)
        pub = RedisBackend(redis_server.url, channel_prefix=prefix)
        got = Recorder()
        async with started((sub, got), (pub, Recorder())):
            await sub.subscribe("/t")
            await sub.subscribe("/u")
            await pub.publish("/t", text_event("before"))
            await eventually(lambda: got.texts() == ["before"], what="first delivery")

            with client(redis_server.port) as r:
                assert r.client_kill_filter(_type="pubsub") == 1

            deadline = time.monotonic() + 5
            attempt = 0
            while not any(t.startswith("after") for t in got.texts()):
                assert time.monotonic() < deadline, "delivery did not resume after CLIENT KILL"
                await pub.publish("/u", text_event(f"after-{attempt}"))  # never raises: Redis is up
                attempt += 1
                await asyncio.sleep(0.05)
            assert numsub(prefix + "/t", redis_server.port) == 1
            assert numsub(prefix + "/u", redis_server.port) == 1
    assert count_logs(caplog, "subscription connection lost") == 1
    assert count_logs(caplog, "subscription connection restored") == 1


async def test_hung_redis_is_detected_by_timeouts_and_health_checks(
    prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    # SIGSTOP: the kernel still accepts connections and data, but nothing answers.
    caplog.set_level(logging.INFO, logger="wsroute")
    with private_redis() as redis_server:
        assert redis_server.proc is not None
        sub, pub = (
            RedisBackend(
                redis_server.url, channel_prefix=prefix, connect_timeout=0.3, timeout=0.3,
                reconnect_max=0.3, health_check_interval=0.2,
            )
            for _ in range(2)
        )
        got = Recorder()
        async with started((sub, got), (pub, Recorder())):
            await sub.subscribe("/t")
            redis_server.proc.send_signal(signal.SIGSTOP)
            try:
                started_at = time.monotonic()
                with pytest.raises(BrokerUnavailable, match=r"no answer within 0\.3 s"):
                    await pub.publish("/t", text_event("lost"))
                assert time.monotonic() - started_at < 1
                await eventually(
                    lambda: count_logs(caplog, "subscription connection lost") == 1, what="PING timeout"
                )
            finally:
                redis_server.proc.send_signal(signal.SIGCONT)
            deadline = time.monotonic() + 5
            while "back" not in got.texts():
                assert time.monotonic() < deadline, "delivery did not resume after SIGCONT"
                with contextlib.suppress(BrokerUnavailable):
                    await pub.publish("/t", text_event("back"))
                await asyncio.sleep(0.05)
    assert count_logs(caplog, "subscription connection restored") == 1



async def test_a_multiplexed_subscription_gets_its_ok_before_any_broadcast() -> None:
    """Over Redis the server's SUBSCRIBE takes a round trip, and the first broadcasts come
    in the very read that confirms it: they reached the client before the topic's ``OK``,
    and a client (the browser's) drops data for a topic it has not been told of. Data
    follows the OK (protocol.md, Timing), with and without positions."""
    url = f"{require_redis()}?channel_prefix=wsroute-test-{uuid.uuid4().hex[:12]}:"
    ws = WsRouter(broker=url)

    @ws.message("/rooms/{room}")
    async def said(data: str) -> None: ...

    ws.topic("/rooms/{room}", history=100)
    app = FastAPI()
    ws.install(app)
    outsider = Broker(url)  # broadcasts without the topic's history: delivered live
    stop = asyncio.Event()

    async def flood() -> None:
        for n in range(20_000):
            if stop.is_set():
                return
            await outsider.broadcast_to("/rooms/a", f"u{n}")

    async with asyncio.timeout(60), serve(app) as address, outsider:
        flooding = asyncio.create_task(flood())
        firsts, seconds = [], []
        try:
            for n in range(20):
                options = {"meta": ""} if n % 2 else {"meta": "", "positions": ""}
                async with MultiplexClient.connect(f"ws://{address}/rooms/home") as client:
                    await client.send_raw(encode_subscribe("/rooms/a", options))
                    firsts.append(await client.recv())
                    seconds.append(await client.recv())
        finally:
            stop.set()
            await flooding
        late = [frame for frame in firsts if not isinstance(frame, Ok)]
        assert late == [], f"{len(late)} of 20 subscriptions got data before their OK: {late[:2]}"
        assert all(isinstance(frame, DataFrame) for frame in seconds)  # the flood was arriving
