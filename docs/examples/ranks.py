"""Several handlers on one path: ranks decide the order, Forward skips one."""

import logging

from fastapi import FastAPI

from wsroute import Channel, Forward, Guard, HandshakeRequest, WebSocketStatus, WsRouter

log = logging.getLogger("ranks")
ws = WsRouter()


class Admin(Guard):
    sync_to_thread = False  # reads the request only: runs on the event loop

    @classmethod
    def from_request(cls, request: HandshakeRequest) -> "Admin":
        if request.cookies.get("role") != "admin":
            raise Forward()  # not an admin: let the next handler have the connection
        return cls()


@ws.message("/{name}", rank=1)
async def admin(data: str, name: str, admin: Admin, channel: Channel) -> None:
    await channel.send(f"admin {name}: {data}")


@ws.message("/{name}", rank=5)
async def anyone(data: str, name: str, channel: Channel) -> None:
    await channel.send(f"user {name}: {data}")


@ws.message("/status")  # a static path: default rank 0, tried before "/{name}"
async def status(data: str, channel: Channel) -> None:
    await channel.send("all good")


@ws.leave(
    "/{rest:path}"
)  # each event is routed on its own: this leave runs for every path
async def left(rest: str, status: WebSocketStatus) -> None:
    log.info("/%s closed with %s", rest, status.code)


app = FastAPI()
ws.install(app)
