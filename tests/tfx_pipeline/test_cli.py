"""The `mmse` command line: flags, version, and what reaches the console."""
# Walking the parser needs argparse's own attributes.
# pylint: disable=protected-access
import argparse
import importlib.metadata
import io
import logging
import os
import warnings

from absl import logging as absl_logging
import pytest

from tfx_pipeline import cli
from tfx_pipeline import console
from tfx_pipeline.runners import flink

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(cli.__file__)))


def _subcommands(parser):
  [subparsers] = [a for a in parser._actions
                  if isinstance(a, argparse._SubParsersAction)]
  return subparsers


def test_version_prints_the_installed_package_version(capsys):
  with pytest.raises(SystemExit) as exit_info:
    cli.main(["--version"])
  assert exit_info.value.code == 0
  assert capsys.readouterr().out.strip() == (
      f"mmse {importlib.metadata.version('mmse')}")


def test_every_subcommand_and_flag_has_help_text():
  parser = cli.build_parser()
  subparsers = _subcommands(parser)
  missing = [a.dest for a in subparsers._choices_actions if not a.help]
  parsers = [("mmse", parser)] + sorted(subparsers.choices.items())
  for name, subparser in parsers:
    for action in subparser._actions:
      if isinstance(action, (argparse._HelpAction,
                             argparse._SubParsersAction)):
        continue
      if not action.help or action.help == argparse.SUPPRESS:
        flag = "/".join(action.option_strings) or action.dest
        missing.append(f"{name} {flag}")
  assert not missing
  assert {"run", "retrieve", "evaluate", "serve"} <= set(subparsers.choices)


def test_run_takes_verbose():
  args = cli.build_parser().parse_args(["run", "--verbose"])
  assert args.verbose


@pytest.mark.parametrize("command", [
    ["retrieve", "--serving-dir", "s", "--queries", "q", "--out", "o"],
    ["query", "drill"],
    ["index", "--serving-dir", "s", "--catalog", "c"],
])
@pytest.mark.parametrize("k,message", [("0", "must be at least 1, got 0"),
                                       ("-3", "must be at least 1, got -3"),
                                       ("ten", "'ten' is not a whole number")])
def test_k_below_one_is_refused_before_any_work(command, k, message, capsys):
  with pytest.raises(SystemExit) as exit_info:
    cli.main([*command, "-k", k])
  assert exit_info.value.code == 2
  assert f"argument -k: {message}" in capsys.readouterr().err


def test_run_reuses_finished_components_unless_told_not_to():
  parser = cli.build_parser()
  assert not parser.parse_args(["run"]).no_cache
  assert parser.parse_args(["run", "--no-cache"]).no_cache


@pytest.mark.parametrize("flags,message", [
    (["--judgments", "{tmp}/nope.csv"], "--judgments .*nope.csv: no such file"),
    (["--logs", "{tmp}/logs/*.csv.gz", "--catalog", "{tmp}/catalog.csv"],
     "--logs .*logs/\\*.csv.gz: matches no file"),
    (["--logs", "{tmp}/a log.csv", "--catalog", "{tmp}/no \"catalog\".csv"],
     '--catalog .*no "catalog".csv: no such file'),
    (["--beam", "dataflow", "--beam-arg=--project=p"],
     "the dataflow Beam profile needs --beam-arg=--region="),
    (["--flink-master", "localhost:8081"],
     "--flink-master and --parallelism go with --beam flink"),
    (["--beam", "flink"], "--beam flink: .*make flink"),
])
def test_run_with_missing_inputs_stops_before_any_work(tmp_path, flags,
                                                       message, monkeypatch):
  # A Flink cache with nothing in it, wherever `make flink` has put one.
  monkeypatch.setenv(flink.CACHE_ENV, str(tmp_path / "no-flink"))
  (tmp_path / "a log.csv").write_text("")
  output = tmp_path / "output"
  with pytest.raises(SystemExit, match=message):
    cli.main(["run", "--output", str(output),
              *(f.format(tmp=tmp_path) for f in flags)])
  assert not output.exists()


