"""Beam graph of MultiStageSamples: search-log impressions to training slates.

The mining steps are the `mining` library's; this module only wires them
into one Beam pipeline:

1. Catalogue: the catalogue Examples go through `contracts.catalog`'s
   `CatalogBuilder` (as a CombineFn) into one `Catalog`, the side input of
   every later step, written out as the `cleaned_catalog` artifact.
2. Logs: rows are checked (`mining.cleaning`); exact copies of a row are
   counted and set aside, and each query's impressions are summed per item
   (`mining.aggregation`). Both are combines, so memory follows the
   distinct items of a query, never the rows of the whole input or of a
   popular query.
3. Impressions per item, summed over queries, weight the random negatives
   (`mining.negatives`).
4. Slates per query (`mining.slates`) and title pseudo-query slates
   (`mining.title_queries`) are written to their split.
5. Set-aside rows and counts go to the MiningReport (`mining.report`).
6. The books are checked against the disk (`row_accounting`): rows read =
   the logs' and the catalogue's Examples, kept + set aside = read, and
   slates counted = slates written, per split.

Rows travel as Arrow record batches until they are cleaned, so the per-row
Python work is a tuple, a few comparisons and a count; everything after the
per-query sum is per query.
"""
import collections
import itertools
import json
import logging
import os
from typing import Any, Dict, Iterator, List, Mapping

import apache_beam as beam
import numpy as np
import pyarrow as pa
from pyarrow import compute as pc
from tfx import types
from tfx.components.util import examples_utils
from tfx.components.util import tfxio_utils
from tfx.dsl.components.base import base_beam_executor
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components import artifacts
from components import row_accounting
from components.multistage_samples import spec
from contracts import catalog as catalog_lib
from contracts import config_io
from contracts import features
from mining import aggregation
from mining import cleaning
from mining import count_keys
from mining import report as report_lib
from mining import slates
from mining import splits
from mining import title_queries
from mining.config import MiningConfig
from mining.negatives import NegativeSampler

_TELEMETRY = ["MultiStageSamples"]
_BATCH_SIZE = 2048  # Rows per Arrow record batch.
_LOG_EVERY_ROWS = 250_000
_LOG_EVERY_QUERIES = 2_000
_LOG_EVERY_EXAMPLES = 20_000
_TITLE_ROWS_PER_CHUNK = 2_000
_QUARANTINE = "quarantine"
_SHOWN = "shown"
_COUNTS = "counts"


def _first_values(batch: pa.RecordBatch, name: str) -> List[Any]:
  """Each row's (first) value of feature `name`; None where it is missing."""
  rows = batch.num_rows
  index = batch.schema.get_field_index(name)
  if index < 0:
    return [None] * rows
  column = batch.column(index)
  if pa.types.is_null(column.type):
    return [None] * rows
  lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy()
  present = np.flatnonzero(lengths > 0)
  starts = column.offsets.to_numpy()[present]
  values = column.values.take(pa.array(starts)).to_numpy(
      zero_copy_only=False).tolist()
  if len(present) == rows:
    return values
  result = [None] * rows
  for row, value in zip(present.tolist(), values):
    result[row] = value
  return result


def _counted(counts: Mapping[str, int]) -> Iterator[Any]:
  for key, count in counts.items():
    yield beam.pvalue.TaggedOutput(_COUNTS, (key, count))


def _logged_every(step: int, before: int, after: int) -> bool:
  return before // step != after // step


class _BuildCatalog(beam.CombineFn):
  """Catalogue record batches to one `Catalog`, under contracts' policy."""

  def create_accumulator(self) -> catalog_lib.CatalogBuilder:
    return catalog_lib.CatalogBuilder()

  def add_input(self, builder, batch: pa.RecordBatch):
    names = batch.schema.names
    for values in zip(*(_first_values(batch, n) for n in names)):
      builder.add_row(dict(zip(names, values)))
    return builder

  def merge_accumulators(self, builders):
    builders = iter(builders)
    merged = next(builders)
    for builder in builders:
      merged.merge(builder)
    return merged

  def extract_output(self, builder) -> catalog_lib.Catalog:
    return builder.build("the catalogue Examples")


