"""The generated AsyncAPI documents through the official AsyncAPI tools, run by ``node``.

* ``@asyncapi/parser`` (``tests/js/asyncapi-validate.mjs``), what AsyncAPI Studio, the CLI
  and the generators parse with: no error and no warning for the chat example's document,
  the docs example's, the rich test app's and the tagged test app's — nor for the same
  documents declared 3.1.0.
* Modelina (``tests/js/asyncapi-models.mjs``), behind ``asyncapi generate models``: the
  TypeScript it writes from them compiles, and tags are required literals.

Both packages are pinned in ``tests/js/package.json`` and its lockfile, installed by
``npm ci --prefix tests/js``. Without them (or without node) the tests skip on a developer
machine and fail under ``CI=true``, as ``tests/test_js_types.py`` does.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from apps import asyncapi_rich, asyncapi_tagged
from support import ci
from wsroute.asyncapi import asyncapi_for_app

ROOT = Path(__file__).resolve().parent.parent
JS_TESTS = ROOT / "tests" / "js"
TSC = JS_TESTS / "node_modules" / "typescript" / "bin" / "tsc"
INSTALL = "npm ci --prefix tests/js"


def node_with(*packages: str) -> str:
    """The path of ``node``, once each of `packages` is installed at its pinned version."""
    node = shutil.which("node")
    if node is None:
        ci.unavailable(f"node is not on PATH: run `{INSTALL}` with Node.js installed")
    pins = json.loads((JS_TESTS / "package.json").read_text())["devDependencies"]
    for package in packages:
        manifest = JS_TESTS / "node_modules" / package / "package.json"
        installed = json.loads(manifest.read_text())["version"] if manifest.exists() else None
        if installed != pins[package]:
            found = "is not installed" if installed is None else f"is {installed}"
            ci.unavailable(
                f"{package} {found} in tests/js/node_modules, not {pins[package]}: run `{INSTALL}`",
                ci_message=f"{package} {found}, and CI=true: the AsyncAPI tools must run in CI ({INSTALL})",
            )
    return node


def run_node(node: str, script: str, *args: str) -> Any:
    """Run ``tests/js/<script>`` and parse the JSON it prints."""
    result = subprocess.run(
        [node, str(JS_TESTS / script), *args],
        cwd=JS_TESTS,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{script} exited with {result.returncode}:\n{result.stderr}"
    return json.loads(result.stdout)


def docs_example_app(name: str = "asyncapi_app") -> Any:
    """``docs/examples/NAME.py``'s app (under its own module name)."""
    path = ROOT / "docs" / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"asyncapi_tools_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


def chat_app() -> Any:
    from examples.chat.app import app

    return app


APPS = {
    "chat": chat_app,
    "docs": docs_example_app,
    "requests": lambda: docs_example_app("requests_app"),  # a receive operation with a reply
    "rich": lambda: asyncapi_rich.app,
    "tagged": lambda: asyncapi_tagged.app,
}


@pytest.fixture(scope="module")
def documents() -> dict[str, dict[str, Any]]:
    """Each app's document, as ``/asyncapi.json`` serves it."""
    return {name: json.loads(json.dumps(asyncapi_for_app(make()))) for name, make in APPS.items()}


def write(tmp_path: Path, name: str, document: dict[str, Any]) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return path


