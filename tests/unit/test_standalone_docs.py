"""The repository stands alone: README, docs, CHANGELOG, code and tests say what they mean.

A reader of the repository has none of the project's internal documents (the product
contract, the style guide, the vendor notes, the source documents), so no text may send them
there. Links to files inside the repository must resolve.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# What sends a reader outside the repository, and a word on what to write instead.
FORBIDDEN: tuple[tuple[str, str], ...] = (
    (r"\bSPEC\b", "the product contract: say what it requires in place"),
    (r"\bSTYLE\b\s*(§|\.md|stack)", "the style guide: say why in place"),
    (r"VENDORS\.md", "the vendor notes: link docs/vendors.md"),
    (r"\.\./shared", "a directory outside the repository"),
    (r"\bseeds?\s*/", "a source document: name the vendor's guide"),
    (r"\bseeds?\s+0\d\d\b", "a source document: name the vendor's guide"),
    (r"\bseeds?'", "a source document: name the vendor's guide"),
    (r"\bthe seeds?\b(?!\s+(gives|of the|number|=))", "a source document: name the vendor's guide"),
)
_PATTERN = re.compile("|".join(f"(?:{p})" for p, _ in FORBIDDEN))


def _texts() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]
    files += sorted((ROOT / "callhook").rglob("*.py"))
    # The benchmarks (their README is the record of results), the deployment examples
    # and the Makefile are read by the people who run and maintain callhook too.
    files += sorted(p for p in (ROOT / "bench").rglob("*") if p.suffix in {".py", ".md"})
    files += sorted(p for p in (ROOT / "deploy").rglob("*") if p.is_file())
    files.append(ROOT / "Makefile")
    # The tests too (except this file, whose examples are what it must catch).
    files += sorted(p for p in (ROOT / "tests").rglob("*.py") if p.name != Path(__file__).name)
    files += sorted(
        p
        for p in (ROOT / "callhook").rglob("*")
        if p.suffix in {".html", ".js", ".css", ".toml"} and "vendor" not in p.parts
    )
    return files


def offending_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line that refers a reader outside the repository."""
    return [(n, line) for n, line in enumerate(text.splitlines(), 1) if _PATTERN.search(line)]


@pytest.mark.parametrize(
    "line",
    [
        "answers 414 (SPEC §1).",
        "see also `VENDORS.md` in ../shared",
        "Wire format: seeds/002 (PortSIP)",
        "(seed 003: request method)",
        "keys in the seed's order",
        "Grandstream phones take the seeds' format",
        "Retry and give-up are types (STYLE §7)",
        "Rules of the seed: an extension follows itself",
    ],
)
def test_pattern_catches_outside_references(line: str) -> None:
    assert offending_lines(line) == [(1, line)]


@pytest.mark.parametrize(
    "line",
    [
        "the same seed gives the same calls, step for step",
        "`--seed 1` replays the day",
        "importlib.util.spec_from_file_location",
        "The OpenAPI spec is at /openapi.json",
        "a seeded RNG",
    ],
)
def test_pattern_leaves_ordinary_words(line: str) -> None:
    assert offending_lines(line) == []


def test_no_text_refers_readers_outside_the_repository() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in _texts()
        for n, line in offending_lines(path.read_text(encoding="utf-8"))
    ]
    assert not found, "refers readers outside the repository:\n" + "\n".join(found)


_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_relative_links_in_docs_resolve() -> None:
    broken = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in _LINK.findall(doc.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(ROOT)} -> {target}")
    assert not broken, f"links to missing files: {broken}"
