"""ServingPusher: TF Serving layout, increasing versions, blessing gate,
warm-up requests."""
import os

from google.protobuf import text_format
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2
from tensorflow_serving.config import model_server_config_pb2
from tfx import types
from tfx.types import standard_artifacts

from components import artifacts as artifact_types
from components.serving_pusher import component
from components.serving_pusher import executor
from components.serving_pusher import spec
from contracts import serving_layout
from contracts import serving_warmup
from tests.fixtures import toy_serving


def _fake_saved_model(path, marker):
  os.makedirs(os.path.join(path, "variables"))
  with open(os.path.join(path, "saved_model.pb"), "w") as f:
    f.write(marker)


def _model_and_index(tmp_path):
  """Model and index artifacts, and where each served model sits in them."""
  model = standard_artifacts.Model()
  model.uri = str(tmp_path / "model")
  index = artifact_types.RetrievalIndex()
  index.uri = str(tmp_path / "index")
  return model, index, executor.model_sources(model.uri, index.uri)


@pytest.fixture
def artifacts(tmp_path):
  model, index, sources = _model_and_index(tmp_path)
  for name, path in sources.items():
    _fake_saved_model(path, name)
  return model, index, sources


def test_sources_are_where_the_trainer_and_index_builder_write(artifacts):
  model, index, sources = artifacts
  assert sources == {
      "query_tower": os.path.join(model.uri, "Format-Serving", "query_tower"),
      "item_tower": os.path.join(model.uri, "Format-Serving", "item_tower"),
      "retrieval": os.path.join(index.uri, "retrieval"),
  }


def test_push_writes_each_model_as_the_same_increasing_version(
    tmp_path, artifacts):
  _, _, sources = artifacts
  serving_dir = str(tmp_path / "serving")
  assert executor.push(sources, serving_dir) == 1
  # A version `mmse index` wrote since: the next push numbers after it.
  os.makedirs(os.path.join(serving_dir, "retrieval", "2"))
  with open(os.path.join(serving_dir, "retrieval", "2", "saved_model.pb"),
            "w") as f:
    f.write("reindexed")
  assert executor.push(sources, serving_dir) == 3
  for name in serving_layout.SERVED_MODELS:
    model_dir = os.path.join(serving_dir, name)
    expected = ["1", "2", "3"] if name == "retrieval" else ["1", "3"]
    assert sorted(os.listdir(model_dir)) == expected  # No staging left.
    with open(os.path.join(model_dir, "3", "saved_model.pb")) as f:
      assert f.read() == name


def test_pushing_what_is_served_again_writes_nothing(tmp_path, artifacts):
  _, _, sources = artifacts
  serving_dir = str(tmp_path / "serving")
  assert executor.push(sources, serving_dir) == 1
  assert executor.push(sources, serving_dir) == 1
  assert toy_serving.served_versions(serving_dir) == {
      name: [1] for name in serving_layout.SERVED_MODELS}
  # Another training's towers are new.
  _fake_saved_model(str(tmp_path / "retrained"), "retrained")
  assert executor.push({**sources, "query_tower": str(tmp_path / "retrained")},
                       serving_dir) == 2


def test_models_config_is_a_valid_tf_serving_config(tmp_path, artifacts):
  _, _, sources = artifacts
  serving_dir = str(tmp_path / "serving")
  executor.push(sources, serving_dir)
  with open(os.path.join(serving_dir, serving_layout.MODELS_CONFIG)) as f:
    config = text_format.Parse(f.read(),
                               model_server_config_pb2.ModelServerConfig())
  entries = {c.name: c for c in config.model_config_list.config}
  assert set(entries) == set(serving_layout.SERVED_MODELS)
  for name, entry in entries.items():
    assert entry.base_path == os.path.join(serving_dir, name)
    assert entry.model_platform == "tensorflow"


def test_missing_saved_model_is_an_error_and_pushes_nothing(tmp_path,
                                                            artifacts):
  _, _, sources = artifacts
  os.remove(os.path.join(sources[serving_layout.RETRIEVAL], "saved_model.pb"))
  serving_dir = str(tmp_path / "serving")
  with pytest.raises(FileNotFoundError, match="retrieval"):
    executor.push(sources, serving_dir)
  assert not os.path.exists(serving_dir)


