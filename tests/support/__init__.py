"""What the tests share, one definition each (``tests/`` is on ``sys.path``, so
``from support.clients import close_seen``).

* `support.ci`: a missing tool skips a test on a developer machine and fails it under ``CI=true``;
* `support.running`: `Running`, an app a test module serves (with the kit's `ServerThread`)
  with its probe and router;
* `support.clients`: WebSocket and HTTP clients to 127.0.0.1 and what tests read from them
  (`connect`, a bare `websockets` connection; `close_seen`, `refused`, `recv`, `assert_silent`);
* `support.processes`: free ports, polling, and uvicorn subprocesses;
* `support.asgi`: an app driven in-process by plain ASGI events, no server;
* `support.raw`: a WebSocket client on a bare socket (frames no real client sends) and
  `StreamClient`, thousands of connections on one loop;
* `support.probe`: what a served app has left behind (``GET /_debug/state``) and its leaves;
* `support.load_app`: the app the load test serves in a uvicorn subprocess;
* `support.redis_server`: the shared Redis and private ``redis-server`` instances;
* `support.browser`: headless Chromium and the ``browser`` fixture;
* `support.chat`: the chat example in a subprocess.

Servers in this process, `eventually` and the multiplexed clients are the testing kit's
(`wsroute.testing`), which the suite uses as a user's tests would.
"""
