"""How the data path scales: LogsExampleGen and MultiStageSamples, measured.

  python -m bench.scaling [--data-dir ../shared/data/homedepot]
      [--scales 1,4,16] [--repeats 2] [--work-dir DIR]

Both components run as the pipeline runs them (their executors' `Do`), in
this process:

1. Workers: on the benchmark logs, each of `--modes`, alternated
   `--repeats` times: `in_memory` (DirectRunner in this process, the
   `local` profile), `1` (multi-processing mode with one Beam worker
   process), `all_cores` (one per core, the `local-parallel` profile) and
   `flink` (a local Flink cluster with a slot per core, started for the
   benchmark as `mmse run --beam flink` starts it; `make flink` first).
2. Size: MultiStageSamples on the benchmark logs' Examples copied 1, 4 and
   16 times, each copy's queries and request ids renamed ("drill" ->
   "drill c3"), so a copy is new queries of the same shape, not duplicate
   rows; per size the wall time, impressions per second and peak memory.
   (The copies are made from LogsExampleGen's output: at 16x ExampleGen
   itself would take over an hour here.) `--size-mode in_memory` (the
   default, the `local` profile) runs them in DirectRunner's in-memory
   mode, one process; `all_cores` as `local-parallel`, which loses a few
   percent of the rows of inputs this large (see README); `flink` on the
   local Flink cluster. A size whose mining read fewer rows than it was
   given stops the benchmark.

`--examples DIR` takes the logs' Examples from an earlier ExampleGen (its
`Split-*` directories) instead of running it; `--repeats 0` skips part 1;
`--keep-previous` adds this run's rows to those of `scaling.json` (each row
keeps the command and date that measured it); `--report-only` rewrites
`scaling.md` from `scaling.json`.

Memory is sampled every 0.2 s as resident set size: of this process (under
DirectRunner it launches the workers and holds the data between stages,
the shuffle included) and of each worker process (where the mining code
runs); on Flink, also the peak of each kind of process (JobManager,
TaskManager, job server, SDK workers). Writes `bench/results/scaling.md` and `scaling.json`.
"""
import argparse
import contextlib
import dataclasses
import glob
import gzip
import json
import multiprocessing
import os
import pathlib
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from typing import Dict, List, Sequence

import psutil
from google.protobuf import message
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components import artifacts
from components.csv_example_gen import executor as csv_executor
from components.multistage_samples import executor as mining_executor
from components.multistage_samples import spec as mining_spec
from contracts import config_io
from contracts import features
from mining.config import MiningConfig
from tfx_pipeline import configs
from tfx_pipeline import pipeline
from tfx_pipeline.runners import flink

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
ONE_WORKER = ("--direct_running_mode=multi_processing",
              "--direct_num_workers=1")
ALL_CORES = configs.BEAM_PROFILES["local-parallel"]
# What part 1 compares, by the label of its rows; `flink` is a local Flink
# cluster, started for the benchmark (`make flink` first).
WORKER_MODES = {
    "in_memory": configs.BEAM_PROFILES["local"],
    "1": ONE_WORKER,
    "all_cores": ALL_CORES,
    "flink": configs.BEAM_PROFILES["flink"],
}
FLINK = "flink"
# How the sizes run (`--size-mode`): the `local` profile, all cores, Flink.
SIZE_MODES = ("in_memory", "all_cores", FLINK)
_MIB = 1 << 20


# The processes of a Flink run, by a word of their command lines.
_KINDS = {"StandaloneSessionClusterEntrypoint": "Flink JobManager",
          "TaskManagerRunner": "Flink TaskManager",
          # The SDK workers are forked from the pool's fork server.
          "multiprocessing.forkserver": "Python SDK worker",
          "beam-flink-job-server": "Beam job server",
          "sdk_worker_pool": "SDK worker pool"}


def _kind(cmdline: Sequence[str]) -> str:
  words = " ".join(cmdline)
  return next((kind for word, kind in _KINDS.items() if word in words),
              "other")


