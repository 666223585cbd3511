"""The echo app that Autobahn|Testsuite's fuzzingclient talks to.

Every text or binary message is sent back as it came (``channel.send`` of a ``str`` is a
text frame, of ``bytes`` a binary frame). ``max_message_size`` is raised from wsroute's
1 MiB default to 16 MiB, uvicorn's own ``--ws-max-size`` default, so that a case whose
message is larger than 1 MiB tests the server protocol rather than our limit (with the
9.* cases excluded no case currently comes close, but an ``exclude-cases`` edit should
not turn the run into a test of wsroute's 1009).

Served by ``tests/autobahn/run.py`` as ``uvicorn echo_app:app --app-dir tests/autobahn``.
"""

from __future__ import annotations

from fastapi import FastAPI

from wsroute import Channel, WsRouter

ws = WsRouter(max_message_size=16 * 1024 * 1024)


@ws.message("/echo")
async def echo(data: str | bytes, channel: Channel) -> None:
    await channel.send(data)


app = FastAPI()
ws.install(app)
