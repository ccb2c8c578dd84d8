"""What a Predict call does, whichever API it came in by.

gRPC (`serving.server`) and REST (`serving.rest`) decode their wire format
into numpy arrays and hand them here, so both check a request the same way,
run it through the same batchers and fail with the same status and message:
unknown model, version or signature is NOT_FOUND; a wrong input set, dtype
or shape, an empty or oversized batch, an over-long or non-UTF-8 string is
INVALID_ARGUMENT. Statuses are gRPC's codes; REST maps them to HTTP.
"""
import dataclasses
from typing import Dict, Optional, Sequence

import grpc
import numpy as np
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2

from contracts import serving_layout
from serving import batching
from serving import model_registry
from serving import tensor_codec

SIGNATURE_DEF_FIELD = "signature_def"
_OK, _UNKNOWN = 0, 2  # tensorflow.error.Code values for StatusProto.
# Elements one row of one input may have (inputs here are [batch] vectors).
MAX_ROW_ELEMENTS = 4096


@dataclasses.dataclass(frozen=True)
class RequestLimits:
  """Bounds on one request, the same for every API."""
  # Rows of one request; batches merged across requests have the same bound.
  max_batch_rows: int = 256
  # Longest string element (a query, a title) in bytes.
  max_string_bytes: int = 1024

  @property
  def max_elements(self) -> int:
    return self.max_batch_rows * MAX_ROW_ELEMENTS


class RequestError(Exception):
  """Ends a call with `code` (a gRPC status) and a message for the client."""

  def __init__(self, code: grpc.StatusCode, message: str):
    super().__init__(message)
    self.code = code


@dataclasses.dataclass
class Prediction:
  """A Predict call's answer: who answered and the outputs asked for."""
  model_name: str
  version: int
  signature_name: str
  outputs: Dict[str, np.ndarray]


def servable(registry: model_registry.ModelRegistry, name: str,
             version: Optional[int] = None, label: Optional[str] = None):
  """The servable a request names; NOT_FOUND when there is none."""
  if label:
    raise RequestError(grpc.StatusCode.NOT_FOUND,
                       f"Unrecognized servable version label: {label!r} (no "
                       "labels are set)")
  try:
    return registry.get(name, version)
  except model_registry.NotFoundError as e:
    raise RequestError(grpc.StatusCode.NOT_FOUND, str(e)) from e


def signature(found, signature_name: str):
  """The named SignatureDef of a servable; NOT_FOUND when it has none."""
  signature_def = found.signature_defs.get(signature_name)
  if signature_def is None:
    raise RequestError(
        grpc.StatusCode.NOT_FOUND,
        f"Serving signature key {signature_name!r} not found; "
        f"{found.name} has {sorted(found.signature_defs)}")
  return signature_def


def check_input_names(signature_def, given: Sequence[str]) -> None:
  expected, given = set(signature_def.inputs), set(given)
  if expected != given:
    raise RequestError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"inputs {sorted(given)} do not match the signature's "
        f"{sorted(expected)} (missing {sorted(expected - given)}, "
        f"unexpected {sorted(given - expected)})")


def check_shape(name: str, info, shape: Sequence[int]) -> None:
  expected = [d.size for d in info.tensor_shape.dim]
  if info.tensor_shape.unknown_rank:
    return
  if len(shape) != len(expected) or any(
      e not in (-1, s) for e, s in zip(expected, shape)):
    wanted = ["?" if e == -1 else e for e in expected]
    raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                       f"input {name!r} has shape {list(shape)}; the "
                       f"signature expects {wanted}")


def _check_strings(name: str, values: np.ndarray, max_bytes: int) -> None:
  for value in values.reshape(-1):
    if len(value) > max_bytes:
      raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                         f"input {name!r} has a {len(value)}-byte string; "
                         f"at most {max_bytes} bytes are accepted")
    try:
      value.decode("utf-8")
    except UnicodeDecodeError as e:
      raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                         f"input {name!r} is not UTF-8 text: {e}") from e


