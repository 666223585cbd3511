"""Server apps for the benchmark suite, one module per framework.

Every module exposes ``app`` (an ASGI app served by uvicorn, one worker). The routes are
the same everywhere so the load client does not care which server it talks to:

* ``/echo``          echo every text message back to the sender;
* ``/fan/{room}``    subscriber: receives every broadcast to the room;
* ``/pub/{room}``    publisher: every text message it sends is broadcast to ``/fan/{room}``.

Peers that cannot speak plain WebSocket frames (python-socketio) document their own wire
protocol; the client has an adapter for each.
"""
