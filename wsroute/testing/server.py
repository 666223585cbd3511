"""`serve` and `ServerThread`: the app under a real uvicorn on a free port of 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

FASTLANE = "wsroute.fastlane:FastlaneProtocol"
"""The `ws` value of `serve` for wsroute's fastlane protocol."""

WS_IMPLEMENTATIONS = ("websockets-sansio", "wsproto", FASTLANE)
"""Every WebSocket implementation `serve` accepts, to parametrise tests over."""

HOST = "127.0.0.1"

# Base URLs of the servers `serve` is running now, innermost last: `connect("/path")` uses it.
_running: list[str] = []


# --- serve ----------------------------------------------------------------------------------


def _server(config: Any) -> Any:
    """A `uvicorn.Server` that stops as soon as it is asked to.

    uvicorn's main loop looks at `should_exit` every 0.1 s, and its shutdown then sleeps
    0.1 s for the connections it asked to close; a test suite that starts a server per test
    waited both at every stop. This one's loop also wakes when `exit_now` is called (its ticks
    still run every 0.1 s: the Date header, `limit_max_requests`), and its shutdown skips the
    sleep when no connection is open.
    """
    import uvicorn

    class _QuickExit(uvicorn.Server):
        _loop: asyncio.AbstractEventLoop | None = None
        _wake: asyncio.Event | None = None

        async def main_loop(self) -> None:
            self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
            counter = 0
            should_exit = await self.on_tick(counter)
            while not should_exit:
                counter = (counter + 1) % 864000
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.1):
                        await self._wake.wait()
                should_exit = await self.on_tick(counter)

        async def shutdown(self, sockets: Any = None) -> None:
            for server in self.servers:
                server.close()  # first: no connection can come in after the check below
            if self.server_state.connections or self.server_state.tasks:
                await super().shutdown(sockets)  # closes them with 1012 and waits for them
                return
            for server in self.servers:
                await server.wait_closed()
            if not self.force_exit:
                await self.lifespan.shutdown()

        def exit_now(self) -> None:
            self.should_exit = True
            loop, wake = self._loop, self._wake
            if loop is not None and wake is not None:
                with contextlib.suppress(RuntimeError):  # its loop has closed: it has exited
                    loop.call_soon_threadsafe(wake.set)

    return _QuickExit(config)


