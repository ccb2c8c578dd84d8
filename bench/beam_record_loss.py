"""Does a Beam runner deliver every record? Counts, per running mode.

  python -m bench.beam_record_loss --examples DIR [--copies 4]
      [--modes in_memory,multi_processing:2,multi_processing:1,multi_threading:2,flink]
      [--repeats 3] [--work-dir DIR]

Copies the logs' Examples of an earlier ExampleGen (`DIR`, its `Split-*`
directories of gzip TFRecord files) `--copies` times, as `bench.scaling`
does, counts their records with `tf.data` (the truth), then runs a pipeline
of nothing but `beam.io.ReadFromTFRecord` (one per split, flattened, as
TFX's readers do) and `beam.combiners.Count.Globally` over them under each
DirectRunner mode (`MODE[:WORKERS]`) and, with `flink`, on a local Flink
cluster (`make flink` first), `--repeats` times, each run in a process of
its own. No code of this project or of TFX
runs inside Beam. Writes `bench/results/beam_record_loss.md`; the figures
are why the `local` Beam profile runs in one process
(docs/running-at-scale.md, "Where Beam runs").
"""
import argparse
import contextlib
import glob
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

RESULTS = (pathlib.Path(__file__).resolve().parent / "results" /
           "beam_record_loss.md")
# Run in a fresh process per count: argv = the count's file, then Beam
# flags up to "--", then the split patterns. One read per split, flattened,
# as TFX's readers read Examples (tfx_bsl's `record_based_tfxio.ReadTfRecord`).
# The count goes to a file: on Flink, the last step runs in an SDK worker.
_COUNT = """
import sys
import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
out, *rest = sys.argv[1:]
flags, patterns = rest[:rest.index("--")], rest[rest.index("--") + 1:]

def write(n, out=out):  # A default: the workers do not see this module.
  with open(out, "w") as f:
    f.write(str(n))

with beam.Pipeline(options=PipelineOptions(flags)) as pipeline:
  reads = [pipeline | f"Read{i}" >> beam.io.ReadFromTFRecord(
               pattern, coder=beam.coders.BytesCoder())
           for i, pattern in enumerate(patterns)]
  _ = reads | beam.Flatten() | beam.combiners.Count.Globally() | beam.Map(write)
"""
FLINK = "flink"


def beam_count(patterns: List[str], flags: List[str]) -> int:
  """Records a Beam pipeline run with `flags` counts in the files of
  `patterns`."""
  with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "count")
    done = subprocess.run([sys.executable, "-c", _COUNT, out, *flags, "--",
                           *patterns], capture_output=True, text=True)
    if done.returncode:
      raise RuntimeError(f"the count failed ({done.returncode}): "
                         f"{done.stderr[-3000:]}")
    with open(out, encoding="utf-8") as f:
      return int(f.read())


def _flags(label: str, flink_args: List[str]) -> List[str]:
  """Beam flags of a `--modes` word: MODE[:WORKERS] of DirectRunner, or
  `flink` (the local cluster's)."""
  if label == FLINK:
    return flink_args
  mode, _, workers = label.partition(":")
  return [f"--direct_running_mode={mode}",
          f"--direct_num_workers={workers or '1'}"]


def report(truth: int, counts: Dict[str, List[int]], files: int,
           command: str) -> str:
  """The Markdown page: per mode, each run's count against `truth`."""
  lines = [
      "# Records a Beam runner delivers, per running mode",
      "",
      f"`{command}` on {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}: "
      f"a pipeline of `beam.io.ReadFromTFRecord` (one per split, "
      "flattened) and a global count over "
      f"{files} gzip TFRecord files holding {truth:,} records (counted by "
      "`tf.data`). Each run is a process of its own.",
      "",
      "| mode | workers | runs | runs short | records delivered (each run) |"
      " fewest, share lost |",
      "| --- | ---: | ---: | ---: | --- | ---: |",
  ]
  for label, delivered in counts.items():
    mode, _, workers = label.partition(":")
    workers = workers or ("slot per core" if mode == FLINK else "1")
    short = sum(1 for n in delivered if n != truth)
    fewest = min(delivered)
    lines.append(
        f"| {mode} | {workers} | {len(delivered)} | {short} | "
        f"{', '.join(f'{n:,}' for n in delivered)} | "
        f"{fewest:,}, {(truth - fewest) / truth:.2%} |")
  return "\n".join(lines) + "\n"


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--examples", required=True, metavar="DIR")
  parser.add_argument("--copies", type=int, default=4)
  parser.add_argument("--modes", default="in_memory,multi_processing:2,"
                      "multi_processing:1,multi_threading:2")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--work-dir", default="")
  parser.add_argument("--results", default=str(RESULTS))
  args = parser.parse_args(argv)
  command = " ".join(["python -m bench.beam_record_loss",
                      *(sys.argv[1:] if argv is None else argv)])
  # pylint: disable=g-import-not-at-top
  from bench import scaling
  from components import row_accounting
  from tfx_pipeline import configs
  from tfx_pipeline.runners import flink
  # pylint: enable=g-import-not-at-top
  work_dir = args.work_dir or tempfile.mkdtemp(prefix="mmse-record-loss-")
  copied_dir = os.path.join(work_dir, f"x{args.copies}")
  shutil.rmtree(copied_dir, ignore_errors=True)
  scaling.replicate_examples(scaling.existing_examples(args.examples),
                             args.copies, copied_dir)
  pattern = os.path.join(copied_dir, "Split-*", "*.gz")
  splits = [os.path.join(d, "*") for d in
            sorted(glob.glob(os.path.join(copied_dir, "Split-*")))]
  truth = row_accounting.count_records(sorted(glob.glob(pattern)))
  print(f"{truth:,} records in {pattern}", flush=True)
  counts: Dict[str, List[int]] = {}
  labels = [label for label in args.modes.split(",") if label]
  with contextlib.ExitStack() as stack:
    flink_args = []
    if FLINK in labels:
      cluster = stack.enter_context(
          flink.LocalCluster(os.path.join(work_dir, "flink")))
      flink_args = list(configs.beam_pipeline_args(FLINK, work_dir,
                                                   cluster.beam_args()))
    for _ in range(args.repeats):
      for label in labels:
        counts.setdefault(label, []).append(
            beam_count(splits, _flags(label, flink_args)))
        print(f"{label}: {counts[label][-1]:,}", flush=True)
        os.makedirs(os.path.dirname(args.results), exist_ok=True)
        with open(args.results, "w", encoding="utf-8") as f:
          f.write(report(truth, counts, len(glob.glob(pattern)), command))
  shutil.rmtree(copied_dir)
  print(f"Wrote {args.results}")


if __name__ == "__main__":
  main()
