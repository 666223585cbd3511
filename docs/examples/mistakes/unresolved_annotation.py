from __future__ import annotations

from typing import TYPE_CHECKING

from wsroute import WsRouter

if TYPE_CHECKING:
    from myapp.models import User

ws = WsRouter()


@ws.message("/echo")
async def echo(data: str, user: User) -> None: ...
