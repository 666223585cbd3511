"""The Redis backend when Redis fails: restarts empty or with its data after a long outage,
hangs, refuses SUBSCRIBE, drops only the pub/sub connection. Presence comes back whole and is
not announced as gone; reads and shutdown stay bounded by the timeout; retries back off and
log once; a control command still reaches the caller's own clients.

Every outage is made on a private redis-server (`support.redis_server.private_redis`),
never on the shared one. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
import uuid
from pathlib import Path

import pytest

from apps.presence_app import create_app as presence_app
from support.clients import http, recv, ws_connect
from support.proxy import CuttableProxy
from support.redis_server import client, private_redis, require_redis
from wsroute import Broker, BrokerUnavailable
from wsroute.broker.redis import RedisBackend
from wsroute.messages import text_event
from wsroute.presence import Member, PresenceDiff
from wsroute.testing import eventually, serve


def _prefix() -> str:
    return f"wsroute-outage-{uuid.uuid4().hex[:8]}:"


async def _retry_until_accepted(call, attempts: int = 50):  # type: ignore[no-untyped-def]
    """Redis just restarted: the publish connection may need one failed use to notice."""
    for _ in range(attempts):
        with contextlib.suppress(BrokerUnavailable):
            return await call()
        await asyncio.sleep(0.05)
    raise AssertionError("Redis never accepted the call after its restart")


# --- presence after a restart that lost all data ----------------------------------------


async def test_members_come_back_after_an_empty_restart_even_if_a_join_comes_first() -> None:
    """Redis restarts with no data. The heartbeat is meant to write this process's members
    again ("A process that finds itself no longer registered when it heartbeats (...) or
    Redis lost its data) writes its members again", docs/redis.md). A client that joins
    right after the restart, before the next heartbeat, must not make the others vanish."""
    ttl = 1.5  # heartbeat every 0.5 s
    with private_redis() as server:
        url = f"{server.url}?channel_prefix={_prefix()}"
        worker = Broker(RedisBackend(url, presence_ttl=ttl))
        worker.topic("/rooms/{room}", presence=True)
        reader = Broker(RedisBackend(url, presence_ttl=ttl))
        reader.topic("/rooms/{room}", presence=True)
        async with asyncio.timeout(30), worker, reader:
            await worker.track("/rooms/a", Member("w.1", "ann", None))
            await worker.track("/rooms/a", Member("w.2", "bob", None))
            await worker.wait_presence_sent()
            assert {m.client_id for m in await reader.presence("/rooms/a")} == {"w.1", "w.2"}

            server.kill()
            server.start()  # empty: --save '' --appendonly no
            # A new client joins on the worker right away (well within a heartbeat interval).
            await worker.track("/rooms/a", Member("w.3", "cid", None))
            await _retry_until_accepted(worker.wait_presence_sent)
            await _retry_until_accepted(lambda: reader.presence("/rooms/a"))

            await asyncio.sleep(ttl)  # three heartbeats of the worker: it has had its chance
            members = {m.client_id for m in await reader.presence("/rooms/a")}
            assert members == {"w.1", "w.2", "w.3"}, f"listed after the restart: {sorted(members)}"


# --- a hung Redis and the presence batches ------------------------------------------------


async def test_presence_read_and_stop_are_bounded_by_the_timeout_when_redis_hangs() -> None:
    """Redis hangs (SIGSTOP: connections are accepted, nothing answers) while this process
    has presence changes pending on several topics. `broker.presence()` must fail with
    `BrokerUnavailable` within about its `timeout`, and `stop()` (app shutdown) must not wait
    a `timeout` per topic, three times over."""
    timeout = 0.5
    topics = [f"/rooms/{n}" for n in range(6)]
    with private_redis() as server:
        assert server.proc is not None
        backend = RedisBackend(
            f"{server.url}?channel_prefix={_prefix()}", timeout=timeout, connect_timeout=timeout
        )
        broker = Broker(backend)
        broker.topic("/rooms/{room}", presence=True)
        await broker.start()
        stopped = False
        try:
            for n, topic in enumerate(topics):
                await broker.track(topic, Member(f"c.{n}", f"u{n}", None))
            await broker.wait_presence_sent()

            server.proc.send_signal(signal.SIGSTOP)
            try:
                for n, topic in enumerate(topics):  # those clients leave during the hang
                    await broker.untrack(topic, f"c.{n}")

                started = time.monotonic()
                with pytest.raises(BrokerUnavailable):
                    async with asyncio.timeout(60):
                        await broker.presence(topics[0])
                read_took = time.monotonic() - started

                started = time.monotonic()
                async with asyncio.timeout(60):
                    await broker.stop()
                stopped = True
                stop_took = time.monotonic() - started
            finally:
                server.proc.send_signal(signal.SIGCONT)
            assert read_took < 3 * timeout and stop_took < 3 * timeout, (
                f"with timeout={timeout}s and {len(topics)} topics pending: broker.presence() failed "
                f"after {read_took:.1f}s, broker.stop() took {stop_took:.1f}s"
            )
        finally:
            if not stopped:
                await broker.stop()


# --- presence batches retried during an outage ---------------------------------------------


async def test_a_presence_batch_redis_refuses_is_not_retried_and_logged_every_50_ms(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis is down (connections refused), one client left a topic with presence and others
    keep joining another. The changes are retried until Redis is back, backing off rather
    than every `presence_batch` (50 ms), and the outage is logged once."""
    caplog.set_level(logging.WARNING, logger="wsroute")
    with private_redis() as server:
        backend = RedisBackend(f"{server.url}?channel_prefix={_prefix()}")
        attempts: list[str] = []
        update = backend.presence_update

        async def counted(topic: str, diff: PresenceDiff) -> None:
            attempts.append(topic)
            await update(topic, diff)

        backend.presence_update = counted  # type: ignore[method-assign]
        broker = Broker(backend)
        broker.topic("/rooms/{room}", presence=True)
        async with asyncio.timeout(30), broker:
            await broker.track("/rooms/a", Member("c.1", "ann", None))
            await broker.wait_presence_sent()
            server.kill()
            attempts.clear()
            await broker.untrack("/rooms/a", "c.1")
            for n in range(40):  # clients keep joining another topic during the outage
                await broker.track("/rooms/b", Member(f"b.{n}", "bob", None))
                await asyncio.sleep(0.05)
            retries = [r for r in caplog.records if "not stored, retried" in r.getMessage()]
            tries = len(attempts)
            server.start()  # so that stop() ends the test cleanly
    # Backing off from 50 ms (doubling): ~7 attempts in 2 s, however many clients join meanwhile.
    assert tries <= 8, f"{tries} attempts to store presence changes in 2 s of outage"
    assert len(retries) == 1, [r.getMessage() for r in retries]


