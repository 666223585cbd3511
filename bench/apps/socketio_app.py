"""python-socketio rooms (ASGI mode, websocket transport only).

Wire protocol (Engine.IO 4 / Socket.IO 5) spoken by the load client: connect to
``/socket.io/?EIO=4&transport=websocket``; the server opens with ``0{…}``, the client sends
``40`` and gets ``40{…}``; ``42["join","ROOM"]`` enters a room, ``42["pub","ROOM","MSG"]``
emits ``42["m","MSG"]`` to everyone in the room. Server pings are ``2``, answered ``3``.
"""

from __future__ import annotations

import socketio

sio = socketio.AsyncServer(async_mode="asgi", transports=["websocket"], cors_allowed_origins="*")


@sio.event
async def join(sid: str, room: str) -> None:
    await sio.enter_room(sid, room)


@sio.event
async def pub(sid: str, room: str, message: str) -> None:
    await sio.emit("m", message, room=room)


app = socketio.ASGIApp(sio)