def _catalog_counts(catalog: catalog_lib.Catalog) -> Iterator[Any]:
  for name, count in catalog.counts.items():
    yield count_keys.catalog(name), count


class _CleanLogs(beam.DoFn):
  """Sets bad log rows aside; emits each kept row as (query, row).

  The catalogue items of set-aside rows go to the `_SHOWN` output as
  (query, item_id): the query was shown them all the same. See
  `mining.cleaning.clean_rows`.
  """

  def __init__(self):
    self._rows = 0

  def process(self, batch: pa.RecordBatch,
              catalog: catalog_lib.Catalog) -> Iterator[Any]:
    extra_names = sorted(set(batch.schema.names) - set(features.LOG_COLUMNS))
    values = zip(*(_first_values(batch, n) for n in features.LOG_COLUMNS))
    extras = (zip(*([(n, v) for v in _first_values(batch, n)]
                    for n in extra_names))
              if extra_names else itertools.repeat(()))
    cleaned = cleaning.clean_rows(zip(values, extras), catalog)
    for query, (rows, shown) in cleaned.by_query.items():
      for row in rows:
        yield query, row
      for item_id in shown:
        yield beam.pvalue.TaggedOutput(_SHOWN, (query, item_id))
    for record in cleaned.set_aside:
      yield beam.pvalue.TaggedOutput(_QUARANTINE, record)
    yield from _counted(cleaned.counts)
    before, self._rows = self._rows, self._rows + batch.num_rows
    if _logged_every(_LOG_EVERY_ROWS, before, self._rows):
      logging.info("MultiStageSamples: cleaned %d log rows", self._rows)


class _SetAsideCopies(beam.DoFn):
  """((query, row), copies) -> (query, impression) once, duplicates aside.

  The counts are summed over the bundle and emitted as it ends: one count
  element per kept row would double the elements this step emits.
  """

  def start_bundle(self):
    self._counts = collections.Counter()

  def process(self, counted) -> Iterator[Any]:
    (query, row), copies = counted
    for record in aggregation.set_aside_copies(row, copies, self._counts):
      yield beam.pvalue.TaggedOutput(_QUARANTINE, record)
    yield query, (row[cleaning.ITEM_INDEX], aggregation.impression_stage(row))

  def finish_bundle(self) -> Iterator[Any]:
    for key, count in self._counts.items():
      yield beam.pvalue.TaggedOutput(
          _COUNTS, beam.transforms.window.GlobalWindows.windowed_value(
              (key, count)))


class _QueryStats(beam.CombineFn):
  """A query's (item_id, stage) impressions and (shown) items to its
  `QueryStats`: one entry per item, so a popular query's rows never have to
  be in one worker together."""

  def create_accumulator(self) -> aggregation.QueryStats:
    return aggregation.QueryStats()

  def add_input(self, stats, value):
    if isinstance(value, tuple):
      stats.add_impression(*value)
    else:
      stats.add_shown(value)
    return stats

  def merge_accumulators(self, accumulators):
    accumulators = iter(accumulators)
    merged = next(accumulators)
    for stats in accumulators:
      merged.merge(stats)
    return merged

  def extract_output(self, stats):
    return stats


class _QueryLog(beam.DoFn):
  """(query, QueryStats) to a QueryLog; see `mining.aggregation`."""

  def __init__(self, config: MiningConfig):
    self._config = config
    self._queries = 0

  def process(self, element) -> Iterator[Any]:
    query, stats = element
    aggregated = aggregation.query_log(query, stats, self._config)
    yield from _counted(aggregated.counts)
    if aggregated.log is not None:
      yield aggregated.log
      self._queries += 1
      if self._queries % _LOG_EVERY_QUERIES == 0:
        logging.info("MultiStageSamples: aggregated %d queries", self._queries)


