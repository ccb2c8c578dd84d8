"""Pushed SavedModels use only core TensorFlow ops: stock TF Serving loads them.

The check runs in a fresh interpreter that imports TensorFlow alone: ScaNN and
tensorflow-text register custom ops when imported, and a graph needing one
would load in this test process (which has ScaNN) but not in TF Serving.
"""
import json
import os
import subprocess
import sys

import pytest

from tests.fixtures import toy_serving

CORE_OPS_CHECK = r"""
import json, sys
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry

report = {}
for path in sys.argv[1:]:
  with open(path + "/saved_model.pb", "rb") as f:
    graph = saved_model_pb2.SavedModel.FromString(f.read()).meta_graphs[0]
  ops = {n.op for n in graph.graph_def.node}
  for function in graph.graph_def.library.function:
    ops.update(n.op for n in function.node_def)
  signature = tf.saved_model.load(path).signatures["serving_default"]
  _, specs = signature.structured_input_signature
  inputs = {name: tf.zeros([2], spec.dtype) if spec.dtype != tf.string
            else tf.constant(["cordless drill", ""])
            for name, spec in specs.items()}
  outputs = signature(**inputs)
  report[path] = {
      "unregistered_ops": sorted(
          o for o in ops if op_def_registry.get(o) is None),
      "outputs": {k: v.shape.as_list() for k, v in outputs.items()},
  }
report["imported"] = sorted(
    m for m in ("scann", "tensorflow_text", "faiss") if m in sys.modules)
print(json.dumps(report))
"""


def test_pushed_models_load_with_core_tensorflow_only(tmp_path):
  catalog = toy_serving.write_catalog(tmp_path / "catalog.csv")
  serving_dir = str(tmp_path / "serving")
  toy_serving.write_serving_dir(serving_dir, catalog, kind="scann", k=3,
                                dim=8, buckets=64)
  paths = [os.path.join(serving_dir, "query_tower", "1"),
           os.path.join(serving_dir, "item_tower", "1"),
           os.path.join(serving_dir, "retrieval", "2")]
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
  result = subprocess.run([sys.executable, "-c", CORE_OPS_CHECK, *paths],
                          capture_output=True, text=True, env=env, timeout=300,
                          check=False)
  if result.returncode:
    pytest.fail(f"loading failed:\n{result.stderr[-3000:]}")
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report.pop("imported") == []
  for path in paths:
    assert report[path]["unregistered_ops"] == [], path
  assert report[paths[0]]["outputs"] == {"embedding": [2, 8]}
  assert report[paths[2]]["outputs"] == {"item_ids": [2, 3], "scores": [2, 3]}
