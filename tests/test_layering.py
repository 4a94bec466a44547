"""Imports flow one way: graphc core <- passes <- runtime (only pipeline/cli see all three)."""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
ALLOWED = {"graphc": {"graphc"}, "passes": {"graphc", "passes"},
           "runtime": {"graphc", "passes", "runtime"}}
SEES_ALL = {"graphc/pipeline.py", "graphc/cli/__init__.py"}


def _imports(path: pathlib.Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_flow_one_way(package):
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        if rel in SEES_ALL:
            continue
        for top in _imports(path):
            if top in ALLOWED and top not in ALLOWED[package]:
                bad.append(f"{rel} imports {top}")
    assert not bad, "\n".join(bad)
