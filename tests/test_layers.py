"""The floors of lut: every import points down, no cycles, every package shipped, the mapping path torch-free.

The rule (README, "Layout"): a module may import its own subpackage and any subpackage on a lower floor,
never one on its own floor or above. Imports inside functions (lazy ones) count like top-level ones.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: top-level folders and the `lut.*` packages they are mapped to (pyproject.toml's package-dir)
PACKAGE_DIRS = {"toolkit": "lut.toolkit", "export": "lut.export", "tiling": "lut.tiling"}

#: unit -> floor; a unit may import only itself and units on lower floors
FLOORS = {
    "lut.toolkit.core": 0,
    "lut.toolkit.data": 1, "lut.toolkit.gis": 1, "lut.toolkit.vit": 1,
    "lut.toolkit.train": 2, "lut.toolkit.assess": 2,
    "lut.toolkit.selfsup": 3, "lut.toolkit.study": 3,
    "lut.export": 4,
    "lut.tiling": 5,
    "lut.toolkit.cli": 6,
    "lut.toolkit": 7,  # the public API (lut/toolkit/__init__.py), lazy names over every floor
}
#: what a mapping run (classify, change, vectorize, many scenes) must never load
HEAVY = ("torch", "transformers", "optimum", "lightly", "sklearn")


def source_modules() -> dict[str, tuple[Path, str]]:
    """Every module of the three packages: dotted name -> (file, source)."""
    found = {}
    for folder, package in PACKAGE_DIRS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join((package, *parts[:-1])) if parts[-1] == "__init__" else ".".join((package, *parts))
            found[name] = (path, path.read_text())
    return found


def imported(name: str, is_package: bool, source: str, known: set[str]) -> set[str]:
    """The lut modules `source` imports anywhere in its body, relative imports resolved."""
    here = name if is_package else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = here
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            module = (f"{base}.{node.module}" if node.module else base) if node.level else node.module or ""
            for alias in node.names:  # `from pkg import mod` imports the module pkg.mod
                targets.add(f"{module}.{alias.name}" if f"{module}.{alias.name}" in known else module)
    return {t for t in targets if t in known}


def unit_of(module: str) -> str:
    return max((u for u in FLOORS if module == u or module.startswith(u + ".")), key=len)


def import_graph(modules: dict[str, tuple[Path, str]]) -> dict[str, set[str]]:
    known = set(modules)
    return {name: imported(name, path.name == "__init__.py", source, known) - {name}
            for name, (path, source) in modules.items()}


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, targets in graph.items():
        unit = unit_of(module)
        for target in sorted(targets):
            other = unit_of(target)
            if other != unit and FLOORS[other] >= FLOORS[unit]:
                bad.append(f"{module} (floor {FLOORS[unit]}) imports {target} (floor {FLOORS[other]})")
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_module_belongs_to_a_floor():
    assert all(unit_of(m) in FLOORS for m in source_modules())
    toolkit_entries = [p.name for p in (ROOT / "toolkit").iterdir() if p.name != "__pycache__"]
    assert len(toolkit_entries) <= 12, toolkit_entries


def test_imports_only_point_down():
    assert upward_imports(import_graph(source_modules())) == []


def test_no_import_cycles():
    assert cycles(import_graph(source_modules())) == []


def test_a_planted_upward_import_and_cycle_are_caught():
    modules = source_modules()
    modules["lut.toolkit.core.planted"] = (Path("planted.py"), "def f():\n    from lut.tiling.classify import x\n")
    modules["lut.toolkit.gis.a"] = (Path("a.py"), "from . import b\n")
    modules["lut.toolkit.gis.b"] = (Path("b.py"), "from lut.toolkit.gis.a import y\n")
    graph = import_graph(modules)
    assert upward_imports(graph) == ["lut.toolkit.core.planted (floor 0) imports lut.tiling.classify (floor 5)"]
    assert cycles(graph) == [["lut.toolkit.gis.a", "lut.toolkit.gis.b"]]
    # siblings on one floor are independent: data may not import gis
    modules["lut.toolkit.data.sideways"] = (Path("s.py"), "from lut.toolkit.gis.legend import Legend\n")
    assert "lut.toolkit.data.sideways (floor 1) imports lut.toolkit.gis.legend (floor 1)" in \
        upward_imports(import_graph(modules))


def test_every_package_directory_is_in_pyproject():
    """An editable install finds any folder; a wheel ships only the packages pyproject.toml lists."""
    tomllib = pytest.importorskip("tomllib")
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    packages = {name for name, (path, _) in source_modules().items() if path.name == "__init__.py"}
    folders = {f"{PACKAGE_DIRS[p.relative_to(ROOT).parts[0]]}." + ".".join(p.relative_to(ROOT).parts[1:])
               for folder in PACKAGE_DIRS for p in (ROOT / folder).rglob("*")
               if p.is_dir() and p.name != "__pycache__" and any(p.glob("*.py"))}
    assert packages | folders <= listed, sorted((packages | folders) - listed)
    assert listed <= packages, sorted(listed - packages)


def test_the_mapping_path_imports_no_training_stack():
    """Every tiling module, the export runtime, the CLI and `lut --help` load no torch (nor its friends)."""
    mapping = sorted(m for m in source_modules() if m.startswith(("lut.tiling", "lut.toolkit.cli",
                                                                  "lut.toolkit.assess")))
    mapping += ["lut.export.runtime", "lut.toolkit.core", "lut.toolkit.gis.change", "lut.toolkit.gis.vectorize"]
    script = (
        "import importlib, sys\n"
        f"for m in {mapping!r}: importlib.import_module(m)\n"
        "import lut.toolkit as api\n"
        "from click.testing import CliRunner\n"
        "from lut.toolkit.cli import lut\n"
        "for args in (['--help'], ['classify', '--help'], ['change', '--help'], ['vectorize', '--help'],\n"
        "             ['composite', '--help'], ['assess', 'design', '--help'], ['assess', 'estimate', '--help']):\n"
        "    assert CliRunner().invoke(lut, args).exit_code == 0, args\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_the_public_api_resolves_every_name_lazily():
    """Every public name exists where the API says, and naming the mapping ones loads no torch."""
    script = (
        "import sys\nimport lut.toolkit as api\n"
        "assert 'torch' not in sys.modules\n"
        "for name in ('ClassifyConfig', 'classify_scene', 'classify_many', 'compute_change', 'vectorize', "
        "'load_deployed', 'LutError', 'InputError'):\n"
        "    getattr(api, name)\n"
        "print(sorted(m for m in ('torch', 'transformers', 'optimum', 'lightly') if m in sys.modules))\n"
        "for name in api.__all__:\n"
        "    assert getattr(api, name).__name__ == name, name\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
