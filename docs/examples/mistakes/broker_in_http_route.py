from fastapi import FastAPI

from wsroute import Broker

app = FastAPI()


@app.post("/rooms/{room}/announce")
async def announce(room: str, text: str, broker: Broker) -> None: ...
