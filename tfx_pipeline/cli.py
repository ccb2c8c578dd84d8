"""The `mmse` command: simulate, run, retrieve, evaluate, serve, query, index,
distill-tokens.

Each subcommand parses its flags and calls one library function; the work
lives in the modules named below so it can be imported and tested.
"""
import argparse
import dataclasses
import json
import logging
import os
import sys
import time
import warnings

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Google client libraries nag about Python 3.10 on import; TFX 1.16 needs it.
warnings.filterwarnings("ignore", category=FutureWarning, module="google")

# pylint: disable=g-import-not-at-top
from retrieval import ann
from tfx_pipeline import configs
# pylint: enable=g-import-not-at-top

DEFAULT_OUTPUT = "outputs"


_PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PROJECT_PACKAGES = ("components", "contracts", "evaluation", "mining",
                     "model", "retrieval", "sample_data", "serving",
                     "tfx_pipeline")


class _ProgressFilter(logging.Filter):
  """Keeps our modules' INFO and the orchestrator's component start/finish.

  TFX logs whole component specs at INFO; a user running the pipeline wants
  to see which component runs and what ours report, plus every warning.
  """

  def filter(self, record: logging.LogRecord) -> bool:
    if record.levelno >= logging.WARNING:
      return True
    path = os.path.abspath(record.pathname)
    if any(path.startswith(os.path.join(_PROJECT_ROOT, p) + os.sep)
           for p in _PROJECT_PACKAGES):
      return True
    message = record.getMessage()
    return message.startswith("Component ") and message.endswith(
        ("is running.", "is finished."))


def _log_progress():
  handler = logging.StreamHandler()
  handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
  handler.addFilter(_ProgressFilter())
  logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)


def cmd_simulate(args):
  from sample_data import simulator  # pylint: disable=g-import-not-at-top
  summary = simulator.simulate(args.out, seed=args.seed, num_items=args.items,
                               num_queries=args.queries,
                               num_requests=args.requests)
  print(json.dumps(summary, indent=2, default=str))


def cmd_run(args):
  output_dir = os.path.abspath(args.output)
  logs, catalog = args.logs, args.catalog
  overrides = list(args.set or ())
  if (logs is None) != (catalog is None):
    raise SystemExit("Give both --logs and --catalog, or neither for the "
                     "embedded sample.")
  if logs is None:
    from sample_data import simulator  # pylint: disable=g-import-not-at-top
    sample_dir = os.path.join(output_dir, "sample_data")
    if not os.path.exists(os.path.join(sample_dir, "catalog.csv")):
      print(f"Simulating the embedded sample into {sample_dir}")
      simulator.simulate(sample_dir)
    logs = os.path.join(sample_dir, "logs", "*.csv.gz")
    catalog = os.path.join(sample_dir, "catalog.csv")
    overrides = [*configs.SAMPLE_OVERRIDES, *overrides]
  config = configs.PipelineConfig(
      logs_pattern=os.path.abspath(logs),
      catalog_path=os.path.abspath(catalog),
      output_dir=output_dir)
  try:
    config = configs.with_overrides(config, overrides)
  except ValueError as e:
    raise SystemExit(f"mmse run: {e}") from e

  _log_progress()
  from tfx_pipeline import run_report  # pylint: disable=g-import-not-at-top
  from tfx_pipeline.runners import local  # pylint: disable=g-import-not-at-top
  started = time.time()
  local.run(config, enable_cache=args.cache)
  report = run_report.latest_run(config.metadata_path)
  report["wall_seconds"] = round(time.time() - started, 1)
  print(run_report.format_report(report))
  if args.report:
    with open(args.report, "w", encoding="utf-8") as f:
      json.dump(report, f, indent=2)


def cmd_retrieve(args):
  from serving import batch_retrieve  # pylint: disable=g-import-not-at-top
  count = batch_retrieve.retrieve_file(args.serving_dir, args.queries, args.k,
                                       args.out)
  print(f"Wrote {count} results to {args.out}")


def cmd_evaluate(args):
  from evaluation import serving_eval  # pylint: disable=g-import-not-at-top
  metrics = serving_eval.evaluate_serving_dir(args.serving_dir, args.catalog,
                                              args.judgments)
  print(json.dumps(metrics, indent=2))


def cmd_serve(args):
  from serving import server  # pylint: disable=g-import-not-at-top
  _log_progress()  # Version loads and swaps: an operator wants to see them.
  server.serve(args.model_base_path, host=args.host, port=args.port)


def cmd_query(args):
  from serving import client  # pylint: disable=g-import-not-at-top
  print(client.format_hits(client.query(args.server, args.text, args.k)))


