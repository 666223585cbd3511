"""FastAPI's ``Security(dep, scopes=[...])`` on WebSocket handlers, over a real uvicorn server.

A dependency taking `SecurityScopes` gets the scopes of every enclosing ``Security``,
outermost first, exactly as FastAPI gives them on an HTTP route: each route below exists
twice, as a WebSocket handler and as an HTTP endpoint with the same dependencies, and both
must see the same scopes. A token lacking a scope is refused at the handshake.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI, HTTPException, Security
from fastapi.security import OAuth2PasswordBearer, SecurityScopes

from support.clients import connect, refused
from wsroute import Channel, WsRouter
from wsroute.testing import ServerThread

oauth2 = OAuth2PasswordBearer(
    tokenUrl="/token",
    scopes={"items:read": "Read items.", "items:write": "Change items.", "admin": "Administer."},
)
TOKENS = {
    "t-reader": ["items:read"],
    "t-writer": ["items:read", "items:write"],
    "t-root": ["items:read", "items:write", "admin"],
}


class Seen:
    """The `SecurityScopes` each call of `current_user` got (the server runs in a thread)."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.lock = threading.Lock()

    def add(self, scopes: list[str]) -> None:
        with self.lock:
            self.calls.append(scopes)

    def take(self) -> list[list[str]]:
        with self.lock:
            calls, self.calls = self.calls, []
        return calls


SEEN = Seen()


def current_user(security_scopes: SecurityScopes, token: Annotated[str, Depends(oauth2)]) -> str:
    """FastAPI's documented pattern: check the required scopes against the token's."""
    SEEN.add(list(security_scopes.scopes))
    challenge = f'Bearer scope="{security_scopes.scope_str}"' if security_scopes.scopes else "Bearer"
    granted = TOKENS.get(token)
    if granted is None:
        raise HTTPException(401, "Could not validate credentials", headers={"WWW-Authenticate": challenge})
    for scope in security_scopes.scopes:
        if scope not in granted:
            raise HTTPException(401, "Not enough permissions", headers={"WWW-Authenticate": challenge})
    return token.removeprefix("t-")


def writer(user: Annotated[str, Security(current_user, scopes=["items:write"])]) -> str:
    return user


def outer(user: Annotated[str, Security(writer, scopes=["items:read"])]) -> str:
    return user


def granted_to(security_scopes: SecurityScopes, token: Annotated[str, Depends(oauth2)]) -> str:
    """The other way to refuse: a known token without the scope is forbidden (403)."""
    SEEN.add(list(security_scopes.scopes))
    if token not in TOKENS:
        raise HTTPException(401, "Could not validate credentials", headers={"WWW-Authenticate": "Bearer"})
    missing = [scope for scope in security_scopes.scopes if scope not in TOKENS[token]]
    if missing:
        raise HTTPException(403, f"missing scopes: {' '.join(missing)}")
    return token.removeprefix("t-")