@pytest.mark.parametrize("blessed", [True, False])
def test_executor_pushes_only_blessed_models(tmp_path, toy_artifacts,
                                             blessed):
  model, index, _ = toy_artifacts
  blessing = standard_artifacts.ModelBlessing()
  blessing.uri = str(tmp_path / "blessing")
  blessing.set_int_custom_property("blessed", int(blessed))
  pushed = standard_artifacts.PushedModel()
  pushed.uri = str(tmp_path / "pushed")
  serving_dir = str(tmp_path / "serving")
  executor.Executor().Do(
      {spec.MODEL_KEY: [model], spec.INDEX_KEY: [index],
       spec.MODEL_BLESSING_KEY: [blessing],
       spec.EXAMPLES_KEY: [_examples(tmp_path)],
       spec.CATALOG_KEY: [_catalog(tmp_path)]},
      {spec.PUSHED_MODEL_KEY: [pushed]}, {spec.SERVING_DIR_KEY: serving_dir})
  assert pushed.get_int_custom_property("pushed") == int(blessed)
  assert os.path.exists(serving_dir) == blessed
  if blessed:
    assert pushed.get_string_custom_property("pushed_version") == "1"
    requests = serving_warmup.read(
        os.path.join(serving_dir, "query_tower", "1"))
    queries = [q for r in requests for q in r.inputs["query"].string_val]
    assert set(queries) <= {q.encode() for q in QUERIES}


QUERIES = ["cordless drill", "hammer", "led bulb"]


def _examples(tmp_path):
  examples = standard_artifacts.Examples()
  examples.uri = str(tmp_path / "examples")
  os.makedirs(os.path.join(examples.uri, "Split-train"))
  path = os.path.join(examples.uri, "Split-train", "data.gz")
  with tf.io.TFRecordWriter(path, options="GZIP") as writer:
    for query in QUERIES * 2:
      example = tf.train.Example()
      example.features.feature["query"].bytes_list.value.append(
          query.encode())
      writer.write(example.SerializeToString())
  return examples


def _catalog(tmp_path):
  catalog = artifact_types.Catalog()
  catalog.uri = str(tmp_path / "catalog")
  os.makedirs(catalog.uri)
  toy_serving.write_catalog(os.path.join(catalog.uri, "catalog.csv"))
  return catalog


@pytest.fixture
def toy_artifacts(tmp_path):
  """Model and index artifacts holding real (toy) SavedModels."""
  toy_dir = str(tmp_path / "toy")
  version = toy_serving.write_serving_dir(
      toy_dir, toy_serving.write_catalog(tmp_path / "toy_catalog.csv"))
  model, index, sources = _model_and_index(tmp_path)
  for name, path in sources.items():
    tf.io.gfile.makedirs(os.path.dirname(path))
    os.symlink(os.path.join(toy_dir, name,
                            str(version if name == "retrieval" else 1)), path)
  return model, index, sources


def test_every_pushed_model_carries_tf_serving_warmup_requests(
    tmp_path, toy_artifacts):
  _, _, sources = toy_artifacts
  serving_dir = str(tmp_path / "serving")
  columns = executor.warmup_columns(_examples(tmp_path).uri,
                                    _catalog(tmp_path).uri)
  assert columns["query"] == QUERIES
  executor.push(sources, serving_dir, columns)
  for name in serving_layout.SERVED_MODELS:
    path = os.path.join(serving_dir, name, "1", "assets.extra",
                        "tf_serving_warmup_requests")
    # Parsed as TF Serving parses it: TFRecords of PredictionLog.
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
            for r in tf.data.TFRecordDataset(path)]
    assert len(logs) == len(executor.WARMUP_BATCH_SIZES)
    for log, size in zip(logs, executor.WARMUP_BATCH_SIZES):
      request = log.predict_log.request
      assert request.model_spec.name == name
      assert request.model_spec.signature_name == "serving_default"
      expected = {"item_id", "title"} if name == "item_tower" else {"query"}
      assert set(request.inputs) == expected
      for tensor in request.inputs.values():
        assert [d.size for d in tensor.tensor_shape.dim] == [size]
    item_request = logs[-1].predict_log.request
    if name == "item_tower":
      titles = {t.decode() for t in item_request.inputs["title"].string_val}
      assert titles == set(toy_serving.TITLES.values())


def test_component_takes_the_index_builders_artifact():
  pusher = component.ServingPusher(
      model=types.Channel(type=standard_artifacts.Model),
      index=types.Channel(type=artifact_types.RetrievalIndex),
      model_blessing=types.Channel(type=standard_artifacts.ModelBlessing),
      examples=types.Channel(type=standard_artifacts.Examples),
      catalog=types.Channel(type=artifact_types.Catalog),
      serving_dir="/serving")
  assert pusher.exec_properties == {"serving_dir": "/serving"}
  assert pusher.outputs["pushed_model"].type == standard_artifacts.PushedModel
