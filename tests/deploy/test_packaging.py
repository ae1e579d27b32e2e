"""Each service is a pip-installable src-layout package that `make install` can install."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = {
    "common": "flashsight_common",
    "modelserver": "modelserver",
    "vision": "vision",
    "reasoner": "reasoner",
    "gateway": "gateway",
}
RUNNABLE = ("vision", "reasoner", "gateway")


@pytest.mark.parametrize("service", PACKAGES)
def test_pyproject_is_valid_toml_with_a_src_layout(service: str) -> None:
    path = REPO / "services" / service / "pyproject.toml"
    data = tomllib.loads(path.read_text())  # pip refuses a file tomllib refuses (e.g. a table declared twice)
    assert data["project"]["name"] == f"flashsight-{service}"
    assert data["tool"]["setuptools"]["packages"]["find"]["where"] == ["src"]
    assert (REPO / "services" / service / "src" / PACKAGES[service] / "__init__.py").is_file()


@pytest.mark.parametrize("service", RUNNABLE)
def test_service_runs_as_python_dash_m(service: str) -> None:
    assert (REPO / "services" / service / "src" / service / "__main__.py").is_file()


def test_no_service_asks_for_an_unpinned_torch_build_first() -> None:
    # torch is installed first at 2.13.0 (CPU) by the Makefile; a requirement it does not
    # satisfy would make pip fetch a multi-GB CUDA build.
    for path in (REPO / "services").glob("*/pyproject.toml"):
        for spec in re.findall(r'"torch([^"]*)"', path.read_text()):
            assert not spec.startswith(("==", ">2.13", ">=2.14")), f"{path}: torch{spec}"


@pytest.mark.parametrize("service", PACKAGES)
def test_every_data_file_is_declared_package_data(service: str) -> None:
    # Editable installs (make run) read files from the checkout; the Docker images install
    # the package for real, where an undeclared file (keywords.toml, static/) goes missing.
    root = REPO / "services" / service / "src"
    data = tomllib.loads((root.parent / "pyproject.toml").read_text())
    declared = data.get("tool", {}).get("setuptools", {}).get("package-data", {})
    for path in root.rglob("*"):
        if not path.is_file() or path.suffix in {".py", ".pyc"} or ".egg-info" in str(path):
            continue
        package, relative = path.relative_to(root).parts[0], path.relative_to(root / PACKAGES[service])
        patterns = declared.get(package, []) + declared.get("*", [])
        assert any(fnmatch.fnmatch(str(relative), p) for p in patterns), f"{path} is not package data"
