"""CsvExampleGen's executor, able to read `.csv.gz` files.

Search logs usually arrive gzip-compressed. TFX 1.16's CsvExampleGen opens
files through Beam, which decompresses by file extension, but then reads the
header with a plain open and iterates the body as a plain file; both fail on
gzip. This executor reads records line by line through Beam's file systems and
otherwise keeps the stock parsing (type inference, tf.Example conversion), so
its output is what CsvExampleGen writes for a plain CSV. A gzip file cannot
be split for reading, so each file is read whole; its records are parsed in
chunks spread over every worker, so one big file does not cap parallelism. A file that cannot
be read (not UTF-8, truncated, a row of another width than the header) stops
it with an `UnreadableInput` naming the file and line. It logs how many rows
it has read and converted every few seconds: a big input is minutes of work.
The contract's text columns (`features.TEXT_COLUMNS`: ids, queries, titles)
are always bytes, so `007` stays `007` where inference would read a number.
Each file's reader leaves its row count beside the output, and the rows read
must equal the Examples on disk afterwards (`row_accounting`), whatever the
runner.
"""
import contextlib
import csv
import gzip
import logging
import os
import time
import zlib
from typing import Any, Dict, List

import apache_beam as beam
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.components.example_gen.csv_example_gen import executor as csv_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.types import standard_component_specs
from tfx_bsl.coders import csv_decoder

from components import row_accounting
from contracts import features

_PROGRESS_SECONDS = 10.0
_RECORDS_PER_CHUNK = 2000
# Beside the splits in the Examples artifact: one count per file read.
ROWS_READ_DIR = "rows_read"
# How `Do` tells the split's PTransform where the counts go.
_ROWS_READ_DIR_KEY = "_rows_read_dir"


class UnreadableInput(ValueError):
  """An input file that cannot be read as (gzip) UTF-8 CSV."""


def read_csv_header(path: str) -> List[str]:
  """Column names of a CSV file, gzip-decompressed when its name ends .gz.

  A byte-order mark (Excel's "CSV UTF-8") is not part of the first name.
  """
  with _reading(path):
    return _parse_header(next(_lines(path), b""))


def _parse_header(line: bytes) -> List[str]:
  """Column names of a header line; a byte-order mark is not part of them."""
  return next(csv.reader([line.decode("utf-8-sig")]), [])


@contextlib.contextmanager
def _reading(path: str):
  """Turns a decoding or decompression error into one naming the file."""
  try:
    yield
  except UnicodeDecodeError as e:
    raise UnreadableInput(
        f"{path}: not UTF-8 text ({e.reason} at byte {e.start} of a line); "
        "save the file as UTF-8") from None
  except (EOFError, OSError, zlib.error) as e:
    raise UnreadableInput(
        f"{path}: cannot be read ({e}); a truncated or damaged file?"
    ) from None


def _lines(path: str):
  """The lines of a file as bytes. Gzip goes through Python's gzip, which
  raises on a truncated stream where Beam's reader would stop quietly."""
  file_systems = beam.io.filesystems.FileSystems
  if path.endswith(".gz"):
    with file_systems.open(
        path, compression_type=beam.io.filesystem.CompressionTypes.UNCOMPRESSED
    ) as raw, gzip.GzipFile(fileobj=raw) as f:
      yield from iter(f.readline, b"")
  else:
    with file_systems.open(path) as f:
      yield from iter(f.readline, b"")


class _ReadCsvRecords(beam.DoFn):
  """Yields the CSV records of a file after its header, in chunks.

  A quoted field may hold newlines, so lines are joined until their quotes
  balance, as the stock reader does. A record of another width than the
  header stops the read with its line number (the stock decoder would fail
  on it later without one). Chunks of `records_per_chunk` records let the
  parsing that follows spread one big file over every worker.
  """

  def __init__(self, records_per_chunk: int = _RECORDS_PER_CHUNK,
               rows_read_dir: str = ""):
    self._records_per_chunk = records_per_chunk
    self._rows_read_dir = rows_read_dir

  def process(self, path: str):
    rows = 0
    with _reading(path):
      chunk = []
      for record in self._records(path):
        chunk.append(record)
        if len(chunk) == self._records_per_chunk:
          rows += len(chunk)
          yield chunk
          chunk = []
      if chunk:
        rows += len(chunk)
        yield chunk
    if self._rows_read_dir:
      row_accounting.write_count(self._rows_read_dir, path, rows)

  def _records(self, path: str):
    lines = _lines(path)
    header = _parse_header(next(lines, b""))
    pending = []
    quotes = 0
    rows = 0
    last_line = time.monotonic()
    for number, line in enumerate(lines, start=2):
      try:
        text = line.decode("utf-8")
      except UnicodeDecodeError as e:
        raise UnreadableInput(
            f"{path}: line {number} is not UTF-8 text ({e.reason} at byte "
            f"{e.start}); save the file as UTF-8") from None
      pending.append(text)
      quotes += text.count('"')
      if quotes % 2 == 0:
        record = "".join(pending)
        cells = len(next(csv.reader([record]), [None] * len(header)))
        if cells != len(header):
          next(lines, None)  # A truncated file fails here, and says so.
          raise UnreadableInput(
              f"{path}: line {number} has {cells} cells where the header "
              f"has {len(header)}")
        yield record
        pending, quotes = [], 0
        rows += 1
        if time.monotonic() - last_line >= _PROGRESS_SECONDS:
          last_line = time.monotonic()
          logging.info("ExampleGen: read %d rows of %s so far", rows,
                       os.path.basename(path))
    if pending:
      raise UnreadableInput(
          f"{path}: a quoted field is not closed before the end of the "
          "file; a truncated file?")
    logging.info("ExampleGen: read %d rows of %s", rows, path)


