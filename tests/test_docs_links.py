"""Every relative link and `#anchor` in README.md and docs/ resolves, with GitHub's heading slugs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_ANCHOR = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"", re.IGNORECASE)
INLINE_CODE = re.compile(r"(`+).*?\1")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto:, ...


def doc_files() -> list[Path]:
    """README.md and every Markdown file under docs/."""
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line outside fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: link text kept, lowercase, punctuation dropped, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)  # \w: letters, digits and '_' in any script
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors a Markdown file has: its headings' slugs (repeats get -1, -2, ...) and <a id=...>."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        found.update(HTML_ANCHOR.findall(line))
        match = HEADING.match(line)
        if match:
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every link in the file's prose (code spans and blocks left out)."""
    found = []
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        for match in LINK.finditer(INLINE_CODE.sub("", line)):
            found.append((number, match.group(1)))
    return found


def broken_links(files: list[Path]) -> list[str]:
    """One message per relative link or anchor in `files` that does not resolve."""
    problems, cache = [], {}

    def anchors_of(path: Path) -> set[str]:
        if path not in cache:
            cache[path] = anchors(path)
        return cache[path]

    for path in files:
        for number, target in links(path):
            if EXTERNAL.match(target):
                continue
            where = f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path}:{number}: ({target})"
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            if not linked.exists():
                problems.append(f"{where} {file_part} does not exist")
            elif anchor and linked.suffix != ".md":
                problems.append(f"{where} an anchor into {linked.name}, which is not Markdown")
            elif anchor and anchor not in anchors_of(linked):
                problems.append(f"{where} no heading with anchor #{anchor} in {linked.name}")
    return problems


def test_every_link_and_anchor_in_the_readme_and_docs_resolves():
    files = doc_files()
    assert len(files) > 5, files  # the README and the docs/ reference are there
    assert broken_links(files) == []


def test_every_page_of_docs_is_in_its_index():
    index = REPO / "docs" / "README.md"
    listed = {(index.parent / target.partition("#")[0]).resolve() for _, target in links(index)}
    pages = {path.resolve() for path in (REPO / "docs").glob("*.md") if path != index}
    assert sorted(p.name for p in pages - listed) == []


def test_the_readme_links_to_the_docs_index():
    assert "docs/README.md" in {target.partition("#")[0] for _, target in links(REPO / "README.md")}


def test_no_page_sends_users_to_a_folder_they_do_not_have():
    """`../shared/data` is the workplace's folder, not in a user's clone: docs say `seqbench download`."""
    for path in doc_files():
        assert "../shared/data" not in path.read_text(encoding="utf-8"), path


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Quickstart", "quickstart"),
        ("Language models (task: lm)", "language-models-task-lm"),
        ("Beyond chance: the Diebold-Mariano test (`dm_p`)", "beyond-chance-the-diebold-mariano-test-dm_p"),
        ("Results on ETTh1 (`results/ett.md`, `ett.png`)", "results-on-etth1-resultsettmd-ettpng"),
        ("What metrics.json records", "what-metricsjson-records"),
        ("Seeds and sweeps", "seeds-and-sweeps"),
        ("seqbench in CI", "seqbench-in-ci"),
        ("A [linked](x.md) heading", "a-linked-heading"),
        ("Two  spaces", "two--spaces"),
    ],
)
def test_slug_follows_github(heading, anchor):
    assert slug(heading) == anchor


def test_the_checker_finds_each_kind_of_broken_link(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "other.md").write_text("# Other page\n\n## Same\n\n## Same\n")
    (tmp_path / "data.csv").write_text("a\n1\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n"
        "## Can the result be trusted?\n\n"
        "Good: [up](#page), [trust](#can-the-result-be-trusted), [other](sub/other.md),\n"
        "[other's](sub/other.md#other-page), [repeat](sub/other.md#same-1), [csv](data.csv),\n"
        "[web](https://example.com/#nowhere), `[code](nowhere.md)`.\n\n"
        "Bad: [gone](missing.md), [typo](#can-the-result-be-trusted-), [deep](sub/other.md#nope),\n"
        "[third](sub/other.md#same-2), [into csv](data.csv#a).\n\n"
        "```\n[in a block](also-missing.md)\n```\n"
    )
    problems = broken_links([page])
    assert [p.split(": (")[1].split(")")[0] for p in problems] == [
        "missing.md",
        "#can-the-result-be-trusted-",
        "sub/other.md#nope",
        "sub/other.md#same-2",
        "data.csv#a",
    ]
    assert [p.split(": (")[0].rsplit(":", 1)[1] for p in problems] == ["9", "9", "9", "10", "10"]