# --- the listener's backoff ------------------------------------------------------------------


async def test_the_listener_backs_off_when_every_subscription_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis accepts the connection (AUTH, CLIENT SETNAME, PING all fine) but refuses the
    SUBSCRIBE (here an ACL user without channel permissions, as Redis 7's default
    `acl-pubsub-default resetchannels` makes; a proxy without pub/sub does the same). The
    listener must back off exponentially (0.1 s doubling up to `reconnect_max`), not
    reconnect every 0.05-0.1 s forever."""
    caplog.set_level(logging.WARNING, logger="wsroute")
    with private_redis() as server:
        with client(server.port) as admin:
            admin.execute_command("ACL", "SETUSER", "nochan", "on", ">pw", "~*", "+@all", "resetchannels")
        url = f"redis://nochan:pw@127.0.0.1:{server.port}/0?channel_prefix={_prefix()}"
        backend = RedisBackend(url, reconnect_min=0.1, reconnect_max=5.0)
        await backend.start(lambda *args: None)
        try:
            async with asyncio.timeout(10):
                await backend.subscribe("/t")

            def connections() -> int:
                with client(server.port) as admin:
                    return int(admin.info("stats")["total_connections_received"])

            before = connections()
            await asyncio.sleep(3.0)
            made = connections() - before - 1  # minus the INFO connection itself
        finally:
            await backend.stop()
    assert "permissions to access one of the channels" in caplog.text, caplog.text  # the cause
    # 0.1 s doubling to 5 s, each delay randomised to half of it at least: 0.05+0.1+0.2+0.4+0.8+1.6
    # > 3 s, so at most about 7 connections in 3 s.
    assert made <= 8, f"the listener reconnected {made} times in 3 s"


# --- control commands while this process's own subscription is down --------------------------


async def test_a_ban_reaches_the_callers_own_clients_while_its_subscription_reconnects(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Only the pub/sub connection dropped (CLIENT KILL TYPE pubsub; or Redis just came back
    and the listener still waits out its backoff, up to `reconnect_max`): publishing works.
    `broker.disconnect(user="ann")` from the worker that holds Ann's socket must close it
    (a broadcast from this worker does reach its own clients in that window, docs/redis.md);
    it must not answer 0 and leave her connected."""
    caplog.set_level(logging.WARNING, logger="wsroute")
    with private_redis() as server:
        app = presence_app(f"{server.url}?channel_prefix={_prefix()}")
        backend = app.state.wsroute.broker.backend
        assert isinstance(backend, RedisBackend)
        # The backoff a listener has after a longer outage (default reconnect_max is 5 s).
        backend.reconnect_min = backend.reconnect_max = 3.0
        async with asyncio.timeout(30), serve(app) as address:
            port = int(address.rpartition(":")[2])
            async with ws_connect(port, "/rooms/r?user=ann") as ann, http(port) as h:
                await ann.send("me?")
                await recv(ann)  # joined: Ann is a member, known by her user
                with client(server.port) as admin:
                    assert admin.client_kill_filter(_type="pubsub") == 1
                await eventually(lambda: "subscription connection lost" in caplog.text, what="the loss")

                response = await h.post("/ban", params={"user": "ann", "code": 4403})
                assert response.status_code == 200
                closed = None
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await ann.wait_closed()
                        closed = ann.close_code
                assert (response.json(), closed) == (1, 4403), (
                    f"disconnect(user='ann') answered {response.json()} and Ann's socket "
                    f"{'is still open' if closed is None else f'closed with {closed}'}"
                )


