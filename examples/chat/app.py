"""The chat example, assembled: settings, store, WebSocket rooms, HTTP routes, static files.

Run it with ``python -m examples.chat`` and open http://127.0.0.1:8000. ``app`` is built
from the environment (see `config`); `create_app` builds one from explicit settings (tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from examples.chat import rooms, web
from examples.chat.config import ChatConfig
from examples.chat.state import ChatState
from examples.chat.store import HEARTBEAT_EVERY, Store
from wsroute import BrokerUnavailable, WsRouter

logger = logging.getLogger("examples.chat")


async def _announce_presence(state: ChatState, events: list[object]) -> None:
    for event in events:
        room = getattr(event, "room", "")
        try:
            await state.broker.broadcast_to(f"/rooms/{room}", event)
        except BrokerUnavailable:
            logger.warning("could not broadcast presence of %s: broker unavailable", room)


async def _heartbeat(state: ChatState) -> None:
    """Keep this worker's presence rows alive; purge those of workers that died."""
    while True:
        await asyncio.sleep(HEARTBEAT_EVERY)
        try:
            await _announce_presence(state, list(await state.store.heartbeat(state.worker)))
        except Exception:
            logger.exception("presence heartbeat failed")


def create_app(config: ChatConfig | None = None) -> FastAPI:
    """The chat app for `config` (default: from the environment)."""
    config = config or ChatConfig.from_env()
    ws = WsRouter(broker=config.broker)
    ws.include_router(rooms.router)
    store = Store(config.db_path)
    worker = f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"
    state = ChatState(config=config, store=store, broker=ws.broker, worker=worker)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await store.open()
        await store.heartbeat(worker)
        beat = asyncio.create_task(_heartbeat(state))
        try:
            yield
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            # Connections have ended (and left) by now; this drops anything left over.
            await _announce_presence(state, list(await store.retire(worker)))
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
