"""The house rules, read from the code's own imports.

- flows -> tasks -> inrcore; inrcore never touches orchestration or storage; flows reach storage
  (Zarr, MLflow, fsspec) only through tasks.
- Inside inrcore: base modules <- geometry <- fields <- queries <- sdf <- skeleton; nerf uses only
  geometry and base; siblings never import each other (ARCHITECTURE.md draws it).
- No import circles anywhere in inrcore, tasks and flows (lazy imports inside functions count).
- No module much over 400 lines.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("inrcore", "tasks", "flows")
FORBIDDEN = {
    "inrcore": {"prefect", "prefect_dask", "dask", "distributed", "zarr", "mlflow", "fsspec", "tasks", "flows"},
    "tasks": {"flows"},
    "flows": {"zarr", "mlflow", "fsspec", "s3fs"},
}
BASE = "base"  # the modules directly in inrcore/
# What each part of inrcore may import (itself included). A new subpackage must be added here.
ALLOWED = {
    BASE: {BASE},
    "geometry": {BASE, "geometry"},
    "fields": {BASE, "geometry", "fields"},
    "queries": {BASE, "geometry", "fields", "queries"},
    "sdf": {BASE, "geometry", "fields", "queries", "sdf"},
    "nerf": {BASE, "geometry", "nerf"},
    "skeleton": {BASE, "geometry", "fields", "queries", "sdf", "skeleton"},
    "shapespace": {BASE, "geometry", "fields", "queries", "sdf", "shapespace"},
}
MAX_LINES = 420


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def imported_modules(path: Path, known: dict[str, Path]) -> set[str]:
    """Project modules a file imports (absolute or relative, anywhere in the file)."""
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else [])) \
                if node.level else node.module or ""
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def part_of(module: str) -> str:
    """The inrcore part a module belongs to: a subpackage's name, or BASE."""
    parts = module.split(".")
    if len(parts) >= 2 and (ROOT / "inrcore" / parts[1]).is_dir():
        return parts[1]
    return BASE


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_go_one_way(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no modules found in {package}"
    offenders = {str(f.relative_to(ROOT)): sorted(imported_roots(f) & FORBIDDEN[package]) for f in files}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_every_inrcore_part_has_rules():
    parts = {p.name for p in (ROOT / "inrcore").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert parts == set(ALLOWED) - {BASE}


def test_inrcore_parts_import_one_way():
    known = all_modules()
    offenders = []
    for module, path in known.items():
        if not module.startswith("inrcore"):
            continue
        for target in imported_modules(path, known):
            if target.startswith("inrcore.") and part_of(target) not in ALLOWED[part_of(module)]:
                offenders.append(f"{module} ({part_of(module)}) imports {target} ({part_of(target)})")
    assert offenders == []


def test_the_rules_see_real_imports():
    """The reader above finds the arrows that exist (so an empty offender list means something)."""
    known = all_modules()
    training = imported_modules(known["inrcore.sdf.training"], known)
    assert {"inrcore.fields.networks", "inrcore.queries.isopoints", "inrcore.settings"} <= training
    assert part_of("inrcore.geometry.meshes") == "geometry" and part_of("inrcore.errors") == BASE
    relative = imported_modules(ROOT / "inrcore" / "fields" / "__init__.py", known)
    assert relative <= set(known)


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_import_cycles_are_found():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles():
    known = all_modules()
    graph = {m: imported_modules(p, known) - {m} for m, p in known.items()}
    # a package's __init__ and its own modules are one room
    graph = {m: {t for t in targets if not m.startswith(t + ".")} for m, targets in graph.items()}
    assert import_cycles(graph) == []


def test_no_module_much_over_400_lines():
    long = {m: n for m, p in all_modules().items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_inrcore_imports_without_orchestration_modules():
    code = (
        "import sys, importlib, pkgutil, inrcore\n"
        "for m in pkgutil.walk_packages(inrcore.__path__, 'inrcore.'): importlib.import_module(m.name)\n"
        "bad = sorted(n for n in ('prefect', 'dask', 'distributed', 'zarr', 'mlflow', 'fsspec') if n in sys.modules)\n"
        "print(len(sys.modules) > 0, ','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "True"