def build() -> FastAPI:
    ws = WsRouter()
    app = FastAPI()

    @ws.message("/read")
    async def read(
        data: str, user: Annotated[str, Security(current_user, scopes=["items:read"])], channel: Channel
    ) -> None:
        await channel.send(user)

    @app.get("/read")
    def read_http(user: Annotated[str, Security(current_user, scopes=["items:read"])]) -> str:
        return user

    @ws.message("/write")  # nested: writer adds items:write inside items:read
    async def write(
        data: str, user: Annotated[str, Security(writer, scopes=["items:read"])], channel: Channel
    ) -> None:
        await channel.send(user)

    @app.get("/write")
    def write_http(user: Annotated[str, Security(writer, scopes=["items:read"])]) -> str:
        return user

    @ws.message("/deep")  # three levels, items:read twice on the way
    async def deep(
        data: str, user: Annotated[str, Security(outer, scopes=["items:read"])], channel: Channel
    ) -> None:
        await channel.send(user)

    @app.get("/deep")
    def deep_http(user: Annotated[str, Security(outer, scopes=["items:read"])]) -> str:
        return user

    @ws.message("/both")  # one dependency, two scope sets: two calls, two cached values
    async def both(
        data: str,
        reader: Annotated[str, Security(current_user, scopes=["items:read"])],
        admin: Annotated[str, Security(current_user, scopes=["admin"])],
        channel: Channel,
    ) -> None:
        await channel.send(f"{reader}+{admin}")

    @app.get("/both")
    def both_http(
        reader: Annotated[str, Security(current_user, scopes=["items:read"])],
        admin: Annotated[str, Security(current_user, scopes=["admin"])],
    ) -> str:
        return f"{reader}+{admin}"

    @ws.message("/twice")  # the same scopes twice: one call
    async def twice(
        data: str,
        first: Annotated[str, Security(current_user, scopes=["items:read"])],
        second: Annotated[str, Security(current_user, scopes=["items:read"])],
        channel: Channel,
    ) -> None:
        await channel.send(f"{first}={second}")

    @app.get("/twice")
    def twice_http(
        first: Annotated[str, Security(current_user, scopes=["items:read"])],
        second: Annotated[str, Security(current_user, scopes=["items:read"])],
    ) -> str:
        return f"{first}={second}"

    @ws.message("/plain")  # no Security above it: no scopes
    async def plain(data: str, user: Annotated[str, Depends(current_user)], channel: Channel) -> None:
        await channel.send(user)

    @app.get("/plain")
    def plain_http(user: Annotated[str, Depends(current_user)]) -> str:
        return user

    @ws.message("/admin")
    async def admin(
        data: str, user: Annotated[str, Security(granted_to, scopes=["admin"])], channel: Channel
    ) -> None:
        await channel.send(user)

    @app.get("/admin")
    def admin_http(user: Annotated[str, Security(granted_to, scopes=["admin"])]) -> str:
        return user

    ws.install(app)
    return app


@pytest.fixture(scope="module")
def host() -> Iterator[str]:
    with ServerThread(build()) as hostport:
        yield hostport


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


ROUTES = {
    "/read": [["items:read"]],
    "/write": [["items:read", "items:write"]],
    "/deep": None,  # whatever FastAPI gives, duplicates included
    "/both": [["items:read"], ["admin"]],
    "/twice": [["items:read"]],
    "/plain": [[]],
    "/admin": [["admin"]],
}


@pytest.mark.parametrize("path", list(ROUTES))
async def test_scopes_are_fastapis(host: str, path: str) -> None:
    SEEN.take()
    async with httpx.AsyncClient(trust_env=False) as http:
        response = await http.get(f"http://{host}{path}", headers=bearer("t-root"))
    assert response.status_code == 200, response.text
    over_http = SEEN.take()
    async with connect(f"ws://{host}{path}", additional_headers=bearer("t-root")) as client:
        for n in range(3):
            await client.send(str(n))
            assert await client.recv() == response.json()
    # Connection-scoped: resolved once at the handshake, whatever the number of messages.
    assert SEEN.take() == over_http
    if ROUTES[path] is not None:
        assert over_http == ROUTES[path]


async def test_a_token_lacking_a_scope_is_refused_at_the_handshake(host: str) -> None:
    response = await refused(f"ws://{host}/write", additional_headers=bearer("t-reader"))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer scope="items:read items:write"'
    async with connect(f"ws://{host}/write", additional_headers=bearer("t-writer")) as client:
        await client.send("x")
        assert await client.recv() == "writer"
    async with connect(f"ws://{host}/read", additional_headers=bearer("t-reader")) as client:
        await client.send("x")
        assert await client.recv() == "reader"
    # Each of the two scope sets is checked: the writer has items:read but not admin.
    response = await refused(f"ws://{host}/both", additional_headers=bearer("t-writer"))
    assert response.headers["www-authenticate"] == 'Bearer scope="admin"'
    assert (await refused(f"ws://{host}/read", additional_headers=bearer("t-nobody"))).status_code == 401
    response = await refused(f"ws://{host}/admin", additional_headers=bearer("t-writer"))
    assert response.status_code == 403 and json.loads(response.body) == {"detail": "missing scopes: admin"}
