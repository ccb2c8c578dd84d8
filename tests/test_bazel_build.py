"""BUILD keeps up with the tests and the imports (no Bazel needed).

BUILD is Starlark that is also Python, so it is run here with stand-ins for
`glob`, `py_library` and `pytest_test` that record the targets. The venv's
editable install makes a missing Bazel dep invisible when the tests run
(`import contracts` finds the checkout), so these checks are what catches it.
"""
import ast
import functools
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIRST_PARTY = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}


@functools.lru_cache(maxsize=None)
def _tree(relative_path):
  return ast.parse((ROOT / relative_path).read_text(encoding="utf-8"))


def _glob(include, exclude=()):
  def files(patterns):
    return {p.relative_to(ROOT).as_posix() for pattern in patterns
            for p in ROOT.glob(pattern) if p.is_file()}
  return sorted(files(include) - files(exclude))


@pytest.fixture(scope="module")
def targets():
  """name -> keyword arguments of every rule the root BUILD declares."""
  recorded = {}

  def rule(name, **attrs):
    assert name not in recorded, f"two targets named {name}"
    recorded[name] = attrs

  namespace = {
      "load": lambda *args, **kwargs: None,
      "package": lambda **kwargs: None,
      "glob": _glob,
      "py_library": rule,
      "py_binary": rule,
      "pytest_test": rule,
  }
  exec(compile((ROOT / "BUILD").read_text(), "BUILD", "exec"), namespace)  # pylint: disable=exec-used
  return recorded


def _tests(targets):
  return {name: attrs for name, attrs in targets.items() if "tests" in attrs}


def _is_e2e(node):
  return "e2e" in ast.unparse(node)


def _kinds_of_tests(path):
  """{"e2e", "unit"}: which kinds of tests the file holds, by pytest marks."""
  tree = _tree(path)
  module_e2e = any(
      isinstance(node, ast.Assign) and
      any(getattr(t, "id", "") == "pytestmark" for t in node.targets) and
      _is_e2e(node.value) for node in tree.body)
  kinds = set()
  for node in ast.walk(tree):
    if (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and
        node.name.startswith("test")):
      marked = module_e2e or any(_is_e2e(d) for d in node.decorator_list)
      kinds.add("e2e" if marked else "unit")
  return kinds


def _uses_pipeline_run(path):
  """Whether a test or fixture of the file takes the whole pipeline's run."""
  return any(
      isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and
      any(arg.arg == "pipeline_run" for arg in node.args.args)
      for node in ast.walk(_tree(path)))


def _imported_test_files(path):
  """The files under tests/ that a file imports."""
  found = set()
  for node in ast.walk(_tree(path)):
    if isinstance(node, ast.Import):
      modules = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      modules = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    else:
      continue
    for module in modules:
      if module.split(".")[0] != "tests":
        continue
      stem = ROOT.joinpath(*module.split("."))
      for candidate in (stem.with_suffix(".py"), stem / "__init__.py"):
        if candidate.is_file():
          found.add(candidate.relative_to(ROOT).as_posix())
  return found


def test_every_test_file_has_a_target(targets):
  covered = {test for attrs in _tests(targets).values() for test in attrs["tests"]}
  files = set(_glob(["tests/**/test_*.py"]))
  assert files - covered == set()
  assert covered - files == set()


def test_e2e_tests_run_in_the_e2e_target_and_unit_tests_in_unit_targets(targets):
  where = {}  # file -> kinds of targets it is in
  for attrs in _tests(targets).values():
    e2e = "e2e" in attrs.get("tags", [])
    assert attrs["pytest_args"] == (["-m", "e2e"] if e2e else ["-m", "'not e2e'"])
    if e2e:
      assert attrs["size"] == "large"
    for test in attrs["tests"]:
      where.setdefault(test, set()).add("e2e" if e2e else "unit")
  for test, kinds in where.items():
    expected = _kinds_of_tests(test)
    assert kinds == expected, (test, kinds, expected)
    if _uses_pipeline_run(test):  # The whole pipeline: minutes.
      assert "e2e" in kinds, test


def test_imported_test_modules_are_in_the_target(targets):
  support = set(targets["test_support"]["srcs"])
  for name, attrs in _tests(targets).items():
    srcs = set(attrs["tests"]) | set(attrs.get("other_modules", [])) | support
    todo, seen = list(attrs["tests"]), set()
    while todo:
      path = todo.pop()
      if path in seen:
        continue
      seen.add(path)
      for imported in _imported_test_files(path):
        assert imported in srcs, f"{name}: {path} imports {imported}"
        todo.append(imported)


def test_every_package_library_depends_on_what_it_imports(targets):
  for package in sorted(FIRST_PARTY):
    deps = {dep.lstrip(":") for dep in targets[package].get("deps", [])}
    for src in targets[package]["srcs"]:
      for node in ast.walk(_tree(src)):
        if isinstance(node, ast.Import):
          names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
          names = [node.module]
        else:
          continue
        for top in {n.split(".")[0] for n in names} & FIRST_PARTY - {package}:
          assert top in deps, f"{src}:{node.lineno} imports {top}; //:{package} lacks it"


def test_every_package_file_is_in_its_library(targets):
  for package in sorted(FIRST_PARTY):
    assert set(targets[package]["srcs"]) == set(_glob([f"{package}/**/*.py"]))
