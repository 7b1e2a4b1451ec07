"""docs/ARCHITECTURE.md is the document the code cites: every citation names one of its sections by number and
title ("docs/ARCHITECTURE.md §3.3 Grid modes"), and nothing cites the design notes that live outside the
repository."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
TEXT_SUFFIXES = {".py", ".md", ".toml", ".txt", ".json", ".cjs", ".cfg", ".ini"}
SKIPPED_DIRS = {".git", "__pycache__", ".pytest_cache", "node_modules"}
HEADING = re.compile(r"^#{2,3} (\d+(?:\.\d+)*)\.? (.+?)\s*$", re.M)
SECTION_REF = re.compile(r"§(\d+(?:\.\d+)*)")


def sections(text: str) -> dict[str, str]:
    """Section number -> title, from the document's numbered headings."""
    return {number: title for number, title in HEADING.findall(text)}


def repository_files():
    for path in sorted(ROOT.rglob("*")):
        if path.is_file() and path.suffix in TEXT_SUFFIXES and not SKIPPED_DIRS & set(path.relative_to(ROOT).parts):
            yield path


def citation_problems(text: str, known: dict[str, str], where: str) -> list[str]:
    """Every `§N Title` after `ARCHITECTURE.md` on a line must name section N and start with its title."""
    problems = []
    for number, line in enumerate(text.splitlines(), 1):
        start = line.find("ARCHITECTURE.md")
        if start < 0:
            continue
        for ref in SECTION_REF.finditer(line, start):
            section, after = ref.group(1), line[ref.end():]
            if section not in known:
                problems.append(f"{where}:{number}: §{section} is not a section of docs/ARCHITECTURE.md")
            elif not after.startswith(" " + known[section]):
                problems.append(f"{where}:{number}: §{section} is '{known[section]}', cited as "
                                f"'§{section}{after[:len(known[section]) + 1]}'")
    return problems


def test_the_document_numbers_its_sections_once():
    numbers = [number for number, _ in HEADING.findall(ARCHITECTURE.read_text(encoding="utf-8"))]
    assert len(numbers) == len(set(numbers)) and len(numbers) >= 16
    assert {"1", "2", "3", "3.1", "3.2", "3.3", "4", "5", "6", "7", "8", "9"} <= set(numbers)


def test_every_citation_names_an_existing_section_by_number_and_title():
    known = sections(ARCHITECTURE.read_text(encoding="utf-8"))
    problems, cited = [], 0
    for path in repository_files():
        if path in (ARCHITECTURE, Path(__file__).resolve()):   # this file's examples cite wrongly on purpose
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        cited += text.count("ARCHITECTURE.md §")
        problems += citation_problems(text, known, str(path.relative_to(ROOT)))
    assert not problems, "\n".join(problems)
    assert cited > 20   # the code does cite it: the check above is not vacuous


def test_references_inside_the_document_resolve():
    text = ARCHITECTURE.read_text(encoding="utf-8")
    known = sections(text)
    missing = sorted({ref for ref in SECTION_REF.findall(text) if ref not in known})
    assert not missing, f"docs/ARCHITECTURE.md refers to sections it does not have: {missing}"
    for title_ref in re.finditer(r"§(\d+(?:\.\d+)*) ([A-Z][a-z]+(?: [a-z]+)*)", text):
        number, words = title_ref.groups()
        assert known[number].startswith(words) or not words[0].isupper(), (number, words)


def test_the_checker_catches_bad_citations():
    known = {"3.3": "Grid modes", "7": "Attention and memory"}
    assert citation_problems("see docs/ARCHITECTURE.md §3.3 Grid modes, §7 Attention and memory", known, "x") == []
    assert len(citation_problems("see docs/ARCHITECTURE.md §3.3 Grid layouts", known, "x")) == 1
    assert len(citation_problems("see docs/ARCHITECTURE.md §5 LoRA", known, "x")) == 1


def test_nothing_cites_the_design_notes_outside_the_repository():
    bad = [str(path.relative_to(ROOT)) for path in repository_files()
           if re.search(r"DESIGN(\.md)? ?§|DESIGN\.md", path.read_text(encoding="utf-8", errors="replace"))]
    assert not bad, f"cite docs/ARCHITECTURE.md instead of the design notes: {bad}"