class _SumImpressions(beam.CombineFn):
  """Impressions per item over every query (exposure, for negatives)."""

  def create_accumulator(self):
    return collections.Counter()

  def add_input(self, accumulator, log: aggregation.QueryLog):
    accumulator.update(log.impressions_by_item())
    return accumulator

  def merge_accumulators(self, accumulators):
    accumulators = iter(accumulators)
    merged = next(accumulators)
    for accumulator in accumulators:
      merged.update(accumulator)
    return merged

  def extract_output(self, accumulator):
    return accumulator


class _BuildSlates(beam.DoFn):
  """A query's slates as (split, serialized tf.Example)."""

  def __init__(self, config: MiningConfig):
    self._config = config
    self._examples = 0

  def process(self, log: aggregation.QueryLog, catalog: catalog_lib.Catalog,
              sampler: NegativeSampler) -> Iterator[Any]:
    counts = collections.Counter()
    for example in slates.query_examples(log, catalog, sampler, self._config,
                                         counts):
      yield log.split, example
    yield from _counted(counts)
    before = self._examples
    self._examples += counts[count_keys.examples(log.split)]
    if _logged_every(_LOG_EVERY_EXAMPLES, before, self._examples):
      logging.info("MultiStageSamples: built %d slates", self._examples)


def _title_query_rows(catalog: catalog_lib.Catalog) -> Iterator[range]:
  """The catalogue's rows in chunks, to build title slates on every worker."""
  for start in range(0, len(catalog), _TITLE_ROWS_PER_CHUNK):
    yield range(start, min(start + _TITLE_ROWS_PER_CHUNK, len(catalog)))


def _title_query_chunk(rows: range, catalog: catalog_lib.Catalog,
                       sampler: NegativeSampler,
                       config: MiningConfig) -> Iterator[Any]:
  """Title pseudo-query slates of some catalogue rows (train split), then
  their counts."""
  counts = collections.Counter()
  for example in title_queries.title_query_examples(catalog, sampler, config,
                                                    counts, rows):
    yield splits.TRAIN, example
  yield from _counted(counts)


def _write_json(value: Any, path: str) -> None:
  with fileio.open(path, "w") as f:
    f.write(json.dumps(value, indent=2, sort_keys=True))


def _record_batches(pipeline: beam.Pipeline, examples: types.Artifact,
                    label: str) -> beam.PCollection:
  """Every split of an Examples artifact as Arrow record batches."""
  split_names = artifact_utils.decode_split_names(examples.split_names)
  if not split_names:
    raise ValueError(f"Examples artifact {examples.uri} has no split_names.")
  patterns = [io_utils.all_files_pattern(
      artifact_utils.get_split_uri([examples], s)) for s in split_names]
  tfxio = tfxio_utils.get_tfxio_factory_from_artifact(
      [examples], _TELEMETRY)(patterns)
  return pipeline | label >> tfxio.BeamSource(batch_size=_BATCH_SIZE)


def _write_quarantine(records, label: str, prefix: str) -> None:
  _ = (records
       | f"Flatten{label}Quarantine" >> beam.Flatten()
       | f"{label}RecordsToJson" >> beam.Map(json.dumps)
       | f"Write{label}Quarantine" >> beam.io.WriteToText(
           prefix, file_name_suffix=".jsonl.gz"))