class _LifespanErrors:
    """The app, recording what its lifespan raised: uvicorn only logs it."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.error: BaseException | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        except BaseException as error:
            self.error = error
            raise


class ServerThread:
    """uvicorn serving `app` on a free port of 127.0.0.1 in a thread: `serve` for sync code.

    ``with ServerThread(app) as url`` starts it, yields ``"127.0.0.1:PORT"`` (also `url`) and
    stops it as `serve` does when the block ends. For a sync fixture or test (a module-scoped
    server, Playwright's sync API), or to `stop` it while clients are still connected (from
    async code: ``await asyncio.to_thread(server.stop)``). The arguments are `serve`'s.
    """

    def __init__(
        self,
        app: Any,
        *,
        ws: str = "websockets-sansio",
        lifespan: bool = True,
        startup_timeout: float = 10.0,
        shutdown_timeout: float = 15.0,
        **options: Any,
    ) -> None:
        import uvicorn

        if "host" in options or "uds" in options or "fd" in options:
            # The kit's promise: test traffic stays on the loopback, on a port of its own.
            given = ", ".join(f"{name}=" for name in ("host", "uds", "fd") if name in options)
            raise TypeError(f"serve() and ServerThread always listen on {HOST}; {given} is not accepted")
        self._app = _LifespanErrors(app)
        options.setdefault("log_level", "warning")
        port = options.pop("port", 0)
        mode: Literal["on", "off"] = "on" if lifespan else "off"
        config = uvicorn.Config(self._app, host=HOST, port=port, ws=ws, lifespan=mode, **options)
        self._server = _server(config)
        self._thread = threading.Thread(target=self._run, name="wsroute-serve", daemon=True)
        self._crashed: list[BaseException] = []
        self._url: str | None = None
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout

    def _run(self) -> None:
        try:
            self._server.run()
        except BaseException as error:  # uvicorn exits with SystemExit when it cannot bind
            self._crashed.append(error)

    @property
    def url(self) -> str:
        """``"127.0.0.1:PORT"``, once started."""
        if self._url is None:
            raise RuntimeError("the server has not started")
        return self._url

    @property
    def port(self) -> int:
        """The port it listens on, once started."""
        return int(self.url.rpartition(":")[2])

    def start(self) -> str:
        """Start uvicorn and wait until it listens; its `url`.

        An exception of the app's lifespan startup is re-raised here; any other failure to
        start within `startup_timeout` seconds raises RuntimeError.
        """
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not self._server.started:
            if not self._thread.is_alive():
                if self._app.error is not None:
                    raise self._app.error
                cause = self._crashed[0] if self._crashed else None
                raise RuntimeError("uvicorn did not start (its log says why)") from cause
            if time.monotonic() > deadline:
                with contextlib.suppress(TimeoutError):
                    self._join(5.0)
                raise RuntimeError(f"uvicorn did not start within {self.startup_timeout}s")
            time.sleep(0.01)
        port = int(self._server.servers[0].sockets[0].getsockname()[1])
        self._url = f"{HOST}:{port}"
        _running.append(self._url)
        return self._url

    def stop(self, timeout: float | None = None) -> None:
        """Shut uvicorn down gracefully and wait for it; nothing if it is not running.

        Open connections are closed with 1012 and every `leave` handler has run when it
        returns. After `timeout` seconds (`shutdown_timeout` unless given) the handlers still
        running are cancelled and TimeoutError is raised.
        """
        if self._url in _running:
            _running.remove(self._url)
        if self._thread.is_alive():
            self._join(self.shutdown_timeout if timeout is None else timeout)

    def _join(self, timeout: float) -> None:
        self._server.exit_now()
        self._thread.join(timeout)
        if self._thread.is_alive():
            # Handlers that never finish: cancel them rather than leave a thread behind.
            self._server.force_exit = True
            self._thread.join(5.0)
            raise TimeoutError(f"uvicorn did not shut down within {timeout}s (handlers still running)")

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> None:
        if kind is None:
            self.stop()
            return
        # The block has already failed: stop quietly, its error is the one to see.
        with contextlib.suppress(TimeoutError):
            self.stop()


@contextlib.asynccontextmanager
async def serve(
    app: Any,
    *,
    ws: str = "websockets-sansio",
    lifespan: bool = True,
    startup_timeout: float = 10.0,
    shutdown_timeout: float = 15.0,
    **options: Any,
) -> AsyncIterator[str]:
    """Serve `app` with uvicorn on a free port of 127.0.0.1; yields ``"127.0.0.1:PORT"``.

    uvicorn runs in a thread with its own event loop, so the test's loop stays free for its
    clients. `ws` is uvicorn's WebSocket implementation: ``"websockets-sansio"``,
    ``"wsproto"`` or `FASTLANE`; `options` go to `uvicorn.Config` (all but ``host``, ``uds``
    and ``fd``: it listens on 127.0.0.1 only; ``port`` picks a fixed port).

    An exception of the app's lifespan startup is re-raised here; any other failure to start
    within `startup_timeout` seconds raises RuntimeError. On exit uvicorn shuts down
    gracefully: open connections are closed with 1012 and every `leave` handler has run
    when the block ends (TimeoutError after `shutdown_timeout` seconds). `ServerThread` is
    the same server for sync code.
    """
    server = ServerThread(
        app,
        ws=ws,
        lifespan=lifespan,
        startup_timeout=startup_timeout,
        shutdown_timeout=shutdown_timeout,
        **options,
    )
    # Started and stopped in a worker thread: the test's loop keeps serving its clients.
    starting = asyncio.ensure_future(asyncio.to_thread(server.start))
    try:
        base = await asyncio.shield(starting)
    except asyncio.CancelledError:
        # The thread starts the server whatever happens here: let it, then stop what it
        # started, so that no server outlives a block cancelled (a test's timeout) mid-start.
        with contextlib.suppress(Exception):
            await starting
        with contextlib.suppress(Exception):
            await asyncio.to_thread(server.stop)
        raise
    try:
        yield base
    except BaseException:
        # The test has already failed: stop quietly, its error is the one to see.
        with contextlib.suppress(TimeoutError):
            await asyncio.to_thread(server.stop)
        raise
    await asyncio.to_thread(server.stop)
