"""TensorProto <-> numpy for the dtypes the served signatures use.

The server turns every request tensor into numpy before it batches, and the
client turns every response tensor back; both go through here so a malformed
tensor is one clear `ValueError` (INVALID_ARGUMENT on the wire) instead of a
crash deep in TensorFlow. Numeric tensors are written as `tensor_content`
bytes, the compact form `tf.make_ndarray` and TF Serving's clients read.
"""
from typing import Optional, Sequence

import numpy as np
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.framework import tensor_shape_pb2
from tensorflow.core.framework import types_pb2

# dtype enum -> (numpy dtype, TensorProto field holding values one by one).
_DTYPES = {
    types_pb2.DT_STRING: (np.object_, "string_val"),
    types_pb2.DT_INT64: (np.int64, "int64_val"),
    types_pb2.DT_INT32: (np.int32, "int_val"),
    types_pb2.DT_FLOAT: (np.float32, "float_val"),
    types_pb2.DT_DOUBLE: (np.float64, "double_val"),
    types_pb2.DT_BOOL: (np.bool_, "bool_val"),
}
_NUMPY_TO_ENUM = {
    np.dtype(np.int64): types_pb2.DT_INT64,
    np.dtype(np.int32): types_pb2.DT_INT32,
    np.dtype(np.float32): types_pb2.DT_FLOAT,
    np.dtype(np.float64): types_pb2.DT_DOUBLE,
    np.dtype(np.bool_): types_pb2.DT_BOOL,
}


def dtype_name(dtype_enum: int) -> str:
  return types_pb2.DataType.Name(dtype_enum) if dtype_enum in (
      types_pb2.DataType.values()) else f"dtype {dtype_enum}"


def shape_of(proto: tensor_pb2.TensorProto) -> Sequence[int]:
  if proto.tensor_shape.unknown_rank:
    raise ValueError("tensor has an unknown rank")
  dims = [d.size for d in proto.tensor_shape.dim]
  if any(d < 0 for d in dims):
    raise ValueError(f"tensor shape {dims} has a negative dimension")
  return dims


def to_ndarray(proto: tensor_pb2.TensorProto,
               max_elements: Optional[int] = None) -> np.ndarray:
  """Decodes a TensorProto; raises ValueError on an unsupported or bad one.

  Args:
    proto: the tensor.
    max_elements: refuse a larger shape before allocating it (one value may
      fill any shape, so a tiny message can ask for a huge array).
  """
  if proto.dtype not in _DTYPES:
    raise ValueError(f"unsupported tensor {dtype_name(proto.dtype)}")
  numpy_dtype, field = _DTYPES[proto.dtype]
  shape = shape_of(proto)
  size = int(np.prod(shape, dtype=np.int64))
  if max_elements is not None and size > max_elements:
    raise ValueError(f"tensor of shape {shape} has {size} elements; at most "
                     f"{max_elements} are accepted")
  if proto.dtype == types_pb2.DT_STRING:
    values = np.empty(len(proto.string_val), dtype=object)
    values[:] = list(proto.string_val)
  elif proto.tensor_content:
    itemsize = np.dtype(numpy_dtype).itemsize
    if len(proto.tensor_content) != size * itemsize:
      raise ValueError(f"tensor_content holds {len(proto.tensor_content)} "
                       f"bytes, shape {shape} needs {size * itemsize}")
    values = np.frombuffer(proto.tensor_content, dtype=numpy_dtype)
  else:
    values = np.asarray(getattr(proto, field), dtype=numpy_dtype)
  # TensorFlow's rule: one value fills a tensor of any size.
  if len(values) == 1 and size > 1:
    values = np.repeat(values, size)
  if len(values) != size:
    raise ValueError(f"tensor of shape {shape} carries {len(values)} values")
  return values.reshape(shape)


def from_ndarray(array: np.ndarray) -> tensor_pb2.TensorProto:
  """Encodes strings (bytes or str) and int/float/bool numpy arrays."""
  proto = tensor_pb2.TensorProto()
  fill(proto, array)
  return proto


def fill(proto: tensor_pb2.TensorProto, array: np.ndarray) -> None:
  """Writes `array` into an empty `proto` (e.g. a response's output)."""
  array = np.asarray(array)
  proto.tensor_shape.dim.extend(
      tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in array.shape)
  if array.dtype.kind in ("O", "S", "U"):
    proto.dtype = types_pb2.DT_STRING
    values = array.reshape(-1).tolist()
    if not all(isinstance(v, bytes) for v in values):
      values = [v.encode("utf-8") if isinstance(v, str) else bytes(v)
                for v in values]
    proto.string_val.extend(values)
    return
  if array.dtype not in _NUMPY_TO_ENUM:
    raise ValueError(f"cannot encode numpy dtype {array.dtype}")
  proto.dtype = _NUMPY_TO_ENUM[array.dtype]
  proto.tensor_content = np.ascontiguousarray(array).tobytes()
