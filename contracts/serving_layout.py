"""Where trained models live and what they are called, for every reader.

The Trainer writes the towers under its Model artifact, IndexBuilder writes
`retrieval` under its index artifact, the pusher publishes all three into a
TF Serving directory, and `mmse serve`, `retrieve`, `evaluate` and `index`
read them back: every one of them takes the names, signatures, version
listing, atomic publish and `models.config` from here.

A serving directory:

    <serving_dir>/models.config
    <serving_dir>/<model name>/<version>/saved_model.pb ...
    <serving_dir>/retrieval/<version>/assets.extra/index/   (the ANN index)

Paths go through tf.io.gfile, so a `gs://` directory works as a local one.
"""
import os
from typing import Callable, Dict, List, Sequence

# The three SavedModels served side by side.
QUERY_TOWER = "query_tower"
ITEM_TOWER = "item_tower"
RETRIEVAL = "retrieval"
SERVED_MODELS = (QUERY_TOWER, ITEM_TOWER, RETRIEVAL)

# Their `serving_default` signatures.
SERVING_SIGNATURE = "serving_default"
QUERY_INPUT = "query"  # query_tower, retrieval: tf.string [N]
EMBEDDING_OUTPUT = "embedding"  # the towers: float32 [N, D]
ITEM_IDS_OUTPUT = "item_ids"  # retrieval: int64 [N, k]
SCORES_OUTPUT = "scores"  # retrieval: float32 [N, k]

SAVED_MODEL_FILE = "saved_model.pb"
MODELS_CONFIG = "models.config"
# Inside a retrieval version: TF Serving ignores `assets.extra`.
INDEX_SUBDIR = os.path.join("assets.extra", "index")
# Where TFX's Trainer puts the exported models inside a Model artifact
# (`tfx.utils.path_utils.serving_model_dir`).
_TRAINER_SERVING_SUBDIR = "Format-Serving"


def _gfile():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.io.gfile


def trained_tower_dir(model_uri: str, tower: str) -> str:
  """A tower SavedModel inside a Trainer `Model` artifact."""
  return os.path.join(model_uri, _TRAINER_SERVING_SUBDIR, tower)


def indexed_retrieval_dir(index_uri: str) -> str:
  """The `retrieval` SavedModel inside an IndexBuilder artifact."""
  return os.path.join(index_uri, RETRIEVAL)


def index_dir(retrieval_dir: str) -> str:
  """The ANN index inside a `retrieval` SavedModel directory."""
  return os.path.join(retrieval_dir, INDEX_SUBDIR)


def versions(model_dir: str) -> List[int]:
  """Integer version directories holding a saved_model.pb, oldest first.

  Anything else (a pusher's hidden staging directory, a stray file) is
  ignored, as TF Serving ignores it.
  """
  gfile = _gfile()
  if not gfile.isdir(model_dir):
    return []
  names = (n.rstrip("/") for n in gfile.listdir(model_dir))
  return sorted(
      int(n) for n in names if n.isdigit() and
      gfile.exists(os.path.join(model_dir, n, SAVED_MODEL_FILE)))


def latest_version_dir(serving_dir: str, model_name: str) -> str:
  """The newest loadable version of a model; FileNotFoundError if none."""
  model_dir = os.path.join(serving_dir, model_name)
  found = versions(model_dir)
  if not found:
    raise FileNotFoundError(
        f"No version of {model_name!r} with a {SAVED_MODEL_FILE} under "
        f"{model_dir}")
  return os.path.join(model_dir, str(found[-1]))


def next_version(serving_dir: str) -> int:
  """One more than any served model's newest version."""
  return 1 + max((v for name in SERVED_MODELS
                  for v in versions(os.path.join(serving_dir, name))),
                 default=0)


def publish(serving_dir: str, model_name: str, version: int,
            write: Callable[[str], None]) -> str:
  """Writes one version atomically; returns its directory.

  `write(staging_dir)` fills a hidden sibling directory (TF Serving loads
  only directories named by an integer), which is then renamed into place,
  so a polling server never sees half a version. On failure the staging
  directory is removed and nothing is published.
  """
  gfile = _gfile()
  model_dir = os.path.join(serving_dir, model_name)
  final = os.path.join(model_dir, str(version))
  staging = os.path.join(model_dir, f".{version}.incomplete")
  if gfile.exists(final):
    raise FileExistsError(f"{final} already exists")
  if gfile.exists(staging):
    gfile.rmtree(staging)
  gfile.makedirs(model_dir)
  try:
    write(staging)
    gfile.rename(staging, final)
  except BaseException:
    if gfile.exists(staging):
      gfile.rmtree(staging)
    raise
  return final


def models_config_text(serving_dir: str,
                       names: Sequence[str] = SERVED_MODELS) -> str:
  """TF Serving's ModelServerConfig (text proto) for the served models."""
  # pylint: disable=g-import-not-at-top
  from google.protobuf import text_format
  from tensorflow_serving.config import model_server_config_pb2
  # pylint: enable=g-import-not-at-top
  config = model_server_config_pb2.ModelServerConfig()
  for name in names:
    entry = config.model_config_list.config.add()
    entry.name = name
    entry.base_path = os.path.join(serving_dir, name)
    entry.model_platform = "tensorflow"
  return text_format.MessageToString(config)


def write_models_config(serving_dir: str,
                        names: Sequence[str] = SERVED_MODELS) -> str:
  """Writes `models.config` atomically (written aside, then renamed)."""
  gfile = _gfile()
  path = os.path.join(serving_dir, MODELS_CONFIG)
  with gfile.GFile(path + ".incomplete", "w") as f:
    f.write(models_config_text(serving_dir, names))
  gfile.rename(path + ".incomplete", path, overwrite=True)
  return path


def served_versions(serving_dir: str) -> Dict[str, List[int]]:
  """Loadable versions of each served model."""
  return {name: versions(os.path.join(serving_dir, name))
          for name in SERVED_MODELS}