# --- a Redis outage longer than presence_ttl, data kept (a failover, an AOF restart) ---------


async def test_live_workers_are_not_announced_as_left_after_a_redis_outage_longer_than_the_ttl(
    tmp_path: Path,
) -> None:
    """Two live workers hold members; Redis is away for longer than `presence_ttl` and comes
    back with its data (a failover, a restart with persistence). Neither worker died nor
    stalled: the first one to heartbeat must not sweep the other as dead and announce all of
    its members' leaves to every watcher (who then keep them as gone until they resubscribe:
    the re-add announced no join)."""
    ttl = 3.0  # heartbeat every 1 s
    with private_redis(persist_dir=str(tmp_path)) as server:
        url = f"{server.url}?channel_prefix={_prefix()}&presence_ttl={ttl}"
        prefix = url.rpartition("channel_prefix=")[2].partition("&")[0]
        a, b = Broker(url), Broker(url)
        for broker in (a, b):
            broker.topic("/rooms/{room}", presence=True)
        async with asyncio.timeout(60), a, b:
            await a.track("/rooms/r", Member("a.1", "ann", None))
            await asyncio.sleep(ttl / 6)  # workers started at different times heartbeat out of phase
            await b.track("/rooms/r", Member("b.1", "bob", None))
            await a.wait_presence_sent()
            await b.wait_presence_sent()
            assert {m.client_id for m in await a.presence("/rooms/r")} == {"a.1", "b.1"}

            server.kill()
            await asyncio.sleep(ttl + 0.5)
            server.start()
            # A watcher of the topic, subscribed as soon as Redis is back, before any heartbeat.
            with client(server.port) as watcher_conn:
                watcher = watcher_conn.pubsub()
                watcher.subscribe(f"{prefix}/rooms/r")
                await asyncio.sleep(3 * ttl / 3 + 0.5)  # every worker heartbeat (and swept) by now
                diffs = []
                while (message := watcher.get_message(timeout=0.01)) is not None:
                    if message["type"] == "message":
                        diffs.append(message["data"][1:].decode())
                watcher.close()
            members = {m.client_id for m in await _retry_until_accepted(lambda: a.presence("/rooms/r"))}
    assert members == {"a.1", "b.1"}
    assert [d for d in diffs if '"leaves":{"' in d] == [], f"leave diffs of live members: {diffs}"


# --- a topic subscribed while the listener subscribes again ----------------------------------


async def test_a_topic_subscribed_while_the_listener_resubscribes_is_not_lost() -> None:
    """The listener reconnected and sent its SUBSCRIBE for every topic it wanted; Redis has
    not answered yet. A client subscribes to a new topic in that window: broadcasts to it
    must reach this process once Redis answers, not be lost until the next reconnect."""
    with private_redis() as server:
        prefix = _prefix()
        async with CuttableProxy(server.port) as proxy:
            port = await proxy.start()
            backend = RedisBackend(
                f"redis://127.0.0.1:{port}/0?channel_prefix={prefix}", reconnect_min=0.05, reconnect_max=0.1
            )
            publisher = RedisBackend(f"{server.url}?channel_prefix={prefix}")
            got: list[tuple[str, str]] = []
            await backend.start(lambda topic, event, *_: got.append((topic, event.get("text", ""))))
            await publisher.start(lambda *args: None)
            try:
                async with asyncio.timeout(20):
                    await backend.subscribe("/a")
                    proxy.hold_after = b"SUBSCRIBE"  # Redis answers the next SUBSCRIBE late
                    proxy.cut()
                    await eventually(lambda: proxy.held > 0, 5.0, what="the listener to subscribe again")
                    late = asyncio.create_task(backend.subscribe("/b"))
                    await asyncio.sleep(0.2)
                    proxy.release()
                    await late
                    await eventually(lambda: backend._live, 5.0, what="the subscription to be live")

                    await publisher.publish("/b", text_event("to b"))
                    await eventually(lambda: ("/b", "to b") in got, 2.0, what="the broadcast to /b")
            finally:
                await publisher.stop()
                await backend.stop()


