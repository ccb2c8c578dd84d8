"""The import graph points one way: orchestration on top, contracts below.

Reads every module's imports (lazy ones inside functions too) with `ast`, so
it needs none of the packages importable.
"""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# An import may go to a strictly lower layer or stay within its package.
LAYERS = {
    "contracts": 0,
    "model": 1, "mining": 1, "retrieval": 1, "sample_data": 1, "validation": 1,
    "evaluation": 2,
    "serving": 3, "components": 3,
    "tfx_pipeline": 4,
    "bench": 5,
}


def _imported_packages(path: pathlib.Path):
  tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      names = [node.module]
    else:
      continue
    for name in names:
      top = name.split(".")[0]
      if top in LAYERS:
        yield top, node.lineno


def _edges():
  for package in LAYERS:
    for path in sorted((ROOT / package).rglob("*.py")):
      for imported, line in _imported_packages(path):
        if imported != package:
          yield package, imported, f"{path.relative_to(ROOT)}:{line}"


def test_every_package_is_known():
  packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
  assert packages - {"tests"} == set(LAYERS)


def test_nothing_below_tfx_pipeline_imports_it():
  upward = [where for package, imported, where in _edges()
            if imported == "tfx_pipeline" and package != "bench"]
  assert not upward, upward


def test_imports_point_to_lower_layers_only():
  wrong = [f"{where}: {package} (layer {LAYERS[package]}) imports {imported} "
           f"(layer {LAYERS[imported]})"
           for package, imported, where in _edges()
           if LAYERS[imported] >= LAYERS[package]]
  assert not wrong, "\n".join(wrong)


def test_packages_form_no_cycle():
  graph = {}
  for package, imported, _ in _edges():
    graph.setdefault(package, set()).add(imported)
  visiting, done = set(), set()

  def visit(node, path):
    if node in visiting:
      pytest.fail(f"import cycle: {' -> '.join(path + [node])}")
    if node in done:
      return
    visiting.add(node)
    for nxt in sorted(graph.get(node, ())):
      visit(nxt, path + [node])
    visiting.discard(node)
    done.add(node)

  for node in sorted(graph):
    visit(node, [])
