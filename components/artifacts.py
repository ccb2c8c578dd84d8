"""The pipeline's own artifact types and the files inside them.

Type names are `namespace.Title`, the form Kubeflow Pipelines v2 requires.
"""
from tfx.types import artifact


class MiningReport(artifact.Artifact):
  """What one mining run read, kept, set aside and produced.

  Every row that did not become training data is accounted for:
  `counts.json` holds the counts (rows read and kept, rows set aside by
  reason, queries, examples, positives and slots by stage, catalogue
  problems) and `quarantine/` every set-aside row (gzip JSON lines: the
  row's columns plus `reason`). The headline counts are custom properties
  too, so they show in the metadata store without opening files.
  """
  TYPE_NAME = "mmse.MiningReport"


class Catalog(artifact.Artifact):
  """The cleaned catalogue mining used: `catalog.csv`, one row per item.

  Written under `contracts.catalog`'s policy (duplicates and rows without an
  item_id set aside in the MiningReport), so the evaluator and IndexBuilder
  embed exactly the items mining knew, read with `contracts.catalog`.
  """
  TYPE_NAME = "mmse.Catalog"


class RetrievalIndex(artifact.Artifact):
  """`retrieval/`: the exact SavedModel + `assets.extra/index/` ANN files."""
  TYPE_NAME = "mmse.RetrievalIndex"


class RetrievalEvaluation(artifact.Artifact):
  """`metrics.json`: candidate and baseline metrics and the blessing decision.

  The metrics are also the artifact's custom properties, so they can be
  compared across runs from ML Metadata without reading files.
  """
  TYPE_NAME = "mmse.RetrievalEvaluation"


class DataGateReport(artifact.Artifact):
  """`data_gate.json`: what the inputs' checks reported and the drift.

  Written only when no input failed its schema (a failing input stops the
  run): the anomalies that were reported without blocking, by input, the
  drift measured against the served version (`compared_with`, None on a
  first run), whether this run accepts it, the share of log rows
  mining may set aside, and `logs_examples`, the log rows ExampleGen wrote
  (mining must read as many). Custom property `drifted` is 1 when a drift
  threshold was exceeded.
  """
  TYPE_NAME = "mmse.DataGateReport"


CATALOG_FILE = "catalog.csv"  # Inside a Catalog artifact.

