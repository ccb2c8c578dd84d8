"""What an item costs to serve: index size on disk and memory, per million.

  python -m bench.item_cost [--sizes 100000,200000] [--kind K] [--dim D]

Builds the index `IndexBuilder` builds by default (`retrieval.ann`,
`IndexConfig.kind` with its size-based defaults, k = 1,000) over clustered
synthetic unit vectors as wide as the default model's served embedding
(`ModelConfig`: trainings x num_heads x head_dim), writes it as `retrieval`
ships it (ids, float32 embeddings, the index's own files), and loads it in a
fresh process, as `mmse serve` does. Per size: the build time, the bytes on disk
and the resident memory the load adds; then the per-item slope of each
between the sizes, times a million. Writes `bench/results/item_cost.md`.
"""
import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

from bench import serving_ann
from model.config import ModelConfig
from retrieval import ann
from retrieval.config import IndexConfig

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "item_cost.md"
_MIB = 1 << 20
# Run in a fresh process: resident memory before and after loading an index.
_LOAD = """
import json, sys, psutil
import tensorflow  # ann reads through tf.io.gfile: loaded before measuring.
from retrieval import ann
me = psutil.Process()
before = me.memory_info().rss
index = ann.load(sys.argv[1])
print(json.dumps({"before": before, "after": me.memory_info().rss,
                  "items": index.index.size}))
"""


def _bytes_on_disk(directory: str) -> int:
  return sum(os.path.getsize(os.path.join(root, name))
             for root, _, names in os.walk(directory) for name in names)


def measure(num_items: int, dim: int, kind: str, work_dir: str) -> dict:
  """Builds, writes and loads one index; its costs."""
  ids, items, _ = serving_ann.synthetic_embeddings(num_items, 1, dim,
                                                   clustered=True)
  directory = os.path.join(work_dir, f"index-{num_items}")
  started = time.monotonic()
  index = ann.write_index(directory, ids, items, k=1000, kind=kind)
  build_seconds = time.monotonic() - started
  params = index.params
  del index, items
  loaded = json.loads(subprocess.run(
      [sys.executable, "-c", _LOAD, directory], check=True,
      capture_output=True, text=True).stdout.strip().splitlines()[-1])
  result = {"items": num_items, "dim": dim, "kind": kind,
            "build_seconds": build_seconds,
            "disk_bytes": _bytes_on_disk(directory),
            "memory_bytes": loaded["after"] - loaded["before"],
            "params": params}
  shutil.rmtree(directory)
  print(json.dumps(result), flush=True)
  return result


def per_million(results, key: str) -> float:
  """Bytes a million more items add: the slope between the end sizes."""
  low, high = results[0], results[-1]
  return (high[key] - low[key]) / (high["items"] - low["items"]) * 1e6


def report(results, args_line: str) -> str:
  lines = [
      "# What an item costs to serve",
      "",
      f"`{args_line}` on {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}."
      f" The {results[0]['kind']} index (size-based defaults, k = 1,000) over "
      "clustered synthetic unit vectors of the default model's served width,"
      " written as `retrieval` ships it and loaded in a fresh process (see "
      "the module docstring).",
      "",
      "| items | width | build s | on disk MiB | memory after load MiB |",
      "| ---: | ---: | ---: | ---: | ---: |",
  ]
  for r in results:
    lines.append(f"| {r['items']:,} | {r['dim']} | {r['build_seconds']:.1f} "
                 f"| {r['disk_bytes'] / _MIB:,.0f} | "
                 f"{r['memory_bytes'] / _MIB:,.0f} |")
  disk, memory = (per_million(results, k) for k in ("disk_bytes",
                                                      "memory_bytes"))
  lines += [
      "",
      f"Per million items (slope between {results[0]['items']:,} and "
      f"{results[-1]['items']:,}): {disk / 2**30:.2f} GiB on disk "
      f"({disk / 1e6:,.0f} bytes an item), {memory / 2**30:.2f} GiB of "
      f"memory ({memory / 1e6:,.0f} bytes an item). A float32 embedding of "
      f"width {results[0]['dim']} alone is {4 * results[0]['dim']:,} bytes.",
      "",
      "Index parameters: " + "; ".join(
          f"{r['items']:,}: `{json.dumps(r['params'])}`" for r in results),
      "",
  ]
  return "\n".join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  # Both below 250,000 items, where the default plan scores every item.
  parser.add_argument("--sizes", default="100000,200000")
  parser.add_argument("--kind", default=IndexConfig.kind, choices=ann.KINDS)
  default = ModelConfig()
  parser.add_argument(
      "--dim", type=int,
      default=default.trainings * default.num_heads * default.head_dim)
  parser.add_argument("--results", default=str(RESULTS))
  args = parser.parse_args(argv)
  sizes = sorted(int(s) for s in args.sizes.split(","))
  if len(sizes) < 2:
    parser.error("--sizes needs two sizes or more for a per-item slope")
  with tempfile.TemporaryDirectory() as work_dir:
    results = [measure(n, args.dim, args.kind, work_dir) for n in sizes]
  text = report(results, ("python -m bench.item_cost " +
                          " ".join(argv or [])).strip())
  pathlib.Path(args.results).write_text(text, encoding="utf-8")
  print(text)


if __name__ == "__main__":
  main()
