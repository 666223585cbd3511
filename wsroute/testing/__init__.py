"""A testing kit for wsroute apps: a real server, a client, polling, and multiplexed clients.

```python
async with serve(app) as url, connect(f"ws://{url}/echo") as ws:
    await ws.send("hi")
    assert await ws.recv() == "hi"
```

* `serve` runs the app under uvicorn on a free port of 127.0.0.1 in a thread of its own
  (`ServerThread` is the same server for sync code);
* `connect` opens a `websockets` client (`Client`) with bounded receives and `expect_close`;
* `eventually` polls for what the server does after the client has gone (a `leave`);
* `MultiplexClient` speaks ``rocket-multiplex`` over a real socket, `MultiplexTestSession`
  (from `multiplex_testclient`) over Starlette's in-process `TestClient`.

The real-socket helpers need the `websockets` package (``pip install 'wsroute[test]'``); the
pytest plugin (`wsroute.pytest_plugin`, registered on install) adds fixtures over `serve`.
"""

from wsroute.testing.client import Client, connect, eventually
from wsroute.testing.multiplex import (
    MultiplexClient,
    MultiplexTestSession,
    RequestError,
    TopicClosed,
    multiplex_testclient,
)
from wsroute.testing.server import FASTLANE, WS_IMPLEMENTATIONS, ServerThread, serve

__all__ = [
    "FASTLANE",
    "WS_IMPLEMENTATIONS",
    "Client",
    "MultiplexClient",
    "MultiplexTestSession",
    "RequestError",
    "ServerThread",
    "TopicClosed",
    "connect",
    "eventually",
    "multiplex_testclient",
    "serve",
]
