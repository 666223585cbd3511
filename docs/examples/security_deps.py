"""FastAPI's security dependencies work unchanged on WebSocket handlers."""

from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import (
    APIKeyCookie,
    APIKeyHeader,
    APIKeyQuery,
    HTTPAuthorizationCredentials,
    HTTPBearer,
)

from wsroute import Channel, WsRouter

ws = WsRouter()

bearer = HTTPBearer()
api_key_header = APIKeyHeader(name="X-API-Key")
api_key_query = APIKeyQuery(name="api_key")
api_key_cookie = APIKeyCookie(name="session")


def current_user(
    credentials: Annotated[HTTPAuthorizationCredentials, Depends(bearer)],
) -> str:
    if credentials.credentials != "secret-token":
        raise HTTPException(
            401, "invalid token", headers={"WWW-Authenticate": "Bearer"}
        )
    return "ann"


@ws.message("/bearer")
async def with_bearer(
    data: str, user: Annotated[str, Depends(current_user)], channel: Channel
) -> None:
    await channel.send(f"{user}: {data}")


@ws.message(
    "/service"
)  # for non-browser clients: browsers cannot set headers on a WebSocket
async def with_header(
    data: str, key: Annotated[str, Depends(api_key_header)], channel: Channel
) -> None:
    await channel.send(f"key {key}")


@ws.message("/widget")  # browsers: a query parameter ...
async def with_query(
    data: str, key: Annotated[str, Depends(api_key_query)], channel: Channel
) -> None:
    await channel.send(f"key {key}")


@ws.message("/app")  # ... or a cookie, which the browser sends with the handshake
async def with_cookie(
    data: str, session: Annotated[str, Depends(api_key_cookie)], channel: Channel
) -> None:
    await channel.send(f"session {session}")


app = FastAPI()
ws.install(app)
