"""The `mmse` command: simulate, schema, run, compile, retrieve, evaluate,
serve, query, index.

Each subcommand parses its flags and calls one library function; the work
lives in the modules named below so it can be imported and tested. Nothing
imports TensorFlow before a subcommand needs it, so `mmse --help` and
`mmse --version` answer at once.
"""
import argparse
import contextlib
import dataclasses
import functools
import glob
import importlib.metadata
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
from retrieval.config import IndexConfig
from tfx_pipeline import configs
from tfx_pipeline import console
# pylint: enable=g-import-not-at-top

DEFAULT_OUTPUT = "outputs"
PACKAGE = "mmse"


def _version() -> str:
  try:
    return importlib.metadata.version(PACKAGE)
  except importlib.metadata.PackageNotFoundError:  # A checkout, not installed.
    return "(not installed)"


def _start(args, log_file=None) -> None:
  """Sets up logging, then imports TensorFlow for the first time.

  TensorFlow's C++ start-up lines (CUDA factory registration on a machine
  without a GPU) would reach the console before any Python logging; they go
  to the log instead (the console shows them with --verbose).
  """
  console.setup_logging(log_file, verbose=args.verbose)
  with console.native_stderr_logged("importing TensorFlow"):
    import tensorflow  # pylint: disable=g-import-not-at-top,unused-import


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
  if logs is not None and not glob.glob(logs):
    raise SystemExit(f"mmse run: --logs {logs}: matches no file")
  for flag, path in (("--catalog", catalog), ("--judgments", args.judgments)):
    if path is not None and not os.path.isfile(path):
      raise SystemExit(f"mmse run: {flag} {path}: no such file")
  if args.schema is not None:
    from validation import schemas  # pylint: disable=g-import-not-at-top
    for name in schemas.INPUTS:
      if not os.path.isfile(schemas.schema_file(args.schema, name)):
        raise SystemExit(
            f"mmse run: --schema {args.schema}: no "
            f"{os.path.basename(schemas.schema_file(args.schema, name))} "
            "there (`mmse schema` writes both)")
  try:
    beam_args = configs.beam_pipeline_args(args.beam, output_dir,
                                           _beam_overrides(args))
  except ValueError as e:
    raise SystemExit(f"mmse run: {e}") from e
  local_flink = args.beam == "flink" and not args.flink_master
  if args.beam == "flink":
    from tfx_pipeline.runners import flink  # pylint: disable=g-import-not-at-top
    try:
      flink.require_install()
    except flink.FlinkNotInstalled as e:
      raise SystemExit(f"mmse run: --beam flink: {e}") from None
  if args.accept_drift:
    overrides.append("validation.accept_drift=true")
  log_file = os.path.join(output_dir, console.LOG_FILE)
  _start(args, log_file)
  try:
    config = configs.run_config(
        output_dir, logs=logs, catalog=catalog, judgments=args.judgments,
        schema_dir=args.schema or "", beam_pipeline_args=beam_args,
        overrides=overrides)
  except ValueError as e:
    raise SystemExit(f"mmse run: {e}") from e

  logging.info("Loading TFX and starting the pipeline; outputs go to %s",
               output_dir)
  # pylint: disable=g-import-not-at-top
  from tfx_pipeline import report_html
  from tfx_pipeline import run_report
  from tfx_pipeline.runners import local
  # pylint: enable=g-import-not-at-top
  started = time.time()
  try:
    with contextlib.ExitStack() as stack:
      if local_flink:
        cluster = stack.enter_context(flink.LocalCluster(
            os.path.join(output_dir, "flink"),
            slots=args.parallelism or os.cpu_count() or 1))
        config = dataclasses.replace(
            config, beam_pipeline_args=configs.beam_pipeline_args(
                args.beam, output_dir,
                [*cluster.beam_args(), *_beam_overrides(args)]))
      local.run(config, enable_cache=not args.no_cache)
  except Exception as e:  # pylint: disable=broad-except
    # A component failed: one line here, the traceback in the log.
    console.log_traceback_to_file("The pipeline stopped")
    raise SystemExit(
        f"mmse run: error: {e} (traceback in {log_file})") from None
  report = run_report.latest_run(config.metadata_path)
  report["wall_seconds"] = round(time.time() - started, 1)
  print(run_report.format_report(report))
  if args.report:
    with open(args.report, "w", encoding="utf-8") as f:
      json.dump(report, f, indent=2)
  print(f"Full log: {log_file}")
  print(f"Run report: {report_html.write(output_dir)}")


