"""CsvExampleGen's executor, able to read `.csv.gz` files, at Arrow's speed.

Search logs usually arrive gzip-compressed. TFX 1.16's CsvExampleGen opens
files through Beam, which decompresses by file extension, but then reads the
header with a plain open and iterates the body as a plain file; both fail on
gzip. This executor opens files through Beam's file systems (gzip by name)
and parses them with Arrow's CSV reader, which handles quoting, CRLF and a
byte-order mark in C++; converting row by row in Python was most of
ExampleGen's time. Its output is what the stock CsvExampleGen writes for a
plain CSV: the same type inference (`csv_decoder`'s rule: a column is INT if
every non-empty cell is an int64, else FLOAT if every one is a number, else
STRING; all empty is a valueless feature), the same tf.Examples, serialized
as `SerializeToString(deterministic=True)` writes them, which are the bytes
ExampleGen hashes to split, so every row lands in the split it always did.
A gzip file cannot be split for reading, so each file is read whole; its
record batches are converted wherever a worker is free. A file that cannot
be read (not UTF-8, truncated, an unclosed quote, a row of another width than
the header, a blank line) stops it with an `UnreadableInput` naming the file
and line: when Arrow fails, or parses something the line-by-line reading
would refuse (a blank line, a quote inside a cell), the file is read again
line by line to find the line. It logs how many rows it has read and
converted every few seconds: a big input is minutes of work.
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
from typing import Any, Dict, Iterable, List

import apache_beam as beam
import numpy as np
import pyarrow as pa
from pyarrow import compute as pc
from pyarrow import csv as arrow_csv
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.types import standard_component_specs
from tfx_bsl.coders import csv_decoder

from components import row_accounting
from contracts import features

_PROGRESS_SECONDS = 10.0
# Arrow reads a file in blocks of this many bytes, one record batch each.
_BLOCK_BYTES = 1 << 22
# Beside the splits in the Examples artifact: one count per file read.
ROWS_READ_DIR = "rows_read"
# How `Do` tells the split's PTransform where the counts go.
_ROWS_READ_DIR_KEY = "_rows_read_dir"

ColumnType = csv_decoder.ColumnType
# Cells that Arrow's casts read exactly as Python's int() and float() do;
# any other cell (spaces, `+`, `_`, `nan`, 19 digits and more) is left to
# Python, so the types and values are the stock ones whatever the cell.
_PLAIN_INT = r"^-?[0-9]{1,18}$"
# A number with a point or an exponent, which int() refuses.
_PLAIN_DECIMAL = (r"^-?([0-9]+\.[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
                  r"|^-?[0-9]+[eE][+-]?[0-9]+$")
_PLAIN_NUMBER = f"{_PLAIN_INT}|{_PLAIN_DECIMAL}"


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


@contextlib.contextmanager
def _opened(path: str):
  """The file as a binary stream, decompressed when its name ends .gz.
  Gzip goes through Python's gzip, which raises on a truncated stream where
  Beam's reader would stop quietly."""
  file_systems = beam.io.filesystems.FileSystems
  if path.endswith(".gz"):
    with file_systems.open(
        path, compression_type=beam.io.filesystem.CompressionTypes.UNCOMPRESSED
    ) as raw, gzip.GzipFile(fileobj=raw) as f:
      yield f
  else:
    with file_systems.open(path) as f:
      yield f


def _lines(path: str):
  """The lines of a file as bytes."""
  with _opened(path) as f:
    yield from iter(f.readline, b"")


def _check_lines(path: str) -> None:
  """Reads a file line by line and raises at the first line that is not
  UTF-8 or not a record as wide as the header.

  A quoted field may hold newlines, so lines are joined until their quotes
  balance, as the stock reader does.
  """
  with _reading(path):
    lines = _lines(path)
    header = _parse_header(next(lines, b""))
    pending = []
    quotes = 0
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
        cells = len(next(csv.reader([record]), []))
        if cells != len(header):
          next(lines, None)  # A truncated file fails here, and says so.
          raise UnreadableInput(
              f"{path}: line {number} has {cells} cells where the header "
              f"has {len(header)}")
        pending, quotes = [], 0
    if pending:
      raise UnreadableInput(
          f"{path}: a quoted field is not closed before the end of the "
          "file; a truncated file?")


