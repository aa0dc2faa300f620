"""The docs: README.md is a short front door that reaches every page of docs/; docs/operations.md
documents every variable the binaries read, in its Configuration table, and has the sections the
deployment files point to; the docs name only scripts that exist, their links and anchors
resolve, and nothing tracked cites an issue number."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from rust_env import ADMIN, ALWAYS_SET, ROOT, SERVICES, vars_read_by

README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
# Every Markdown page of the repository whose links are checked.
PAGES = [README, *DOCS, ROOT / "BENCHMARKS.md", ROOT / "web" / "README.md"]
# A newcomer reads the README whole; past this it stops being a front door.
README_MAX_LINES = 200
# Sections other files point to by name (compose, k8s/, the e2e tests), each with its page.
SECTIONS = {
    "docs/operations.md": (
        "## Running it locally",
        "## Other scripts",
        "## Deployment",
        "## Configuration",
        "## Scaling",
        "## Kafka console workflow",
    ),
    "docs/architecture.md": (
        "## A vote's journey",
        "## Kafka topics and their keys",
        "## The guarantees",
        "### One vote per voter, even when Redis forgets",
        "## Where each rule lives",
    ),
    "docs/api.md": ("## HTTP", "## Socket.IO"),
}
# Lockfiles are generated and full of version strings; nothing in them is written by people.
LOCKFILES = {"Cargo.lock", "package-lock.json"}
ISSUE_NUMBER = re.compile(r"\bissues? \d+", re.IGNORECASE)

_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def _prose(text: str) -> str:
    """The text outside code blocks, where a `# comment` is no heading and `[a](b)` no link."""
    return _FENCE.sub("", text)


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`([^`]*)`", r"\1", heading).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of `page`, repeated headings numbered as GitHub numbers them."""
    found: set[str] = set()
    for heading in _HEADING.findall(_prose(page.read_text(encoding="utf-8"))):
        slug, n = _slug(heading), 0
        while (slug if n == 0 else f"{slug}-{n}") in found:
            n += 1
        found.add(slug if n == 0 else f"{slug}-{n}")
    return found


def relative_links(page: Path) -> list[str]:
    """The link targets of `page` that point into the repository (no scheme, not mailto)."""
    prose = _INLINE_CODE.sub("", _prose(page.read_text(encoding="utf-8")))
    return [t for t in _LINK.findall(prose) if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]


def test_readme_is_a_short_front_door():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail to docs/"


def test_readme_reaches_every_page_and_section():
    targets = set(relative_links(README))
    pages = {t.split("#", 1)[0] for t in targets}
    missing = [f"docs/{p.name}" for p in DOCS if f"docs/{p.name}" not in pages]
    assert not missing, f"README.md does not link to {missing}"
    for page, headings in SECTIONS.items():
        for heading in headings:
            if heading.startswith("## "):
                link = f"{page}#{_slug(heading.lstrip('# '))}"
                assert link in targets, f"README.md does not link to {link}"


def test_links_and_anchors_resolve():
    broken = []
    for page in PAGES:
        for target in relative_links(page):
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and (file.suffix != ".md" or anchor not in anchors(file)):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_configuration_table_lists_every_variable():
    operations = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    section = operations.split("\n## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\|\s*`([A-Z][A-Z0-9_]*)`", section, re.MULTILINE))
    read = set().union(*(vars_read_by(p) for p in (*SERVICES, ADMIN))) | ALWAYS_SET
    assert not read - documented, f"add to docs/operations.md, Configuration: {sorted(read - documented)}"


def test_sections_other_files_point_to_exist():
    for page, headings in SECTIONS.items():
        text = (ROOT / page).read_text(encoding="utf-8")
        for heading in headings:
            assert f"\n{heading}\n" in text, f"{page}: {heading}"


def test_scripts_they_name_exist():
    for page in (README, *DOCS):
        text = page.read_text(encoding="utf-8")
        named = set(re.findall(r"(?<![\w/.])scripts/([A-Za-z0-9_.-]*[A-Za-z0-9_])", text))
        missing = sorted(name for name in named if not (ROOT / "scripts" / name).exists())
        assert not missing, f"{page.relative_to(ROOT)} names scripts that do not exist: {missing}"


def test_nothing_tracked_cites_an_issue_number():
    # The tracker is not part of the repository: a comment or doc says the reason, or the commit.
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True
    ).stdout.decode().split("\0")
    cited = []
    for name in filter(None, tracked):
        path = ROOT / name
        if path.name in LOCKFILES or not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", errors="ignore")
        cited += [
            f"{name}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
            for m in ISSUE_NUMBER.finditer(text)
        ]
    assert not cited, "cite the reason or the commit instead:\n" + "\n".join(cited)
