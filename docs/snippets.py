"""Keep the guide's code blocks equal to the files they show.

Each code block in ``docs/*.md`` that shows a real file is written out in the page, so it
reads on the repository's web view as on the site, and is preceded by a marker naming its
source, relative to the repository root, with an optional ``:section``::

    <!-- snippet: docs/examples/auth_guards.py:guard -->
    ```python title="docs/examples/auth_guards.py"
    ...the section's lines, verbatim...
    ```

A section is what pymdownx.snippets would include for ``--8<-- "path:section"``: the lines
between ``# --8<-- [start:section]`` and ``# --8<-- [end:section]``, without those two and
without the markers of any other section inside it. A whole file loses its section markers
the same way. Leading and trailing blank lines are left out (the rendered block has none).
The block keeps the marker's indentation (inside an admonition, say).

``python docs/snippets.py --check`` lists every block that differs from its source, every
marker whose file or section is missing, and every ``--8<--`` line left in a page (which
pymdownx.snippets, still on in mkdocs.yml, would replace by a file or drop); it exits 1 if
there is any. ``python docs/snippets.py --write`` rewrites the blocks from their
sources, and turns a fenced block that holds only an include into a marked block.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""The repository root: marker paths are relative to it (pymdownx.snippets' ``base_path``)."""

PAGES = ROOT / "docs"

MARKER = re.compile(r"^(?P<indent>[ \t]*)<!-- snippet: (?P<source>\S+?) -->[ \t]*$")
"""The line right before a block: ``<!-- snippet: path[:section] -->``."""

_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_SOURCE = re.compile(r"^(?P<path>[^:]+)(?::(?P<section>[a-z][-_0-9a-z]*))?$", re.IGNORECASE)

# pymdownx.snippets' own patterns (13.x), copied so the sections are cut where it cuts them.
_SECTION_MARK = re.compile(
    r"""(?xi)
    ^(?P<pre>.*?)
    (?<!;)(?!(?<=-)-)
    (?P<escape>;*)
    (?P<inline_marker>-{1,}8<-{1,}[ \t]+)
    (?P<section>\[[ \t]*(?P<type>start|end)[ \t]*:[ \t]*(?P<name>[a-z][-_0-9a-z]*)[ \t]*\])
    (?P<post>.*?)$
    """
)
_INCLUDE = re.compile(
    r"""(?x)
    ^(?P<space>[ \t]*)
    (?P<escape>;*)
    (?P<all>
        (?P<inline_marker>-{1,}8<-{1,}[ \t]+)
        (?P<snippet>(?:"(?:\\"|[^"\n\r])+?"|'(?:\\'|[^'\n\r])+?'))(?![ \t]) |
        (?P<block_marker>-{1,}8<-{1,})(?![ \t])
    )\r?$
    """
)