def _doubtful(batch: pa.RecordBatch) -> bool:
  """Whether Arrow may have read a batch where the line-by-line reading
  refuses the file: a row of empty cells may be a blank line, and a quote
  left in a cell may be a stray one that leaves a field unclosed."""
  empty_row = None
  for cells in batch.columns:
    if pc.any(pc.match_substring(cells, '"')).as_py():
      return True
    empty = pc.equal(pc.binary_length(cells), 0)
    empty_row = empty if empty_row is None else pc.and_(empty_row, empty)
  return bool(batch.num_rows and pc.any(empty_row).as_py())


class _ReadCsvBatches(beam.DoFn):
  """Yields a file's rows after its header as record batches of text cells.

  Arrow reads the file; where it fails, or reads what the line-by-line
  reading refuses, the file is read again line by line to name the line.
  """

  def __init__(self, column_names: List[str], block_bytes: int = _BLOCK_BYTES,
               rows_read_dir: str = ""):
    self._column_names = column_names
    self._block_bytes = block_bytes
    self._rows_read_dir = rows_read_dir

  def process(self, path: str) -> Iterable[pa.RecordBatch]:
    rows = 0
    checked = False
    last_line = time.monotonic()
    try:
      with _opened(path) as f:
        for batch in self._batches(f):
          if not checked and _doubtful(batch):
            _check_lines(path)
            checked = True
          rows += batch.num_rows
          yield batch
          if time.monotonic() - last_line >= _PROGRESS_SECONDS:
            last_line = time.monotonic()
            logging.info("ExampleGen: read %d rows of %s so far", rows,
                         os.path.basename(path))
    except (pa.ArrowException, EOFError, OSError, zlib.error) as e:
      _check_lines(path)
      raise UnreadableInput(f"{path}: cannot be read as CSV ({e})") from None
    logging.info("ExampleGen: read %d rows of %s", rows, path)
    if self._rows_read_dir:
      row_accounting.write_count(self._rows_read_dir, path, rows)

  def _batches(self, f) -> Iterable[pa.RecordBatch]:
    reader = arrow_csv.open_csv(
        f,
        read_options=arrow_csv.ReadOptions(
            column_names=self._column_names, skip_rows=1,
            block_size=self._block_bytes),
        # A blank line is a row of empty cells, which `_doubtful` catches.
        parse_options=arrow_csv.ParseOptions(newlines_in_values=True,
                                             ignore_empty_lines=False),
        convert_options=arrow_csv.ConvertOptions(
            column_types={name: pa.string() for name in self._column_names},
            check_utf8=True, strings_can_be_null=False,
            quoted_strings_can_be_null=False))
    for batch in reader:
      if batch.num_rows:
        yield batch


def _column_type(cells: pa.Array) -> ColumnType:
  """The stock inferred type of a column's cells (see the module's doc)."""
  cells = cells.filter(pc.not_equal(pc.binary_length(cells), 0))
  if not len(cells):
    return ColumnType.UNKNOWN
  plain_ints = pc.match_substring_regex(cells, _PLAIN_INT)
  found = ColumnType.INT if pc.any(plain_ints).as_py() else ColumnType.UNKNOWN
  rest = cells.filter(pc.invert(plain_ints))
  if not len(rest):
    return found
  plain_floats = pc.match_substring_regex(rest, _PLAIN_DECIMAL)
  if pc.any(plain_floats).as_py():
    found = ColumnType.FLOAT
  for cell in pc.unique(rest.filter(pc.invert(plain_floats))).to_pylist():
    found = max(found, csv_decoder._InferValueType(cell.encode()))  # pylint: disable=protected-access
    if found == ColumnType.STRING:
      break
  return found