def cmd_compile(args):
  if args.beam == "flink" and not args.flink_master:
    raise SystemExit("mmse compile: --beam flink needs --flink-master "
                     "HOST:PORT, the cluster the pipeline's steps submit to")
  _start(args)
  from tfx_pipeline.runners import kubeflow_v2  # pylint: disable=g-import-not-at-top
  try:
    config = configs.PipelineConfig(
        logs_pattern=args.logs, catalog_path=args.catalog,
        output_dir=args.root, schema_dir=args.schema or "",
        beam_pipeline_args=configs.beam_pipeline_args(
            args.beam, args.root, _beam_overrides(args),
            setup_file=kubeflow_v2.IMAGE_SETUP_FILE,
            flink_job_server_jar=kubeflow_v2.IMAGE_FLINK_JOB_SERVER_JAR))
    config = configs.with_overrides(config, args.set or ())
    training = kubeflow_v2.training_job(
        args.training_replicas, project=args.vertex_project or "",
        region=args.vertex_region or "",
        machine_type=args.training_machine_type,
        accelerator=args.training_accelerator or "")
    written = kubeflow_v2.compile_pipeline(config, args.image, args.out,
                                           training)
  except ValueError as e:
    raise SystemExit(f"mmse compile: {e}") from e
  print(f"Wrote {written}")


def cmd_schema(args):
  paths = sorted(glob.glob(args.logs))
  if not paths:
    raise SystemExit(f"mmse schema: --logs {args.logs}: matches no file")
  if not os.path.isfile(args.catalog):
    raise SystemExit(f"mmse schema: --catalog {args.catalog}: no such file")
  _start(args)
  from validation import schemas  # pylint: disable=g-import-not-at-top
  warnings = schemas.infer_inputs(
      {schemas.LOGS: paths, schemas.CATALOG: [args.catalog]}, args.out,
      max_rows=args.max_rows)
  for name in schemas.INPUTS:
    print(f"Wrote {schemas.schema_file(args.out, name)}")
    for warning in warnings[name]:
      print(f"  review: the {schemas.INPUT_LABELS[name]}: {warning}")
  print(f"Review them, then: mmse run --schema {args.out} ...")


def cmd_report(args):
  _start(args)
  from tfx_pipeline import report_html  # pylint: disable=g-import-not-at-top
  print(f"Wrote {report_html.write(os.path.abspath(args.output))}")


def cmd_retrieve(args):
  _start(args)
  from serving import batch_retrieve  # pylint: disable=g-import-not-at-top
  count = batch_retrieve.retrieve_file(args.serving_dir, args.queries, args.k,
                                       args.out)
  print(f"Wrote {count} results to {args.out}")


def cmd_evaluate(args):
  _start(args)
  from evaluation import serving_eval  # pylint: disable=g-import-not-at-top
  metrics = serving_eval.evaluate_serving_dir(args.serving_dir, args.catalog,
                                              args.judgments)
  print(json.dumps(metrics, indent=2))


def cmd_serve(args):
  # A bad batching file fails before TensorFlow's import.
  from serving import batching  # pylint: disable=g-import-not-at-top
  if args.batching_parameters_file and not args.enable_batching:
    raise ValueError("--batching_parameters_file needs --enable_batching")
  parameters = None
  if args.enable_batching:
    parameters = (batching.read_parameters(args.batching_parameters_file)
                  if args.batching_parameters_file else
                  batching.BatchingParameters())
  _start(args)  # Version loads and swaps: an operator wants to see them.
  # FAISS's OpenMP threads would spin between searches on the cores the
  # event loop needs; libgomp reads this when FAISS first loads it.
  os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
  from serving import server  # pylint: disable=g-import-not-at-top
  options = server.ServerOptions(batching_parameters=parameters)
  if args.server_processes is not None:
    options = dataclasses.replace(options,
                                  server_processes=args.server_processes)
  server.serve(args.model_base_path, host=args.host, port=args.port,
               rest_port=args.rest_port or None, options=options,
               # Each server process logs as this one does.
               process_setup=functools.partial(_start, args))