def _mine(pipeline: beam.Pipeline, logs: types.Artifact,
          catalog_examples: types.Artifact, examples: types.Artifact,
          report_uri: str, catalog_path: str, config: MiningConfig) -> None:
  """Adds the whole mining graph to `pipeline`."""
  catalog = (_record_batches(pipeline, catalog_examples, "ReadCatalog")
             | "BuildCatalog" >> beam.CombineGlobally(_BuildCatalog()))
  catalog_side = beam.pvalue.AsSingleton(catalog)
  _ = catalog | "WriteCatalog" >> beam.Map(catalog_lib.write_catalog,
                                           catalog_path)

  cleaned = (
      _record_batches(pipeline, logs, "ReadLogs")
      | "Clean" >> beam.ParDo(_CleanLogs(), catalog_side).with_outputs(
          _SHOWN, _QUARANTINE, _COUNTS, main="rows"))
  impressions = (
      cleaned.rows
      | "CountCopies" >> beam.combiners.Count.PerElement()
      | "SetAsideCopies" >> beam.ParDo(_SetAsideCopies()).with_outputs(
          _QUARANTINE, _COUNTS, main="impressions"))
  aggregated = (
      (impressions.impressions, cleaned[_SHOWN])
      | "FlattenImpressions" >> beam.Flatten()
      | "SumPerQuery" >> beam.CombinePerKey(_QueryStats())
      | "QueryLogs" >> beam.ParDo(_QueryLog(config)).with_outputs(
          _COUNTS, main="logs"))
  sampler = beam.pvalue.AsSingleton(
      aggregated.logs
      | "SumImpressions" >> beam.CombineGlobally(_SumImpressions())
      | "Sampler" >> beam.Map(NegativeSampler.for_catalog, catalog_side,
                              config.popularity_exponent))
  built = (
      aggregated.logs
      | "BuildSlates" >> beam.ParDo(
          _BuildSlates(config), catalog_side, sampler).with_outputs(
              _COUNTS, main="examples"))
  # Each catalogue item gets its own slate; chunks of items spread that
  # work over the workers.
  titled = (
      catalog
      | "TitleQueryRows" >> beam.FlatMap(_title_query_rows)
      | "SpreadTitleQueryRows" >> beam.Reshuffle()
      | "TitleQueries" >> beam.FlatMap(
          _title_query_chunk, catalog_side, sampler, config).with_outputs(
              _COUNTS, main="examples"))

  by_split = ((built.examples, titled.examples)
              | "FlattenExamples" >> beam.Flatten()
              | "BySplit" >> beam.Partition(
                  lambda kv, _: splits.SPLITS.index(kv[0]),
                  len(splits.SPLITS)))
  for split, split_examples in zip(splits.SPLITS, by_split):
    _ = (split_examples
         | f"Values[{split}]" >> beam.Values()
         # Slates of one query come out together; spread them out.
         | f"Shuffle[{split}]" >> beam.Reshuffle()
         | f"Write[{split}]" >> beam.io.WriteToTFRecord(
             os.path.join(artifact_utils.get_split_uri([examples], split),
                          "data_tfrecord"),
             file_name_suffix=".gz"))

  quarantine = os.path.join(report_uri, spec.QUARANTINE_DIR)
  _write_quarantine((cleaned[_QUARANTINE], impressions[_QUARANTINE]), "Logs",
                    os.path.join(quarantine, spec.LOGS_QUARANTINE))
  _write_quarantine(
      (catalog | "CatalogSetAside" >> beam.FlatMap(lambda c: c.set_aside),),
      "Catalog", os.path.join(quarantine, spec.CATALOG_QUARANTINE))
  _ = ((catalog | "CatalogCounts" >> beam.FlatMap(_catalog_counts),
        cleaned[_COUNTS], impressions[_COUNTS], aggregated[_COUNTS],
        built[_COUNTS],
        titled[_COUNTS])
       | "FlattenCounts" >> beam.Flatten()
       | "SumCounts" >> beam.CombinePerKey(sum)
       | "CountsToDict" >> beam.combiners.ToDict()
       | "Report" >> beam.Map(report_lib.report_from_counts, config)
       | "WriteReport" >> beam.Map(
           _write_json, os.path.join(report_uri, spec.COUNTS_FILE)))


