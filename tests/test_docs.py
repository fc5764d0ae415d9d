"""The project's documentation: nothing in the repository points outside it."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The directories and files a clone holds (build outputs and caches left out).
SOURCE_DIRS = ("cpp", "python", "tests", "benchmarks", "examples", "docs", "tools", ".ci", ".github")
SOURCE_FILES = ("README.md", "CHANGELOG.md", "CMakeLists.txt", "pyproject.toml")
TEXT_SUFFIXES = {".py", ".pyi", ".cpp", ".h", ".cu", ".cuh", ".md", ".txt", ".toml", ".cfg", ".sh", ".yml",
                 ".yaml", ".rst", ".css", ".html", ""}
# A design document that is not the project's own, or a path that leaves the repository.
OUTSIDE = re.compile(r"\.\./shared|(?<![\w/])DESIGN\.md|BENCHMARKS\.md|STYLE\.md")


def _source_files():
    for name in SOURCE_FILES:
        if (ROOT / name).is_file():
            yield ROOT / name
    for d in SOURCE_DIRS:
        base = ROOT / d
        if not base.is_dir():
            continue
        for path in base.rglob("*"):
            if path.is_file() and path.suffix in TEXT_SUFFIXES and "_build" not in path.parts \
                    and "__pycache__" not in path.parts:
                yield path


def test_nothing_points_outside_the_repository():
    offenders = []
    for path in _source_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "cite docs/design.md or docs/performance.md instead:\n" + "\n".join(offenders)


def test_design_doc_names_what_the_code_cites():
    design = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    # Section names that comments quote must exist as headings.
    headings = {line.lstrip("#").strip() for line in design.splitlines() if line.startswith("#")}
    for cited in ("The Philox stream contract", "Determinism", "Errors", "How sparse execution chooses its path",
                  "Layers of the code"):
        assert cited in headings, cited
    quoted = set()
    for path in _source_files():
        if path.suffix in {".cpp", ".h", ".py", ".cu"}:
            quoted.update(re.findall(r'docs/design\.md, "([^"]+)"', path.read_text(encoding="utf-8")))
    assert quoted, "expected comments quoting sections of docs/design.md"
    assert quoted <= headings, f"comments quote sections docs/design.md does not have: {quoted - headings}"
