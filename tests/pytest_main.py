"""Runs pytest on the files given as arguments (Bazel's py_test launcher)."""
import sys

import pytest

if __name__ == "__main__":
  sys.exit(pytest.main(sys.argv[1:]))
