"""``python -m examples.chat [--host H] [--port P] [--workers N]``: serve the chat example."""

from __future__ import annotations

import argparse

import uvicorn


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the wsroute chat example.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    print(f"wsroute chat example on http://{args.host}:{args.port}", flush=True)
    uvicorn.run("examples.chat.app:app", host=args.host, port=args.port, workers=args.workers)


if __name__ == "__main__":
    main()
