"""The two dependency scopes: per connection (the default) and per event (yield)."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException
from pydantic import BaseModel

from wsroute import Channel, WsRouter

ws = WsRouter()
LOG: list[str] = []  # what ran, for the tests


class Database:
    """Stand-in for an async database session."""

    def __init__(self) -> None:
        LOG.append("db open")
        self.notes: list[str] = []

    async def add(self, text: str) -> int:
        self.notes.append(text)
        return len(self.notes)

    async def close(self) -> None:
        LOG.append("db close")


# --8<-- [start:connection]
async def current_user(x_user: Annotated[str | None, Header()] = None) -> str:
    # No yield: connection scope. Runs once, at the handshake; its HTTPException
    # refuses the connection with that status. Every message reuses the result.
    LOG.append("current_user")
    if x_user is None:
        raise HTTPException(401, "who are you?")
    return x_user


# --8<-- [end:connection]


# --8<-- [start:event]
async def get_db() -> AsyncIterator[Database]:
    # A yield: event scope. A fresh session for each message, closed when the
    # handler returns.
    db = Database()
    try:
        yield db
    finally:
        await db.close()


# --8<-- [end:event]


class Note(BaseModel):
    text: str


# --8<-- [start:notes]
@ws.message("/notes")
async def add_note(
    data: Note,
    user: Annotated[str, Depends(current_user)],
    db: Annotated[Database, Depends(get_db)],
    channel: Channel,
) -> None:
    count = await db.add(data.text)
    await channel.send({"user": user, "notes": count})


# --8<-- [end:notes]


# --8<-- [start:override]
async def feed() -> AsyncIterator[list[str]]:
    # A yield, but scope="request": opened once per connection, closed at leave.
    LOG.append("feed open")
    yield ["subscribed"]
    LOG.append("feed close")


def token_still_valid(x_user: Annotated[str | None, Header()] = None) -> bool:
    # No yield, but scope="function": checked again before every message.
    LOG.append("token check")
    return x_user is not None


@ws.message("/feed")
async def read_feed(
    data: str,
    subscription: Annotated[list[str], Depends(feed, scope="request")],
    valid: Annotated[bool, Depends(token_still_valid, scope="function")],
    channel: Channel,
) -> None:
    await channel.send(f"{subscription[0]} valid={valid}")


# --8<-- [end:override]


app = FastAPI()
ws.install(app)
