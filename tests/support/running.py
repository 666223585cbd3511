"""`Running`: an app that a test module serves, and what its tests read from it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from wsroute import WsRouter
from wsroute.testing import ServerThread


@dataclass
class Running:
    """A served app: where it listens, the probe its handlers record into, its router.

    Test modules subclass it to add what their own app offers (an HTTP route to publish,
    lists the handlers fill).
    """

    host: str
    """``"127.0.0.1:PORT"``."""
    probe: Any
    router: WsRouter
    ws_impl: str

    @property
    def port(self) -> int:
        return int(self.host.rpartition(":")[2])

    @property
    def url(self) -> str:
        """``"ws://127.0.0.1:PORT"``."""
        return f"ws://{self.host}"


@contextlib.contextmanager
def serving(
    app: Any, router: WsRouter, probe: Any, ws_impl: str = "websockets-sansio", **options: Any
) -> Iterator[Running]:
    """Serve `app` on `ws_impl` (in a sync fixture or block too); yields it as a `Running`."""
    with ServerThread(app, ws=ws_impl, **options) as host:
        yield Running(host, probe, router, ws_impl)