class _InferColumnTypes(beam.CombineFn):
  """Record batches -> the column types the stock inference gives their
  cells, the contract's text columns always text."""

  def __init__(self, column_names: List[str]):
    self._column_names = column_names

  def create_accumulator(self) -> Dict[str, ColumnType]:
    return {}

  def add_input(self, accumulator, batch: pa.RecordBatch):
    for name, cells in zip(batch.schema.names, batch.columns):
      found = (ColumnType.STRING if name in features.TEXT_COLUMNS
               else _column_type(cells))
      accumulator[name] = max(found, accumulator.get(name, found))
    return accumulator

  def merge_accumulators(self, accumulators):
    merged = {}
    for accumulator in accumulators:
      for name, found in accumulator.items():
        merged[name] = max(found, merged.get(name, found))
    return merged

  def extract_output(self, accumulator) -> Dict[str, ColumnType]:
    return {name: accumulator.get(name, ColumnType.UNKNOWN)
            for name in self._column_names}


def _varint_sizes(values: np.ndarray) -> np.ndarray:
  """Bytes of each (uint64) value as a protobuf varint."""
  sizes = np.ones(len(values), np.int64)
  for shift in range(7, 64, 7):
    sizes += values >= (np.uint64(1) << np.uint64(shift))
  return sizes


def _binary(data: np.ndarray, sizes: np.ndarray) -> pa.Array:
  """A binary array of consecutive pieces of `data`, `sizes` bytes each."""
  offsets = np.zeros(len(sizes) + 1, np.int64)
  np.cumsum(sizes, out=offsets[1:])
  return pa.Array.from_buffers(
      pa.large_binary(), len(sizes),
      [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(data))])


def _varints(values: np.ndarray) -> pa.Array:
  """Each value (int64 or uint64, as protobuf writes it) as varint bytes."""
  values = values.astype(np.int64).view(np.uint64)
  sizes = _varint_sizes(values)
  width = int(sizes.max(initial=1))
  shifts = np.arange(width, dtype=np.uint64) * np.uint64(7)
  groups = ((values[:, None] >> shifts) & np.uint64(0x7F)).astype(np.uint8)
  more = np.arange(width) < (sizes[:, None] - 1)
  groups |= (more * 0x80).astype(np.uint8)
  return _binary(groups[np.arange(width) < sizes[:, None]], sizes)


def _lengths(pieces: pa.Array) -> np.ndarray:
  return pc.binary_length(pieces).to_numpy(zero_copy_only=False).astype(
      np.int64)


def _length_delimited(tag: bytes, pieces: pa.Array) -> pa.Array:
  """tag + varint length + piece, for each piece."""
  return _join(tag, _varints(_lengths(pieces)), pieces)


def _join(*pieces) -> pa.Array:
  """Each row's pieces, one after the other (a piece may be constant)."""
  return pc.binary_join_element_wise(
      *(pa.scalar(p, pa.large_binary()) if isinstance(p, bytes)
        else p.cast(pa.large_binary()) for p in pieces),
      pa.scalar(b"", pa.large_binary()))


def _numbers(cells: pa.Array, filled: np.ndarray, plain: str, parse,
             arrow_type) -> np.ndarray:
  """The values of the non-empty cells as Python's `parse` reads them."""
  is_plain = pc.match_substring_regex(cells, plain).to_numpy(
      zero_copy_only=False)
  values = pc.cast(pc.if_else(is_plain, cells, b"0"), arrow_type).to_numpy(
      zero_copy_only=False).copy()
  for row in np.flatnonzero(filled & ~is_plain):
    values[row] = parse(cells[row].as_py().encode())
  return values


