"""Optional guards: ``user: User | None`` is the guard's instance, or None where it refuses
(Rocket's ``Option<T>`` guard, docs/guards.md), on a real server."""

from __future__ import annotations

from typing import Annotated, ClassVar, Optional

import pytest
from fastapi import Depends, FastAPI, HTTPException
from websockets.exceptions import InvalidStatus

from wsroute import Channel, Forward, Guard, HandshakeRequest, Reject, WsRouter
from wsroute.asyncapi import SecurityScheme, asyncapi_for_app
from wsroute.testing import connect, serve

pytestmark = pytest.mark.anyio


class User(Guard):
    """``?token=<name>`` is the user; no token refuses with 401 (HTTPException for
    ``?how=http``, Forward for ``?how=forward``, a bug for ``?how=crash``)."""

    built: ClassVar[list[str]] = []
    security = SecurityScheme.api_key("token", "query")

    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    async def from_request(cls, request: HandshakeRequest) -> User:
        token = request.query_params.get("token")
        cls.built.append(token or "-")
        if token:
            return cls(token)
        how = request.query_params.get("how")
        if how == "http":
            raise HTTPException(401, "log in first")
        if how == "forward":
            raise Forward()
        if how == "crash":
            raise RuntimeError("a bug in the guard")
        raise Reject(401, "log in first")


def required_user(user: User) -> str:
    return user.name


def make_app() -> FastAPI:
    ws = WsRouter()

    @ws.message("/lobby")
    async def lobby(data: str, user: User | None, channel: Channel) -> None:
        await channel.send(f"{user.name if user else 'anonymous'}: {data}")

    @ws.message("/legacy")
    async def legacy(data: str, user: Optional[User], channel: Channel) -> None:  # noqa: UP045
        await channel.send(f"{user.name if user else 'anonymous'}: {data}")

    @ws.message("/both")
    async def both(
        data: str, user: User | None, name: Annotated[str, Depends(required_user)], channel: Channel
    ) -> None:
        await channel.send(f"{name}: {data}")

    @ws.message("/forwarding", rank=1)
    async def forwarding(data: str, user: User | None, channel: Channel) -> None:
        await channel.send(f"rank 1, {user.name if user else 'anonymous'}: {data}")

    @ws.message("/forwarding", rank=2)
    async def fallback(data: str, channel: Channel) -> None:
        await channel.send(f"rank 2: {data}")

    app = FastAPI()
    ws.install(app)
    return app


@pytest.fixture(autouse=True)
def fresh() -> None:
    User.built.clear()


@pytest.mark.parametrize("path", ["/lobby", "/legacy"])
async def test_an_optional_guard_lets_anyone_in_and_names_who_passed_it(path: str) -> None:
    app = make_app()
    async with serve(app) as url, connect(f"{url}{path}?token=ada") as ada, connect(f"{url}{path}") as guest:
        await ada.send("hi")
        await guest.send("hi")
        assert await ada.recv() == "ada: hi"
        assert await guest.recv() == "anonymous: hi"


@pytest.mark.parametrize("how", ["reject", "http", "forward"])
async def test_every_refusal_of_an_optional_guard_is_none_and_the_guard_runs_once(how: str) -> None:
    async with serve(make_app()) as url, connect(f"{url}/forwarding?how={how}") as guest:
        for n in range(3):
            await guest.send(str(n))
            # A Forward does not move an optional guard's handler to the next rank either.
            assert await guest.recv() == f"rank 1, anonymous: {n}"
    assert User.built == ["-"]  # built at the handshake only, not asked again per message


async def refusal(url: str) -> tuple[int, bytes]:
    """The status and body of the handshake `url` is refused with."""
    with pytest.raises(InvalidStatus) as info:
        async with connect(url):
            pass
    return info.value.response.status_code, info.value.response.body


async def test_the_same_guard_required_elsewhere_on_the_connection_still_refuses() -> None:
    async with serve(make_app()) as url:
        assert await refusal(f"{url}/both") == (401, b'{"detail":"log in first"}')
        async with connect(f"{url}/both?token=bo") as bo:
            await bo.send("hi")
            assert await bo.recv() == "bo: hi"
    assert User.built == ["-", "-", "bo"]  # the required use asked again, and was refused


async def test_a_guard_that_fails_with_a_bug_still_fails_the_handshake() -> None:
    async with serve(make_app()) as url:
        assert (await refusal(f"{url}/lobby?how=crash"))[0] == 500


def test_the_asyncapi_document_requires_no_scheme_for_an_optional_guard() -> None:
    document = asyncapi_for_app(make_app())

    def schemes(path: str) -> set[str]:
        ops = [op for key, op in document["operations"].items() if key.startswith(f"{path}.")]
        assert ops, path
        return {ref["$ref"].rsplit("/", 1)[1] for op in ops for ref in op.get("security", [])}

    assert schemes("lobby") == set()
    assert schemes("both") == {"User"}  # the dependency requires it
