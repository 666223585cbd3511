from pydantic import BaseModel

from wsroute import WsRouter

ws = WsRouter()


class Move(BaseModel):
    x: int
    y: int


@ws.message("/game")
async def play(move: Move) -> None: ...
