"""py_test targets that run pytest files through tests/pytest_main.py."""

def pytest_test(name, tests, deps, other_modules = [], pytest_args = [], **kwargs):
    """A py_test whose main runs pytest on the files in `tests`.

    Args:
      name: target name.
      tests: test files pytest collects (all in one pytest session).
      deps: libraries the tests import.
      other_modules: further files under tests/ that the tests import
        (another test file's helpers) but pytest does not collect.
      pytest_args: extra pytest arguments, before the files.
      **kwargs: size, timeout, tags, data, ... of py_test.
    """
    native.py_test(
        name = name,
        srcs = tests + other_modules + ["tests/pytest_main.py"],
        main = "tests/pytest_main.py",
        # The runfiles are a tree of symlinks; pytest's cache has no place there.
        args = ["-p", "no:cacheprovider"] + pytest_args +
               ["$(rootpath %s)" % test for test in tests],
        # tests/ and the packages have their own __init__.py files; Bazel's
        # made-up ones would turn the runfiles root into a package too.
        legacy_create_init = False,
        python_version = "PY3",
        deps = deps,
        **kwargs
    )
