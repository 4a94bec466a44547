"""The import graph of graphc: layers flow one way, nothing imports the examples, no cycles.

Input: every .py file under graphc/, passes/, runtime/ and models/, named by its installed
dotted name (pyproject's [tool.setuptools.package-dir] maps passes/x.py to graphc.passes.x).
Output: failures that name the file and the import, and each import cycle as "a -> b -> a".

Layers: core (graphc.* but the three sub-packages) <- passes <- runtime; models (examples and
the bench harness) may import anything. Only the public API, the pipeline, the compile API and
the CLI see all three layers; only the CLI imports models. Imports inside functions count too,
so a cycle hidden by a function-level import is still a cycle.
"""
from __future__ import annotations

import ast
import itertools
import pathlib
from dataclasses import dataclass
from functools import cache

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _read_pyproject() -> dict:
    path = ROOT / "pyproject.toml"
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: setuptools reads TOML with its vendored parser
        from setuptools.config.pyprojecttoml import load_file

        return load_file(path)
    return tomllib.loads(path.read_text())


PYPROJECT = _read_pyproject()
PACKAGE_DIRS: dict[str, str] = PYPROJECT["tool"]["setuptools"]["package-dir"]
LAYER_ORDER = ("core", "passes", "runtime", "models")
MAY_IMPORT = {"core": {"core"}, "passes": {"core", "passes"},
              "runtime": {"core", "passes", "runtime"}, "models": set(LAYER_ORDER)}
# modules by exact name; packages (ending in ".*") with everything under them
SEES_ALL_LAYERS = ("graphc", "graphc.pipeline", "graphc.compile", "graphc.cli.*")
IMPORTS_MODELS = ("graphc.cli.*",)
# where an import inside a function is the design: a CLI verb loads only what it runs, and the
# examples and bench harness load a framework's model only when it is benchmarked
LAZY_IMPORTS_ALLOWED = ("graphc.cli.*", "graphc.models.*")
REPOSITORY_FOLDERS = ("passes", "runtime", "models")


@dataclass(frozen=True)
class Import:
    """One import statement's edge: who, to which module, where, and how it was written."""

    source: str
    target: str
    path: str
    line: int
    text: str
    in_function: bool

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.text}"


def module_name(path: pathlib.Path) -> str:
    """The installed dotted name of a repository file (passes/x.py -> graphc.passes.x)."""
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
    for package, folder in sorted(PACKAGE_DIRS.items(), key=lambda kv: -len(kv[1])):
        folder_parts = list(pathlib.PurePosixPath(folder).parts)
        if parts[:len(folder_parts)] == folder_parts:
            return ".".join([package, *parts[len(folder_parts):]])
    raise AssertionError(f"{rel}: not under any package-dir of pyproject.toml")


@cache
def modules() -> dict[str, pathlib.Path]:
    """Every module of the distribution by dotted name."""
    found = {}
    for folder in sorted(set(PACKAGE_DIRS.values())):
        for path in sorted((ROOT / folder).rglob("*.py")):
            found[module_name(path)] = path
    return found


def layer(name: str) -> str:
    for sub in ("passes", "runtime", "models"):
        if name == f"graphc.{sub}" or name.startswith(f"graphc.{sub}."):
            return sub
    return "core"


def within(name: str, patterns: tuple[str, ...]) -> bool:
    """Whether `name` is one of `patterns`: a module name, or `pkg.*` for pkg and its modules."""
    return any(name == p.removesuffix(".*") or (p.endswith(".*") and name.startswith(p[:-1]))
               for p in patterns)


