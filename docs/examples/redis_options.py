"""The Redis backend built by hand, for options a URL does not carry."""

from fastapi import FastAPI

from wsroute import WsRouter
from wsroute.broker.redis import RedisBackend

ws = WsRouter(
    broker=RedisBackend(
        "redis://127.0.0.1:6379/0",
        channel_prefix="chat:",  # Redis channel of topic /rooms/a is "chat:/rooms/a"
        connect_timeout=2.0,  # seconds to connect (and to answer the startup PING)
        timeout=5.0,  # bound on one publish, and on confirming a subscription
        reconnect_min=0.1,  # listener reconnect backoff: 0.1 s, 0.2 s, … up to
        reconnect_max=5.0,  # 5 s, each delay randomised between half and all of it
        health_check_interval=15.0,  # PING an idle subscription connection after 15 s
    )
)

app = FastAPI()
ws.install(app)
