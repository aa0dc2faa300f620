"""The environment variables the Rust code reads, found by parsing its sources.

Configuration is read through `pollstream_infra::env::Vars` (`required`, `or_default`,
`parsed_or`, `ranged_or`) or, for logging, `std::env::var` and tracing's `EnvFilter` (which
reads RUST_LOG). Parsing the sources keeps the deployment checks true as variables are added:
a new variable that is not set in compose or Kubernetes fails the suite.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_VARS_CALL = re.compile(
    r"\.\s*(?:required|or_default|parsed_or|ranged_or)\s*(?:::\s*<[^>]*>\s*)?\(\s*\"([A-Z][A-Z0-9_]*)\""
)
_STD_ENV = re.compile(r"env::var(?:_os)?\s*\(\s*\"([A-Z][A-Z0-9_]*)\"")
_ENV_FILTER_DEFAULT = re.compile(r"EnvFilter::(?:try_)?from_default_env\s*\(")
_TEST_MODULE = re.compile(r"^\s*#\[cfg\(test\)\]", re.MULTILINE)


def _strip_comments(source: str) -> str:
    source = re.sub(r"/\*.*?\*/", "", source, flags=re.DOTALL)
    return re.sub(r"//[^\n]*", "", source)


def vars_in_source(source: str) -> set[str]:
    """Variables read by one Rust file, ignoring comments and its `#[cfg(test)]` tail."""
    match = _TEST_MODULE.search(source)
    if match:
        source = source[: match.start()]
    source = _strip_comments(source)
    found = set(_VARS_CALL.findall(source)) | set(_STD_ENV.findall(source))
    if _ENV_FILTER_DEFAULT.search(source):
        found.add("RUST_LOG")
    return found


def _module_of(crate_src: Path, file: Path) -> str | None:
    """Top-level module a file belongs to (`src/jwt.rs` -> `jwt`); None for the crate root."""
    parts = file.relative_to(crate_src).with_suffix("").parts
    if parts[0] in ("lib", "main"):
        return None
    return parts[0]


@dataclass
class Crate:
    name: str
    path: Path
    deps: set[str] = field(default_factory=set)

    @property
    def rust_name(self) -> str:
        return self.name.replace("-", "_")

    def sources(self) -> list[Path]:
        return sorted((self.path / "src").rglob("*.rs"))

    def vars_by_module(self) -> dict[str | None, set[str]]:
        found: dict[str | None, set[str]] = {}
        for file in self.sources():
            names = vars_in_source(file.read_text(encoding="utf-8"))
            if names:
                found.setdefault(_module_of(self.path / "src", file), set()).update(names)
        return found


def workspace() -> dict[str, Crate]:
    """Workspace members by package name, with their (normal) workspace dependencies."""
    manifest = tomllib.loads((ROOT / "Cargo.toml").read_text(encoding="utf-8"))
    crates: dict[str, Crate] = {}
    for member in manifest["workspace"]["members"]:
        path = ROOT / member
        package = tomllib.loads((path / "Cargo.toml").read_text(encoding="utf-8"))
        name = package["package"]["name"]
        crates[name] = Crate(name=name, path=path, deps=set(package.get("dependencies", {})))
    for crate in crates.values():
        crate.deps &= set(crates)
    return crates


def _closure(crates: dict[str, Crate], package: str) -> list[Crate]:
    seen: dict[str, Crate] = {}
    todo = [package]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen[name] = crates[name]
            todo.extend(crates[name].deps)
    return list(seen.values())


def vars_read_by(package: str) -> set[str]:
    """Every variable a binary reads: its own crate's, plus those of each workspace-library
    module it (or a library it uses) refers to by path, e.g. `pollstream_infra::jwt::...`
    brings in what `libs/infra/src/jwt.rs` reads. A library's root file counts for every user.
    """
    crates = workspace()
    closure = _closure(crates, package)
    text = "\n".join(
        _strip_comments(file.read_text(encoding="utf-8"))
        for crate in closure
        for file in crate.sources()
    )
    found: set[str] = set()
    for crate in closure:
        for module, names in crate.vars_by_module().items():
            if crate.name == package or module is None:
                found |= names
                continue
            # `pollstream_infra::jwt::X` or `use pollstream_infra::{env, jwt::X}`.
            direct = re.compile(rf"\b{crate.rust_name}::{module}\b")
            grouped = re.compile(rf"\b{crate.rust_name}::\{{[^}}]*\b{module}\b")
            if direct.search(text) or grouped.search(text):
                found |= names
    return found


SERVICES = ("voting-api", "poll-aggregator", "realtime-service")
ADMIN = "pollstream-admin"
# Set for every service since the deployment files were written (bdfb5d8), before
# `pollstream_infra::telemetry` read it (d2204e4). The parser finds that read now; listing it
# keeps the variable required should the read move where the parser cannot see it (the
# OpenTelemetry exporter reads the same variable from the environment by itself).
ALWAYS_SET = {"OTEL_EXPORTER_OTLP_ENDPOINT"}
