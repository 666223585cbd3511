"""Mistakes that mypy must catch in user code (tests/test_typing.py expects each error)."""

from pydantic import BaseModel

from wsroute import Channel, WsRouter


class Chat(BaseModel):
    text: str


ws = WsRouter()


@ws.message("/typed")
async def typed(data: Chat, channel: Channel[Chat]) -> None:
    await channel.send("not a Chat")  # error: a Channel[Chat] sends Chat


@ws.message("/sync")  # error: handlers are coroutines
def not_async(data: str) -> None:
    pass
