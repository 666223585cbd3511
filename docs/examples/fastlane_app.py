"""A broadcast-heavy app served with the fastlane protocol.

Run it with ``uvicorn docs.examples.fastlane_app:app --ws wsroute.fastlane:FastlaneProtocol``
or with ``python -m docs.examples.fastlane_app``.
"""

import uvicorn
from fastapi import FastAPI

from wsroute import Channel, WsRouter
from wsroute.fastlane import FastlaneProtocol

ws = WsRouter()


@ws.message("/ticker/{symbol}")
async def quote(data: str, channel: Channel) -> None:
    await channel.broadcast(data)  # framed once, written to every idle subscriber


app = FastAPI()
ws.install(app)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=8000, ws=FastlaneProtocol)
