"""OAuth2 scopes with FastAPI's Security(), on WebSocket handlers."""

from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Security
from fastapi.security import OAuth2PasswordBearer, SecurityScopes

from wsroute import Channel, WsRouter

ws = WsRouter()

oauth2 = OAuth2PasswordBearer(
    tokenUrl="/token",
    scopes={"chat:read": "Read the chat.", "chat:write": "Post to the chat."},
)
# Stands in for decoding a real token: the scopes each token was granted.
GRANTED = {"t-ann": ["chat:read", "chat:write"], "t-bob": ["chat:read"]}


def current_user(
    security_scopes: SecurityScopes, token: Annotated[str, Depends(oauth2)]
) -> str:
    """Refuse a token that lacks any scope the route requires (FastAPI's pattern)."""
    challenge = (
        f'Bearer scope="{security_scopes.scope_str}"'
        if security_scopes.scopes
        else "Bearer"
    )
    granted = GRANTED.get(token)
    if granted is None:
        raise HTTPException(
            401, "invalid token", headers={"WWW-Authenticate": challenge}
        )
    for scope in security_scopes.scopes:
        if scope not in granted:
            raise HTTPException(
                401, "not enough permissions", headers={"WWW-Authenticate": challenge}
            )
    return token.removeprefix("t-")


def poster(
    user: Annotated[str, Security(current_user, scopes=["chat:write"])],
) -> str:
    return user


@ws.message("/chat/read")  # needs chat:read
async def read(
    data: str,
    user: Annotated[str, Security(current_user, scopes=["chat:read"])],
    channel: Channel,
) -> None:
    await channel.send(f"{user} reads")


@ws.message("/chat/post")  # needs chat:read, and chat:write through poster
async def post(
    data: str,
    user: Annotated[str, Security(poster, scopes=["chat:read"])],
    channel: Channel,
) -> None:
    await channel.broadcast(f"{user}: {data}")


app = FastAPI()
ws.install(app)
