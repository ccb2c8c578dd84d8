"""The Airflow DAG (tfx_pipeline/runners/airflow_dag.py) under Airflow itself.

Needs the `airflow` extra: `make airflow-test` installs it from
requirements-airflow.lock and runs this file. Airflow runs in subprocesses,
each with its own AIRFLOW_HOME: importing it writes airflow.cfg and replaces
the logging configuration, which this test session must keep.
"""
import importlib.util
import json
import os
import sqlite3
import subprocess
import sys

import pytest

from contracts import serving_layout
from sample_data import simulator
from tests.fixtures import toy_serving
from tfx_pipeline import configs
from tfx_pipeline import pipeline
from tfx_pipeline import report_html
from tfx_pipeline import run_report

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("airflow") is None,
    reason="apache-airflow is not installed (the `airflow` extra): "
    "`make airflow-test` installs it from requirements-airflow.lock")

DAG_FILE = os.path.join(configs.REPOSITORY_DIR, "tfx_pipeline", "runners",
                        "airflow_dag.py")
DAG_ID = configs.PIPELINE_NAME
# Every stage waits for the one before it.
CHAIN = ("LogsExampleGen", "LogsStatisticsGen", "LogsExampleValidator",
         "DataGate", "MultiStageSamples", "SamplesStatisticsGen",
         "SamplesSchemaGen", "Transform", "Trainer", "IndexBuilder",
         "RetrievalEvaluator", "ServingPusher")
# Small enough that the run is mostly start-up. Blessed on recall over the
# whole tiny catalogue (k is capped at its 300 items), which every model
# reaches: this test is about orchestration, test_model_gate about blessing.
TINY_DATA = dict(num_items=300, num_queries=40, num_judged_queries=10,
                 num_requests=400)
TINY_SET = ("model.epochs=1 model.head_dim=32 model.hidden_dim=64 "
            "model.token_embedding_dim=32 model.batch_size=64 "
            "text.vocab_size=2000 text.trigram_buckets=5000 "
            "evaluation.blessing_metric=recall@1000 "
            "evaluation.min_gain_over_popularity=0 "
            "evaluation.min_gain_over_initial=0")
# One Beam worker in this process: starting worker processes costs more than
# the work on a tiny set.
TINY_BEAM_ARGS = "--direct_running_mode=in_memory --direct_num_workers=1"

# Loads the DAG file as the scheduler does and prints its tasks and edges.
_DESCRIBE_DAG = """
import json, sys
from airflow.models import DagBag
bag = DagBag(dag_folder=sys.argv[1], include_examples=False)
dag = bag.dags.get(sys.argv[2])  # get_dag would ask the database
print("DAG=" + json.dumps({
    "import_errors": {k: str(v) for k, v in bag.import_errors.items()},
    "upstream": {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks}
                if dag else None,
    "schedule": str(dag.schedule_interval) if dag else None,
}))
"""


def _airflow_env(home, dags_folder, **settings):
  """This environment without any MMSE_* or Airflow setting, plus these."""
  env = {k: v for k, v in os.environ.items()
         if not k.startswith(("MMSE_", "AIRFLOW_"))}
  env.update({
      "AIRFLOW_HOME": str(home),
      "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
      "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
      # Parsing the file imports TensorFlow and TFX: more than Airflow's
      # default 30 s on a busy machine.
      "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "600",
      "TF_USE_LEGACY_KERAS": "1",
      "TF_CPP_MIN_LOG_LEVEL": "2",
      "PYTHONWARNINGS": "ignore",
  })
  env.update(settings)
  return env


def _run(args, env, timeout):
  result = subprocess.run([sys.executable, *args], env=env, timeout=timeout,
                          capture_output=True, text=True, check=False)
  assert result.returncode == 0, (
      f"{args} exited {result.returncode}:\n{result.stdout[-3000:]}\n"
      f"{result.stderr[-6000:]}")
  return result.stdout


def _dags_folder(tmp_path):
  """A dags folder holding the DAG file, as a deployment has it."""
  folder = tmp_path / "dags"
  folder.mkdir()
  os.symlink(DAG_FILE, folder / "mmse_dag.py")
  return folder


