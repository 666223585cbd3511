"""Rooms: the topic is the URL path, so one handler serves every room."""

from fastapi import FastAPI

from wsroute import Channel, WsRouter

ws = WsRouter()


# --8<-- [start:anonymous]
@ws.message("/{_}")  # any one-segment path: /lobby, /global, ...
async def room(data: str, channel: Channel) -> None:
    await channel.broadcast(data)  # only to clients connected to the same path


# --8<-- [end:anonymous]


# --8<-- [start:named]
@ws.message("/rooms/{room}")
async def said(data: str, room: str, channel: Channel, name: str = "anonymous") -> None:
    # `room` is a path parameter, `name` a query parameter (?name=ann), as in FastAPI.
    # channel.topic is "/rooms/<room>": the query string is not part of the topic.
    await channel.broadcast(f"{name} in {room}: {data}")


@ws.message("/rooms/{room}/typing")
async def typing(data: str, channel: Channel, name: str = "anonymous") -> None:
    await channel.broadcast(
        f"{name} is typing", exclude_self=True
    )  # everyone but the sender


# --8<-- [end:named]


app = FastAPI()
ws.install(app)
