"""CsvExampleGen's executor, able to read `.csv.gz` files.

Search logs usually arrive gzip-compressed. TFX 1.16's CsvExampleGen opens
files through Beam, which decompresses by file extension, but then reads the
header with a plain open and iterates the body as a plain file; both fail on
gzip. This executor reads records line by line through Beam's file systems and
otherwise keeps the stock parsing (type inference, tf.Example conversion), so
its output is what CsvExampleGen writes for a plain CSV.
"""
import csv
import os
from typing import Any, Dict, List

import apache_beam as beam
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.components.example_gen.csv_example_gen import executor as csv_executor
from tfx.dsl.io import fileio
from tfx.types import standard_component_specs
from tfx_bsl.coders import csv_decoder


def read_csv_header(path: str) -> List[str]:
  """Column names of a CSV file, decompressing by extension like Beam does."""
  header = next(_lines(path), b"").decode("utf-8")
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
    for line in lines:
      text = line.decode("utf-8")
      pending.append(text)
      quotes += text.count('"')
      if quotes % 2 == 0:
        yield "".join(pending)
        pending, quotes = [], 0
    if pending:
      raise ValueError(f"CSV record with unbalanced quotes in {path}")


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
    return lines | "ToTFExample" >> beam.ParDo(
        csv_executor._ParsedCsvToTfExample(), column_infos)  # pylint: disable=protected-access


class Executor(BaseExampleGenExecutor):
  """CsvExampleGen executor for plain and gzip-compressed CSV files."""

  def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
    return _CsvToExample
