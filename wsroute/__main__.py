"""The command line: ``python -m wsroute asyncapi module:app [--output FILE]``.

Prints the AsyncAPI document of the `WsRouter` installed on the app (found on
``app.state.wsroute``), as the served ``/asyncapi.json`` would be for ``--host``.

``python -m wsroute typescript module:app [--output FILE] [--js]`` prints a TypeScript module
(or JavaScript with JSDoc types) for the app's routes instead, made from that document (see
`wsroute.typescript`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from wsroute.typescript import DEFAULT_CLIENT_MODULE, Flavor, typescript_module


def load_app(target: str) -> Any:
    """Import ``module:attribute`` (``attribute`` may be dotted), like uvicorn does."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise SystemExit(f"error: {target!r} is not of the form module:app")
    # Like uvicorn: modules in the current directory are importable.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        value: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise SystemExit(f"error: cannot import {module_name!r}: {exc}") from exc
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise SystemExit(f"error: {module_name!r} has no attribute {attribute!r}") from None
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m wsroute", description="wsroute command line")
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser(
        "asyncapi", help="print the AsyncAPI 3.0 document of an app's WebSocket routes"
    )
    export.add_argument("app", help="the app, as module:attribute (e.g. myapp.main:app)")
    export.add_argument("--output", "-o", help="write the document to this file instead of stdout")
    export.add_argument("--host", default="localhost:8000", help="the server's host[:port] (localhost:8000)")
    export.add_argument("--protocol", default="ws", choices=["ws", "wss"], help="ws (default) or wss")
    export.add_argument("--pathname", default="", help="the app's mount point (root path), if any")
    export.add_argument(
        "--check",
        action="store_true",
        help="also warn (on stderr) about handlers the document cannot describe, and exit 1 if any",
    )
    typescript = commands.add_parser(
        "typescript", help="print a TypeScript module with typed helpers for an app's WebSocket routes"
    )
    typescript.add_argument("app", help="the app, as module:attribute (e.g. myapp.main:app)")
    typescript.add_argument("--output", "-o", help="write the module to this file instead of stdout")
    typescript.add_argument(
        "--client-module",
        default=DEFAULT_CLIENT_MODULE,
        help=f"where the module imports multiplex.js from ({DEFAULT_CLIENT_MODULE})",
    )
    typescript.add_argument(
        "--js", action="store_true", help="JavaScript with JSDoc types instead, for apps without a build step"
    )
    typescript.set_defaults(host="localhost:8000", protocol="ws", pathname="", check=False)
    args = parser.parse_args(argv)

    from wsroute.asyncapi.page import asyncapi_for_app

    app = load_app(args.app)
    try:
        document = asyncapi_for_app(app, host=args.host, protocol=args.protocol, pathname=args.pathname)
    except (LookupError, AttributeError) as exc:
        raise SystemExit(f"error: {args.app}: {exc}") from exc
    if args.command == "typescript":
        flavor: Flavor = "js" if args.js else "ts"
        text = typescript_module(document, source=args.app, client_module=args.client_module, flavor=flavor)
    else:
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if args.output:
        with open(args.output, "w", encoding="utf-8") as file:
            file.write(text)
    else:
        sys.stdout.write(text)
    if args.check:
        from wsroute.asyncapi.document import asyncapi_warnings

        warnings = asyncapi_warnings(app.state.wsroute)
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        if warnings:
            print(f"{args.app}: {len(warnings)} warning(s): the document is incomplete", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
