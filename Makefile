# `make run` and `make test` work on a machine with nothing but Python 3.10:
# the first call builds .venv from requirements.lock (uv resolves in about a
# minute; plain pip can backtrack for much longer).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PYTHON310 := $(shell for p in python3.10 $$HOME/.pyenv/versions/3.10*/bin/python3.10 /usr/bin/python3.10; do \
  $$p -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null && echo $$p && break; done)
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONWARNINGS := ignore::FutureWarning

.PHONY: venv run test bazel-test airflow-test flink flink-test lock lock-airflow bench-quality bench-serving clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.lock requirements-teacher.txt setup.py requirements.txt requirements-dev.txt
	@test -n "$(PYTHON310)" || { echo "Python 3.10 is required (python3.10 not found)"; exit 1; }
	test -x $(PY) || $(PYTHON310) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip uv
	$(VENV)/bin/uv pip install --python $(PY) -r requirements.lock
	$(VENV)/bin/uv pip install --python $(PY) --no-deps --require-hashes -r requirements-teacher.txt
	$(VENV)/bin/uv pip install --python $(PY) --no-deps -e .
	touch $@

run: venv
	$(VENV)/bin/mmse run

# The Airflow tests run under `make airflow-test`, which installs Airflow;
# the Flink ones under `make flink-test`, which fetches Flink.
test: venv
	$(PY) -m pytest -q tests --ignore=tests/tfx_pipeline/test_airflow.py \
	  --ignore=tests/tfx_pipeline/test_flink.py

# The unit tests under Bazel (Debian's bazel-bootstrap 4.2.3 is enough; it
# downloads nothing), with .venv's interpreter and packages. `bazel test //...`
# also runs the end-to-end target (tag e2e, a whole pipeline run).
# BAZEL_FLAGS adds flags, e.g. --local_test_jobs=1 on a busy machine.
BAZEL ?= bazel
BAZEL_FLAGS ?=
bazel-test: venv
	@command -v $(BAZEL) >/dev/null || { echo "install Bazel: apt-get install bazel-bootstrap"; exit 1; }
	$(BAZEL) test --repo_env=MMSE_PYTHON=$(abspath $(PY)) --test_tag_filters=-e2e $(BAZEL_FLAGS) //...

lock: venv
	$(VENV)/bin/uv pip compile --python $(PY) requirements.txt requirements-dev.txt -o requirements.lock

# The Airflow DAG under Airflow itself (tests/tfx_pipeline/test_airflow.py).
# First the `airflow` extra goes into .venv at the pins of
# requirements-airflow.lock: added beside requirements.lock, whose pins stay
# (a no-op once installed). Then the DAG is imported with nothing set, and a
# tiny simulated set runs through `airflow dags test` with SQLite.
airflow-test: venv
	$(VENV)/bin/uv pip install -q --python $(PY) -c requirements.lock -r requirements-airflow.lock
	$(PY) -m pytest -q tests/tfx_pipeline/test_airflow.py

# Apache Flink for `mmse run --beam flink`: Beam's Flink job server (Maven,
# deploy/flink/pom.xml) and Flink's distribution (PyPI sdists at the hashes
# of deploy/flink/requirements.txt, unpacked, not installed) into the Flink
# cache, ~/.cache/mmse/flink or $MMSE_FLINK_CACHE; once, then a no-op. Needs
# Java 17 and Maven.
flink: venv
	$(PY) -m tfx_pipeline.runners.flink fetch

# The embedded sample through the whole pipeline on a local Flink cluster,
# every count checked against the same run in process
# (tests/tfx_pipeline/test_flink.py).
flink-test: flink
	$(PY) -m pytest -q tests/tfx_pipeline/test_flink.py

# After `make lock`: the extra's pins, resolved with requirements.lock as
# constraint.
lock-airflow: venv
	$(VENV)/bin/uv pip compile --python $(PY) --no-header --no-annotate requirements-airflow.txt -c requirements.lock -o requirements-airflow.lock

bench-quality: venv
	$(PY) -m bench.quality

# The load generators (h2load, wrk) are Debian packages; CI runs as root.
# BENCH_ARGS passes options, e.g. BENCH_ARGS="--sections limit,load".
bench-serving: venv
	@command -v h2load >/dev/null && command -v wrk >/dev/null || \
	  (apt-get update && apt-get install -y nghttp2-client wrk)
	$(PY) -m bench.serving $(BENCH_ARGS)

clean:
	rm -rf outputs
