"""mkdocs hook: put real output into the pages, computed when the site is built.

``<!-- registration-error: NAME -->`` becomes the exception that importing
``docs/examples/mistakes/NAME.py`` raises, as ``Type: message``. The module is
loaded under the name ``app``, so messages read as they would for a handler in
``app.py``. A mistake that raises nothing fails the build.

``<!-- asyncapi-document: module:attribute -->`` becomes the AsyncAPI document of
that app, as ``python -m wsroute asyncapi module:attribute`` prints it, collapsed.

``<!-- snippet: path[:section] -->`` lines are dropped: they tie a code block to its
source for ``docs/snippets.py``, and inside an admonition Markdown would wrap one in an
empty paragraph.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MISTAKES = ROOT / "docs" / "examples" / "mistakes"
_MARKER = re.compile(r"^<!-- registration-error: ([a-z0-9_]+) -->$", re.MULTILINE)
_ASYNCAPI = re.compile(r"^<!-- asyncapi-document: ([\w.]+):([\w.]+) -->$", re.MULTILINE)
_SNIPPET = re.compile(r"^[ \t]*<!-- snippet: \S+ -->[ \t]*\n", re.MULTILINE)


def mistake_message(name: str) -> str:
    """Import the mistake `name` and return ``"ExceptionType: message"``."""
    path = MISTAKES / f"{name}.py"
    if not path.is_file():
        raise FileNotFoundError(f"no mistake example {path}")
    spec = importlib.util.spec_from_file_location("app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved = sys.modules.get("app")
    sys.modules["app"] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        if saved is None:
            sys.modules.pop("app", None)
        else:
            sys.modules["app"] = saved
    raise RuntimeError(
        f"{path} raised nothing: it no longer shows a registration error"
    )


def _error_block(match: re.Match[str]) -> str:
    message = mistake_message(match.group(1))
    return f'<div class="error-message" markdown>\n\n```text\n{message}\n```\n\n</div>'


def asyncapi_json(module_name: str, attribute: str) -> str:
    """The AsyncAPI document of ``module:attribute``, as the command line prints it."""
    from wsroute.asyncapi import asyncapi_for_app

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    app: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        app = getattr(app, part)
    return json.dumps(asyncapi_for_app(app), indent=2, ensure_ascii=False)


def _asyncapi_block(match: re.Match[str]) -> str:
    target = f"{match.group(1)}:{match.group(2)}"
    document = asyncapi_json(match.group(1), match.group(2))
    body = "\n".join(f"    {line}" if line else "" for line in document.splitlines())
    title = f"python -m wsroute asyncapi {target}"
    return f'??? example "`{title}`"\n\n    ```json\n{body}\n    ```\n'


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Replace every marker in a page with its generated block."""
    markdown = _SNIPPET.sub("", markdown)
    markdown = _MARKER.sub(_error_block, markdown)
    return _ASYNCAPI.sub(_asyncapi_block, markdown)