def cmd_query(args):
  _start(args)
  from serving import client  # pylint: disable=g-import-not-at-top
  print(client.format_hits(client.query(args.server, args.text, args.k)))


def cmd_index(args):
  _start(args)
  from serving import indexing  # pylint: disable=g-import-not-at-top
  version = indexing.build_index(args.serving_dir, args.catalog,
                                 kind=args.kind, k=args.k)
  print(f"Wrote retrieval version {version} under {args.serving_dir}")


def _positive_int(text: str) -> int:
  """An argparse type: a whole number of at least 1."""
  try:
    value = int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(
        f"{text!r} is not a whole number") from None
  if value < 1:
    raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
  return value


def _add_verbose(parser: argparse.ArgumentParser) -> None:
  parser.add_argument(
      "--verbose", action="store_true",
      help="Show every library's log lines on the console, not only "
      "progress (they are always in the log file, where there is one).")


def _add_beam_flags(parser: argparse.ArgumentParser,
                    local_cluster: bool) -> None:
  parser.add_argument(
      "--beam", choices=sorted(configs.BEAM_PROFILES), default="local",
      help="Where the Beam components run: local (DirectRunner in this "
      "process, the default), local-parallel (DirectRunner, a worker "
      "process per core; a run whose rows it loses stops), flink (Apache "
      "Flink; `make flink` first), dataflow (needs --beam-arg=--project=P "
      "and --beam-arg=--region=R), spark (a cluster's job endpoint).")
  parser.add_argument(
      "--flink-master", metavar="HOST:PORT",
      help="With --beam flink: the REST endpoint of a Flink session cluster "
      "to submit every Beam stage to" + (
          "; without it the run starts a local cluster and stops it at the "
          "end." if local_cluster else "."))
  parser.add_argument(
      "--parallelism", type=_positive_int, metavar="N",
      help="With --beam flink: parallel instances of each Beam stage" + (
          " (and the local cluster's task slots); default: the cores here."
          if local_cluster else "."))
  parser.add_argument(
      "--beam-arg", action="append", metavar="--FLAG=VALUE",
      help="A Beam pipeline option, replacing the profile's flag of that "
      "name, e.g. --beam-arg=--max_num_threads=4 (repeatable; write it "
      "with '=').")