class PeakMemory:
  """Samples the resident memory of this process and of its children."""

  def __init__(self, every_seconds: float = 0.2):
    self._every = every_seconds
    self._stop = threading.Event()
    self.launcher = 0  # Peak RSS of this process, bytes.
    self.worker = 0  # Peak RSS of any one child process.
    self.total = 0  # Peak sum over this process and its children.
    # Peak RSS of any one process of each kind (`_KINDS`), bytes.
    self.by_kind: Dict[str, int] = {}
    self._thread = threading.Thread(target=self._sample, daemon=True)

  def __enter__(self):
    self._thread.start()
    return self

  def __exit__(self, *exc):
    self._stop.set()
    self._thread.join()

  def _sample(self):
    me = psutil.Process()
    while not self._stop.is_set():
      try:
        own = me.memory_info().rss
        children = []
        for child in me.children(recursive=True):
          try:
            rss = child.memory_info().rss
            kind = _kind(child.cmdline())
          except psutil.Error:
            continue
          children.append(rss)
          self.by_kind[kind] = max(self.by_kind.get(kind, 0), rss)
      except psutil.Error:
        continue
      self.launcher = max(self.launcher, own)
      self.worker = max([self.worker, *children])
      self.total = max(self.total, own + sum(children))
      self._stop.wait(self._every)


def _exec_properties(component) -> Dict[str, object]:
  """A component's execution properties as its executor receives them."""
  return {k: (proto_utils.proto_to_json(v) if isinstance(v, message.Message)
              else v) for k, v in component.exec_properties.items()}


def _context(beam_args: Sequence[str], tmp_dir: str):
  return base_beam_executor.BaseBeamExecutor.Context(
      beam_pipeline_args=list(beam_args), tmp_dir=tmp_dir)


def example_gen(pattern: str, out_dir: str, beam_args: Sequence[str]):
  """LogsExampleGen's executor on the CSV files of `pattern`."""
  examples = standard_artifacts.Examples()
  examples.uri = out_dir
  component = pipeline._csv_example_gen(pattern, "ExampleGen")  # pylint: disable=protected-access
  csv_executor.Executor(_context(beam_args, out_dir + "-tmp")).Do(
      {}, {"examples": [examples]}, _exec_properties(component))
  return examples


def multistage_samples(logs, catalog, out_dir: str,
                       beam_args: Sequence[str]) -> Dict[str, int]:
  """MultiStageSamples' executor; returns its headline counts."""
  outputs = {mining_spec.EXAMPLES_KEY: standard_artifacts.Examples(),
             mining_spec.REPORT_KEY: artifacts.MiningReport(),
             mining_spec.CLEANED_CATALOG_KEY: artifacts.Catalog()}
  for key, artifact in outputs.items():
    artifact.uri = os.path.join(out_dir, key)
    os.makedirs(artifact.uri)
  mining_executor.Executor(_context(beam_args, out_dir + "-tmp")).Do(
      {mining_spec.LOGS_KEY: [logs], mining_spec.CATALOG_KEY: [catalog]},
      {k: [a] for k, a in outputs.items()},
      config_io.to_parameters(MiningConfig()))
  report = outputs[mining_spec.REPORT_KEY]
  return {k: report.get_int_custom_property(k)
          for k in ("rows_read", "rows_kept")}


def _copy_file(task) -> int:
  """Writes copy `copy` of one TFRecord file of Examples; returns rows."""
  source, target, copy = task
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  suffix = f" c{copy}".encode()
  rows = 0
  with tf.io.TFRecordWriter(target, options="GZIP") as writer:
    for record in tf.compat.v1.io.tf_record_iterator(
        source, options=tf.io.TFRecordOptions(compression_type="GZIP")):
      example = tf.train.Example.FromString(record)
      feature = example.features.feature
      for name, add in ((features.QUERY, suffix),
                        (features.REQUEST_ID, b"-" + suffix.strip())):
        values = feature[name].bytes_list.value if name in feature else []
        if values and values[0]:
          values[0] += add
      writer.write(example.SerializeToString())
      rows += 1
  return rows


