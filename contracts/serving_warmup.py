"""The warm-up requests a served version carries, in TF Serving's format.

TF Serving started with `--enable_model_warmup` replays the `PredictionLog`
records of `<version>/assets.extra/tf_serving_warmup_requests` before the
version takes traffic, so the first users do not pay for lazy
initialisation (memory, kernels, an index paged in from disk). The pusher
writes them from real queries and catalogue rows of the run; `mmse serve`
replays the same file.
"""
import os
from typing import Dict, List, Mapping, Sequence

import numpy as np

from contracts import serving_layout

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
# TF Serving reads at most this many records of the file.
MAX_RECORDS = 1000


def path(version_dir: str) -> str:
  return os.path.join(version_dir, WARMUP_FILE)


def signature_inputs(version_dir: str,
                     signature_name: str = serving_layout.SERVING_SIGNATURE
                    ) -> Dict[str, int]:
  """Input name -> dtype enum of a SavedModel's signature, read from disk."""
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  from tensorflow.core.protobuf import saved_model_pb2
  # pylint: enable=g-import-not-at-top
  pb_path = os.path.join(version_dir, serving_layout.SAVED_MODEL_FILE)
  with tf.io.gfile.GFile(pb_path, "rb") as f:
    saved_model = saved_model_pb2.SavedModel.FromString(f.read())
  signatures = saved_model.meta_graphs[0].signature_def
  if signature_name not in signatures:
    raise ValueError(f"{pb_path} has no signature {signature_name!r}")
  return {name: info.dtype
          for name, info in signatures[signature_name].inputs.items()}


def requests_for(version_dir: str, model_name: str,
                 columns: Mapping[str, Sequence],
                 batch_sizes: Sequence[int]) -> List[object]:
  """PredictRequests of the sizes given, for the signature's inputs.

  `columns` maps input names to values (queries, catalogue columns); the
  signature's inputs are taken from it, row i of every batch from row
  (start + i) mod length, so consecutive requests carry different rows.
  """
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  from tensorflow_serving.apis import predict_pb2
  # pylint: enable=g-import-not-at-top
  inputs = signature_inputs(version_dir)
  missing = set(inputs) - set(columns)
  if missing:
    raise ValueError(f"no warm-up values for {model_name} inputs "
                     f"{sorted(missing)}")
  requests, start = [], 0
  for size in batch_sizes:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = serving_layout.SERVING_SIGNATURE
    for name, dtype in inputs.items():
      values = columns[name]
      rows = [values[(start + i) % len(values)] for i in range(size)]
      request.inputs[name].CopyFrom(tf.make_tensor_proto(
          np.asarray(rows, dtype=object if dtype == tf.string.as_datatype_enum
                     else None), dtype=tf.dtypes.as_dtype(dtype)))
    requests.append(request)
    start += size
  return requests


def write(version_dir: str, requests: Sequence[object]) -> str:
  """Writes the requests as TF Serving's warm-up file; returns its path."""
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  from tensorflow_serving.apis import prediction_log_pb2
  # pylint: enable=g-import-not-at-top
  if len(requests) > MAX_RECORDS:
    raise ValueError(f"{len(requests)} warm-up requests; TF Serving reads "
                     f"at most {MAX_RECORDS}")
  file_path = path(version_dir)
  tf.io.gfile.makedirs(os.path.dirname(file_path))
  with tf.io.TFRecordWriter(file_path) as writer:
    for request in requests:
      log = prediction_log_pb2.PredictionLog(
          predict_log=prediction_log_pb2.PredictLog(request=request))
      writer.write(log.SerializeToString())
  return file_path


def read(version_dir: str) -> List[object]:
  """The PredictRequests of a version's warm-up file; [] when it has none.

  Raises:
    ValueError: the file is not a TFRecord of predict PredictionLogs.
  """
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  from tensorflow_serving.apis import prediction_log_pb2
  # pylint: enable=g-import-not-at-top
  file_path = path(version_dir)
  if not tf.io.gfile.exists(file_path):
    return []
  requests = []
  try:
    for record in tf.data.TFRecordDataset(file_path).take(MAX_RECORDS):
      log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
      if log.WhichOneof("log_type") != "predict_log":
        raise ValueError(f"{file_path}: a {log.WhichOneof('log_type')} "
                         "record; only predict logs are replayed")
      requests.append(log.predict_log.request)
  except tf.errors.DataLossError as e:
    raise ValueError(f"{file_path} is not a TFRecord file: {e}") from e
  return requests
