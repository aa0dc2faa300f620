"""README.md documents every variable the binaries read, in its Configuration table, has the
sections the deployment docs link to, and names only scripts that exist."""

from __future__ import annotations

import re

from rust_env import ADMIN, ALWAYS_SET, ROOT, SERVICES, vars_read_by


def test_configuration_table_lists_every_variable():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\|\s*`([A-Z][A-Z0-9_]*)`", section, re.MULTILINE))
    read = set().union(*(vars_read_by(p) for p in (*SERVICES, ADMIN))) | ALWAYS_SET
    assert not read - documented, f"add to README.md, Configuration: {sorted(read - documented)}"


def test_deployment_sections_exist():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for heading in ("## Deployment", "## Configuration", "## Scaling", "## Kafka console workflow"):
        assert f"\n{heading}\n" in readme, heading


def test_scripts_it_names_exist():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"(?<![\w/.])scripts/([A-Za-z0-9_.-]*[A-Za-z0-9_])", readme))
    missing = sorted(name for name in named if not (ROOT / "scripts" / name).exists())
    assert not missing, f"README.md names scripts that do not exist: {missing}"
