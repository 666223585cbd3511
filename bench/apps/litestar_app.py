"""Litestar's channels plugin with its generated WebSocket route handlers
(``/fan/{room}``) and a ``websocket_listener`` publisher at ``/pub/{room}``."""

from __future__ import annotations

from litestar import Litestar, websocket_listener
from litestar.channels import ChannelsPlugin
from litestar.channels.backends.memory import MemoryChannelsBackend


@websocket_listener("/pub/{room:str}")
async def publisher(data: str, room: str, channels: ChannelsPlugin) -> None:
    channels.publish(data, room)


channels = ChannelsPlugin(
    backend=MemoryChannelsBackend(),
    arbitrary_channels_allowed=True,
    create_ws_route_handlers=True,
    ws_handler_base_path="/fan",
)

app = Litestar(route_handlers=[publisher], plugins=[channels])
