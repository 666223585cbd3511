"""What one worker process of the chat shares between its HTTP routes and WebSocket handlers."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from examples.chat.config import ChatConfig
from examples.chat.store import Store
from wsroute import Broker


@dataclasses.dataclass
class ChatState:
    """Kept on ``app.state.chat``."""

    config: ChatConfig
    store: Store
    broker: Broker


def chat_state(connection: HTTPConnection) -> ChatState:
    """Dependency (HTTP routes and WebSocket handlers alike): this app's `ChatState`."""
    state: ChatState = connection.app.state.chat
    return state


State = Annotated[ChatState, Depends(chat_state)]
