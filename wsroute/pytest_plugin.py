"""pytest fixtures for wsroute apps, registered on install (the ``pytest11`` entry point).

* `wsroute_server`: `wsroute.testing.serve` as a fixture: ``async with wsroute_server(app) as url``;
* `wsroute_url`: the base URL of the app your `wsroute_app` fixture returns, served for the
  test (``"127.0.0.1:PORT"``).

The async fixture needs pytest-asyncio (``asyncio_mode = "auto"`` in the pytest settings).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar, cast

import pytest

from wsroute.testing import serve

_F = TypeVar("_F", bound=Callable[..., Any])


def _async_fixture(function: _F) -> _F:
    """A fixture pytest-asyncio owns (so it also works in its strict mode), when installed."""
    try:
        import pytest_asyncio
    except ImportError:  # without pytest-asyncio only the factory fixture works
        return cast(_F, pytest.fixture(function))
    return cast(_F, pytest_asyncio.fixture(function))


@pytest.fixture
def wsroute_server() -> Callable[..., AbstractAsyncContextManager[str]]:
    """`wsroute.testing.serve`: ``async with wsroute_server(app, ws="wsproto") as url``."""
    return serve


@pytest.fixture
def wsroute_app() -> Any:
    """The app `wsroute_url` serves: override it with a fixture of your own."""
    raise pytest.UsageError("define a `wsroute_app` fixture that returns your app to use `wsroute_url`")


@_async_fixture
async def wsroute_url(wsroute_app: Any) -> AsyncIterator[str]:
    """`wsroute_app` served for the test; its base URL ``"127.0.0.1:PORT"``."""
    async with serve(wsroute_app) as url:
        yield url
