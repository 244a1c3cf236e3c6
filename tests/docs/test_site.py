"""The documentation site: it builds with warnings as errors, and what the code cites in docs/ exists.

`mkdocs build --strict` fails on a link to a missing page or anchor, a page
left out of the nav and a nav entry without its page (mkdocs.yml's
`validation`), so a broken link fails `make test`, not a reader.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from markdown.extensions.toc import slugify

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
# Where the code, the ops files and the README cite docs/ pages.
CITING = (
    *("beastflow", "tenants", "engines", "healing", "callbacks", "console", "scheduling", "retention", "simulator"),
    *("strategies", "observability", "bench", "tools", "ops", "deploy", "tests", "templates", "examples", "sdk"),
)
TEXT_SUFFIXES = {".py", ".yml", ".yaml", ".md", ".html", ".toml", ".json"}
PAGE_CITATION = re.compile(r"(?<![\w/.-])docs/([a-z0-9/_-]+\.md)(#[a-z0-9_-]+)?")
SECTION_CITATION = re.compile(r"(?<![\w/.-])docs/([a-z0-9/_-]+\.md) ?§ ?(\d+(?:\.\d+)*)")
NUMBERED_HEADING = re.compile(r"^#{2,4} (\d+(?:\.\d+)*)\.? ", re.MULTILINE)


def _cited_files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "Makefile", ROOT / "docker-compose.yml"]
    for folder in CITING:
        files += [p for p in (ROOT / folder).rglob("*") if p.suffix in TEXT_SUFFIXES and p.is_file()]
    return [p for p in files if p.exists() and ".venv" not in p.parts and "node_modules" not in p.parts]


def _anchors(page: Path) -> set[str]:
    """The heading anchors MkDocs gives a page (the toc extension's default slugify)."""
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.MULTILINE | re.DOTALL)
    headings = re.findall(r"^#{1,6} (.+?)\s*$", text, flags=re.MULTILINE)
    return {slugify(re.sub(r"[`*]", "", heading), "-") for heading in headings}


def test_the_site_builds_with_warnings_as_errors(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    assert (tmp_path / "site" / "index.html").exists()
    assert (tmp_path / "site" / "contract" / "index.html").exists()


def test_every_docs_page_the_code_cites_exists_with_its_anchor() -> None:
    missing = []
    for path in _cited_files():
        for page, anchor in PAGE_CITATION.findall(path.read_text(errors="replace")):
            target = DOCS / page
            if not target.exists():
                missing.append(f"{path.relative_to(ROOT)}: docs/{page}")
            elif anchor and anchor[1:] not in _anchors(target):
                missing.append(f"{path.relative_to(ROOT)}: docs/{page}{anchor}")
    assert not missing, missing


def test_every_numbered_section_the_code_cites_exists() -> None:
    missing = []
    for path in _cited_files():
        for page, number in SECTION_CITATION.findall(path.read_text(errors="replace")):
            target = DOCS / page
            numbers = set(NUMBERED_HEADING.findall(target.read_text())) if target.exists() else set()
            if number not in numbers:
                missing.append(f"{path.relative_to(ROOT)}: docs/{page} §{number}")
    assert not missing, missing


def test_nothing_cites_a_document_outside_the_repository() -> None:
    outside = re.compile(r"CONTRACT(\.md)? ?§|(DESIGN|STACK|STYLE|CONTRACT)\.md|\.\./shared|/shared/")
    here = Path(__file__).resolve()
    citing = [p for p in [*DOCS.rglob("*.md"), *_cited_files()] if p.resolve() != here]
    found = [
        where
        for p in citing
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if outside.search(line)
        for where in [f"{p.relative_to(ROOT)}:{n}: {line.strip()}"]
    ]
    assert not found, found


def test_every_environment_variable_the_service_reads_is_documented() -> None:
    read = re.compile(
        r"(?:env_(?:str|int|float|bool|list)\(\s*|os\.environ\.get\(\s*|os\.environ\[\s*|os\.getenv\(\s*"
        r"|environ\.setdefault\(\s*)\"(BEASTFLOW_[A-Z0-9_]+)\""
    )
    service = ["beastflow", "tenants", "engines", "healing", "callbacks", "console", "scheduling", "retention"]
    service += ["observability", "strategies", "simulator"]
    names = {
        match.group(1): str(path.relative_to(ROOT))
        for folder in service
        for path in (ROOT / folder).rglob("*.py")
        for match in read.finditer(path.read_text())
    }
    documented = (ROOT / "README.md").read_text() + "".join(p.read_text() for p in DOCS.rglob("*.md"))
    assert len(names) >= 40
    missing = {name: where for name, where in names.items() if name not in documented}
    assert not missing, f"read from the environment but in no docs/ page (docs/operations.md#configuration): {missing}"
