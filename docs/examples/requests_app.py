"""Request and reply: a message handler's return value answers the client that asked."""

from fastapi import FastAPI
from pydantic import BaseModel
from starlette.exceptions import WebSocketException

from wsroute import WsRouter

ws = WsRouter()

STOCK = {"apple": 3, "pear": 0}


class Order(BaseModel):
    item: str
    quantity: int


class Receipt(BaseModel):
    item: str
    left: int


# --8<-- [start:handler]
@ws.message("/shop")
async def order(data: Order) -> Receipt:
    """Take an order; the receipt is the reply to a request."""
    left = STOCK.get(data.item)
    if left is None:
        raise WebSocketException(4004, f"no {data.item} here")  # an error reply: 4004
    if left < data.quantity:
        raise WebSocketException(4009, f"only {left} left")
    STOCK[data.item] = left - data.quantity
    return Receipt(item=data.item, left=left - data.quantity)
# --8<-- [end:handler]


app = FastAPI()
ws.install(app)