def _function_nodes(tree: ast.AST) -> set[int]:
    """ids of the import statements that sit inside a function body."""
    inner = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inner.update(id(n) for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom)))
    return inner


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the imports under `if TYPE_CHECKING:`: annotations only, never run."""
    hidden = set()
    for block in ast.walk(tree):
        if isinstance(block, ast.If) and ast.unparse(block.test) in (
                "TYPE_CHECKING", "typing.TYPE_CHECKING"):
            hidden.update(id(n) for stmt in block.body for n in ast.walk(stmt)
                          if isinstance(n, (ast.Import, ast.ImportFrom)))
    return hidden


def _resolve(source: str, path: pathlib.Path, node: ast.ImportFrom) -> str:
    """The absolute module a `from ... import` names, relative levels resolved."""
    if node.level == 0:
        return node.module or ""
    package = source.split(".") if path.name == "__init__.py" else source.split(".")[:-1]
    base = package[:len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _targets(source: str, path: pathlib.Path, node: ast.stmt) -> list[str]:
    """The modules one import statement depends on (`a.b.c` is an edge to a.b.c only; `from pkg
    import name` is an edge to pkg.name when that is a module, else to pkg)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    package = _resolve(source, path, node)
    return [f"{package}.{alias.name}" if f"{package}.{alias.name}" in modules() else package
            for alias in node.names]


@cache
def imports() -> tuple[Import, ...]:
    """Every import in the distribution that runs (function-level ones included)."""
    found = []
    for source, path in modules().items():
        code = path.read_text()
        tree = ast.parse(code, filename=str(path))
        inner, annotations_only = _function_nodes(tree), _type_checking_nodes(tree)
        rel = str(path.relative_to(ROOT))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in annotations_only:
                text = ast.get_source_segment(code, node) or ast.unparse(node)
                found += [Import(source, target, rel, node.lineno, " ".join(text.split()),
                                 id(node) in inner)
                          for target in dict.fromkeys(_targets(source, path, node))]
    return tuple(sorted(found, key=lambda i: (i.path, i.line, i.target)))


def internal_imports() -> list[Import]:
    return [i for i in imports() if i.target in modules()]


def _reachable(edges: dict[str, set[str]], start: str) -> set[str]:
    """Modules reached from `start` along one or more edges (`start` itself only on a cycle)."""
    reached: set[str] = set()
    todo = list(edges[start])
    while todo:
        node = todo.pop()
        if node not in reached:
            reached.add(node)
            todo += edges[node]
    return reached


def cycles(edges: dict[str, set[str]]) -> list[tuple[list[str], list[str]]]:
    """Every strongly connected component on a cycle (several modules, or one importing
    itself), as a closed chain along real edges and the sorted members of the component."""
    reach = {node: _reachable(edges, node) for node in edges}
    found, seen = [], set()
    for node in sorted(edges):
        if node in seen or node not in reach[node]:
            continue
        component = {other for other in reach[node] if node in reach[other]}
        seen |= component
        found.append((_chain(node, component, edges), sorted(component)))
    return found