def check_values(name: str, info, value: np.ndarray,
                 limits: RequestLimits) -> None:
  """Shape and string checks of one decoded input against its TensorInfo."""
  check_shape(name, info, value.shape)
  if info.dtype == types_pb2.DT_STRING:
    _check_strings(name, value, limits.max_string_bytes)


def dtype_mismatch(name: str, given: int, expected: int) -> RequestError:
  return RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                      f"input {name!r} is {tensor_codec.dtype_name(given)}; "
                      "the signature expects "
                      f"{tensor_codec.dtype_name(expected)}")


def batch_rows(inputs: Dict[str, np.ndarray], limits: RequestLimits) -> int:
  sizes = {name: (v.shape[0] if v.ndim else None) for name, v in inputs.items()}
  if len(set(sizes.values())) != 1:
    raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                       f"inputs disagree on the batch size: {sizes}")
  rows = next(iter(sizes.values()))
  if rows is None:
    return 1
  if rows == 0:
    raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                       "empty batch: the request has no rows")
  if rows > limits.max_batch_rows:
    raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                       f"batch of {rows} rows; at most "
                       f"{limits.max_batch_rows} per request")
  return rows


def _is_invalid_argument(error: Exception) -> bool:
  # Inputs were checked against the signature, so a model that still finds
  # an argument invalid is judging a value (e.g. a string op's input).
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return isinstance(error, tf.errors.InvalidArgumentError)


async def predict(found, signature_name: str, inputs: Dict[str, np.ndarray],
                  output_filter: Sequence[str],
                  limits: RequestLimits) -> Prediction:
  """Runs checked inputs through `found`'s signature (batched).

  `inputs` must already have the signature's names, dtypes and shapes
  (`check_input_names`, `check_values`); the batch is checked here.
  """
  signature_def = signature(found, signature_name)
  unknown_outputs = set(output_filter) - set(signature_def.outputs)
  if unknown_outputs:
    raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                       f"output_filter names {sorted(unknown_outputs)}, "
                       f"not among {sorted(signature_def.outputs)}")
  rows = batch_rows(inputs, limits)
  try:
    outputs = await found.run(signature_name, inputs, rows)
  except batching.QueueFullError as e:
    raise RequestError(grpc.StatusCode.UNAVAILABLE, str(e)) from e
  except Exception as e:  # pylint: disable=broad-except
    if _is_invalid_argument(e):
      raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                         f"{found.name} rejected the input: {e}") from e
    raise
  names = list(output_filter) or list(outputs)
  return Prediction(found.name, found.version, signature_name,
                    {name: outputs[name] for name in names})


def default_signature(signature_name: str) -> str:
  return signature_name or serving_layout.SERVING_SIGNATURE


def check_metadata_fields(fields: Sequence[str]) -> None:
  if set(fields) != {SIGNATURE_DEF_FIELD}:
    raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                       f"metadata_field must be [{SIGNATURE_DEF_FIELD!r}], "
                       f"got {sorted(set(fields))}")


def model_metadata(found) -> get_model_metadata_pb2.GetModelMetadataResponse:
  """GetModelMetadata's answer: every signature of the servable."""
  response = get_model_metadata_pb2.GetModelMetadataResponse()
  response.model_spec.name = found.name
  response.model_spec.version.value = found.version
  signature_map = get_model_metadata_pb2.SignatureDefMap()
  for key, signature_def in found.signature_defs.items():
    signature_map.signature_def[key].CopyFrom(signature_def)
  response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
  return response


def model_status(registry: model_registry.ModelRegistry, name: str,
                 version: Optional[int] = None
                ) -> get_model_status_pb2.GetModelStatusResponse:
  """GetModelStatus's answer: each version's state, and why one failed."""
  try:
    statuses = registry.statuses(name, version)
  except model_registry.NotFoundError as e:
    raise RequestError(grpc.StatusCode.NOT_FOUND, str(e)) from e
  response = get_model_status_pb2.GetModelStatusResponse()
  state_enum = get_model_status_pb2.ModelVersionStatus.State
  for status in statuses:
    entry = response.model_version_status.add()
    entry.version = status.version
    entry.state = state_enum.Value(status.state.value)
    entry.status.error_code = _UNKNOWN if status.error else _OK
    entry.status.error_message = status.error
  return response
