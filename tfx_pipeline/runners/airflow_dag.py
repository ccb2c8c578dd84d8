"""Airflow DAG for the MMSE pipeline: put this file in Airflow's dags folder.

Needs the `airflow` extra (`pip install -e .[airflow]`, pinned in
requirements-airflow.lock) on the scheduler and the workers. The DAG is the
pipeline of `tfx_pipeline.pipeline`, one task per component
(AirflowDagRunner), with ML Metadata in SQLite under the output directory.

Every setting is an Airflow Variable, else an environment variable, else
a default, so the file imports with nothing set:

  Variable (env)                    default
  mmse_output (MMSE_OUTPUT)         $AIRFLOW_HOME/mmse
  mmse_logs (MMSE_LOGS)             the embedded sample: simulated into
  mmse_catalog (MMSE_CATALOG)         <output>/sample_data on first parse,
  mmse_judgments (MMSE_JUDGMENTS)     with its judgments and `mmse run`'s
                                      sample overrides (as `mmse run`)
  mmse_schema (MMSE_SCHEMA)         the shipped schemas
  mmse_set (MMSE_SET)               none: `section.field=value` words,
                                      space-separated (`mmse run --set`)
  mmse_beam (MMSE_BEAM)             local (a `mmse run --beam` profile)
  mmse_beam_args (MMSE_BEAM_ARGS)   none: `--flag=value` words, space-
                                      separated (`mmse run --beam-arg`)
  mmse_schedule (MMSE_SCHEDULE)     @daily ("none": triggered runs only)

Give both mmse_logs and mmse_catalog, or neither. A Variable can also come
from the environment as AIRFLOW_VAR_MMSE_LOGS and so on (Airflow's own
rule); MMSE_LOGS is read only where no Variable is set.

Parsing the file imports TensorFlow and TFX, about 30 s on two busy cores:
raise Airflow's [core] dagbag_import_timeout (30 s by default). The
scheduler, the workers and `airflow dags test` run from the environment of
requirements.lock plus the extra; Airflow 2.5's web UI does not (the pinned
werkzeug 3 leaves it connexion 3, whose API it predates), so run the UI from
an Airflow-only environment on the same metadata database: it reads the
serialized DAG and needs neither TFX nor this file.
"""
import datetime
import os
import shlex
from typing import Dict, List, Optional

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# pylint: disable=g-import-not-at-top
from airflow.models import Variable
from tfx import v1 as tfx
from tfx.orchestration.airflow.airflow_dag_runner import AirflowDagRunner
from tfx.orchestration.airflow.airflow_dag_runner import AirflowPipelineConfig

from tfx_pipeline import configs
from tfx_pipeline import pipeline
# pylint: enable=g-import-not-at-top

START_DATE = datetime.datetime(2026, 1, 1)


def setting(name: str, default: Optional[str] = None) -> Optional[str]:
  """Variable `mmse_<name>`, else $MMSE_<NAME>, else `default` ('' is unset)."""
  value = Variable.get(f"mmse_{name}", default_var=None)
  if not value:
    value = os.environ.get(f"MMSE_{name.upper()}")
  return value or default


def _words(name: str) -> List[str]:
  return shlex.split(setting(name, "") or "")


def pipeline_config() -> configs.PipelineConfig:
  """The run's configuration from the Variables, environment and defaults."""
  output_dir = os.path.abspath(os.path.expanduser(setting(
      "output", os.path.join(
          os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow")),
          "mmse"))))
  logs, catalog = setting("logs"), setting("catalog")
  if (logs is None) != (catalog is None):
    raise ValueError("Set both mmse_logs and mmse_catalog, or neither for "
                     "the embedded sample.")
  return configs.run_config(
      output_dir, logs=logs, catalog=catalog, judgments=setting("judgments"),
      schema_dir=setting("schema") or "",
      beam_pipeline_args=configs.beam_pipeline_args(
          setting("beam", "local"), output_dir, _words("beam_args")),
      overrides=_words("set"))


def _schedule() -> Optional[str]:
  schedule = setting("schedule", "@daily")
  return None if schedule.lower() == "none" else schedule


_NAMING_DRIVERS: Dict[type, type] = {}


def _naming_driver(driver_class: type) -> type:
  """`driver_class`, naming its outputs `<component id>:<key>:<run id>`.

  TFX 1.16's Airflow runner names every output `<key>:<run id>`, and ML
  Metadata wants names unique per artifact type, so the second component of
  a type in a run (the catalogue's StatisticsGen after the logs') fails to
  record its output (tensorflow/tfx#4977). Nothing reads the name back:
  inputs are found by their producer and output key.
  """
  if driver_class not in _NAMING_DRIVERS:

    def _prepare_output_artifacts(self, input_artifacts, output_dict,
                                  exec_properties, execution_id,
                                  pipeline_info, component_info):
      outputs = driver_class._prepare_output_artifacts(  # pylint: disable=protected-access
          self, input_artifacts, output_dict, exec_properties, execution_id,
          pipeline_info, component_info)
      for artifacts in outputs.values():
        for artifact in artifacts:
          if artifact.name:
            artifact.name = f"{component_info.component_id}:{artifact.name}"
      return outputs

    _NAMING_DRIVERS[driver_class] = type(
        driver_class.__name__, (driver_class,),
        {"_prepare_output_artifacts": _prepare_output_artifacts})
  return _NAMING_DRIVERS[driver_class]


def create_dag(config: configs.PipelineConfig):
  """The Airflow DAG of `create_pipeline(config)`, cached as `mmse run`."""
  os.makedirs(config.output_dir, exist_ok=True)
  tfx_pipeline = pipeline.create_pipeline(
      config,
      enable_cache=True,
      metadata_connection_config=tfx.orchestration.metadata
      .sqlite_metadata_connection_config(config.metadata_path))
  for component in tfx_pipeline.components:
    component.driver_class = _naming_driver(component.driver_class)
  return AirflowDagRunner(
      AirflowPipelineConfig({
          "schedule_interval": _schedule(),
          "start_date": START_DATE,
          "catchup": False,
      })).run(tfx_pipeline)


CONFIG = pipeline_config()
DAG = create_dag(CONFIG)
