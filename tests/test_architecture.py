"""The shape of the code base: dependencies point one way, and the gateway's tree reads at a glance."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SERVICES = REPO_ROOT / "services"
GATEWAY = SERVICES / "gateway" / "src" / "gateway"


def _python_files(folder: Path) -> Iterator[Path]:
    yield from (p for p in folder.rglob("*.py") if "egg-info" not in str(p))


def _imports(path: Path, *, include_type_checking: bool = True) -> set[str]:
    """Every module ``path`` imports (absolute imports, at any depth of the file)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    if not include_type_checking:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skipped |= {id(n) for n in ast.walk(node)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {f"{node.module}.{alias.name}" for alias in node.names} | {node.module}
    return found


def _service_modules() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for package in SERVICES.glob("*/src/*/__init__.py"):
        root = package.parent
        for path in _python_files(root):
            parts = list(path.relative_to(root.parent).with_suffix("").parts)
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_in_any_service() -> None:
    modules = _service_modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {
        name: {t for imp in _imports(path, include_type_checking=False) if (t := resolve(imp)) and t != name}
        for name, path in modules.items()
    }
    assert _cycles(graph) == []


def test_benchmarks_scripts_and_services_never_import_the_test_tree() -> None:
    folders = [REPO_ROOT / "bench", REPO_ROOT / "devkit", REPO_ROOT / "scripts", SERVICES]
    offenders = [
        str(path.relative_to(REPO_ROOT))
        for folder in folders
        for path in _python_files(folder)
        if any(imp == "tests" or imp.startswith("tests.") for imp in _imports(path))
    ]
    assert offenders == []


def test_services_never_import_the_devkit() -> None:
    offenders = [
        str(path.relative_to(REPO_ROOT))
        for path in _python_files(SERVICES)
        if "src" in path.relative_to(SERVICES).parts  # their scripts may
        if any(imp == "devkit" or imp.startswith("devkit.") for imp in _imports(path))
    ]
    assert offenders == []


def test_the_gateway_top_level_is_a_handful_of_modules_beside_its_sub_packages() -> None:
    modules = sorted(p.name for p in GATEWAY.glob("*.py"))
    packages = sorted(p.parent.name for p in GATEWAY.glob("*/__init__.py"))
    assert modules == [
        "__init__.py",
        "__main__.py",
        "config.py",
        "errors.py",
        "fastjson.py",
        "main.py",
        "schemas.py",
    ]
    assert packages == ["answer", "api", "images", "store", "telemetry", "upstreams"]


def test_the_gateway_never_imports_torch_or_transformers() -> None:
    heavy = {"torch", "transformers"}
    offenders = [
        str(path.relative_to(REPO_ROOT))
        for path in _python_files(GATEWAY)
        if {imp.partition(".")[0] for imp in _imports(path)} & heavy
    ]
    assert offenders == []


def test_every_gateway_module_has_a_test_module_mirroring_it() -> None:
    tests = REPO_ROOT / "tests" / "gateway"
    aliases = {"__main__.py": "test_entrypoint.py"}
    missing = [
        str(path.relative_to(GATEWAY))
        for path in _python_files(GATEWAY)
        if path.name != "__init__.py"
        and not (
            tests / path.relative_to(GATEWAY).parent / aliases.get(path.name, f"test_{path.name}")
        ).is_file()
    ]
    assert missing == []
