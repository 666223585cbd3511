"""The chat example (``examples/chat``): README's run command, and its HTTP and WebSocket behaviour.

Most tests talk to one ``python -m examples.chat`` subprocess (started once for the module,
with a known token secret and admin token so they can forge and expire tokens); each test uses
its own rooms. The README test starts the command with no settings at all, as a user would.
The Redis test runs ``--workers 2`` and needs Redis at 127.0.0.1:6379 (skipped without it,
except under ``CI=true``). All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from support.chat import ADMIN, SECRET, ChatServer, chat_env, chat_server
from support.clients import connect
from support.processes import PLAIN_HTTP, free_port
from wsroute.multiplex.codec import Err, Ok
from wsroute.testing import MultiplexClient, ServerThread, serve

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT))

from examples.chat import auth  # noqa: E402
from examples.chat.models import User  # noqa: E402
from examples.chat.web import STATIC  # noqa: E402


@pytest.fixture(scope="module")
def chat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatServer]:
    """One chat server for the module (memory broker, known secret and admin token)."""
    db = tmp_path_factory.mktemp("chat") / "chat.sqlite3"
    with chat_server(chat_env(db, WSROUTE_BROKER="memory://")) as server:
        yield server


def room_name() -> str:
    return f"t-{secrets.token_hex(4)}"


# --- clients ------------------------------------------------------------------------------


async def sign_in(base: str, name: str) -> tuple[User, str]:
    async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=5) as http:
        response = await http.post("/api/session", json={"name": name})
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.cookies[auth.COOKIE] == body["token"]
    return User(**body["user"]), body["token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def recv_json(ws: Any, timeout: float = 5.0) -> dict[str, Any]:
    try:
        raw = await asyncio.wait_for(ws.recv(), timeout)
    except TimeoutError:
        raise AssertionError(f"no message within {timeout}s") from None
    event: dict[str, Any] = json.loads(raw)
    return event


async def recv_until(
    ws: Any, check: Callable[[dict[str, Any]], bool], timeout: float = 5.0
) -> dict[str, Any]:
    """The first event that satisfies `check`, skipping others (bounded by `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        event = await recv_json(ws, max(0.05, deadline - time.monotonic()))
        if check(event):
            return event
        if time.monotonic() > deadline:
            raise AssertionError(f"no matching event within {timeout}s")


@contextlib.asynccontextmanager
async def enter(
    base_ws: str, room: str, token: str, **options: Any
) -> AsyncIterator[tuple[Any, dict[str, Any]]]:
    """Enter `room` on a plain WebSocket: yields the socket and its hello (a plain socket
    gets no presence frames: members are for clients that ask, and for ``/members``)."""
    async with connect(f"{base_ws}/rooms/{room}", additional_headers=bearer(token), **options) as ws:
        hello = await recv_json(ws)
        assert hello["type"] == "hello", hello
        yield ws, hello


async def listed(base: str, room: str, token: str) -> list[dict[str, Any]]:
    """``GET /api/rooms/{room}/members``: every member listed, online and offline."""
    async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=5) as http:
        response = await http.get(f"/api/rooms/{room}/members", headers=bearer(token))
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["members"]
    return found


async def members(base: str, room: str, token: str) -> list[tuple[str, int]]:
    """(name, connections) of each user online in the room, from ``/members``."""
    return [(m["user"]["name"], m["connections"]) for m in await listed(base, room, token) if m["online"]]


async def offline(base: str, room: str, token: str) -> list[tuple[str, float]]:
    """(name, last seen as unix time) of each offline member of the room, from ``/members``."""
    return [
        (m["user"]["name"], datetime.fromisoformat(m["last_seen"]).timestamp())
        for m in await listed(base, room, token)
        if not m["online"]
    ]


async def members_become(
    base: str, room: str, token: str, expected: list[tuple[str, int]], timeout: float = 5.0
) -> None:
    """Poll ``/members`` until it reads `expected` (another worker lists a join or a leave
    with its presence batch, and a socket's close may reach the test before the leave ran)."""
    deadline = time.monotonic() + timeout
    while (found := await members(base, room, token)) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"members are {found}, not {expected}, after {timeout}s")
        await asyncio.sleep(0.05)


async def seen_after(base: str, room: str, token: str, name: str, after: float, timeout: float = 5) -> float:
    """Poll ``/members`` until `name` is offline, last seen after `after`; returns when (a leave
    is written just after the socket's close is sent, so the close can reach the test first)."""
    deadline = time.monotonic() + timeout
    while (seen := dict(await offline(base, room, token)).get(name, 0.0)) <= after:
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} not offline and seen after {after} within {timeout}s")
        await asyncio.sleep(0.05)
    return seen


def who(change: dict[str, Any]) -> list[tuple[str | None, Any]]:
    """(user, info) of each client in a presence state or a diff's joins/leaves."""
    return sorted((c["user"], c["info"]) for c in change.values())


def forge(token: str, **claims: Any) -> str:
    """`token` with its payload changed but the signature kept."""
    version, payload, signature = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data.update(claims)
    raw = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{version}.{raw}.{signature}"


# --- README ---------------------------------------------------------------------------------


def test_readme_runs_the_chat_example() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- run-command -->\s*```sh\n(.+?)\n```", readme, re.S)
    assert block and block.group(1).rstrip().endswith(".venv/bin/python -m examples.chat"), block


async def test_readme_run_command_serves_signs_in_and_chats(tmp_path: Path) -> None:
    """``python -m examples.chat`` with no settings at all: it keeps its key and messages in
    ``.chat-data/`` of the working directory, and picks an admin token."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("WSROUTE_")}
    server = ChatServer({**env, "PYTHONUNBUFFERED": "1"}, cwd=tmp_path)
    try:
        server.start()
        async with httpx.AsyncClient(base_url=server.http, trust_env=False, timeout=5) as http:
            page = await http.get("/")
            assert page.status_code == 200 and "<title>wsroute chat</title>" in page.text
            for asset in ("/static/chat.js", "/static/room.js", "/static/api.js", "/static/chat.css"):
                assert (await http.get(asset)).status_code == 200, asset
            assert "MultiplexWebSocket" in (await http.get("/wsroute/multiplex.js")).text
            assert (await http.get("/rooms/lobby")).text == page.text  # a room's URL opens the page
            assert (await http.get("/api/session")).status_code == 401
            signed = await http.post("/api/session", json={"name": "Ann"})
            assert signed.status_code == 201
            cookie = signed.cookies[auth.COOKIE]
            assert (await http.get("/api/session")).json()["user"]["name"] == "Ann"  # the cookie works
        bob, bob_token = await sign_in(server.http, "Bob")
        # The browser's way: the cookie rides on the handshake.
        async with connect(
            f"{server.ws}/rooms/lobby", additional_headers={"Cookie": f"{auth.COOKIE}={cookie}"}
        ) as ann:
            hello = await recv_json(ann)
            assert hello["you"]["name"] == "Ann" and hello["room"] == "lobby"
            async with enter(server.ws, "lobby", bob_token) as (bob_ws, bob_hello):
                assert bob_hello["you"] == bob.model_dump()
                await members_become(server.http, "lobby", bob_token, [("Ann", 1), ("Bob", 1)])
                await bob_ws.send(json.dumps({"text": "hello"}))
                said = await recv_json(ann)
                assert (said["type"], said["text"], said["user"]["name"]) == ("message", "hello", "Bob")
            await members_become(server.http, "lobby", bob_token, [("Ann", 1)])
        async with connect(f"{server.ws}/echo") as echo:
            await echo.send("ping")
            assert await asyncio.wait_for(echo.recv(), 5) == "ping"
        data = tmp_path / ".chat-data"
        assert f"messages in {data / 'chat.sqlite3'}" in server.output(), server.output()
        assert (data / "secret").stat().st_mode & 0o077 == 0, "the key is readable by others"
        assert server.stop() == 0, server.output()
        assert "Traceback" not in server.output(), server.output()

        # A restart with the same command: the same key and messages, so nobody notices.
        server.start()
        async with httpx.AsyncClient(base_url=server.http, trust_env=False, timeout=5) as http:
            session = await http.get("/api/session", headers=bearer(bob_token))
            assert session.status_code == 200 and session.json()["user"] == bob.model_dump()
            history = await http.get("/api/rooms/lobby/messages", headers=bearer(bob_token))
            assert [m["text"] for m in history.json()["messages"]] == ["hello"]
        server.stop()

        # A new key (the file deleted): the old token is refused with the reason the page shows.
        (data / "secret").unlink()
        server.start()
        async with httpx.AsyncClient(base_url=server.http, trust_env=False, timeout=5) as http:
            refused = await http.get("/api/session", headers=bearer(bob_token))
            assert refused.status_code == 401
            assert refused.json()["detail"] == {"reason": "rekeyed", "message": auth.MESSAGES["rekeyed"]}
        assert server.stop() == 0, server.output()
    finally:
        server.close()


def test_more_workers_need_a_shared_broker() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "examples.chat", "--workers", "2", "--port", str(free_port())],
        cwd=ROOT,
        env={key: value for key, value in os.environ.items() if not key.startswith("WSROUTE_")},
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2
    assert "--broker redis://" in result.stderr


# --- sign-in tokens -------------------------------------------------------------------------


def test_tokens_round_trip_and_refuse_tampering() -> None:
    user = User(id="u1", name="Ann")
    token, expires = auth.issue(b"k", user, 60, now=1000)
    assert auth.verify(b"k", token, now=1059) == (user, expires)
    problems = {
        "missing": [None, ""],
        "invalid": [
            "garbage",
            "v1.x.y",
            token[:-2],
            forge(token, name="Mallory"),
            "v2" + token[2:],
        ],
        # Signed by another key that names itself: the server's key changed (not a forgery
        # we can tell apart, but the honest case is a restart with a new key).
        "rekeyed": [auth.issue(b"other secret", user, 60, now=1000)[0]],
        "expired": [token],
    }
    # Unverified payloads are read for a key id only, and safely: deep nesting, non-ASCII.
    deep = base64.urlsafe_b64encode(b"[" * 1000).rstrip(b"=").decode()
    problems["invalid"] += [f"v1.{deep}.x", "v1.\u00e9.x", f"v1.{'A' * 5000}.x"]
    for problem, tokens in problems.items():
        for bad in tokens:
            with pytest.raises(auth.TokenError) as caught:
                auth.verify(b"k", bad, now=1060)
            assert caught.value.problem == problem, bad


@pytest.mark.parametrize("problem", ["missing", "invalid", "expired", "rekeyed"])
async def test_handshake_without_a_valid_token_is_refused_with_401(chat: ChatServer, problem: str) -> None:
    user, token = await sign_in(chat.http, "Eve")
    tokens = {
        "missing": None,
        "invalid": forge(token, name="Mallory"),
        "expired": auth.issue(SECRET.encode(), user, -1)[0],
        "rekeyed": auth.issue(b"the key before a restart", user, 60)[0],
    }
    bad = tokens[problem]
    attempts: list[tuple[str, dict[str, str]]] = [(f"{chat.ws}/rooms/lobby", bearer(bad) if bad else {})]
    if bad:
        attempts += [
            (f"{chat.ws}/rooms/lobby?token={bad}", {}),
            (f"{chat.ws}/rooms/lobby", {"Cookie": f"{auth.COOKIE}={bad}"}),
        ]
    for url, headers in attempts:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, additional_headers=headers):
                pass
        response = refused.value.response
        assert response.status_code == 401, url
        assert json.loads(response.body)["detail"]["reason"] == problem
    # The page asks over HTTP why (a browser cannot read a refused handshake's status).
    async with httpx.AsyncClient(base_url=chat.http, trust_env=False, timeout=5) as http:
        session = await http.get("/api/session", headers=bearer(bad) if bad else {})
        assert session.status_code == 401
        assert session.json()["detail"]["reason"] == problem
        assert session.json()["detail"]["message"]
        assert (
            await http.get("/api/rooms/lobby/messages", headers=bearer(bad) if bad else {})
        ).status_code == 401


SCOTLAND = "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"

HOSTILE_NAMES = {
    "\u202eNIMDA": "direction override (shows as ADMIN)",
    "Ann\u2066x\u2069": "direction isolate",
    "\u200b": "zero-width space only",
    "\u3164": "Hangul filler only (renders as nothing)",
    "\u2800 \u2800": "blank Braille patterns only",
    "\u0301": "a lone combining mark",
    "Bob\u00ad": "soft hyphen (invisible)",
    "\ufdfa" * 32: "32 characters that NFKC makes 576",
    "bad\nname": "a line break",
}


async def test_sign_in_validates_the_display_name(chat: ChatServer) -> None:
    async with httpx.AsyncClient(base_url=chat.http, trust_env=False, timeout=5) as http:
        for name in ["", "   ", "x" * 33, *HOSTILE_NAMES]:
            refused = await http.post("/api/session", json={"name": name})
            assert refused.status_code == 422, HOSTILE_NAMES.get(name, name)
            assert refused.json()["detail"][0]["msg"], name  # the page shows this sentence
        normalised = {
            "  Zoë  ": "Zoë",
            # NFKC: full-width look-alikes become the plain letters
            "\uff26\uff55\uff4c\uff4c  \uff57\uff49\uff44\uff54\uff48": "Full width",
            "e\u0301": "é",  # one way to write é
            "👩\u200d💻 Dev": "👩\u200d💻 Dev",  # joiners stay: emoji sequences need them
            SCOTLAND: SCOTLAND,  # a subdivision flag: its tag characters are format characters
            "\u0645\u0631\u06cc\u200c\u0645": "\u0645\u0631\u06cc\u200c\u0645",  # Persian with a ZWNJ
        }
        for given, kept in normalised.items():
            signed = await http.post("/api/session", json={"name": given})
            assert signed.status_code == 201, given
            assert signed.json()["user"]["name"] == kept
        # Half an emoji (a lone surrogate, escaped in JSON: a cut paste) becomes U+FFFD, as the
        # page makes it in messages. It used to answer 500: the 422 echoed it, unencodable.
        for escaped, kept in {r"Ann \ud83d": "Ann \ufffd", r"\udc4b Bob": "\ufffd Bob"}.items():
            body = f'{{"name": "{escaped}"}}'
            signed = await http.post(
                "/api/session", content=body, headers={"Content-Type": "application/json"}
            )
            assert signed.status_code == 201, (escaped, signed.text)
            assert signed.json()["user"]["name"] == kept
        assert (await http.delete("/api/session")).status_code == 204
        assert (await http.get("/api/session")).status_code == 401


async def test_signing_in_again_from_the_same_browser_keeps_the_user(chat: ChatServer) -> None:
    """A browser whose cookie holds a token of the name it signs in with again (valid, or
    expired less than the cookie's week of grace ago) is the same user, for 30 days from its
    first sign-in, so a room lists one Ann, not one per sign-in. Another name, a forged
    token, one expired longer ago, one first signed over 30 days ago, a bearer token
    instead of the cookie, or none: a new user."""
    ann, _ = await sign_in(chat.http, "Ann")
    key = SECRET.encode()
    day = 24 * 3600

    async def again(name: str, token: str | None, *, cookie: bool = True) -> tuple[str, str]:
        headers = {}
        if token is not None:
            headers = {"Cookie": f"{auth.COOKIE}={token}"} if cookie else {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=chat.http, trust_env=False, timeout=5) as http:
            signed = await http.post("/api/session", json={"name": name}, headers=headers)
        assert signed.status_code == 201, signed.text
        return signed.json()["user"]["id"], signed.json()["token"]

    renewed, token = await again("Ann", auth.issue(key, ann, 3600)[0])  # still valid
    assert renewed == ann.id
    renewed, _ = await again("Ann", auth.issue(key, ann, -3600)[0])  # expired an hour ago
    assert renewed == ann.id
    # A renewal carries the first sign-in's time, so renewing cannot go on for ever.
    first = time.time() - 29 * day
    renewed, token = await again("Ann", auth.issue(key, ann, 3600, since=first)[0])
    assert renewed == ann.id
    renewed, _ = await again("Ann", token)
    assert renewed == ann.id
    for name, old, cookie in [
        ("Annie", auth.issue(key, ann, 3600)[0], True),  # another name: another person
        ("Ann", auth.issue(key, ann, -8 * day)[0], True),  # expired over a week ago
        ("Ann", auth.issue(key, ann, 3600, since=time.time() - 31 * day)[0], True),  # first 31 days ago
        ("Ann", auth.issue(b"another key", ann, 3600)[0], True),  # not this server's
        ("Ann", auth.issue(key, ann, 3600)[0], False),  # a bearer token: not the browser's cookie
        ("Ann", None, True),
    ]:
        assert (await again(name, old, cookie=cookie))[0] != ann.id, (name, old, cookie)


async def test_token_is_verified_once_per_connection(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The guard checks the token at the handshake; messages and leave reuse the local cache."""
    from examples.chat.app import create_app
    from examples.chat.config import ChatConfig

    calls: list[str | None] = []
    real_verify = auth.verify

    def counting_verify(secret: bytes, token: str | None, **kw: Any) -> tuple[User, int]:
        calls.append(token)
        return real_verify(secret, token, **kw)

    monkeypatch.setattr(auth, "verify", counting_verify)
    app = create_app(ChatConfig(secret=b"k", db_path=tmp_path / "chat.sqlite3"))
    async with serve(app) as url:
        token, _ = auth.issue(b"k", User(id="u1", name="Ann"), 60)
        async with enter(f"ws://{url}", "once", token) as (ws, _):
            for text in ("one", "two", "three"):
                await ws.send(json.dumps({"text": text}))
                assert (await recv_json(ws))["text"] == text
        async with MultiplexClient.connect(f"ws://{url}/rooms/a", additional_headers=bearer(token)) as mux:
            assert isinstance(await mux.subscribe("/rooms/b"), Ok)
            for topic in ("/rooms/a", "/rooms/b"):
                await mux.send(topic, json.dumps({"text": "hi"}))
                await mux.send(topic, json.dumps({"text": "again"}))
            for topic in ("/rooms/a", "/rooms/b"):
                for expected in ("hi", "again"):
                    while (event := json.loads(await mux.recv_data(topic)))["type"] != "message":
                        pass
                    assert event["text"] == expected
    # One dedicated connection, two topics of one multiplexed socket: three verifications.
    assert calls == [token, token, token]


def test_without_a_database_setting_the_app_uses_a_temporary_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Importing or building the app makes no file (docs tools import it); running it makes a
    temporary database, removed when it stops."""
    from examples.chat.app import create_app
    from examples.chat.config import ChatConfig

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    app = create_app(ChatConfig.from_env({}))
    assert list(tmp_path.iterdir()) == []
    with ServerThread(app) as url:
        assert httpx.get(f"http://{url}/api/health", trust_env=False).status_code == 200
        # No WSROUTE_CHAT_ADMIN_TOKEN: the admin endpoint is off.
        off = httpx.post(
            f"http://{url}/api/admin/rooms/lobby/announce",
            json={"text": "hi"},
            headers={"Authorization": "Bearer anything"},
            trust_env=False,
        )
        assert off.status_code == 403 and "disabled" in off.json()["detail"]
        files = {path.name for path in tmp_path.iterdir()}
        assert len({name.split(".sqlite3")[0] for name in files}) == 1  # the database (+ WAL files)
        assert all(name.startswith("wsroute-chat-") for name in files), files
    assert list(tmp_path.iterdir()) == []


# --- rooms ----------------------------------------------------------------------------------


async def test_presence_join_leave_and_a_second_tab(chat: ChatServer) -> None:
    """What the page sees (it asks for presence): the member list once, then each
    connection's arrival and departure; a second tab is a second client of the same user."""
    room = room_name()
    topic = f"/rooms/{room}"
    ann, ann_token = await sign_in(chat.http, "Ann")
    bob, bob_token = await sign_in(chat.http, "Bob")
    url = f"{chat.ws}{topic}"
    async with MultiplexClient.connect(url, presence=True, additional_headers=bearer(ann_token)) as ann_ws:
        hello = json.loads(await ann_ws.recv_data(topic))
        assert hello["worker"] > 0 and hello["max_length"] == 500
        # The list as the subscription found it, then the page's own arrival (once its join ran).
        assert await ann_ws.recv_presence(topic) == ("state", {})
        kind, state = await ann_ws.recv_presence(topic)
        assert (kind, who(state["joins"])) == ("diff", [(ann.id, {"name": "Ann"})])
        state = state["joins"]
        async with enter(chat.ws, room, bob_token):
            kind, diff = await ann_ws.recv_presence(topic)
            assert (kind, who(diff["joins"]), diff["leaves"]) == ("diff", [(bob.id, {"name": "Bob"})], {})
            # Ann opens a second tab: a second client of the same user, one entry by name.
            async with enter(chat.ws, room, ann_token):
                kind, diff = await ann_ws.recv_presence(topic)
                assert who(diff["joins"]) == [(ann.id, {"name": "Ann"})]
                tab = next(iter(diff["joins"]))
                assert tab not in state  # a client id of its own
                assert await members(chat.http, room, ann_token) == [("Ann", 2), ("Bob", 1)]
            kind, diff = await ann_ws.recv_presence(topic)
            assert (diff["joins"], list(diff["leaves"])) == ({}, [tab])
            assert await members(chat.http, room, ann_token) == [("Ann", 1), ("Bob", 1)]
        kind, diff = await ann_ws.recv_presence(topic)
        assert (diff["joins"], who(diff["leaves"])) == ({}, [(bob.id, {"name": "Bob"})])
        assert await members(chat.http, room, ann_token) == [("Ann", 1)]
    await members_become(chat.http, room, bob_token, [])
    async with httpx.AsyncClient(base_url=chat.http, trust_env=False, timeout=5) as http:
        assert (await http.get(f"/api/rooms/{room}/members")).status_code == 401


async def test_members_who_left_are_listed_offline_with_when_they_were_last_seen(chat: ChatServer) -> None:
    """``/members`` lists who is connected, then who was in the room before, latest seen
    first, each once, with when they left: a user comes back online, a second tab closing
    leaves its user online, and a room lists only its own members."""
    room, other = room_name(), room_name()
    _, ann_token = await sign_in(chat.http, "Ann")
    _, bob_token = await sign_in(chat.http, "Bob")
    _, cy_token = await sign_in(chat.http, "Cy")
    assert await listed(chat.http, room, ann_token) == []
    async with enter(chat.ws, room, cy_token):
        cy_in = time.time()
    cy_seen = await seen_after(chat.http, room, ann_token, "Cy", cy_in)
    async with enter(chat.ws, room, bob_token):
        bob_in = time.time()
    bob_seen = await seen_after(chat.http, room, ann_token, "Bob", bob_in)
    async with enter(chat.ws, room, ann_token):
        ann_in = time.time()
        await members_become(chat.http, room, ann_token, [("Ann", 1)])
        assert await offline(chat.http, room, ann_token) == [("Bob", bob_seen), ("Cy", cy_seen)]
        bob = next(m for m in await listed(chat.http, room, ann_token) if m["user"]["name"] == "Bob")
        assert (bob["online"], bob["connections"]) == (False, 0)
        # Bob comes back: online, and no longer offline.
        async with enter(chat.ws, room, bob_token):
            await members_become(chat.http, room, ann_token, [("Ann", 1), ("Bob", 1)])
            assert await offline(chat.http, room, ann_token) == [("Cy", cy_seen)]
            # Ann's second tab comes and goes: Ann stays online, and is not listed offline.
            async with enter(chat.ws, room, ann_token):
                await members_become(chat.http, room, ann_token, [("Ann", 2), ("Bob", 1)])
            await members_become(chat.http, room, ann_token, [("Ann", 1), ("Bob", 1)])
            assert await offline(chat.http, room, ann_token) == [("Cy", cy_seen)]
            bob_back = time.time()
        await seen_after(chat.http, room, ann_token, "Bob", bob_back)
    await seen_after(chat.http, room, bob_token, "Ann", ann_in)
    assert [name for name, _ in await offline(chat.http, room, bob_token)] == ["Ann", "Bob", "Cy"]
    assert await listed(chat.http, other, ann_token) == []  # members of `room` only


async def test_the_seen_table_keeps_each_users_latest_time_and_forgets_old_visits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Store.saw``: an entry written after the leave it preceded (the join's write can lag
    the leave's) keeps the later time, and visits older than `forget_before` are deleted."""
    from examples.chat import store as store_module

    clock = [1000.0]
    monkeypatch.setattr(store_module, "time", SimpleNamespace(time=lambda: clock[0], sleep=time.sleep))
    store = store_module.Store(tmp_path / "seen.sqlite3")
    await store.open()
    try:
        ann, bob = User(id="a" * 16, name="Ann"), User(id="b" * 16, name="Bob")
        for at, who in [(1000.0, ann), (2000.0, ann), (1500.0, ann), (1200.0, bob)]:
            clock[0] = at
            await store.saw("r", who, forget_before=0)
        seen = [(user.name, when.timestamp()) for user, when in await store.last_seen("r", 10, 0)]
        assert seen == [("Ann", 2000.0), ("Bob", 1200.0)]
        clock[0] = 3000.0
        await store.saw("other", bob, forget_before=2500)  # another room's visits stay
        await store.saw("r", bob, forget_before=1500)
        seen = [(user.name, when.timestamp()) for user, when in await store.last_seen("r", 10, 0)]
        assert seen == [("Bob", 3000.0), ("Ann", 2000.0)]
        await store.saw("r", bob, forget_before=2500)
        assert [user.name for user, _ in await store.last_seen("r", 10, 0)] == ["Bob"]
    finally:
        await store.close()


def test_workers_opening_a_new_database_at_once_all_start(tmp_path: Path) -> None:
    """Workers that start together on a new database each open it. Before, one in about 25
    pairs failed its startup with "database is locked" (switching the file to WAL), and
    uvicorn then stopped every worker."""
    from examples.chat.store import Store

    failures: list[BaseException] = []

    def open_and_close(path: Path, start: threading.Barrier) -> None:
        store = Store(path)
        try:
            start.wait()
            store._open()
        except BaseException as exc:
            failures.append(exc)
        finally:
            store._close()

    for round_ in range(60):
        start = threading.Barrier(4, timeout=10)
        path = tmp_path / f"new-{round_}.sqlite3"
        workers = [threading.Thread(target=open_and_close, args=(path, start)) for _ in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=30)
    assert failures == []


async def test_a_user_is_away_while_every_page_of_theirs_is_hidden(chat: ChatServer) -> None:
    """A page sends ``{"type": "status", "away": …}`` as it is hidden and shown again
    (`Channel.update_presence`): ``/members`` marks its user away while every connection of
    theirs to the room is; a second, visible page makes them present again."""
    room = room_name()
    _, ann_token = await sign_in(chat.http, "Ann")
    _, bob_token = await sign_in(chat.http, "Bob")

    async def away() -> dict[str, bool]:
        return {m["user"]["name"]: m["away"] for m in await listed(chat.http, room, ann_token) if m["online"]}

    async def becomes(expected: dict[str, bool]) -> None:
        deadline = time.monotonic() + 5
        while (now := await away()) != expected:
            assert time.monotonic() < deadline, f"{now} never became {expected}"
            await asyncio.sleep(0.05)

    async with enter(chat.ws, room, ann_token), enter(chat.ws, room, bob_token) as (bob, _):
        await becomes({"Ann": False, "Bob": False})
        await bob.send(json.dumps({"type": "status", "away": True}))
        await becomes({"Ann": False, "Bob": True})
        async with enter(chat.ws, room, bob_token):  # a second page, visible
            await becomes({"Ann": False, "Bob": False})
        await becomes({"Ann": False, "Bob": True})
        await bob.send(json.dumps({"type": "status", "away": False}))
        await becomes({"Ann": False, "Bob": False})
        await bob.send(json.dumps({"text": "back"}))  # a status is no message: this is the first
        said = await recv_until(bob, lambda e: e["type"] == "message")
        assert said["text"] == "back"


async def test_an_admin_kicks_a_user_from_every_room(chat: ChatServer) -> None:
    """``POST /api/admin/users/{id}/kick`` closes each socket of the user with 4403 (the page
    does not reconnect after it); the others stay."""
    one, two = room_name(), room_name()
    _, ann_token = await sign_in(chat.http, "Ann")
    bob, bob_token = await sign_in(chat.http, "Bob")
    url = f"/api/admin/users/{bob.id}/kick"
    async with (
        httpx.AsyncClient(base_url=chat.http, trust_env=False, timeout=5) as http,
        enter(chat.ws, one, ann_token) as (ann_ws, _),
        enter(chat.ws, one, bob_token) as (bob_one, _),
        MultiplexClient.connect(f"{chat.ws}/rooms/{two}", additional_headers=bearer(bob_token)) as bob_mux,
    ):
        assert (await http.post(url)).status_code == 401
        assert (await http.post(url, headers=bearer(bob_token))).status_code == 403
        assert isinstance(await bob_mux.subscribe(f"/rooms/{one}"), Ok)
        await members_become(chat.http, one, ann_token, [("Ann", 1), ("Bob", 2)])
        kicked = await http.post(url, headers=bearer(ADMIN))
        assert kicked.status_code == 200 and kicked.json() == {"closed": 2}
        with pytest.raises(ConnectionClosed) as closed:
            await recv_json(bob_one)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4403, "removed by an admin")
        with pytest.raises(ConnectionClosed) as closed:
            for _ in range(100):  # what was sent before the close (hellos), then the close
                await asyncio.wait_for(bob_mux.websocket.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
        await members_become(chat.http, one, ann_token, [("Ann", 1)])
        await members_become(chat.http, two, ann_token, [])
        # Kicking again finds nothing; Ann's socket is untouched and still chats.
        assert (await http.post(url, headers=bearer(ADMIN))).json() == {"closed": 0}
        await ann_ws.send(json.dumps({"text": "still here"}))
        assert (await recv_json(ann_ws))["text"] == "still here"


async def test_validation_errors_answer_the_sender_and_keep_the_socket(chat: ChatServer) -> None:
    room = room_name()
    _, token = await sign_in(chat.http, "Ann")
    refused: list[tuple[str | bytes, str | None]] = [
        (json.dumps({"text": ""}), "empty"),
        (json.dumps({"text": "   \n "}), "empty"),
        # Nothing anyone would see: zero-width and blank characters, terminal controls.
        (json.dumps({"text": "\u200b\u200c\u2060\ufeff"}), "empty"),
        (json.dumps({"text": "\u3164\u2800"}), "empty"),
        (json.dumps({"text": "\x1b\x07"}), "empty"),
        (json.dumps({"text": "x" * 501}), "too_long"),
        (json.dumps({"text": "é" * 501}), "too_long"),
        ("just text, not JSON", "invalid"),
        (json.dumps({"words": "hi"}), "invalid"),
        (json.dumps({"text": "\u200bhi\x1b[31m"}), None),  # kept, the control character gone
        (json.dumps({"type": "status"}), "invalid"),  # a status says whether the page is away
        (json.dumps({"text": "x" * 5000}), "too_large"),
    ]
    async with enter(chat.ws, room, token) as (ws, _):
        for message, code in refused:
            await ws.send(message)
            error = await recv_json(ws)
            if code is None:
                assert (error["type"], error["text"]) == ("message", "\u200bhi[31m"), error
                continue
            assert (error["type"], error["code"]) == ("error", code), (message[:30], error)
            assert error["detail"]
        long_error = await _error_for(ws, json.dumps({"text": "y" * 600}))
        assert "500 characters" in long_error["detail"] and "600" in long_error["detail"]
        await ws.send(json.dumps({"text": " " + "z" * 500 + " "}))  # exactly the limit, once stripped
        said = await recv_json(ws)
        assert (said["type"], said["text"]) == ("message", "z" * 500)
    # Nothing refused reached the history.
    async with httpx.AsyncClient(base_url=chat.http, trust_env=False, timeout=5) as http:
        history = (await http.get(f"/api/rooms/{room}/messages", headers=bearer(token))).json()
    assert [item["text"] for item in history["messages"]] == ["\u200bhi[31m", "z" * 500]


async def test_a_flood_is_cut_at_the_rooms_rate_limit_and_the_socket_stays(chat: ChatServer) -> None:
    """60 messages at once pass (what a page typed offline fits), the next ones are dropped
    unread, with a `rate_limited` error naming their ref (`RateLimited.text` is the dropped
    message); nothing dropped is kept or broadcast."""
    room = room_name()
    _, token = await sign_in(chat.http, "Ann")
    async with enter(chat.ws, room, token) as (ws, _):
        for n in range(62):
            await ws.send(json.dumps({"text": f"m{n}", "ref": f"r-{n}"}))
        answers = [await recv_json(ws) for _ in range(62)]
        # The refusals come at once, the messages once the room's join has run: by ref.
        said = {a["ref"]: a.get("text") for a in answers if a["type"] == "message"}
        refused = {a["ref"]: a["code"] for a in answers if a["type"] == "error"}
        assert said == {f"r-{n}": f"m{n}" for n in range(60)}
        assert refused == {"r-60": "rate_limited", "r-61": "rate_limited"}
    async with httpx.AsyncClient(base_url=chat.http, trust_env=False, timeout=5) as http:
        history = (await http.get(f"/api/rooms/{room}/messages", headers=bearer(token))).json()
    assert len(history["messages"]) == 50  # the last 50 of the 60 kept
    assert history["messages"][-1]["text"] == "m59"


async def test_refs_confirm_a_message_once_and_name_its_errors(chat: ChatServer) -> None:
    """A page sends each message with a ref: the broadcast echoes it (its pending copy is
    confirmed), an error names it, and a resend after a reconnect does not post it twice."""
    room = room_name()
    ann, token = await sign_in(chat.http, "Ann")
    _, bob_token = await sign_in(chat.http, "Bob")
    async with enter(chat.ws, room, token) as (ws, _), enter(chat.ws, room, bob_token) as (bob, _):
        await ws.send(json.dumps({"text": "hi", "ref": "r-1"}))
        said = await recv_json(ws)
        assert (said["text"], said["ref"], said["user"]) == ("hi", "r-1", ann.model_dump())
        assert (await recv_json(bob))["id"] == said["id"]
        for bad, code in [
            ({"text": "", "ref": "r-2"}, "empty"),
            ({"text": "x" * 501, "ref": "r-3"}, "too_long"),
        ]:
            error = await _error_for(ws, json.dumps(bad))
            assert (error["code"], error["ref"]) == (code, bad["ref"])
        # Resent (the page never saw it confirmed): the sender gets the kept message again,
        # the room does not see it twice.
        await ws.send(json.dumps({"text": "hi", "ref": "r-1"}))
        again = await recv_json(ws)
        assert (again["id"], again["ref"]) == (said["id"], "r-1")
        await ws.send(json.dumps({"text": "next", "ref": "r-4"}))
        assert (await recv_json(bob))["text"] == "next"  # nothing between: no second "hi"
        assert (await recv_json(ws))["text"] == "next"
        # Bidi overrides and NUL are taken out of what is kept and shown.
        await ws.send(json.dumps({"text": "\u202egnp.exe\x00 ok", "ref": "r-5"}))
        assert (await recv_json(bob))["text"] == "gnp.exe ok"
    async with httpx.AsyncClient(base_url=chat.http, trust_env=False, timeout=5) as http:
        history = (await http.get(f"/api/rooms/{room}/messages", headers=bearer(token))).json()
    assert [item["text"] for item in history["messages"]] == ["hi", "next", "gnp.exe ok"]
    # A ref names a message in its room: the same ref in another room is another message.
    elsewhere = room_name()
    async with enter(chat.ws, elsewhere, token) as (ws, _):
        await ws.send(json.dumps({"text": "hi over here", "ref": "r-1"}))
        said = await recv_json(ws)
        assert (said["room"], said["text"], said["ref"]) == (elsewhere, "hi over here", "r-1")


async def test_an_open_socket_is_closed_when_its_sign_in_expires(tmp_path: Path) -> None:
    with chat_server(chat_env(tmp_path / "chat.sqlite3", WSROUTE_CHAT_TOKEN_TTL="5")) as server:
        _, token = await sign_in(server.http, "Ann")
        started = time.monotonic()
        async with enter(server.ws, room_name(), token) as (ws, _):
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4401, "sign-in expired")
        assert 1 < time.monotonic() - started < 9
        async with httpx.AsyncClient(base_url=server.http, trust_env=False, timeout=5) as http:
            # The page asks why: the server says expired (the cookie outlives the token for that).
            session = await http.get("/api/session", headers=bearer(token))
            assert session.json()["detail"]["reason"] == "expired"
            signed = await http.post("/api/session", json={"name": "Ann"})
            assert "Max-Age=604805" in signed.headers["set-cookie"]


async def _error_for(ws: Any, message: str) -> dict[str, Any]:
    await ws.send(message)
    return await recv_json(ws)


async def test_history_is_the_last_50_messages(chat: ChatServer) -> None:
    room = room_name()
    _, token = await sign_in(chat.http, "Ann")
    async with enter(chat.ws, room, token) as (ws, _):
        for i in range(55):
            await ws.send(json.dumps({"text": f"message {i}"}))
        for i in range(55):
            assert (await recv_json(ws))["text"] == f"message {i}"
    async with httpx.AsyncClient(base_url=chat.http, trust_env=False, timeout=5) as http:
        response = await http.get(f"/api/rooms/{room}/messages", headers=bearer(token))
        assert response.status_code == 200
        messages = response.json()["messages"]
        assert [m["text"] for m in messages] == [f"message {i}" for i in range(5, 55)]
        ids = [m["id"] for m in messages]
        assert ids == sorted(ids) and len(set(ids)) == 50
        assert all(m["user"]["name"] == "Ann" and m["room"] == room for m in messages)
        few = await http.get(f"/api/rooms/{room}/messages?limit=3", headers=bearer(token))
        assert [m["text"] for m in few.json()["messages"]] == ["message 52", "message 53", "message 54"]
        assert (
            await http.get(f"/api/rooms/{room}/messages?limit=51", headers=bearer(token))
        ).status_code == 422
        empty = await http.get(f"/api/rooms/{room_name()}/messages", headers=bearer(token))
        assert empty.json()["messages"] == []


async def test_admin_announcement_reaches_the_room_through_the_broker(chat: ChatServer) -> None:
    room = room_name()
    _, token = await sign_in(chat.http, "Ann")
    url = f"/api/admin/rooms/{room}/announce"
    async with (
        httpx.AsyncClient(base_url=chat.http, trust_env=False, timeout=5) as http,
        enter(chat.ws, room, token) as (ws, _),
    ):
        assert (await http.post(url, json={"text": "hi"})).status_code == 401
        assert (await http.post(url, json={"text": "hi"}, headers=bearer("wrong"))).status_code == 403
        assert (await http.post(url, json={"text": "hi"}, headers=bearer(token))).status_code == 403
        assert (await http.post(url, json={"text": ""}, headers=bearer(ADMIN))).status_code == 422
        sent = await http.post(url, json={"text": "Maintenance at noon"}, headers=bearer(ADMIN))
        assert sent.status_code == 202, sent.text
        event = await recv_json(ws)
        assert event == sent.json()
        assert (event["type"], event["room"], event["text"]) == ("announcement", room, "Maintenance at noon")
        history = (await http.get(f"/api/rooms/{room}/messages", headers=bearer(token))).json()
        assert history["messages"] == [event]


async def test_room_names_are_checked(chat: ChatServer) -> None:
    _, token = await sign_in(chat.http, "Ann")
    for bad in ("Lobby", "-x", "a" * 33, "sp%20ace"):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"{chat.ws}/rooms/{bad}", additional_headers=bearer(token)):
                pass
        assert refused.value.response.status_code == 422, bad
    async with httpx.AsyncClient(base_url=chat.http, trust_env=False, timeout=5) as http:
        assert (await http.get("/rooms/Lobby")).status_code == 422
        assert (await http.get(f"/api/rooms/{'a' * 33}/messages", headers=bearer(token))).status_code == 422


async def test_one_multiplexed_socket_carries_several_rooms(chat: ChatServer) -> None:
    """What the page does: every room on one socket; the handshake's credentials cover every topic."""
    one, two = room_name(), room_name()
    _, token = await sign_in(chat.http, "Ann")
    _, bob_token = await sign_in(chat.http, "Bob")
    async with MultiplexClient.connect(f"{chat.ws}/rooms/{one}", additional_headers=bearer(token)) as mux:
        assert isinstance(await mux.subscribe(f"/rooms/{two}"), Ok)
        assert json.loads(await mux.recv_data(f"/rooms/{two}"))["type"] == "hello"
        async with enter(chat.ws, two, bob_token) as (bob, _):
            await bob.send(json.dumps({"text": f"in {two}"}))
            while (event := json.loads(await mux.recv_data(f"/rooms/{two}")))["type"] != "message":
                pass
            assert event["text"] == f"in {two}"
            await mux.send(f"/rooms/{one}", json.dumps({"text": f"in {one}"}))
            while (event := json.loads(await mux.recv_data(f"/rooms/{one}")))["type"] != "message":
                pass
            assert (event["room"], event["text"]) == (one, f"in {one}")
            # Leaving one room (UNSUBSCRIBE) is a leave for the others in it.
            assert isinstance(await mux.unsubscribe(f"/rooms/{two}"), Ok)
            await members_become(chat.http, two, bob_token, [("Bob", 1)])
            assert await members(chat.http, one, bob_token) == [("Ann", 1)]
    # A socket without credentials cannot subscribe to a room: ERR with the real status.
    async with MultiplexClient.connect(f"{chat.ws}/echo") as anonymous:
        refused = await anonymous.subscribe(f"/rooms/{one}")
        assert isinstance(refused, Err) and refused.reason == "401 Unauthorized"


async def test_asyncapi_page_documents_every_route_and_message(chat: ChatServer) -> None:
    async with httpx.AsyncClient(base_url=chat.http, trust_env=False, timeout=5) as http:
        document = (await http.get("/asyncapi.json")).json()
        page = await http.get("/asyncapi")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    channels = {channel["address"]: channel for channel in document["channels"].values()}
    assert set(channels) == {"/rooms/{room}", "/echo"}
    rooms = channels["/rooms/{room}"]
    titles = {message["title"] for message in rooms["messages"].values()}
    # What a page sends is one message whose payload is either model (a union without tags).
    assert titles == {"Say | SetStatus", "Hello", "ChatMessage", "Announcement", "ErrorEvent"}
    assert "pattern" in rooms["parameters"]["room"]["description"]
    schemas = document["components"]["schemas"]
    assert schemas["Say"]["properties"]["text"]["maxLength"] == 500
    assert schemas["SetStatus"]["required"] == ["type", "away"]
    operations = document["operations"]
    assert {op["action"] for op in operations.values()} == {"send", "receive"}
    assert all(
        op["security"] == [{"$ref": "#/components/securitySchemes/signedIn"}]
        for op in operations.values()
        if op["channel"]["$ref"].endswith("rooms_room")
    )
    assert document["components"]["securitySchemes"]["signedIn"]["scheme"] == "bearer"
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((Path(__file__).parent / "asyncapi" / "3.0.0.json").read_text())
    jsonschema.validators.validator_for(schema)(schema).validate(document)


async def test_docs_page_names_only_assets_the_app_serves(chat: ChatServer) -> None:
    """``/docs`` is Swagger UI with its script, stylesheet and icon from ``static/swagger/``
    (FastAPI's default takes them from a CDN); ``/redoc``, CDN-only, is off."""
    async with httpx.AsyncClient(base_url=chat.http, trust_env=False, timeout=5) as http:
        page = await http.get("/docs")
        assert page.status_code == 200 and "SwaggerUIBundle(" in page.text
        assert "://" not in page.text  # no absolute URL at all, hence no CDN
        assets = re.findall(r'(?:src|href)="([^"]*)"', page.text)
        assert set(assets) == {
            "/static/swagger/swagger-ui-bundle.js",
            "/static/swagger/swagger-ui.css",
            "/static/favicon.svg",
        }
        spec = re.search(r"url: '([^']*)'", page.text)
        redirect = re.search(r"oauth2RedirectUrl: window\.location\.origin \+ '([^']*)'", page.text)
        assert spec and redirect
        for url in [*assets, spec.group(1), redirect.group(1)]:
            response = await http.get(url)
            assert response.status_code == 200, url
            assert response.content, url
        swagger = STATIC / "swagger"
        bundle = await http.get("/static/swagger/swagger-ui-bundle.js")
        assert bundle.content == (swagger / "swagger-ui-bundle.js").read_bytes()
        assert "javascript" in bundle.headers["content-type"]
        assert "text/css" in (await http.get("/static/swagger/swagger-ui.css")).headers["content-type"]
        assert set((await http.get(spec.group(1))).json()["paths"]) >= {
            "/api/session",
            "/api/rooms/{room}/messages",
        }
        assert (await http.get("/redoc")).status_code == 404
    # The vendored files say where they come from, under which licence.
    readme = (swagger / "README.md").read_text()
    assert "`swagger-ui-dist`" in readme and "Apache-2.0" in readme
    assert "Apache License" in (swagger / "LICENSE").read_text()
    assert (swagger / "NOTICE").is_file()


# --- several workers on Redis ---------------------------------------------------------------


async def both_workers_answer(server: ChatServer, timeout: float = 20.0) -> None:
    """Wait until two worker processes have answered /api/health (each on a new connection).

    A connection dropped while the workers start counts as no answer yet: on a loaded
    machine one was reset once (httpx.ReadError) while the second worker was starting."""
    seen: set[int] = set()
    failure: Exception | None = None
    deadline = time.monotonic() + timeout
    for _ in range(2000):
        async with httpx.AsyncClient(
            base_url=server.http, trust_env=False, timeout=2, verify=PLAIN_HTTP
        ) as http:
            try:
                seen.add((await http.get("/api/health")).json()["worker"])
            except httpx.TransportError as exc:
                failure = exc
        if len(seen) >= 2:
            return
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.01)
    pytest.fail(
        f"only worker(s) {sorted(seen)} answered within {timeout}s (last error: {failure!r}); "
        f"the server said:\n{server.output()}"
    )


async def test_two_workers_on_redis_chat_across_workers(tmp_path: Path) -> None:
    """Messages, announcements, members (online and offline) and a kick cross workers through
    Redis."""
    from support.redis_server import require_redis

    url = require_redis()
    prefix = f"wsroute-chat-test-{secrets.token_hex(4)}:"
    env = chat_env(tmp_path / "chat.sqlite3")
    args = ("--workers", "2", "--broker", f"{url}?channel_prefix={prefix}")
    room = room_name()
    with chat_server(env, args) as server:
        # The server answers once one worker is up; the other may still be starting.
        await both_workers_answer(server)
        _, ann_token = await sign_in(server.http, "Ann")
        bob_user, bob_token = await sign_in(server.http, "Bob")  # signed by one worker, checked by either
        async with enter(server.ws, room, ann_token) as (ann, ann_hello):
            async with contextlib.AsyncExitStack() as stack:
                # New connections land on either worker: connect Bob until he has one on each.
                bobs: dict[int, Any] = {}
                opened = 0
                for _attempt in range(60):
                    opened += 1
                    socket, hello = await stack.enter_async_context(enter(server.ws, room, bob_token))
                    bobs.setdefault(hello["worker"], socket)
                    if len(bobs) == 2:
                        break
                else:
                    pytest.fail("60 connections all landed on one worker")
                bob = bobs[next(w for w in bobs if w != ann_hello["worker"])]
                await bob.send(json.dumps({"text": "hello from the other worker"}))
                said = await recv_until(ann, lambda e: e["type"] == "message")
                assert (said["user"]["name"], said["text"]) == ("Bob", "hello from the other worker")
                await ann.send(json.dumps({"text": "hi Bob"}))
                said = await recv_until(bob, lambda e: e["type"] == "message" and e["user"]["name"] == "Ann")
                assert said["text"] == "hi Bob"
                async with httpx.AsyncClient(base_url=server.http, trust_env=False, timeout=5) as http:
                    sent = await http.post(
                        f"/api/admin/rooms/{room}/announce", json={"text": "to all"}, headers=bearer(ADMIN)
                    )
                    assert sent.status_code == 202
                    for ws in (ann, bob):
                        event = await recv_until(ws, lambda e: e["type"] == "announcement")
                        assert event["text"] == "to all"
                    # Every worker lists every connection (the extra ones of Bob's retries too),
                    # each within a presence batch of its join.
                    await members_become(server.http, room, ann_token, [("Ann", 1), ("Bob", opened)])
                    kicked = await http.post(f"/api/admin/users/{bob_user.id}/kick", headers=bearer(ADMIN))
                    assert kicked.json() == {"closed": opened}
                for socket in bobs.values():  # one on each worker
                    with pytest.raises(ConnectionClosed) as closed:
                        await recv_until(socket, lambda e: False)
                    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
                await members_become(server.http, room, ann_token, [("Ann", 1)])
                # Kicked on both workers, Bob is one offline member (the shared store).
                await seen_after(server.http, room, ann_token, "Bob", 0.0)
                assert [name for name, _ in await offline(server.http, room, ann_token)] == ["Bob"]
            # Cy visits once, on one worker: each worker lists Cy offline (one keep-alive
            # connection asks its worker's pid, then that same worker for the members).
            _, cy_token = await sign_in(server.http, "Cy")
            async with enter(server.ws, room, cy_token):
                pass
            await seen_after(server.http, room, ann_token, "Cy", 0.0)
            asked: set[int] = set()
            for _attempt in range(200):
                async with httpx.AsyncClient(base_url=server.http, trust_env=False, timeout=5) as http:
                    worker = (await http.get("/api/health")).json()["worker"]
                    answer = await http.get(f"/api/rooms/{room}/members", headers=bearer(ann_token))
                offline_here = [m["user"]["name"] for m in answer.json()["members"] if not m["online"]]
                assert offline_here == ["Cy", "Bob"], (worker, offline_here)
                asked.add(worker)
                if len(asked) == 2:
                    break
            else:
                pytest.fail("200 connections all reached one worker")
            await ann.send(json.dumps({"text": "alone"}))
            assert (await recv_until(ann, lambda e: e["type"] == "message"))["text"] == "alone"
        assert server.stop() == 0, server.output()


async def test_a_broker_outage_is_told_to_the_sender(tmp_path: Path) -> None:
    """Redis goes down: a message is kept in the history, its sender gets it back (a page's
    pending line resolves: it is saved) and is told live delivery is down (the socket stays
    open); the admin endpoint answers 503."""
    from examples.chat.app import create_app
    from examples.chat.config import ChatConfig
    from support.redis_server import private_redis

    with private_redis() as redis_server:
        config = ChatConfig(
            secret=b"k", db_path=tmp_path / "chat.sqlite3", broker=redis_server.url, admin_token="adm"
        )
        async with serve(create_app(config)) as url:
            token, _ = auth.issue(b"k", User(id="u1", name="Ann"), 60)
            async with enter(f"ws://{url}", "outage", token) as (ws, _):
                redis_server.kill()
                await ws.send(json.dumps({"text": "anyone?", "ref": "r-1"}))
                kept = await recv_json(ws)
                assert (kept["type"], kept["text"], kept["ref"]) == ("message", "anyone?", "r-1")
                error = await recv_json(ws)
                assert (error["type"], error["code"]) == ("error", "unavailable"), error
                async with httpx.AsyncClient(base_url=f"http://{url}", trust_env=False, timeout=5) as http:
                    history = (await http.get("/api/rooms/outage/messages", headers=bearer(token))).json()
                    assert [m["text"] for m in history["messages"]] == ["anyone?"]
                    announce = await http.post(
                        "/api/admin/rooms/outage/announce", json={"text": "x"}, headers=bearer("adm")
                    )
                    assert announce.status_code == 503 and "broker unavailable" in announce.json()["detail"]
                await ws.send(json.dumps({"text": "still open?"}))
                assert (await recv_json(ws))["text"] == "still open?"
                assert (await recv_json(ws))["code"] == "unavailable"


async def test_a_message_kept_during_an_outage_is_in_the_history_once_redis_is_back(tmp_path: Path) -> None:
    """Redis comes back with its data (a failover, an AOF restart): the room's stream holds
    the messages before and after the outage, not the one kept during it. The HTTP history
    left that one out, though its sender was told others would see it there."""
    from examples.chat.app import create_app
    from examples.chat.config import ChatConfig
    from support.redis_server import private_redis

    (tmp_path / "redis").mkdir()
    with private_redis(persist_dir=str(tmp_path / "redis")) as redis_server:
        config = ChatConfig(secret=b"k", db_path=tmp_path / "chat.sqlite3", broker=redis_server.url)
        async with asyncio.timeout(60), serve(create_app(config)) as url:
            token, _ = auth.issue(b"k", User(id="u1", name="Ann"), 600)
            async with enter(f"ws://{url}", "back", token) as (ws, _):
                await ws.send(json.dumps({"text": "before"}))
                assert (await recv_json(ws))["text"] == "before"
                redis_server.kill()
                await ws.send(json.dumps({"text": "during the outage"}))
                assert (await recv_json(ws))["text"] == "during the outage"
                assert (await recv_json(ws))["code"] == "unavailable"
                redis_server.start()  # with its data
                for n in range(100):  # until the server publishes again
                    await ws.send(json.dumps({"text": f"after {n}"}))
                    assert (await recv_json(ws))["text"] == f"after {n}"
                    try:  # an `unavailable` error follows while it cannot publish yet
                        error = json.loads(await asyncio.wait_for(ws.recv(), 0.3))
                    except TimeoutError:
                        break
                    assert error["code"] == "unavailable", error
            async with httpx.AsyncClient(base_url=f"http://{url}", trust_env=False, timeout=5) as http:
                history = (await http.get("/api/rooms/back/messages", headers=bearer(token))).json()
    texts = [m["text"] for m in history["messages"]]
    assert texts[:2] == ["before", "during the outage"] and "during the outage" not in texts[2:], texts


async def test_a_page_that_was_offline_is_replayed_what_it_missed(chat: ChatServer) -> None:
    """Rooms keep their broadcasts (`ws.topic`): a client resubscribing with its last
    position gets the messages it missed, once and in order."""
    room = room_name()
    _, token = await sign_in(chat.http, "Ann")
    _, bob_token = await sign_in(chat.http, "Bob")
    url = f"{chat.ws}/rooms/{room}"
    async with MultiplexClient.connect(url, positions=True, additional_headers=bearer(token)) as ann:
        assert json.loads(await ann.recv_data(f"/rooms/{room}"))["type"] == "hello"
        last = ann.position(f"/rooms/{room}")
    assert last is not None
    async with enter(chat.ws, room, bob_token) as (bob, _):
        for i in range(3):
            await bob.send(json.dumps({"text": f"while away {i}"}))
            assert (await recv_json(bob))["text"] == f"while away {i}"
    async with MultiplexClient.connect(url, since=last, additional_headers=bearer(token)) as ann:
        assert ann.recovered(f"/rooms/{room}") is True
        said = []
        while len(said) < 3:
            event = json.loads(await ann.recv_data(f"/rooms/{room}"))
            if event["type"] == "message":
                said.append(event["text"])
        assert said == [f"while away {i}" for i in range(3)]


async def test_history_outlives_a_restart_with_the_memory_broker(tmp_path: Path) -> None:
    """The HTTP history reads the broker's stream; what a restarted memory broker lost
    comes from the store."""
    with chat_server(chat_env(tmp_path / "chat.db")) as chat:
        room = room_name()
        _, token = await sign_in(chat.http, "Ann")
        async with enter(chat.ws, room, token) as (ws, _):
            for i in range(3):
                await ws.send(json.dumps({"text": f"before {i}"}))
                assert (await recv_json(ws))["text"] == f"before {i}"
        chat.stop()
        chat.start()
        async with enter(chat.ws, room, token) as (ws, _):
            await ws.send(json.dumps({"text": "after"}))
            assert (await recv_json(ws))["text"] == "after"
        async with httpx.AsyncClient(base_url=chat.http, trust_env=False, timeout=5) as http:
            history = (await http.get(f"/api/rooms/{room}/messages", headers=bearer(token))).json()
        texts = [m["text"] for m in history["messages"]]
        assert texts == ["before 0", "before 1", "before 2", "after"]
        ids = [m["id"] for m in history["messages"]]
        assert ids == sorted(set(ids))
