"""Imports go one way: flows -> tasks -> inrcore; inrcore never touches orchestration or storage."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "inrcore": {"prefect", "prefect_dask", "dask", "distributed", "zarr", "mlflow", "tasks", "flows"},
    "tasks": {"flows"},
    "flows": set(),
}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_go_one_way(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no modules found in {package}"
    offenders = {str(f.relative_to(ROOT)): sorted(imported_roots(f) & FORBIDDEN[package]) for f in files}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_inrcore_imports_without_orchestration_modules():
    import subprocess
    import sys

    code = (
        "import sys, importlib, pkgutil, inrcore\n"
        "for m in pkgutil.iter_modules(inrcore.__path__): importlib.import_module('inrcore.' + m.name)\n"
        "bad = sorted(n for n in ('prefect', 'dask', 'distributed', 'zarr', 'mlflow') if n in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == ""
