"""Airflow DAG for the MMSE pipeline; drop this file in Airflow's dags folder.

Needs `apache-airflow` (and this package) on the scheduler and workers.
Paths come from the environment so the same file serves every deployment:
MMSE_LOGS (glob), MMSE_CATALOG, MMSE_OUTPUT.
"""
import datetime
import os

from tfx import v1 as tfx
from tfx.orchestration.airflow.airflow_dag_runner import AirflowDagRunner
from tfx.orchestration.airflow.airflow_dag_runner import AirflowPipelineConfig

from tfx_pipeline import configs
from tfx_pipeline import pipeline

_config = configs.PipelineConfig(
    logs_pattern=os.environ["MMSE_LOGS"],
    catalog_path=os.environ["MMSE_CATALOG"],
    output_dir=os.environ.get("MMSE_OUTPUT", "/tmp/mmse"))

DAG = AirflowDagRunner(
    AirflowPipelineConfig({
        "schedule_interval": "@daily",
        "start_date": datetime.datetime(2026, 1, 1),
        "catchup": False,
    })).run(
        pipeline.create_pipeline(
            _config,
            metadata_connection_config=tfx.orchestration.metadata
            .sqlite_metadata_connection_config(_config.metadata_path)))
