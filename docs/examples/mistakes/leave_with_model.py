from pydantic import BaseModel

from wsroute import WsRouter

ws = WsRouter()


class Goodbye(BaseModel):
    reason: str


@ws.leave("/echo")
async def gone(data: Goodbye) -> None: ...