def _beam_overrides(args) -> list:
  """`--beam-arg` words, after those of --flink-master and --parallelism."""
  words = []
  if args.flink_master:
    words.append(f"--flink_master={args.flink_master}")
  if args.parallelism:
    words += [f"--parallelism={args.parallelism}",
              f"--sdk_worker_parallelism={args.parallelism}"]
  if (args.flink_master or args.parallelism) and args.beam != "flink":
    raise ValueError("--flink-master and --parallelism go with --beam flink")
  return words + list(args.beam_arg or ())


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="mmse", description="Multi-stage multi-grained semantic embeddings "
      "for e-commerce search: train, evaluate and serve.")
  parser.add_argument("--version", action="version",
                      version=f"%(prog)s {_version()}",
                      help="Print the installed version and exit.")
  sub = parser.add_subparsers(dest="command", required=True)

  p = sub.add_parser("simulate", help="Generate the embedded sample data.")
  p.add_argument("--out", required=True,
                 help="Directory to write catalog.csv, logs/ and "
                 "judgments.csv into.")
  p.add_argument("--seed", type=int, default=7,
                 help="Random seed: the same seed writes the same data.")
  p.add_argument("--items", type=int, default=2000,
                 help="Catalogue items.")
  p.add_argument("--queries", type=int, default=300,
                 help="Training queries (held-out judged queries come extra).")
  p.add_argument("--requests", type=int, default=3000,
                 help="Search requests (result pages) in the logs.")
  p.set_defaults(func=cmd_simulate)

  p = sub.add_parser("run", help="Run the TFX pipeline (LocalDagRunner).")
  p.add_argument("--logs", help="Glob of search-log CSV files (gzip or not). "
                 "Default: the embedded sample.")
  p.add_argument("--catalog", help="Catalogue CSV (item_id,title,...).")
  p.add_argument("--output", default=DEFAULT_OUTPUT,
                 help="Pipeline outputs, metadata, the serving dir and the "
                 f"log file ({console.LOG_FILE}).")
  p.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE",
                 help="Override a config knob, e.g. model.epochs=3 "
                 "(sections: mining, text, model, evaluation, index, "
                 "validation).")
  p.add_argument("--judgments",
                 help="CSV query,item_id,relevance of human judgments: the "
                 "evaluator scores them beside the logged eval split and "
                 "blesses on them (the embedded sample's by default).")
  p.add_argument("--schema", metavar="DIR",
                 help="Check the inputs against DIR/logs.pbtxt and "
                 "DIR/catalog.pbtxt (as `mmse schema` writes) instead of "
                 "the shipped schemas.")
  p.add_argument("--accept-drift", action="store_true",
                 help="Bless and push even if the logs drifted from those "
                 "of the served model beyond the validation.* thresholds "
                 "(the drift is still reported). For this run only.")
  _add_beam_flags(p, local_cluster=True)
  p.add_argument("--report", help="Also write the run report as JSON here.")
  p.add_argument("--no-cache", action="store_true",
                 help="Rerun every component. By default a run into an "
                 "--output used before reuses the outputs of components "
                 "whose inputs and settings are unchanged, so a killed run "
                 "resumes and a model.* change reruns only training on.")
  _add_verbose(p)
  p.set_defaults(func=cmd_run)

  p = sub.add_parser(
      "compile", help="Write the pipeline for another orchestrator "
      "(offline; nothing is submitted).")
  p.add_argument("--target", required=True, choices=("kubeflow",),
                 help="kubeflow: a Kubeflow Pipelines v2 / Vertex AI "
                 "PipelineJob JSON (KubeflowV2DagRunner).")
  p.add_argument("--image", required=True,
                 help="The image every step runs in (see Dockerfile).")
  p.add_argument("--out", default="mmse_pipeline.json",
                 help="File to write (default: %(default)s).")
  p.add_argument("--logs", required=True,
                 help="Glob of search-log CSV files, as the workers see it "
                 "(e.g. gs://BUCKET/logs/*.csv.gz).")
  p.add_argument("--catalog", required=True, help="Catalogue CSV URI.")
  p.add_argument("--root", required=True,
                 help="Pipeline root URI (artifacts, serving dir).")
  p.add_argument("--schema", metavar="DIR",
                 help="URI of a directory with logs.pbtxt and catalog.pbtxt "
                 "(default: the schemas shipped in the image).")
  _add_beam_flags(p, local_cluster=False)
  p.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE",
                 help="Override a config knob, as for `mmse run`.")
  p.add_argument(
      "--training-replicas", type=int, default=0, metavar="N",
      help="Train as a Vertex AI custom job of N replicas of the image "
      "(N >= 2: model.distribution=multi_worker, one chief and N-1 "
      "workers). Default: the Trainer step trains in its own container.")
  p.add_argument("--vertex-project", help="GCP project of the training job.")
  p.add_argument("--vertex-region", help="Region of the training job.")
  p.add_argument("--training-machine-type", default="n1-standard-8",
                 help="Machine of each replica (default: %(default)s).")
  p.add_argument("--training-accelerator", metavar="TYPE:COUNT",
                 help="Accelerators of each replica, e.g. NVIDIA_TESLA_T4:1.")
  _add_verbose(p)
  p.set_defaults(func=cmd_compile)

  p = sub.add_parser(
      "schema", help="Write schemas for your logs and catalogue to review "
      "and pass to `mmse run --schema`.")
  p.add_argument("--logs", required=True,
                 help="Glob of search-log CSV files (gzip or not).")
  p.add_argument("--catalog", required=True, help="Catalogue CSV.")
  p.add_argument("--out", required=True,
                 help="Directory to write logs.pbtxt and catalog.pbtxt into.")
  p.add_argument("--max-rows", type=_positive_int, default=200_000,
                 help="Rows read per input to infer types from.")
  _add_verbose(p)
  p.set_defaults(func=cmd_schema)

  p = sub.add_parser("report", help="Rewrite report.html for a past run.")
  p.add_argument("--output", default=DEFAULT_OUTPUT,
                 help="The --output directory of the run (default: "
                 "%(default)s).")
  _add_verbose(p)
  p.set_defaults(func=cmd_report)

  p = sub.add_parser("retrieve", help="Top-k items for a file of queries.")
  p.add_argument("--serving-dir", required=True,
                 help="A serving dir that `mmse run` pushed to.")
  p.add_argument("--queries", required=True,
                 help="Text file (one query a line) or CSV with a query column.")
  p.add_argument("-k", type=_positive_int, default=100,
                 help="Items per query.")
  p.add_argument("--out", required=True, help="Output JSON Lines file.")
  _add_verbose(p)
  p.set_defaults(func=cmd_retrieve)

  p = sub.add_parser("evaluate", help="Recall/NDCG of the pushed model.")
  p.add_argument("--serving-dir", required=True,
                 help="A serving dir that `mmse run` pushed to.")
  p.add_argument("--catalog", required=True,
                 help="Catalogue CSV: every item is a candidate.")
  p.add_argument("--judgments", required=True,
                 help="CSV query,item_id,relevance (grades 1..3).")
  _add_verbose(p)
  p.set_defaults(func=cmd_evaluate)

  p = sub.add_parser("serve", help="Server speaking TF Serving's gRPC and "
                     "REST APIs.")
  p.add_argument("--model-base-path", required=True,
                 help="The serving dir (with models.config) to serve.")
  p.add_argument("--port", type=int, default=8500, help="gRPC port.")
  p.add_argument("--rest-port", type=int, default=8501,
                 help="REST API port; 0 turns REST off (as TF Serving's "
                 "--rest_api_port does).")
  p.add_argument("--host", default="127.0.0.1",
                 help="Loopback unless told otherwise.")
  p.add_argument("--enable_batching", "--enable-batching",
                 action="store_true",
                 help="Merge concurrent requests into batches, as TF "
                 "Serving's flag does.")
  p.add_argument("--batching_parameters_file", "--batching-parameters-file",
                 help="TF Serving's BatchingParameters as text protobuf "
                 "(max_batch_size, batch_timeout_micros, num_batch_threads, "
                 "max_enqueued_batches, allowed_batch_sizes); unset fields "
                 "keep mmse's defaults (docs/serving.md).")
  p.add_argument("--server_processes", "--server-processes", type=int,
                 help="Server processes sharing the ports (SO_REUSEPORT), "
                 "each loading the models (docs/serving.md); default: "
                 "ServerOptions.server_processes.")
  _add_verbose(p)
  p.set_defaults(func=cmd_serve)

  p = sub.add_parser("query", help="Top items for one query, over gRPC.")
  p.add_argument("--server", default="127.0.0.1:8500", help="HOST:PORT")
  p.add_argument("text", help="The query, as a user would type it.")
  p.add_argument("-k", type=_positive_int, default=10, help="Items to show.")
  _add_verbose(p)
  p.set_defaults(func=cmd_query)

  p = sub.add_parser("index", help="Re-index a catalogue without retraining.")
  p.add_argument("--serving-dir", required=True,
                 help="A serving dir that `mmse run` pushed to; a new "
                 "retrieval version is written there.")
  p.add_argument("--catalog", required=True, help="Catalogue CSV to index.")
  p.add_argument("--kind", default=IndexConfig.kind, choices=ann.KINDS,
                 help="Nearest-neighbour index.")
  p.add_argument("-k", type=_positive_int, help="Items per query (default: "
                 "IndexConfig.k, capped at the catalogue size).")
  _add_verbose(p)
  p.set_defaults(func=cmd_index)

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
