"""CsvExampleGen's executor, able to read `.csv.gz` files.

Search logs usually arrive gzip-compressed. TFX 1.16's CsvExampleGen opens
files through Beam, which decompresses by file extension, but then reads the
header with a plain open and iterates the body as a plain file; both fail on
gzip. This executor reads records line by line through Beam's file systems and
otherwise keeps the stock parsing (type inference, tf.Example conversion), so
its output is what CsvExampleGen writes for a plain CSV. It logs how many
rows it has read and converted every few seconds: a big input is minutes of
work.
"""
import csv
import logging
import os
import time
from typing import Any, Dict, List

import apache_beam as beam
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.components.example_gen.csv_example_gen import executor as csv_executor
from tfx.dsl.io import fileio
from tfx.types import standard_component_specs
from tfx_bsl.coders import csv_decoder

_PROGRESS_SECONDS = 10.0


def read_csv_header(path: str) -> List[str]:
  """Column names of a CSV file, decompressing by extension like Beam does.

  A byte-order mark (Excel's "CSV UTF-8") is not part of the first name.
  """
  header = next(_lines(path), b"").decode("utf-8-sig")
  return next(csv.reader([header]), [])


def _lines(path: str):
  with beam.io.filesystems.FileSystems.open(path) as f:
    yield from iter(f.readline, b"")


class _ReadCsvRecords(beam.DoFn):
  """Yields the CSV records of a file after its header.

  A quoted field may hold newlines, so lines are joined until their quotes
  balance, as the stock reader does.
  """

  def process(self, path: str):
    lines = _lines(path)
    next(lines, None)  # The header.
    pending = []
    quotes = 0
    rows = 0
    last_line = time.monotonic()
    for line in lines:
      text = line.decode("utf-8")
      pending.append(text)
      quotes += text.count('"')
      if quotes % 2 == 0:
        yield "".join(pending)
        pending, quotes = [], 0
        rows += 1
        if time.monotonic() - last_line >= _PROGRESS_SECONDS:
          last_line = time.monotonic()
          logging.info("ExampleGen: read %d rows of %s so far", rows,
                       os.path.basename(path))
    if pending:
      raise ValueError(f"CSV record with unbalanced quotes in {path}")
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


@beam.typehints.with_input_types(beam.Pipeline)
class _CsvToExample(beam.PTransform):
  """CSV files of one split -> tf.Examples (header names, inferred types)."""

  def __init__(self, exec_properties: Dict[str, Any], split_pattern: str):
    super().__init__()
    self._pattern = os.path.join(
        exec_properties[standard_component_specs.INPUT_BASE_KEY], split_pattern)

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
        | "ReadFromText" >> beam.ParDo(_ReadCsvRecords())
        | "ParseCSVLine" >> beam.ParDo(csv_decoder.ParseCSVLine(delimiter=","))
        | "ExtractParsedCSVLines" >> beam.Keys())
    column_infos = beam.pvalue.AsSingleton(
        lines
        | "InferColumnTypes" >> beam.CombineGlobally(
            csv_decoder.ColumnTypeInferrer(column_names,
                                           skip_blank_lines=True)))
    return (lines
            | "ToTFExample" >> beam.ParDo(
                csv_executor._ParsedCsvToTfExample(), column_infos)  # pylint: disable=protected-access
            | "LogProgress" >> beam.ParDo(_LogConverted()))


class Executor(BaseExampleGenExecutor):
  """CsvExampleGen executor for plain and gzip-compressed CSV files."""

  def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
    return _CsvToExample