def cmd_index(args):
  from serving import indexing  # pylint: disable=g-import-not-at-top
  version = indexing.build_index(args.serving_dir, args.catalog,
                                 kind=args.kind, k=args.k)
  print(f"Wrote retrieval version {version} under {args.serving_dir}")


def cmd_distill_tokens(args):
  # pylint: disable=g-import-not-at-top
  from contracts import catalog as catalog_lib
  from model import pretrained_tokens
  # pylint: enable=g-import-not-at-top
  _log_progress()
  titles = catalog_lib.read_catalog(args.catalog).titles
  written = pretrained_tokens.write_catalog_table(args.out, titles.tolist())
  print(f"Wrote {written} to {args.out}; train with --set "
        f"model.pretrained_token_table={os.path.abspath(args.out)}")


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="mmse", description="Multi-stage multi-grained semantic embeddings "
      "for e-commerce search: train, evaluate and serve.")
  sub = parser.add_subparsers(dest="command", required=True)

  p = sub.add_parser("simulate", help="Generate the embedded sample data.")
  p.add_argument("--out", required=True)
  p.add_argument("--seed", type=int, default=7)
  p.add_argument("--items", type=int, default=2000)
  p.add_argument("--queries", type=int, default=300,
                 help="Training queries (held-out judged queries come extra).")
  p.add_argument("--requests", type=int, default=3000)
  p.set_defaults(func=cmd_simulate)

  p = sub.add_parser("run", help="Run the TFX pipeline (LocalDagRunner).")
  p.add_argument("--logs", help="Glob of search-log CSV files (gzip or not). "
                 "Default: the embedded sample.")
  p.add_argument("--catalog", help="Catalogue CSV (item_id,title,...).")
  p.add_argument("--output", default=DEFAULT_OUTPUT,
                 help="Pipeline outputs, metadata and the serving dir.")
  p.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE",
                 help="Override a config knob, e.g. model.epochs=3 "
                 "(sections: mining, text, model, evaluation, index).")
  p.add_argument("--report", help="Also write the run report as JSON here.")
  p.add_argument("--cache", action="store_true",
                 help="Reuse outputs of components whose inputs and settings "
                 "are unchanged since an earlier run in the same --output "
                 "(e.g. rerun only training after a model.* change).")
  p.set_defaults(func=cmd_run)

  p = sub.add_parser("retrieve", help="Top-k items for a file of queries.")
  p.add_argument("--serving-dir", required=True)
  p.add_argument("--queries", required=True,
                 help="Text file (one query a line) or CSV with a query column.")
  p.add_argument("-k", type=int, default=100)
  p.add_argument("--out", required=True, help="Output JSON Lines file.")
  p.set_defaults(func=cmd_retrieve)

  p = sub.add_parser("evaluate", help="Recall/NDCG of the pushed model.")
  p.add_argument("--serving-dir", required=True)
  p.add_argument("--catalog", required=True)
  p.add_argument("--judgments", required=True,
                 help="CSV query,item_id,relevance (grades 1..3).")
  p.set_defaults(func=cmd_evaluate)

  p = sub.add_parser("serve", help="gRPC server speaking TF Serving's API.")
  p.add_argument("--model-base-path", required=True,
                 help="The serving dir (with models.config) to serve.")
  p.add_argument("--port", type=int, default=8500)
  p.add_argument("--host", default="127.0.0.1",
                 help="Loopback unless told otherwise.")
  p.set_defaults(func=cmd_serve)

  p = sub.add_parser("query", help="Top items for one query, over gRPC.")
  p.add_argument("--server", default="127.0.0.1:8500", help="HOST:PORT")
  p.add_argument("text")
  p.add_argument("-k", type=int, default=10)
  p.set_defaults(func=cmd_query)

  p = sub.add_parser("index", help="Re-index a catalogue without retraining.")
  p.add_argument("--serving-dir", required=True)
  p.add_argument("--catalog", required=True)
  p.add_argument("--kind", default="scann", choices=ann.KINDS)
  p.add_argument("-k", type=int, help="Items per query (default: "
                 "IndexConfig.k, capped at the catalogue size).")
  p.set_defaults(func=cmd_index)

  p = sub.add_parser(
      "distill-tokens", help="Word vectors from all-MiniLM-L6-v2 for the "
      "catalogue's title words (needs the minilm extra).")
  p.add_argument("--catalog", required=True, help="Catalogue CSV.")
  p.add_argument("--out", required=True, help="Table file to write (.npz).")
  p.set_defaults(func=cmd_distill_tokens)
  return parser


def main(argv=None) -> int:
  args = build_parser().parse_args(argv)
  try:
    args.func(args)
  # OSError covers missing files, a port in use and an unreachable server.
  except (ValueError, OSError, ImportError) as e:
    print(f"mmse {args.command}: error: {e}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