def test_the_dag_imports_with_nothing_set_and_runs_the_pipeline_in_order(
    tmp_path):
  home = tmp_path / "airflow"
  # No MMSE_* variable and no Airflow database: the defaults apply (the
  # Variable lookups log their failure and fall through).
  out = _run(["-c", _DESCRIBE_DAG, str(_dags_folder(tmp_path)), DAG_ID],
             _airflow_env(home, tmp_path / "dags"), timeout=600)
  described = json.loads(out.rpartition("DAG=")[2])
  assert described["import_errors"] == {}
  upstream = described["upstream"]
  assert upstream is not None, f"no DAG {DAG_ID!r}"
  assert described["schedule"] == "@daily"
  # The default: the embedded sample, simulated under $AIRFLOW_HOME/mmse.
  sample_dir = home / "mmse" / "sample_data"
  assert (sample_dir / "catalog.csv").is_file()
  assert list((sample_dir / "logs").glob("*.csv.gz"))

  built = pipeline.create_pipeline(configs.PipelineConfig(
      logs_pattern=str(sample_dir / "logs" / "*.csv.gz"),
      catalog_path=str(sample_dir / "catalog.csv"),
      output_dir=str(home / "mmse")))
  # One task per component, each waiting for exactly the components it
  # reads from (or is told to wait for).
  assert upstream == {c.id: sorted(n.id for n in c.upstream_nodes)
                      for c in built.components}
  for before, after in zip(CHAIN, CHAIN[1:]):
    assert before in upstream[after], (before, after)


@pytest.mark.e2e
def test_airflow_runs_the_pipeline_and_pushes_a_model(tmp_path):
  home = tmp_path / "airflow"
  data_dir = tmp_path / "data"
  output_dir = tmp_path / "output"
  simulator.simulate(str(data_dir), **TINY_DATA)
  env = _airflow_env(
      home, _dags_folder(tmp_path),
      MMSE_LOGS=str(data_dir / "logs" / "*.csv.gz"),
      MMSE_CATALOG=str(data_dir / "catalog.csv"),
      MMSE_JUDGMENTS=str(data_dir / "judgments.csv"),
      MMSE_OUTPUT=str(output_dir),
      MMSE_BEAM_ARGS=TINY_BEAM_ARGS,
      # An Airflow Variable, from the environment (Airflow's own rule).
      AIRFLOW_VAR_MMSE_SET=TINY_SET)
  _run(["-m", "airflow", "db", "init"], env, timeout=300)
  _run(["-m", "airflow", "dags", "test", DAG_ID, "2026-01-02"], env,
       timeout=1200)

  with sqlite3.connect(home / "airflow.db") as db:
    states = dict(db.execute(
        "SELECT task_id, state FROM task_instance WHERE dag_id = ?",
        (DAG_ID,)))
    runs = db.execute("SELECT state FROM dag_run WHERE dag_id = ?",
                      (DAG_ID,)).fetchall()
  assert set(states) == set(CHAIN) | {
      "CatalogExampleGen", "LogsSchemaImporter", "CatalogSchemaImporter",
      "CatalogStatisticsGen", "CatalogExampleValidator",
      "LatestBlessedModelResolver"}
  assert set(states.values()) == {"success"}, states
  assert runs == [("success",)]
  serving_dir = str(output_dir / "serving")
  assert toy_serving.served_versions(serving_dir) == {
      name: [1] for name in serving_layout.SERVED_MODELS}
  assert os.path.isfile(os.path.join(serving_dir,
                                     serving_layout.MODELS_CONFIG))

  # `mmse report` reads the run back from ML Metadata, as for a local run.
  report = run_report.latest_run(
      str(output_dir / configs.METADATA_FILE))
  assert {report["components"][c]["state"] for c in CHAIN} == {"COMPLETE"}
  assert report["blessed"] and report["pushed"]
  assert report["pushed_version"] == "1"
  assert report["mining"]["rows_read"] == report["data_gate"]["logs_examples"]
  assert os.path.isfile(report_html.write(str(output_dir)))