def _feature_values(cells: pa.Array, column_type: ColumnType,
                    filled: np.ndarray) -> pa.Array:
  """The packed `value` field of each row's Int64/Float/BytesList."""
  if column_type == ColumnType.INT:
    values = _numbers(cells, filled, _PLAIN_INT, int, pa.int64())
    return _length_delimited(b"\n", _varints(values))
  if column_type == ColumnType.FLOAT:
    values = _numbers(cells, filled, _PLAIN_NUMBER, float, pa.float64())
    with np.errstate(over="ignore"):  # As protobuf stores them: inf.
      floats = values.astype(np.float32)
    return _join(b"\n\x04",
                 _binary(floats.view(np.uint8), np.full(len(floats), 4)))
  return _length_delimited(b"\n", cells)


# The Feature field each column type's list is written in.
_LIST_TAGS = {ColumnType.INT: b"\x1a", ColumnType.FLOAT: b"\x12",
              ColumnType.STRING: b"\n"}


def _feature_entry(name: str, cells: pa.Array,
                   column_type: ColumnType) -> pa.Array:
  """Each row's `feature` map entry for one column: its name and Feature."""
  if column_type in _LIST_TAGS:
    filled = _lengths(cells) > 0
    values = _feature_values(cells, column_type, filled)
    # An empty cell is an empty list.
    values = pc.if_else(filled, values, pa.scalar(b"", pa.large_binary()))
    feature = _length_delimited(_LIST_TAGS[column_type], values)
  else:  # Only empty cells: a Feature with no list.
    feature = _binary(np.zeros(0, np.uint8), np.zeros(len(cells), np.int64))
  key = name.encode()
  entry = _join(b"\n" + _varint_bytes(len(key)) + key, _length_delimited(
      b"\x12", feature))
  return _length_delimited(b"\n", entry)


def _varint_bytes(value: int) -> bytes:
  return _varints(np.array([value]))[0].as_py()


def _serialized_examples(batch: pa.RecordBatch,
                         column_types: Dict[str, ColumnType]) -> List[bytes]:
  """A batch's rows as serialized tf.Examples, byte for byte what
  `SerializeToString(deterministic=True)` writes (map keys sorted)."""
  entries = [
      _feature_entry(name, batch.column(name), column_types[name])
      for name in sorted(batch.schema.names)]
  return _length_delimited(b"\n", _join(*entries)).to_pylist()


class _ToExamples(beam.DoFn):
  """Record batches -> serialized tf.Examples, logging the count every few
  seconds."""

  def setup(self):
    self._rows = 0
    self._last_line = time.monotonic()

  def process(self, batch: pa.RecordBatch,
              column_types: Dict[str, ColumnType]) -> Iterable[bytes]:
    yield from _serialized_examples(batch, column_types)
    self._rows += batch.num_rows
    if time.monotonic() - self._last_line >= _PROGRESS_SECONDS:
      self._last_line = time.monotonic()
      logging.info("ExampleGen: converted %d rows to tf.Example so far",
                   self._rows)


@beam.typehints.with_input_types(beam.Pipeline)
class _CsvToExample(beam.PTransform):
  """CSV files of one split -> serialized tf.Examples (header names,
  inferred types)."""

  def __init__(self, exec_properties: Dict[str, Any], split_pattern: str,
               block_bytes: int = _BLOCK_BYTES):
    super().__init__()
    self._pattern = os.path.join(
        exec_properties[standard_component_specs.INPUT_BASE_KEY], split_pattern)
    self._block_bytes = block_bytes
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
    batches = (
        pipeline
        | "CreateFilenames" >> beam.Create(files)
        | "ReadCsv" >> beam.ParDo(_ReadCsvBatches(
            column_names, self._block_bytes, self._rows_read_dir))
        # A file is read (and decompressed) in one piece; its batches are
        # converted wherever a worker is free.
        | "SpreadBatches" >> beam.Reshuffle())
    column_types = beam.pvalue.AsSingleton(
        batches
        | "InferColumnTypes" >> beam.CombineGlobally(
            _InferColumnTypes(column_names)))
    return batches | "ToTFExample" >> beam.ParDo(_ToExamples(), column_types)


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
