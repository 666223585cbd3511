"""The README's run command: start the chat example as a user would, fetch /, chat, stop."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from server import connect

ROOT = Path(__file__).parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def example_url() -> object:
    port = free_port()
    env = {**os.environ, "WSROUTE_BROKER": "memory://"}
    process = subprocess.Popen(
        [sys.executable, "-m", "examples.chat", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    output = process.stdout.read().decode() if process.stdout else ""
                    raise RuntimeError(f"the example did not start:\n{output}") from None
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


async def test_example_serves_the_page_and_chats(example_url: str) -> None:
    async with httpx.AsyncClient(trust_env=False) as http:
        page = await http.get(f"http://{example_url}/")
        assert page.status_code == 200 and "wsroute chat" in page.text
        script = await http.get(f"http://{example_url}/static/chat.js")
        assert script.status_code == 200
    async with (
        connect(f"ws://{example_url}/rooms/lobby?name=ann") as ann,
        connect(f"ws://{example_url}/echo") as echo,
    ):
        assert await ann.recv() == "* ann joined #lobby"
        async with connect(f"ws://{example_url}/rooms/lobby?name=bob") as bob:
            assert await bob.recv() == "* bob joined #lobby"
            assert await ann.recv() == "* bob joined #lobby"
            await bob.send("hello")
            assert await ann.recv() == "bob: hello"
        assert await asyncio.wait_for(ann.recv(), 5) == "* bob left #lobby"
        await echo.send("ping")
        assert await echo.recv() == "ping"