async def test_subscribe_stays_bounded_while_redis_stops_reading_the_listeners_resubscribe() -> None:
    """The listener reconnects and writes SUBSCRIBE for thousands of topics; Redis accepted
    the connection but reads nothing more (hung, or a stalled link), so the write blocks once
    the socket buffers are full. A client's subscribe meanwhile must return within about
    `timeout` (it holds up a handshake), not wait on the listener forever."""
    timeout = 0.5
    with private_redis() as server:
        prefix = _prefix()
        async with CuttableProxy(server.port) as proxy:
            port = await proxy.start()
            backend = RedisBackend(
                f"redis://127.0.0.1:{port}/0?channel_prefix={prefix}",
                timeout=timeout, reconnect_min=0.05, reconnect_max=0.1,
            )  # fmt: skip
            await backend.start(lambda *args: None)
            try:
                name = "x" * 2000  # 4,000 topics: 8 MB of SUBSCRIBE, more than the buffers hold
                async with asyncio.timeout(30):
                    await asyncio.gather(*(backend.subscribe(f"/{n}/{name}") for n in range(4000)))
                proxy.stall_after = b"SUBSCRIBE"
                proxy.cut()
                await eventually(lambda: proxy.stalled > 0, 5.0, what="the listener to subscribe again")
                await asyncio.sleep(0.2)  # its write is blocked now
                started = time.monotonic()
                async with asyncio.timeout(10):
                    await backend.subscribe("/late")
                took = time.monotonic() - started
                assert took < 3 * timeout, f"subscribe took {took:.1f}s with timeout={timeout}s"
            finally:
                proxy.release()
                await backend.stop()


# --- a command run locally is not run again when its copy arrives ----------------------------


async def test_a_command_run_locally_is_not_run_again_when_its_own_copy_arrives() -> None:
    """While the subscription is not confirmed live, a command runs on the caller's own
    sockets directly; Redis may still bring its copy back (the SUBSCRIBE went through): that
    copy is answered without running the command again, so a refusal is not counted twice."""
    backend = RedisBackend(f"{require_redis()}?channel_prefix={_prefix()}")
    ran: list[str] = []

    async def control(command: str) -> int:
        ran.append(command)
        return -403  # a server-side subscribe refused by the topic's guard

    backend.control = control
    await backend.start(lambda *args: None)
    try:
        await backend.subscribe("/rooms/a")  # the listener subscribes the control channel too
        await eventually(lambda: backend._live, 5.0, what="the subscription to be live")
        backend._live = False  # as right after a reconnect, before Redis confirms it
        assert await backend.publish_control('{"op": "subscribe"}') == -403
        assert ran == ['{"op": "subscribe"}']
    finally:
        await backend.stop()


# --- a re-add that fails is tried again by the heartbeat ------------------------------------


async def test_members_not_stored_again_are_retried_by_the_heartbeat() -> None:
    """After an empty restart a join registers the process and its other members are stored
    again; if that fails, the heartbeat (which finds the process registered) tries again."""
    with private_redis() as server:
        backend = RedisBackend(f"{server.url}?channel_prefix={_prefix()}&presence_ttl=1.5")
        await backend.start(lambda *args: None)
        try:
            await backend.presence_add("/rooms/a", Member("a.1", "ann", None))
            update = backend.presence_update
            failures = [BrokerUnavailable("a moment's outage")]

            async def failing_once(topic: str, diff: PresenceDiff) -> None:
                if failures and "a.1" in diff.joins:
                    raise failures.pop()
                await update(topic, diff)

            backend.presence_update = failing_once  # type: ignore[method-assign]
            server.kill()
            server.start()  # empty
            await _retry_until_accepted(lambda: backend.presence_add("/rooms/b", Member("b.1", "bob", None)))

            async def ann_is_back() -> bool:
                return [m.client_id for m in await backend.presence_members("/rooms/a")] == ["a.1"]

            await eventually(ann_is_back, 5.0, what="Ann stored again by the heartbeat")
            assert not failures
        finally:
            await backend.stop()
