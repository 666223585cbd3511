"""``python -m examples.chat``: serve the chat example.

::

    python -m examples.chat [--host H] [--port P] [--workers N] [--broker URL] [--data DIR] [--db FILE]

Every worker must share the token secret, the database and a broker. This command keeps the
first two in a data folder, ``.chat-data/`` unless ``--data`` (or ``WSROUTE_CHAT_DATA``) says
otherwise: its ``secret`` (made the first time, unless ``WSROUTE_CHAT_SECRET`` is set) and
``chat.sqlite3`` (unless ``--db`` or ``WSROUTE_CHAT_DB``), so a restart signs no one out and
loses no message. It picks an admin token (unless ``WSROUTE_CHAT_ADMIN_TOKEN``) per start, and
hands all of it (the folder, not the key) to the workers through the environment. Several
workers need a shared broker: ``--broker redis://127.0.0.1:6379/0`` (or ``WSROUTE_BROKER``).
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import uvicorn

from examples.chat import config


def _stopped(signum: int, frame: FrameType | None) -> None:
    # uvicorn handles SIGTERM itself, shuts down gracefully, then raises the signal again
    # with the handler it found: this one, so that the cleanup below runs and the exit is 0.
    raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m examples.chat", description="Serve the wsroute chat example."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes (more than 1 needs --broker)"
    )
    parser.add_argument(
        "--broker",
        default=os.environ.get(config.BROKER) or "memory://",
        help="broker URL: memory:// (default) or redis://127.0.0.1:6379/0 [env WSROUTE_BROKER]",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get(config.DATA) or config.DEFAULT_DATA),
        help="folder for the token key and the messages, made if missing "
        "[env WSROUTE_CHAT_DATA; default: .chat-data]",
    )
    parser.add_argument(
        "--db", help="SQLite file for messages [env WSROUTE_CHAT_DB; default: DATA/chat.sqlite3]"
    )
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    if args.workers > 1 and args.broker.startswith("memory:"):
        parser.error(
            f"--workers {args.workers} needs a broker the workers share, or users on different workers "
            "never see each other: add --broker redis://127.0.0.1:6379/0"
        )

    os.environ[config.BROKER] = args.broker
    os.environ[config.DATA] = str(args.data.resolve())
    if args.db:
        os.environ[config.DB] = str(Path(args.db).resolve())
    # The workers read the same settings; reading them here first makes the folder and the key
    # once, before they start.
    settings = config.ChatConfig.from_env()
    admin = os.environ.get(config.ADMIN_TOKEN)
    if not admin:
        admin = os.environ[config.ADMIN_TOKEN] = secrets.token_urlsafe(16)

    print(f"wsroute chat example on http://{args.host}:{args.port}", flush=True)
    print(
        f"  broker {args.broker}, {args.workers} worker(s), messages in {settings.db_path}\n"
        f"  admin: curl -X POST -H 'Authorization: Bearer {admin}' -H 'Content-Type: application/json' "
        f'-d \'{{"text": "hello"}}\' http://{args.host}:{args.port}/api/admin/rooms/lobby/announce\n'
        f"  kick:  curl -X POST -H 'Authorization: Bearer {admin}' "
        f"http://{args.host}:{args.port}/api/admin/users/<user id>/kick",
        flush=True,
    )
    signal.signal(signal.SIGTERM, _stopped)
    try:
        uvicorn.run(
            "examples.chat.app:app",
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=args.log_level,
        )
    except KeyboardInterrupt:  # Ctrl+C: uvicorn has shut down already
        sys.exit(130)


if __name__ == "__main__":
    main()
