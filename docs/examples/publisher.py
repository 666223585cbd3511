"""A write-only publisher: a script or worker that runs no ASGI app.

python publisher.py redis://127.0.0.1:6379/0 /rooms/lobby "maintenance in 5 minutes"
"""

import asyncio
import sys

from wsroute import Broker


async def main(url: str, topic: str, text: str) -> None:
    async with Broker(
        url
    ) as broker:  # connects to Redis; disconnects at the end of the block
        await broker.broadcast_to(topic, text)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
