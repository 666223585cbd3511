"""FastAPI baselines: ``@app.websocket`` with one ``Depends`` (echo, connect rate, idle
memory) and the FastAPI-docs ``ConnectionManager`` for fan-out: a list of sockets and a
sequential ``await send_text`` loop — the naive floor (one slow client stalls it)."""

from __future__ import annotations

from fastapi import Depends, FastAPI, WebSocket, WebSocketDisconnect

import bench.apps._gcstats  # noqa: F401  (BENCH_GC_STATS=1: GC time in the server log)


async def get_user(websocket: WebSocket) -> str:
    return websocket.query_params.get("user", "anon")


class ConnectionManager:
    """As in the FastAPI docs (Advanced User Guide → WebSockets → multiple clients)."""

    def __init__(self) -> None:
        self.active_connections: list[WebSocket] = []

    async def connect(self, websocket: WebSocket) -> None:
        await websocket.accept()
        self.active_connections.append(websocket)

    def disconnect(self, websocket: WebSocket) -> None:
        self.active_connections.remove(websocket)

    async def broadcast(self, message: str) -> None:
        for connection in self.active_connections:
            await connection.send_text(message)


managers: dict[str, ConnectionManager] = {}
app = FastAPI()


@app.websocket("/echo")
async def echo(websocket: WebSocket, user: str = Depends(get_user)) -> None:
    await websocket.accept()
    try:
        while True:
            data = await websocket.receive_text()
            await websocket.send_text(data)
    except WebSocketDisconnect:
        pass


@app.websocket("/idle")
async def idle(websocket: WebSocket, user: str = Depends(get_user)) -> None:
    await websocket.accept()
    try:
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect:
        pass


@app.websocket("/fan/{room}")
async def subscriber(websocket: WebSocket, room: str) -> None:
    manager = managers.setdefault(room, ConnectionManager())
    await manager.connect(websocket)
    try:
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect:
        manager.disconnect(websocket)


@app.websocket("/pub/{room}")
async def publisher(websocket: WebSocket, room: str) -> None:
    manager = managers.setdefault(room, ConnectionManager())
    await websocket.accept()
    try:
        while True:
            await manager.broadcast(await websocket.receive_text())
    except WebSocketDisconnect:
        pass
