from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends

from wsroute import WsRouter

ws = WsRouter()


async def get_db() -> AsyncIterator[str]:
    yield "db"  # a yield: event scope


async def repository(db: Annotated[str, Depends(get_db)]) -> str:
    return f"repo({db})"


@ws.message("/notes")
async def notes(
    data: str, repo: Annotated[str, Depends(repository, scope="request")]
) -> None: ...