class _LogConverted(beam.DoFn):
  """Passes tf.Examples through, logging the count every few seconds."""

  def setup(self):
    self._rows = 0
    self._last_line = time.monotonic()

  def process(self, example):
    self._rows += 1
    if time.monotonic() - self._last_line >= _PROGRESS_SECONDS:
      self._last_line = time.monotonic()
      logging.info("ExampleGen: converted %d rows to tf.Example so far",
                   self._rows)
    yield example


def _with_text_columns(column_infos: List[csv_decoder.ColumnInfo]
                      ) -> List[csv_decoder.ColumnInfo]:
  """The inferred column types, with the contract's text columns as text."""
  return [
      csv_decoder.ColumnInfo(info.name, csv_decoder.ColumnType.STRING)
      if info.name in features.TEXT_COLUMNS else info
      for info in column_infos
  ]


@beam.typehints.with_input_types(beam.Pipeline)
class _CsvToExample(beam.PTransform):
  """CSV files of one split -> tf.Examples (header names, inferred types)."""

  def __init__(self, exec_properties: Dict[str, Any], split_pattern: str,
               records_per_chunk: int = _RECORDS_PER_CHUNK):
    super().__init__()
    self._pattern = os.path.join(
        exec_properties[standard_component_specs.INPUT_BASE_KEY], split_pattern)
    self._records_per_chunk = records_per_chunk
    self._rows_read_dir = exec_properties.get(_ROWS_READ_DIR_KEY, "")

  def expand(self, pipeline):
    files = sorted(fileio.glob(self._pattern))
    if not files:
      raise RuntimeError(f"Split pattern {self._pattern} matches no files.")
    column_names = read_csv_header(files[0])
    for path in files[1:]:
      if read_csv_header(path) != column_names:
        raise RuntimeError(
            f"{path} has another header than {files[0]}: {column_names}")
    lines = (
        pipeline
        | "CreateFilenames" >> beam.Create(files)
        | "ReadFromText" >> beam.ParDo(
            _ReadCsvRecords(self._records_per_chunk, self._rows_read_dir))
        # A file is read (and decompressed) in one piece; its records are
        # parsed wherever a worker is free.
        | "SpreadChunks" >> beam.Reshuffle()
        | "Records" >> beam.FlatMap(lambda chunk: chunk)
        | "ParseCSVLine" >> beam.ParDo(csv_decoder.ParseCSVLine(delimiter=","))
        | "ExtractParsedCSVLines" >> beam.Keys())
    column_infos = beam.pvalue.AsSingleton(
        lines
        | "InferColumnTypes" >> beam.CombineGlobally(
            csv_decoder.ColumnTypeInferrer(column_names,
                                           skip_blank_lines=True))
        | "TextColumns" >> beam.Map(_with_text_columns))
    return (lines
            | "ToTFExample" >> beam.ParDo(
                csv_executor._ParsedCsvToTfExample(), column_infos)  # pylint: disable=protected-access
            | "LogProgress" >> beam.ParDo(_LogConverted()))


class Executor(BaseExampleGenExecutor):
  """CsvExampleGen executor for plain and gzip-compressed CSV files."""

  def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
    return _CsvToExample

  def Do(self, input_dict, output_dict, exec_properties) -> None:
    """Writes the Examples, then checks that every row read is one of them.

    Raises:
      row_accounting.RowsLost: the Examples on disk are not the rows read.
    """
    examples = artifact_utils.get_single_instance(
        output_dict[standard_component_specs.EXAMPLES_KEY])
    rows_read_dir = os.path.join(examples.uri, ROWS_READ_DIR)
    super().Do(input_dict, output_dict,
               {**exec_properties, _ROWS_READ_DIR_KEY: rows_read_dir})
    rows_read = sum(row_accounting.read_counts(rows_read_dir).values())
    written = row_accounting.split_records(examples)
    row_accounting.check(
        "ExampleGen", "rows read", rows_read,
        "Examples written (" + ", ".join(
            f"{split} {count:,}" for split, count in written.items()) + ")",
        sum(written.values()))
    examples.set_int_custom_property(row_accounting.RECORDS_PROPERTY,
                                     sum(written.values()))
    logging.info("ExampleGen: %d rows read, every one written (%s)",
                 rows_read, written)
