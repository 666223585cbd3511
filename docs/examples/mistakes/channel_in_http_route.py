from fastapi import FastAPI

from wsroute import Channel

app = FastAPI()


@app.post("/rooms/{room}/announce")
async def announce(room: str, text: str, channel: Channel) -> None: ...
