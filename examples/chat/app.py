"""The chat example, assembled: settings, store, WebSocket rooms, HTTP routes, static files.

Run it with ``python -m examples.chat`` and open http://127.0.0.1:8000. ``app`` is built
from the environment (see `config`); `create_app` builds one from explicit settings (tests).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from examples.chat import rooms, web
from examples.chat.config import ChatConfig
from examples.chat.state import ChatState
from examples.chat.store import Store
from wsroute import BrokerUnavailable, WsRouter


def create_app(config: ChatConfig | None = None) -> FastAPI:
    """The chat app for `config` (default: from the environment)."""
    config = config or ChatConfig.from_env()
    ws = WsRouter(broker=config.broker)
    ws.include_router(rooms.router)
    store = Store(config.db_path)
    state = ChatState(config=config, store=store, broker=ws.broker)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await store.open()
        try:
            yield
        finally:
            await store.close()

    app = FastAPI(
        title="wsroute chat",
        summary="Multi-room chat: typed WebSocket handlers, multiplexing, Redis scale-out.",
        description="Sign in with `POST /api/session`, then open a WebSocket to `/rooms/{room}` "
        "(see the WebSocket API at `/asyncapi`). The page at `/` does both.",
        lifespan=lifespan,
        # web.py serves /docs with Swagger UI's files from static/swagger/: FastAPI's own /docs
        # and /redoc load theirs from CDNs, and stay blank offline.
        docs_url=None,
        redoc_url=None,
    )
    app.state.chat = state
    app.include_router(web.router)

    @app.exception_handler(BrokerUnavailable)
    async def broker_unavailable(request: Request, exc: BrokerUnavailable) -> JSONResponse:
        return JSONResponse({"detail": f"broker unavailable: {exc}"}, status_code=503)

    ws.install(app)
    app.mount("/static", StaticFiles(directory=web.STATIC), name="static")
    return app


app = create_app()