def test_run_with_a_schema_dir_lacking_a_file_stops_before_any_work(
    tmp_path):
  schema_dir = tmp_path / "schemas"
  schema_dir.mkdir()
  (schema_dir / "logs.pbtxt").write_text("")
  output = tmp_path / "output"
  with pytest.raises(SystemExit, match="--schema .*schemas: no catalog.pbtxt "
                     "there"):
    cli.main(["run", "--output", str(output), "--schema", str(schema_dir)])
  assert not output.exists()


def test_schema_writes_both_schemas_and_what_to_review(tmp_path, capsys,
                                                       logging_restored):
  del logging_restored
  (tmp_path / "logs").mkdir()
  (tmp_path / "logs" / "day1.csv").write_text(
      "query,item_id,position,clicked,added_to_cart,ordered,device\n"
      "drill,A-1,1,1,0,0,mobile\nsaw,2,top,0,0,0,desktop\n")
  (tmp_path / "catalog.csv").write_text("item_id,title\n1,Drill\n2,Saw\n")
  out = tmp_path / "schemas"
  assert cli.main(["schema", "--logs", str(tmp_path / "logs" / "*.csv"),
                   "--catalog",
                   str(tmp_path / "catalog.csv"), "--out", str(out)]) == 0
  printed = capsys.readouterr().out
  assert f"Wrote {out / 'logs.pbtxt'}" in printed
  assert f"Wrote {out / 'catalog.pbtxt'}" in printed
  assert ("review: the search logs: column 'position' holds text; the "
          "pipeline needs whole numbers") in printed
  assert "'item_id'" not in printed  # Ids are text: A-1 and 2 alike.
  assert f"mmse run --schema {out}" in printed
  logs_schema = (out / "logs.pbtxt").read_text()
  assert 'name: "device"' in logs_schema
  assert 'name: "user_id"' not in logs_schema  # Not in these files.


def _project_record(message, level=logging.INFO):
  """A record as this project's model/ code logs it."""
  return logging.LogRecord(
      "root", level, os.path.join(PROJECT_ROOT, "model", "trainer.py"), 1,
      message, None, None)


def _component_records():
  running = logging.LogRecord("absl", logging.INFO, "/venv/tfx/launcher.py", 1,
                              "Component %s is running.", ("Trainer",), None)
  finished = logging.LogRecord("absl", logging.INFO, "/venv/tfx/launcher.py",
                               2, "Component %s is finished.", ("Trainer",),
                               None)
  return running, finished


def _log_everything():
  root = logging.getLogger()
  root.handle(_project_record("Epoch 1/2 done"))
  logging.getLogger("apache_beam.transforms").warning("No iterator is returned")
  logging.getLogger("tensorflow").info("Tables initialized inside a "
                                      "tf.function")
  logging.getLogger("tfx.types").error("A real failure")
  for record in _component_records():
    root.handle(record)


def test_quiet_console_shows_progress_and_errors_and_the_file_keeps_all(
    tmp_path, logging_restored):
  del logging_restored
  screen = io.StringIO()
  log_file = tmp_path / "out" / console.LOG_FILE
  console.setup_logging(str(log_file), verbose=False, stream=screen)
  _log_everything()

  shown = [line.split(" ", 1)[1] for line in screen.getvalue().splitlines()]
  assert shown == ["Epoch 1/2 done", "A real failure", "Running Trainer"]
  kept = log_file.read_text()
  for message in ("Epoch 1/2 done", "No iterator is returned",
                  "Tables initialized inside a tf.function", "A real failure",
                  "Component Trainer is running.",
                  "Component Trainer is finished."):
    assert message in kept


