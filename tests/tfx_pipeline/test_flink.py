"""The embedded sample through the whole pipeline on a local Flink cluster.

Run by `make flink-test` (which fetches Flink first), not by `make test`:
the same sample runs twice, in process and on Flink, and every count of the
Beam stages must agree, the Flink run must bless and push, and the cluster
must be gone afterwards.
"""
import glob
import json
import logging
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from components import row_accounting
from components.csv_example_gen import executor as example_gen
from components.multistage_samples import spec as mining_spec
from contracts import serving_layout
from tfx_pipeline import cli
from tfx_pipeline import configs
from tfx_pipeline import run_report
from tfx_pipeline.runners import flink
from tfx_pipeline.runners import local

pytestmark = pytest.mark.e2e

# Components whose work is a Beam pipeline: each is a Flink job.
BEAM_COMPONENTS = ("CatalogExampleGen", "LogsExampleGen",
                   "CatalogStatisticsGen", "LogsStatisticsGen",
                   "MultiStageSamples", "SamplesStatisticsGen", "Transform")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """(in-process output dir, Flink output dir) of the embedded sample."""
  flink.require_install()
  root = tmp_path_factory.mktemp("flink")
  in_process = str(root / "in_process")
  local.run(configs.run_config(in_process))
  on_flink = str(root / "on_flink")
  handlers = logging.getLogger().handlers[:]
  try:
    assert cli.main(["run", "--beam", "flink", "--output", on_flink]) == 0
  finally:
    logging.getLogger().handlers[:] = handlers  # `mmse run` replaced them.
  return in_process, on_flink


def _artifact(output_dir: str, component: str, output: str) -> str:
  """The newest artifact directory of a component's output."""
  dirs = glob.glob(os.path.join(output_dir, "pipeline", component, output,
                                "*"))
  return max(dirs, key=lambda d: int(os.path.basename(d)))


def _examples_counts(output_dir: str, component: str, output: str):
  from tfx.types import standard_artifacts  # pylint: disable=g-import-not-at-top
  examples = standard_artifacts.Examples()
  examples.uri = _artifact(output_dir, component, output)
  examples.split_names = json.dumps(sorted(
      os.path.basename(d)[len("Split-"):]
      for d in glob.glob(os.path.join(examples.uri, "Split-*"))))
  return row_accounting.split_records(examples)


def test_every_beam_stage_ran_as_a_flink_job(runs):
  _, on_flink = runs
  finished = 0
  for log in glob.glob(os.path.join(on_flink, "flink", "log",
                                    "flink-*standalonesession*.log")):
    with open(log, encoding="utf-8", errors="replace") as f:
      finished += sum("switched from state RUNNING to FINISHED" in line and
                      "BeamApp" in line for line in f)
  assert finished >= len(BEAM_COMPONENTS)
  report = run_report.latest_run(os.path.join(on_flink,
                                              configs.METADATA_FILE))
  states = {name: c["state"] for name, c in report["components"].items()}
  assert set(states.values()) == {"COMPLETE"}, states
  assert set(BEAM_COMPONENTS) <= set(states)
  assert report["blessed"] is True and report["pushed"] is True


@pytest.mark.parametrize("component", ["CatalogExampleGen", "LogsExampleGen"])
def test_example_gen_reads_and_writes_every_row_as_in_process(runs, component):
  in_process, on_flink = runs
  # Each run simulated the same sample under its own output directory.
  rows_read = [{os.path.relpath(path, d): count
                for path, count in row_accounting.read_counts(os.path.join(
                    _artifact(d, component, "examples"),
                    example_gen.ROWS_READ_DIR)).items()} for d in runs]
  assert rows_read[0] == rows_read[1] and sum(rows_read[0].values()) > 0
  written = [_examples_counts(d, component, "examples")
             for d in (in_process, on_flink)]
  assert written[0] == written[1]
  assert sum(written[1].values()) == sum(rows_read[1].values())


def test_mining_counts_and_slates_are_those_of_the_run_in_process(runs):
  counts = []
  for output_dir in runs:
    with open(os.path.join(_artifact(output_dir, "MultiStageSamples",
                                     "report"), mining_spec.COUNTS_FILE),
              encoding="utf-8") as f:
      counts.append(json.load(f))
  assert counts[0] == counts[1]
  assert counts[1]["rows_read"] == (counts[1]["rows_kept"] +
                                    counts[1]["rows_set_aside"])
  slates = [_examples_counts(d, "MultiStageSamples", "examples") for d in runs]
  assert slates[0] == slates[1] == counts[1]["examples"]


def test_the_pushed_index_holds_the_same_items(runs):
  served = []
  for output_dir in runs:
    index = serving_layout.index_dir(os.path.join(
        output_dir, "serving", serving_layout.RETRIEVAL, "1"))
    served.append(np.sort(np.load(os.path.join(index, "item_ids.npy"))))
  np.testing.assert_array_equal(served[0], served[1])
  assert len(served[1]) > 0


def test_the_cluster_is_gone_afterwards(runs):
  _, on_flink = runs
  work_dir = os.path.realpath(os.path.join(on_flink, "flink"))
  left = []
  for proc in glob.glob("/proc/[0-9]*"):
    try:
      cwd = os.path.realpath(os.readlink(os.path.join(proc, "cwd")))
      with open(os.path.join(proc, "cmdline"), "rb") as f:
        cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
      continue  # Ended while we looked.
    if cwd.startswith(work_dir) or work_dir in cmdline:
      left.append(f"{os.path.basename(proc)}: {cmdline[:200]}")
  assert not left, left


_HOLD_A_CLUSTER = """
import sys, time
from tfx_pipeline.runners import flink
with flink.LocalCluster(sys.argv[1], slots=1) as cluster:
  print("READY", " ".join(map(str, cluster.pids)), cluster.rest_port,
        flush=True)
  time.sleep(600)
"""


def _alive(pid: int) -> bool:
  try:
    with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
      return f.read().split()[2] != "Z"  # A zombie has ended.
  except OSError:
    return False


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_stops_its_cluster(tmp_path, sig):
  holder = subprocess.Popen(
      [sys.executable, "-c", _HOLD_A_CLUSTER, str(tmp_path / "flink")],
      stdout=subprocess.PIPE, text=True)
  try:
    line = holder.stdout.readline()
    assert line.startswith("READY"), line
    *pids, rest_port = map(int, line.split()[1:])
    assert len(pids) == 3 and all(_alive(p) for p in pids)
    holder.send_signal(sig)  # Ctrl-C, or a scheduler's stop.
    holder.wait(timeout=60)
  finally:
    holder.kill()
  assert not [p for p in pids if _alive(p)]
  assert not flink._port_open(rest_port)  # pylint: disable=protected-access