@pytest.mark.parametrize("name", sorted(APPS))
def test_the_official_parser_finds_no_error_or_warning(
    name: str, documents: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    node = node_with("@asyncapi/parser")
    document = documents[name]
    for version in (document["asyncapi"], "3.1.0"):
        path = write(tmp_path, f"{name}-{version}", {**document, "asyncapi": version})
        diagnostics = run_node(node, "asyncapi-validate.mjs", str(path))
        serious = [d for d in diagnostics if d["severity"] in ("error", "warning")]
        assert serious == [], f"{name} as {version}:\n{json.dumps(serious, indent=2)}"
    # The parser suggests 3.1.0 (an "info"): see test_modelina_reads_3_0_0_only for why not yet.
    assert {d["code"] for d in diagnostics} <= {"asyncapi-latest-version"}


def interface_property(models: dict[str, str], model: str, name: str) -> tuple[str, bool, str]:
    """(name as generated, optional?, type) of property `name` of the interface `model`.

    Modelina renames properties that are TypeScript keywords (``type`` → ``reservedType``).
    """
    code = models[model]
    pattern = rf"^\s*((?:reserved)?{re.escape(name)})(\??): (.+);$"
    found = re.search(pattern, code, re.MULTILINE | re.IGNORECASE)
    assert found, f"no property {name!r} in {model}:\n{code}"
    return found.group(1), found.group(2) == "?", found.group(3)


def assert_tag(models: dict[str, str], model: str, field: str, value: str) -> None:
    """`field` of `model` is required and typed as the one value `value`: the literal, or an
    enum member (Modelina's form in a discriminated union) whose value it is."""
    generated, optional, typed = interface_property(models, model, field)
    assert not optional, f"{model}.{generated} is optional:\n{models[model]}"
    if typed != f"'{value}'":
        enum, _, member = typed.partition(".")
        assert member and re.search(rf'^\s*{member} = "{value}",?$', models[enum], re.MULTILINE), (
            f"{model}.{generated} is {typed}, not the literal {value!r}:\n{models[model]}\n{models.get(enum)}"
        )


def compile_typescript(node: str, models: dict[str, str], tmp_path: Path) -> None:
    """``tsc --strict`` on the models, in a directory without a tsconfig.json."""
    source = tmp_path / "models.ts"
    source.write_text("\n\n".join(models.values()) + "\n", encoding="utf-8")
    result = subprocess.run(
        [node, str(TSC), "--noEmit", "--strict", "--target", "es2020", source.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, (
        f"the generated TypeScript does not compile:\n{result.stdout}{result.stderr}"
    )


def test_modelina_makes_tags_required_literals(documents: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    node = node_with("@asyncapi/modelina", "typescript")
    models = run_node(node, "asyncapi-models.mjs", str(write(tmp_path, "tagged", documents["tagged"])))
    # A tag with a default, in a union without and with an explicit discriminator, or alone.
    assert_tag(models, "Said", "type", "said")
    assert_tag(models, "Left", "type", "left")
    assert_tag(models, "Square", "kind", "square")
    assert_tag(models, "Circle", "kind", "circle")  # no default: required anyway
    assert_tag(models, "Ping", "type", "ping")
    assert_tag(models, "Echo", "type", "said")
    # An ordinary default stays optional.
    assert interface_property(models, "Left", "code")[1]
    # Each discriminated union's tags have their own enum: they used to collide (all "Type").
    compile_typescript(node, models, tmp_path)


def test_modelina_types_the_chat_example(documents: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    node = node_with("@asyncapi/modelina", "typescript")
    models = run_node(node, "asyncapi-models.mjs", str(write(tmp_path, "chat", documents["chat"])))
    for model, tag in (("Hello", "hello"), ("ChatMessage", "message"), ("Announcement", "announcement")):
        assert_tag(models, model, "type", tag)
    assert not interface_property(models, "Say", "text")[1]
    compile_typescript(node, models, tmp_path)


def test_modelina_reads_3_0_0_only(documents: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    """Why the document says 3.0.0: Modelina 5.10.1 makes no model of a 3.1.0 document
    (asyncapi/cli#2227). When this fails, the pinned Modelina reads 3.1.0: switch
    ``ASYNCAPI_VERSION`` in wsroute/asyncapi/document.py (and the docs) to it."""
    node = node_with("@asyncapi/modelina")
    document = {**documents["tagged"], "asyncapi": "3.1.0"}
    models = run_node(node, "asyncapi-models.mjs", str(write(tmp_path, "tagged-3.1.0", document)))
    assert list(models) == ["Root"]