def _check_books(counts: Mapping[str, Any], logs: types.Artifact,
                 catalog_examples: types.Artifact,
                 examples: types.Artifact) -> None:
  """Every row accounted for (see `row_accounting`).

  Raises:
    row_accounting.RowsLost: two counts of the same rows differ.
  """
  stage = "MultiStageSamples"
  row_accounting.check(stage, "the logs' Examples",
                       row_accounting.records_of(logs), "log rows read",
                       counts[count_keys.ROWS_READ])
  row_accounting.check(stage, "the catalogue's Examples",
                       row_accounting.records_of(catalog_examples),
                       "catalogue rows read",
                       counts[count_keys.CATALOG]["rows_read"])
  row_accounting.check(
      stage, "log rows read", counts[count_keys.ROWS_READ],
      f"rows kept ({counts[count_keys.ROWS_KEPT]:,}) and set aside "
      f"({counts['rows_set_aside']:,})",
      counts[count_keys.ROWS_KEPT] + counts["rows_set_aside"])
  written = row_accounting.split_records(examples)
  for split in splits.SPLITS:
    row_accounting.check(stage, f"{split} slates mined",
                         counts["examples"][split],
                         f"{split} slates written", written[split])
  examples.set_int_custom_property(row_accounting.RECORDS_PROPERTY,
                                   sum(written.values()))


def _publish_report(report: types.Artifact,
                    cleaned_catalog: types.Artifact) -> None:
  """Headline counts as custom properties, and in the run log."""
  with fileio.open(os.path.join(report.uri, spec.COUNTS_FILE)) as f:
    counts = json.load(f)
  headline = report_lib.headline(counts)
  for name, value in headline.items():
    report.set_int_custom_property(name, value)
  cleaned_catalog.set_int_custom_property("items", headline["catalog_items"])
  logging.info("MultiStageSamples: %s; set aside %s; catalogue %s", headline,
               counts["set_aside"], counts[count_keys.CATALOG])
  problems = report_lib.catalog_problems(counts)
  if problems:
    logging.warning("MultiStageSamples: catalogue problems %s (rows set "
                    "aside are in %s)", problems,
                    os.path.join(report.uri, spec.QUARANTINE_DIR))
  if not headline["rows_kept"]:
    reasons = {r: n for r, n in counts["set_aside"].items() if n}
    raise ValueError(
        f"No usable search-log row: all {headline['rows_read']} rows read "
        f"were set aside ({reasons or 'the logs are empty'}); examples of "
        f"them are in {os.path.join(report.uri, spec.QUARANTINE_DIR)}")
  if not counts["examples"][splits.TRAIN]:
    logging.warning("MultiStageSamples: no training slate was mined (no "
                    "clicked or ordered impression in the train split).")


class Executor(base_beam_executor.BaseBeamExecutor):
  """Mines multi-stage slates from search logs; see the module docstring."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    """Runs the mining pipeline.

    Args:
      input_dict: `logs` and `catalog`, one Examples artifact each (every
        split is read).
      output_dict: `examples` (Examples, splits train and eval), `report`
        (MiningReport: counts.json and the quarantine) and `cleaned_catalog`
        (Catalog: catalog.csv).
      exec_properties: the MiningConfig fields.
    """
    self._log_startup(input_dict, output_dict, exec_properties)
    config = config_io.from_parameters(MiningConfig, exec_properties)
    examples = artifact_utils.get_single_instance(
        output_dict[spec.EXAMPLES_KEY])
    report = artifact_utils.get_single_instance(output_dict[spec.REPORT_KEY])
    cleaned_catalog = artifact_utils.get_single_instance(
        output_dict[spec.CLEANED_CATALOG_KEY])
    examples.split_names = artifact_utils.encode_split_names(
        list(splits.SPLITS))
    examples_utils.set_payload_format(
        examples, example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE)
    logs = artifact_utils.get_single_instance(input_dict[spec.LOGS_KEY])
    catalog_examples = artifact_utils.get_single_instance(
        input_dict[spec.CATALOG_KEY])
    with self._make_beam_pipeline() as pipeline:
      _mine(pipeline,
            logs=logs,
            catalog_examples=catalog_examples,
            examples=examples,
            report_uri=report.uri,
            catalog_path=os.path.join(cleaned_catalog.uri,
                                      artifacts.CATALOG_FILE),
            config=config)
    with fileio.open(os.path.join(report.uri, spec.COUNTS_FILE)) as f:
      _check_books(json.load(f), logs, catalog_examples, examples)
    _publish_report(report, cleaned_catalog)
