"""Shared fixtures for the deployment checks: the repository root, the parsed compose file,
the rendered Kubernetes overlays."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from rust_env import ROOT

OVERLAYS = ("dev", "prod")


def kustomize_command() -> list[str]:
    """`kubectl kustomize`, or a standalone `kustomize build`; the suite fails without one."""
    kubectl = shutil.which("kubectl")
    if kubectl:
        probe = subprocess.run([kubectl, "kustomize", "--help"], capture_output=True, text=True)
        if probe.returncode == 0:
            return [kubectl, "kustomize"]
    kustomize = shutil.which("kustomize")
    if kustomize:
        return [kustomize, "build"]
    pytest.fail(
        "neither `kubectl` (with its built-in kustomize) nor `kustomize` is on PATH: install "
        "kubectl, which these machines' image ships, to render k8s/overlays"
    )


def render(path: Path) -> list[dict]:
    result = subprocess.run(
        [*kustomize_command(), str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"kustomize failed on {path}:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict]]:
    """Every overlay rendered once per run: {overlay: [objects]}."""
    return {name: render(ROOT / "k8s" / "overlays" / name) for name in OVERLAYS}


@pytest.fixture(scope="session")
def compose_raw() -> dict:
    with open(ROOT / "docker-compose.yml", encoding="utf-8") as file:
        return yaml.safe_load(file)


@pytest.fixture(scope="session")
def secret_template() -> dict:
    with open(ROOT / "k8s" / "base" / "secret.template.yaml", encoding="utf-8") as file:
        return yaml.safe_load(file)
