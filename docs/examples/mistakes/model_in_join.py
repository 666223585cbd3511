from pydantic import BaseModel

from wsroute import WsRouter

ws = WsRouter()


class Filters(BaseModel):
    tags: list[str]


@ws.join("/feed")
async def subscribed(filters: Filters) -> None: ...