def _chain(start: str, component: set[str], edges: dict[str, set[str]]) -> list[str]:
    """A shortest path start -> ... -> start inside one component (breadth first)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(edges[node] & component):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start] if node != start else [start, start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"{start}: no cycle in its component")


def _describe(chain: list[str], component: list[str]) -> str:
    lines = [" -> ".join(chain)]
    if len(component) > len(chain) - 1:
        lines[0] += f"  (the cycle also runs through {', '.join(sorted(set(component) - set(chain)))})"
    by_edge = {(i.source, i.target): i for i in internal_imports()}
    lines += [f"    {by_edge[a, b]}" for a, b in itertools.pairwise(chain)]
    return "\n".join(lines)


def test_module_names_follow_package_dir():
    assert module_name(ROOT / "passes" / "fusion.py") == "graphc.passes.fusion"
    assert module_name(ROOT / "runtime" / "kernels" / "__init__.py") == "graphc.runtime.kernels"
    assert module_name(ROOT / "graphc" / "text" / "printer.py") == "graphc.text.printer"
    assert "graphc.models.bench" in modules()


def test_relative_imports_resolve():
    path = ROOT / "passes" / "autodiff.py"
    node = ast.parse("from .simplify import simplify\nfrom .. import ir").body
    assert _targets("graphc.passes.autodiff", path, node[0]) == ["graphc.passes.simplify"]
    assert _targets("graphc.passes.autodiff", path, node[1]) == ["graphc.ir"]
    assert _targets("graphc.passes", ROOT / "passes" / "__init__.py", node[0]) == [
        "graphc.passes.simplify"]


def test_exemptions_name_modules_or_whole_packages():
    assert within("graphc", SEES_ALL_LAYERS) and within("graphc.cli.verbs", SEES_ALL_LAYERS)
    assert not within("graphc.ir", SEES_ALL_LAYERS)
    assert not within("graphc.pipeline_extra", SEES_ALL_LAYERS)


def test_imports_for_annotations_only_are_no_edges():
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import graphc.ir\n"
                     "def f():\n    import graphc.verify\n")
    hidden, inner = _type_checking_nodes(tree), _function_nodes(tree)
    imported = [n for n in ast.walk(tree) if isinstance(n, ast.Import)]
    assert [id(n) in hidden for n in imported] == [True, False]
    assert [id(n) in inner for n in imported] == [False, True]


def test_cycles_are_found_and_shown_as_chains():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert sorted(cycles(edges)) == [(["a", "b", "c", "a"], ["a", "b", "c"]), (["e", "e"], ["e"])]
    assert cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("source_layer", LAYER_ORDER)
def test_imports_flow_one_way(source_layer):
    bad = [f"{i}  ({source_layer} imports {layer(i.target)})" for i in internal_imports()
           if layer(i.source) == source_layer and layer(i.target) not in MAY_IMPORT[source_layer]
           and not (within(i.source, SEES_ALL_LAYERS) and layer(i.target) != "models")
           and not (within(i.source, IMPORTS_MODELS) and layer(i.target) == "models")]
    assert not bad, "\n".join(bad)


def test_only_the_cli_imports_models():
    bad = [str(i) for i in internal_imports()
           if layer(i.target) == "models" and layer(i.source) != "models"
           and not within(i.source, IMPORTS_MODELS)]
    assert not bad, "\n".join(bad)


def test_no_import_of_repository_folders_as_top_level_packages():
    bad = [str(i) for i in imports() if i.target.split(".")[0] in REPOSITORY_FOLDERS]
    assert not bad, "use graphc.passes / graphc.runtime / graphc.models:\n" + "\n".join(bad)


def test_no_import_cycles():
    edges: dict[str, set[str]] = {name: set() for name in modules()}
    for i in internal_imports():
        edges[i.source].add(i.target)
    found = cycles(edges)
    assert not found, "import cycles:\n" + "\n".join(_describe(*c) for c in found)


def test_no_function_level_imports_of_graphc_modules():
    """With the graph acyclic, an import inside a function hides nothing: it belongs at the top
    of the module (STYLE 14: a cut that needs one is a cut in the wrong place)."""
    bad = [str(i) for i in internal_imports()
           if i.in_function and not within(i.source, LAZY_IMPORTS_ALLOWED)]
    assert not bad, "move these imports to module level:\n" + "\n".join(bad)


def test_every_package_folder_is_installed():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    folders = {module_name(path.parent / "__init__.py")
               for folder in sorted(set(PACKAGE_DIRS.values()))
               for path in (ROOT / folder).rglob("*.py")}
    missing = sorted(folders - listed)
    assert not missing, f"pyproject [tool.setuptools] packages lacks {missing}"
    no_init = sorted(str(p.relative_to(ROOT)) for p in map(modules().get, folders)
                     if p is None or p.name != "__init__.py")
    assert not no_init, f"package folders without __init__.py: {no_init}"


def test_the_install_has_one_top_level_package():
    listed = PYPROJECT["tool"]["setuptools"]["packages"]
    tops = {name.split(".")[0] for name in [*listed, *PACKAGE_DIRS]}
    assert tops == {"graphc"}, f"top-level packages installed: {sorted(tops)}"
    for folder in REPOSITORY_FOLDERS:
        assert PACKAGE_DIRS.get(f"graphc.{folder}") == folder, (
            f"pyproject package-dir must map graphc.{folder} to the {folder}/ folder")