class SnippetError(Exception):
    """A marker whose source cannot be shown: no such file or section, or nested notation."""


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong in a page, at a 1-based line."""

    page: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{_display(self.page)}:{self.line}: {self.message}"


def _display(path: Path) -> str:
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def _section_mark(line: str) -> re.Match[str] | None:
    return _SECTION_MARK.match(line) if "8<-" in line else None


def _unescape(mark: re.Match[str]) -> str:
    return (
        mark.group("pre")
        + mark.group("escape").replace(";", "", 1)
        + mark.group("inline_marker")
        + mark.group("section")
        + mark.group("post")
    )


def _extract_section(lines: list[str], name: str, source: str) -> list[str]:
    """pymdownx.snippets' ``extract_section``: the loop keeps its quirks (a second start is
    ignored, an end before the start ends the search) so both tools cut the same lines."""
    kept: list[str] = []
    inside = found = False
    for line in lines:
        mark = _section_mark(line)
        if mark is not None and mark.group("escape"):
            line = _unescape(mark)
        elif mark is not None and mark.group("name") == name:
            if mark.group("type") == "start":
                inside = found = True
                continue
            break
        elif mark is not None and inside:
            continue
        if inside:
            kept.append(line)
    if not found:
        raise SnippetError(f"{source}: no section {name!r} (no `--8<-- [start:{name}]` line)")
    return kept


def _without_notation(lines: list[str], in_section: bool, source: str) -> list[str]:
    """What ``parse_snippets`` leaves of the selected lines, for files that nest no snippet."""
    kept: list[str] = []
    for line in lines:
        include = _INCLUDE.match(line)
        if include is not None:
            if not include.group("escape"):
                raise SnippetError(f"{source}: nested snippet notation is not supported: {line.strip()}")
            kept.append(line.replace(";", "", 1))
            continue
        mark = None if in_section else _section_mark(line)
        if mark is not None:
            if not mark.group("escape"):
                continue
            line = _unescape(mark)
        kept.append(line)
    return kept


def _trim(lines: list[str]) -> list[str]:
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    # A line of spaces is a blank line in any code block; the page never carries the spaces.
    return [line if line.strip() else "" for line in lines[start:end]]


def snippet_lines(source: str, root: Path = ROOT) -> list[str]:
    """The lines a block marked ``<!-- snippet: source -->`` must hold, without indentation.

    `source` is ``path`` or ``path:section``, relative to `root`. Raises `SnippetError` if
    the file or the section does not exist.
    """
    parsed = _SOURCE.match(source)
    if parsed is None:
        raise SnippetError(f"{source}: not `path` or `path:section`")
    path = root / parsed.group("path")
    if not path.is_file():
        raise SnippetError(f"{source}: no file {parsed.group('path')}")
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n") if text else []
    section = parsed.group("section")
    if section is not None:
        lines = _extract_section(lines, section, source)
    lines = _trim(_without_notation(lines, section is not None, source))
    for line in lines:
        # Written into the page, such a line would be taken by pymdownx.snippets, not shown.
        if _INCLUDE.match(line) or _section_mark(line):
            raise SnippetError(f"{source}: holds snippet notation the page cannot show: {line.strip()}")
    return lines


@dataclasses.dataclass
class _Block:
    marker: int  # index of the marker line
    indent: str
    source: str
    body: slice  # the lines between the fences
    fence: str


def _find_blocks(lines: list[str], page: Path) -> tuple[list[_Block], list[Problem]]:
    blocks: list[_Block] = []
    problems: list[Problem] = []
    for index, line in enumerate(lines):
        marker = MARKER.match(line)
        if marker is None:
            continue
        indent = marker.group("indent")
        opening = lines[index + 1] if index + 1 < len(lines) else ""
        fence = _FENCE.match(opening[len(indent) :]) if opening.startswith(indent) else None
        if fence is None:
            problems.append(Problem(page, index + 1, "a snippet marker must be followed by a code fence"))
            continue
        closing = re.compile(rf"^{re.escape(indent)}{fence.group('fence')}{fence.group('fence')[0]}*[ \t]*$")
        end = next((n for n in range(index + 2, len(lines)) if closing.match(lines[n])), None)
        if end is None:
            problems.append(Problem(page, index + 2, "the code fence after this marker is not closed"))
            continue
        body = slice(index + 2, end)
        blocks.append(_Block(index, indent, marker.group("source"), body, fence.group("fence")))
    return blocks, problems


def _body_of(block: _Block, lines: list[str]) -> list[str]:
    width = len(block.indent)
    return [line[width:] if line.strip() else "" for line in lines[block.body]]


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return len(stripped) >= len(fence) and set(stripped) == {fence[0]}


def _migrate_includes(lines: list[str], page: Path) -> tuple[list[str], list[Problem]]:
    """Put a marker before each fence that holds only ``--8<-- "source"``; the include line
    stays, as the body of a marked block, for the rewrite to replace."""
    out: list[str] = []
    problems: list[Problem] = []
    for index, line in enumerate(lines):
        out.append(line)
        include = _INCLUDE.match(line)
        if include is None or include.group("escape"):
            continue
        indent = include.group("space")
        before = lines[index - 1][len(indent) :] if index and lines[index - 1].startswith(indent) else ""
        after = lines[index + 1] if index + 1 < len(lines) else ""
        fence = _FENCE.match(before)
        alone = (
            fence is not None
            and include.group("snippet") is not None
            and after.startswith(indent)
            and _closes(after[len(indent) :], fence.group("fence"))
        )
        if not alone:
            problems.append(Problem(page, index + 1, "an include not alone in a fence: inline it by hand"))
        elif len(out) < 3 or MARKER.match(out[-3]) is None:
            out.insert(len(out) - 2, f"{indent}<!-- snippet: {include.group('snippet')[1:-1].strip()} -->")
    return out, problems


def _leftover_notation(lines: list[str], page: Path) -> list[Problem]:
    problems: list[Problem] = []
    for number, line in enumerate(lines, 1):
        include = _INCLUDE.match(line)
        mark = _section_mark(line)
        if include is not None and not include.group("escape"):
            message = "a `--8<--` include: `--write` inlines it behind a snippet marker"
        elif mark is not None and not mark.group("escape"):
            message = "pymdownx.snippets drops this line from the site (`;--8<--` would show it)"
        else:
            continue
        problems.append(Problem(page, number, message))
    return problems


def _process(page: Path, root: Path, write: bool) -> list[Problem]:
    text = page.read_text(encoding="utf-8")
    lines = text.split("\n")
    problems: list[Problem] = []
    if write:
        lines, problems = _migrate_includes(lines, page)
    blocks, found = _find_blocks(lines, page)
    problems += found
    for block in reversed(blocks):  # from the end, so earlier slices stay valid while rewriting
        try:
            expected = snippet_lines(block.source, root)
        except SnippetError as exc:
            problems.append(Problem(page, block.marker + 1, str(exc)))
            continue
        if any(_closes(line, block.fence) for line in expected):
            problems.append(Problem(page, block.marker + 1, f"{block.source}: lengthen the code fence"))
            continue
        actual = _body_of(block, lines)
        if actual == expected:
            continue
        if write:
            lines[block.body] = [block.indent + line if line else "" for line in expected]
            continue
        diff = difflib.unified_diff(expected, actual, block.source, _display(page), lineterm="", n=1)
        detail = "\n".join(f"    {line}" for line in list(diff)[2:])
        problems.append(Problem(page, block.marker + 1, f"differs from {block.source}:\n{detail}"))
    problems += _leftover_notation(lines, page)
    if write:
        new = "\n".join(lines)
        if new != text:
            page.write_text(new, encoding="utf-8")
    return sorted(problems, key=lambda problem: (str(problem.page), problem.line))


def check(pages: Iterable[Path], root: Path = ROOT) -> list[Problem]:
    """Every marked block in `pages` that differs from its source, every marker whose source
    is missing, and every ``--8<--`` include left in them. Changes nothing."""
    return [problem for page in pages for problem in _process(page, root, write=False)]


def write(pages: Iterable[Path], root: Path = ROOT) -> list[Problem]:
    """Rewrite the marked blocks of `pages` from their sources (and inline the includes that
    are alone in a fence); return what could not be fixed."""
    return [problem for page in pages for problem in _process(page, root, write=True)]


def markers(pages: Iterable[Path]) -> list[tuple[Path, str]]:
    """Every ``(page, source)`` marked in `pages`, in page order."""
    return [
        (page, marker.group("source"))
        for page in pages
        for line in page.read_text(encoding="utf-8").split("\n")
        if (marker := MARKER.match(line)) is not None
    ]


def guide_pages() -> list[Path]:
    """The guide's pages: ``docs/*.md``."""
    return sorted(PAGES.glob("*.md"))


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="list the blocks that differ; exit 1 if any")
    mode.add_argument("--write", action="store_true", help="rewrite the blocks from their sources")
    parser.add_argument("pages", nargs="*", type=Path, help="pages (default: docs/*.md)")
    args = parser.parse_args(argv)
    pages = args.pages or guide_pages()
    problems = write(pages) if args.write else check(pages)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems and args.check:
        print("run `python docs/snippets.py --write` to copy the sources in", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
