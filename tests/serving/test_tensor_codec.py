"""TensorProto <-> numpy: round trips and clear errors for bad tensors."""
import numpy as np
import pytest
import tensorflow as tf

from serving import tensor_codec


@pytest.mark.parametrize("array", [
    np.asarray([[b"cordless drill", "d\u00e9cor".encode()]], dtype=object),
    np.arange(6, dtype=np.int64).reshape(2, 3),
    np.asarray([0.5, -1.25], dtype=np.float32),
    np.asarray([1, 2], dtype=np.int32),
    np.asarray([True, False]),
])
def test_round_trip_and_tensorflow_agrees(array):
  proto = tensor_codec.from_ndarray(array)
  decoded = tensor_codec.to_ndarray(proto)
  np.testing.assert_array_equal(decoded, array)
  np.testing.assert_array_equal(tf.make_ndarray(proto), array)
  # And what TensorFlow's clients send decodes the same.
  np.testing.assert_array_equal(
      tensor_codec.to_ndarray(tf.make_tensor_proto(array)), array)


def test_str_is_encoded_as_utf8():
  proto = tensor_codec.from_ndarray(np.asarray(["d\u00e9cor"]))
  assert list(proto.string_val) == [b"d\xc3\xa9cor"]


def test_one_value_fills_the_shape():
  proto = tf.make_tensor_proto(7, dtype=tf.int64, shape=[3])
  assert tensor_codec.to_ndarray(proto).tolist() == [7, 7, 7]


def test_bad_tensors_raise_value_error():
  proto = tensor_codec.from_ndarray(np.arange(3, dtype=np.int64))
  proto.tensor_content = proto.tensor_content[:-2]
  with pytest.raises(ValueError, match="tensor_content"):
    tensor_codec.to_ndarray(proto)
  strings = tensor_codec.from_ndarray(np.asarray([b"a", b"b"], dtype=object))
  strings.tensor_shape.dim[0].size = 3
  with pytest.raises(ValueError, match="carries 2 values"):
    tensor_codec.to_ndarray(strings)
  with pytest.raises(ValueError, match="unsupported tensor DT_HALF"):
    tensor_codec.to_ndarray(tf.make_tensor_proto(np.float16(1)))
  with pytest.raises(ValueError, match="cannot encode"):
    tensor_codec.from_ndarray(np.asarray([1 + 2j]))
