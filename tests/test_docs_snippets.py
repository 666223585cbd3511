"""The guide's inline code blocks are the tested files: ``docs/snippets.py`` finds drift.

Every page shows its code written out (so it reads on the repository's web view too), behind
a ``<!-- snippet: path[:section] -->`` marker; these tests fail when a block no longer equals
the file (or section) it names, and prove the checker sees such a change.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _load_snippets() -> ModuleType:
    spec = importlib.util.spec_from_file_location("wsroute_docs_snippets", DOCS / "snippets.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


snippets = _load_snippets()


def test_every_inline_block_equals_its_source() -> None:
    problems = snippets.check(snippets.guide_pages())
    assert problems == [], "run `python docs/snippets.py --write`:\n" + "\n".join(map(str, problems))


def test_the_pages_show_their_code_inline() -> None:
    marked = snippets.markers(snippets.guide_pages())
    assert len(marked) > 60
    pages = {page.name for page, _ in marked}
    assert {"index.md", "guards.md", "errors.md", "registration-errors.md", "js-client.md"} <= pages
    for page in snippets.guide_pages():
        assert '--8<-- "' not in page.read_text(), f"{page.name} still includes a file"


def _guards_copy(tmp_path: Path) -> Path:
    page = tmp_path / "guards.md"
    shutil.copy(DOCS / "guards.md", page)
    assert snippets.check([page]) == []
    return page


def test_the_checker_catches_a_changed_line(tmp_path: Path) -> None:
    page = _guards_copy(tmp_path)
    text = page.read_text()
    original = '            raise Reject(403, f"not a member of {room}")\n'
    assert text.count(original) == 1
    page.write_text(text.replace(original, original.replace("403", "404")))
    lines = page.read_text().split("\n")
    marker = lines.index("<!-- snippet: docs/examples/auth_guards.py:guard -->") + 1

    (problem,) = snippets.check([page])
    assert problem.page == page and problem.line == marker
    assert "differs from docs/examples/auth_guards.py:guard" in problem.message
    assert '-            raise Reject(403, f"not a member of {room}")' in problem.message
    assert '+            raise Reject(404, f"not a member of {room}")' in problem.message

    assert snippets.write([page]) == []
    assert page.read_text() == (DOCS / "guards.md").read_text()


def test_the_checker_catches_a_missing_source_a_missing_section_and_an_include(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- snippet: docs/examples/no_such_file.py -->\n```python\n```\n\n"
        "<!-- snippet: docs/examples/auth_guards.py:no_such_section -->\n```python\n```\n\n"
        '```python\n--8<-- "docs/examples/echo.py"\n```\n'
    )
    problems = snippets.check([page])
    assert [(p.line, p.message) for p in problems] == [
        (1, "docs/examples/no_such_file.py: no file docs/examples/no_such_file.py"),
        (
            5,
            "docs/examples/auth_guards.py:no_such_section: no section 'no_such_section'"
            " (no `--8<-- [start:no_such_section]` line)",
        ),
        (10, "a `--8<--` include: `--write` inlines it behind a snippet marker"),
    ]
    assert snippets.main(["--check", str(page)]) == 1


def test_write_inlines_an_include_keeping_its_indentation(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text('??? example "echo"\n\n    ```html\n    --8<-- "docs/examples/echo.html"\n    ```\n')
    assert snippets.write([page]) == []
    lines = page.read_text().split("\n")
    assert lines[2:4] == ["    <!-- snippet: docs/examples/echo.html -->", "    ```html"]
    source = (DOCS / "examples" / "echo.html").read_text().rstrip("\n").split("\n")
    assert lines[4:-2] == [f"    {line}" if line else "" for line in source]
    assert lines[-2:] == ["    ```", ""]
    assert snippets.check([page]) == []


def test_sections_are_cut_as_pymdownx_snippets_cuts_them(tmp_path: Path) -> None:
    """The same lines as ``--8<-- "path:section"`` in mkdocs, for every marker in the guide
    and for a section nested in another, which no example has yet."""
    pytest.importorskip("pymdownx", reason="the docs extra is not installed")
    import markdown
    from pymdownx.snippets import SnippetExtension

    (tmp_path / "nested.py").write_text(
        "a = 0\n"
        "# --8<-- [start:outer]\n"
        "b = 1\n"
        "# --8<-- [start:inner]\n"
        "c = 2\n"
        "# --8<-- [end:inner]\n"
        "\n"
        "# --8<-- [end:outer]\n"
    )
    sources = [(ROOT, source) for _, source in snippets.markers(snippets.guide_pages())]
    sources += [(tmp_path, "nested.py"), (tmp_path, "nested.py:outer"), (tmp_path, "nested.py:inner")]
    for root, source in sources:
        extension = SnippetExtension(base_path=[str(root)], check_paths=True)
        preprocessor = markdown.Markdown(extensions=[extension]).preprocessors["snippet"]
        rendered = preprocessor.run([f'--8<-- "{source}"'])
        # Pygments drops a block's leading and trailing blank lines; so does the checker.
        while rendered and not rendered[-1]:
            rendered.pop()
        while rendered and not rendered[0]:
            rendered.pop(0)
        assert snippets.snippet_lines(source, root) == rendered, source
    assert snippets.snippet_lines("nested.py:outer", tmp_path) == ["b = 1", "c = 2"]


def test_a_source_whose_text_the_page_would_take_as_notation_is_refused(tmp_path: Path) -> None:
    # pymdownx shows an escaped marker unescaped; written into a page, that line would be
    # cut out by pymdownx.snippets again, so the checker refuses it instead of drifting.
    (tmp_path / "escaped.py").write_text("# ;--8<-- [start:shown]\nx = 1\n")
    for source in ("escaped.py", "escaped.py:shown"):
        with pytest.raises(snippets.SnippetError):
            snippets.snippet_lines(source, tmp_path)