def test_absl_info_survives_tensorflow_silencing_absl_for_a_while(
    tmp_path, logging_restored):
  del logging_restored
  screen = io.StringIO()
  console.setup_logging(str(tmp_path / console.LOG_FILE), stream=screen)
  # What TensorFlow's SavedModel writer does around listing an object's
  # children.
  verbosity = absl_logging.get_verbosity()
  absl_logging.set_verbosity(absl_logging.FATAL)
  absl_logging.set_verbosity(verbosity)
  running, _ = _component_records()
  absl_logging.info(running.msg, *running.args)
  assert screen.getvalue().endswith(" Running Trainer\n")


def test_verbose_console_shows_every_library(tmp_path, logging_restored):
  del logging_restored
  screen = io.StringIO()
  console.setup_logging(str(tmp_path / console.LOG_FILE), verbose=True,
                        stream=screen)
  _log_everything()
  text = screen.getvalue()
  assert "No iterator is returned" in text
  assert "Tables initialized inside a tf.function" in text


def test_python_warnings_go_to_the_log_file_only(tmp_path, logging_restored):
  del logging_restored
  screen = io.StringIO()
  log_file = tmp_path / console.LOG_FILE
  console.setup_logging(str(log_file), stream=screen)
  with warnings.catch_warnings():
    warnings.simplefilter("always")  # The test config ignores some.
    warnings.warn("deprecated thing", DeprecationWarning, stacklevel=1)
  assert "deprecated thing" not in screen.getvalue()
  assert "deprecated thing" in log_file.read_text()


def test_native_stderr_goes_to_the_log_file_not_the_console(
    tmp_path, capfd, logging_restored):
  del logging_restored
  screen = io.StringIO()
  log_file = tmp_path / console.LOG_FILE
  console.setup_logging(str(log_file), stream=screen)
  with console.native_stderr_logged("importing a library"):
    os.write(2, b"E cuda_fft.cc] Unable to register cuFFT factory\n")
  assert "cuFFT" not in capfd.readouterr().err
  assert "cuFFT" not in screen.getvalue()
  assert "Unable to register cuFFT factory" in log_file.read_text()


def test_native_stderr_is_shown_when_the_block_fails(tmp_path, capfd,
                                                     logging_restored):
  del logging_restored
  console.setup_logging(str(tmp_path / console.LOG_FILE),
                        stream=io.StringIO())
  with pytest.raises(ImportError):
    with console.native_stderr_logged("importing a library"):
      os.write(2, b"libfoo.so: cannot open shared object file\n")
      raise ImportError("libfoo")
  assert "cannot open shared object file" in capfd.readouterr().err


def test_serve_reads_tf_servings_batching_flags(tmp_path, capsys):
  parser = cli.build_parser()
  args = parser.parse_args(["serve", "--model-base-path", "m",
                            "--enable_batching", "--batching_parameters_file",
                            "b.config"])
  assert args.enable_batching and args.batching_parameters_file == "b.config"
  assert not parser.parse_args(["serve", "--model-base-path",
                                "m"]).enable_batching
  bad = tmp_path / "batching.config"
  bad.write_text("max_batch_size { value: 0 }")
  assert cli.main(["serve", "--model-base-path", str(tmp_path),
                   "--enable_batching", "--batching_parameters_file",
                   str(bad)]) == 2
  assert f"{bad}: max_batch_size must be >= 1" in capsys.readouterr().err
  assert cli.main(["serve", "--model-base-path", str(tmp_path),
                   "--batching_parameters_file", str(bad)]) == 2
  assert "needs --enable_batching" in capsys.readouterr().err


def test_serve_takes_the_number_of_server_processes():
  parser = cli.build_parser()
  assert parser.parse_args(["serve", "--model-base-path", "m",
                            "--server_processes", "3"]).server_processes == 3
  # Unset: ServerOptions' default (a process per core).
  assert parser.parse_args(["serve", "--model-base-path",
                            "m"]).server_processes is None