def replicate_examples(examples, copies: int, out_dir: str):
  """An Examples artifact holding `copies` renamed copies of `examples`.

  Copy 0 is the rows as they are; copy c renames every query `q` to
  "q c<c>" and every request `r` to "r-c<c>".
  """
  copied = standard_artifacts.Examples()
  copied.uri = out_dir
  copied.split_names = examples.split_names
  tasks = []
  for split in artifact_utils.decode_split_names(examples.split_names):
    source_dir = artifact_utils.get_split_uri([examples], split)
    target_dir = artifact_utils.get_split_uri([copied], split)
    os.makedirs(target_dir)
    for path in sorted(glob.glob(os.path.join(source_dir, "*.gz"))):
      name = os.path.basename(path)
      shutil.copy(path, os.path.join(target_dir, name))
      tasks += [(path, os.path.join(target_dir, f"c{c}-{name}"), c)
                for c in range(1, copies)]
  with multiprocessing.get_context("spawn").Pool() as pool:
    pool.map(_copy_file, tasks)
  return copied


@dataclasses.dataclass
class Measured:
  step: str
  workers: str
  scale: int
  impressions: int
  seconds: float
  launcher_mib: float
  worker_mib: float
  total_mib: float
  command: str = ""  # The benchmark command that measured it.
  date: str = ""
  # Peak MiB of any one process of each kind (Flink runs).
  process_mib: Dict[str, float] = dataclasses.field(default_factory=dict)

  @property
  def per_second(self) -> float:
    return self.impressions / self.seconds


def _measure(step, workers, scale, impressions, run) -> Measured:
  started = time.monotonic()
  with PeakMemory() as memory:
    run()
  measured = Measured(step, workers, scale, impressions,
                      time.monotonic() - started, memory.launcher / _MIB,
                      memory.worker / _MIB, memory.total / _MIB,
                      date=time.strftime("%Y-%m-%d"),
                      process_mib={k: round(v / _MIB) for k, v in
                                   sorted(memory.by_kind.items())})
  print(f"{step} workers={workers} scale={scale}: "
        f"{measured.seconds:.1f} s, {measured.per_second:,.0f} impressions/s,"
        f" launcher {measured.launcher_mib:,.0f} MiB, largest worker "
        f"{measured.worker_mib:,.0f} MiB, all {measured.total_mib:,.0f} MiB",
        flush=True)
  return measured


def _mine(logs, catalog, impressions, scale, workers, beam_args,
          work_dir) -> Measured:
  out = tempfile.mkdtemp(dir=work_dir, prefix=f"mined-x{scale}-{workers}-")
  box = {}
  measured = _measure(
      "MultiStageSamples", workers, scale, impressions,
      lambda: box.setdefault("counts", multistage_samples(
          logs, catalog, out, beam_args)))
  if box["counts"]["rows_read"] != impressions:
    raise RuntimeError(f"mining read {box['counts']['rows_read']} rows of "
                       f"{impressions}")
  shutil.rmtree(out)
  return measured


def _example_gen(pattern, impressions, workers, beam_args, work_dir):
  out = tempfile.mkdtemp(dir=work_dir, prefix=f"logs-{workers}-")
  box = {}
  measured = _measure(
      "LogsExampleGen", workers, 1, impressions,
      lambda: box.setdefault("logs", example_gen(pattern, out, beam_args)))
  return box["logs"], measured


def _spread(values: List[float], fmt: str = "{:,.1f}") -> str:
  """Median (min-max) of repeated runs."""
  if len(values) == 1:
    return fmt.format(values[0])
  return (fmt.format(statistics.median(values)) +
          f" ({fmt.format(min(values))}-{fmt.format(max(values))})")


