"""What `mmse` prints: progress on the console, everything in a log file.

The console shows this project's own log lines (progress of every step),
which component the orchestrator starts, and errors from anywhere.
Everything else - TFX's component specs, Beam's and TensorFlow's warnings,
Python warnings - goes to the log file only, unless `verbose`. What C++
code prints while TensorFlow is first imported (CUDA factory registration
errors on machines without a GPU) goes there too: `native_stderr_logged`
catches it on file descriptor 2, below Python.
"""
import contextlib
import glob
import logging
import os
import re
import sys
import tempfile
import time
from typing import Iterator, Optional, TextIO

from absl import logging as absl_logging

LOG_FILE = "mmse.log"
# Logger of what `native_stderr_logged` caught; never on a quiet console.
NATIVE_LOGGER = "native_stderr"

_PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Every package of the project: a new one shows its progress without a list
# to keep up to date.
_PROJECT_DIRS = tuple(
    os.path.dirname(init) + os.sep
    for init in glob.glob(os.path.join(_PROJECT_ROOT, "*", "__init__.py"))
    if os.path.basename(os.path.dirname(init)) != "tests")
# TFX's launcher logs this when a component starts.
_COMPONENT_RUNNING = re.compile(r"^Component (\S+) is running\.$")
_TIME_FORMAT = "%H:%M:%S"


def is_project_record(record: logging.LogRecord) -> bool:
  """Whether a record was logged by this project's code."""
  return (record.name != NATIVE_LOGGER and
          os.path.abspath(record.pathname).startswith(_PROJECT_DIRS))


def _component_started(record: logging.LogRecord) -> Optional[str]:
  """The component's name if the record says it started, else None."""
  match = _COMPONENT_RUNNING.match(record.getMessage())
  return match.group(1) if match else None


class _QuietConsoleFilter(logging.Filter):
  """This project's INFO, components starting, and errors from anywhere.

  A component's finish is left out: the next line tells it, and the run
  report lists every component's wall time.
  """

  def filter(self, record: logging.LogRecord) -> bool:
    return (record.levelno >= logging.ERROR or
            (record.levelno >= logging.INFO and is_project_record(record)) or
            _component_started(record) is not None)


class _ConsoleFormatter(logging.Formatter):
  """`HH:MM:SS message`; "Running Trainer" for TFX's component start."""

  def __init__(self):
    super().__init__("%(asctime)s %(message)s", _TIME_FORMAT)

  def format(self, record: logging.LogRecord) -> str:
    component = _component_started(record)
    if component is None:
      return super().format(record)
    return f"{self.formatTime(record, _TIME_FORMAT)} Running {component}"


def setup_logging(log_file: Optional[str] = None, verbose: bool = False,
                  stream: Optional[TextIO] = None) -> None:
  """Routes every logger's INFO and above to the console and the log file.

  Args:
    log_file: file that receives every record at INFO and above, from every
      logger (overwritten); none when None.
    verbose: show every record on the console too, not only progress.
    stream: the console; sys.stderr when None.
  """
  console = logging.StreamHandler(stream or sys.stderr)
  if verbose:
    console.setFormatter(logging.Formatter(
        "%(asctime)s %(name)s %(levelname)s %(message)s", _TIME_FORMAT))
  else:
    console.setFormatter(_ConsoleFormatter())
    console.addFilter(_QuietConsoleFilter())
  handlers = [console]
  if log_file:
    os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
    to_file = logging.FileHandler(log_file, mode="w", encoding="utf-8")
    to_file.setFormatter(logging.Formatter(
        "%(asctime)s %(name)s %(levelname)s %(pathname)s:%(lineno)d "
        "%(message)s"))
    handlers.append(to_file)
  logging.basicConfig(level=logging.INFO, handlers=handlers, force=True)
  # TFX logs through absl. TensorFlow's SavedModel writer silences absl and
  # then restores absl's *flag* verbosity, WARNING unless set: set it, or
  # every absl INFO line (the components' start and finish) is lost from the
  # first SavedModel on.
  absl_logging.set_verbosity(absl_logging.INFO)
  logging.captureWarnings(True)


@contextlib.contextmanager
def native_stderr_logged(what: str) -> Iterator[None]:
  """Logs what is written to file descriptor 2 inside the block.

  C++ libraries write there directly, before and beneath Python's logging.
  The text is logged at INFO through `NATIVE_LOGGER` (the log file; the
  console only when verbose), or written back to stderr if the block raises.

  Args:
    what: names the block in the log ("importing TensorFlow").
  """
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as caught:
    os.dup2(caught.fileno(), 2)
    started = time.monotonic()
    try:
      yield
    except BaseException:
      _restore_stderr(saved)
      caught.seek(0)
      sys.stderr.write(caught.read().decode("utf-8", "replace"))
      raise
    _restore_stderr(saved)
    caught.seek(0)
    text = caught.read().decode("utf-8", "replace").rstrip()
  if text:
    logging.getLogger(NATIVE_LOGGER).info(
        "Written to stderr while %s (%.1f s):\n%s", what,
        time.monotonic() - started, text)


def _restore_stderr(saved: int) -> None:
  sys.stderr.flush()
  os.dup2(saved, 2)
  os.close(saved)


def log_traceback_to_file(message: str) -> None:
  """Writes `message` and the exception being handled to the log file only.

  The console gets one line about a failure; the log keeps the whole story.
  """
  root = logging.getLogger()
  record = root.makeRecord(root.name, logging.ERROR, __file__, 0, message,
                           None, sys.exc_info())
  for handler in root.handlers:
    if isinstance(handler, logging.FileHandler):
      handler.handle(record)