def report(measured: List[Measured]) -> str:
  """The Markdown page of `measured`."""
  commands = sorted({(m.date, m.command) for m in measured})
  lines = [
      "# Scaling of the data path",
      "",
      f"On {os.cpu_count()} cores ({platform.processor() or platform.machine()})"
      "; the executors run as the pipeline runs them. See the module "
      "docstring for what is measured. Measured by:",
      "",
      *(f"- `{command}` ({date})" for date, command in commands),
      "",
      "## Each mode on the 1x logs (median and range of the runs)",
      "",
      "| step | workers | runs | seconds | impressions/s |",
      "| --- | --- | ---: | ---: | ---: |",
  ]
  by = {}
  for m in measured:
    by.setdefault((m.step, m.workers, m.scale), []).append(m)
  for step in ("LogsExampleGen", "MultiStageSamples"):
    for workers in WORKER_MODES:
      runs = by.get((step, workers, 1), [])
      if runs:
        lines.append(
            f"| {step} | {workers} | {len(runs)} | "
            f"{_spread([r.seconds for r in runs])} | "
            f"{_spread([r.per_second for r in runs], '{:,.0f}')} |")
    baseline = by.get((step, "in_memory", 1))
    for workers in WORKER_MODES:
      runs = by.get((step, workers, 1))
      if runs and baseline and workers != "in_memory":
        ratio = (statistics.median(r.seconds for r in baseline) /
                 statistics.median(r.seconds for r in runs))
        lines.append(f"| {step} | {workers}: speed-up over in_memory | | "
                     f"{ratio:.2f}x | |")
  lines += [
      "",
      "## Size: MultiStageSamples (the last run of each)",
      "",
      "| mode | scale | impressions | seconds | impressions/s | "
      "launcher MiB | largest worker MiB | all MiB |",
      "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ]
  for mode in SIZE_MODES:
    scales = sorted({m.scale for m in measured
                     if m.step == "MultiStageSamples" and m.workers == mode})
    for scale in scales:
      r = by[("MultiStageSamples", mode, scale)][-1]
      lines.append(
          f"| {mode} | {scale}x | {r.impressions:,} | {r.seconds:.1f} | "
          f"{r.per_second:,.0f} | {r.launcher_mib:,.0f} | "
          f"{r.worker_mib:,.0f} | {r.total_mib:,.0f} |")
  flink_rows = [m for m in measured if m.workers == FLINK and m.process_mib]
  if flink_rows:
    kinds = sorted({k for m in flink_rows for k in m.process_mib})
    lines += [
        "",
        "## On Flink: peak MiB of any one process of each kind (the last "
        "run of each)",
        "",
        "| step | scale | " + " | ".join(kinds) + " |",
        "| --- | ---: |" + " ---: |" * len(kinds),
    ]
    last = {(m.step, m.scale): m for m in flink_rows}
    for (step, scale), m in sorted(last.items()):
      lines.append(f"| {step} | {scale}x | " + " | ".join(
          f"{m.process_mib.get(k, 0):,.0f}" for k in kinds) + " |")
  return "\n".join(lines) + "\n"


def _write(measured, results_dir) -> None:
  os.makedirs(results_dir, exist_ok=True)
  with open(os.path.join(results_dir, "scaling.md"), "w",
            encoding="utf-8") as f:
    f.write(report(measured))
  with open(os.path.join(results_dir, "scaling.json"), "w",
            encoding="utf-8") as f:
    json.dump([{**dataclasses.asdict(m), "impressions_per_second":
                m.per_second} for m in measured], f, indent=1)


def _previous(results_dir) -> List[Measured]:
  path = os.path.join(results_dir, "scaling.json")
  if not os.path.exists(path):
    return []
  with open(path, encoding="utf-8") as f:
    rows = json.load(f)
  fields = {f.name for f in dataclasses.fields(Measured)}
  return [Measured(**{k: v for k, v in row.items() if k in fields})
          for row in rows]


def existing_examples(directory: str):
  examples = standard_artifacts.Examples()
  examples.uri = directory
  splits = sorted(os.path.basename(p)[len("Split-"):]
                  for p in glob.glob(os.path.join(directory, "Split-*")))
  if not splits:
    raise SystemExit(f"--examples {directory}: no Split-* directory there")
  examples.split_names = artifact_utils.encode_split_names(splits)
  return examples


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data-dir", default=os.path.join(
      configs.REPOSITORY_DIR, "..", "shared", "data", "homedepot"))
  parser.add_argument("--scales", default="1,4,16")
  parser.add_argument("--repeats", type=int, default=2)
  parser.add_argument("--modes", default="in_memory,1,all_cores",
                      help="Part 1's modes, of " + ",".join(WORKER_MODES))
  parser.add_argument("--size-mode", choices=SIZE_MODES,
                      default="in_memory")
  parser.add_argument("--examples", metavar="DIR",
                      help="The logs' Examples from an earlier ExampleGen.")
  parser.add_argument("--keep-previous", action="store_true")
  parser.add_argument("--report-only", action="store_true",
                      help="Rewrite scaling.md from scaling.json; measure "
                      "nothing.")
  parser.add_argument("--work-dir", default="")
  parser.add_argument("--results", default=str(RESULTS))
  parser.add_argument(
      "--no-example-gen", dest="example_gen", action="store_false",
      help="Time MultiStageSamples alone (ExampleGen runs once, untimed).")
  args = parser.parse_args(argv)
  if args.report_only:
    _write(_previous(args.results), args.results)
    return
  scales = [int(s) for s in args.scales.split(",") if s]
  command = " ".join(["python -m bench.scaling",
                      *(sys.argv[1:] if argv is None else argv)])
  logs_pattern = os.path.join(args.data_dir, "logs", "*.csv.gz")
  impressions = sum(1 for path in glob.glob(logs_pattern)
                    for _ in gzip.open(path)) - len(glob.glob(logs_pattern))
  work_dir = args.work_dir or tempfile.mkdtemp(prefix="mmse-scaling-")
  os.makedirs(work_dir, exist_ok=True)
  catalog = example_gen(os.path.join(args.data_dir, "catalog.csv"),
                        os.path.join(work_dir, "catalog"),
                        configs.BEAM_PROFILES["local"])
  measured: List[Measured] = (_previous(args.results) if args.keep_previous
                              else [])

  def record(row: Measured) -> None:
    measured.append(dataclasses.replace(row, command=command))
    _write(measured, args.results)

  modes = [m for m in args.modes.split(",") if m]
  unknown = set(modes) - set(WORKER_MODES)
  if unknown:
    parser.error(f"unknown --modes {sorted(unknown)}")
  logs = existing_examples(args.examples) if args.examples else None
  if logs is None and not (args.example_gen and args.repeats):
    logs = example_gen(logs_pattern, os.path.join(work_dir, "logs"),
                       configs.BEAM_PROFILES["local"])
  with contextlib.ExitStack() as stack:
    mode_args = {m: WORKER_MODES[m] for m in modes}
    mode_args[args.size_mode] = WORKER_MODES[args.size_mode]
    if FLINK in mode_args:
      cluster = stack.enter_context(
          flink.LocalCluster(os.path.join(work_dir, "flink")))
      mode_args[FLINK] = configs.beam_pipeline_args(
          FLINK, work_dir, cluster.beam_args())
    for _ in range(args.repeats):
      for workers in modes:
        if args.example_gen:
          logs, generated = _example_gen(logs_pattern, impressions, workers,
                                         mode_args[workers], work_dir)
          record(generated)
        record(_mine(logs, catalog, impressions, 1, workers,
                     mode_args[workers], work_dir))
    for scale in scales:
      copied = replicate_examples(logs, scale,
                                  os.path.join(work_dir, f"logs-x{scale}"))
      record(_mine(copied, catalog, impressions * scale, scale,
                   args.size_mode, mode_args[args.size_mode], work_dir))
      shutil.rmtree(copied.uri)
  print(f"Wrote {os.path.join(args.results, 'scaling.md')}")


if __name__ == "__main__":
  main()
