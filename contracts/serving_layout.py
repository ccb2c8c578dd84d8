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
    <serving_dir>/.push-<version>.pending   (only while a push runs)

One push publishes the same new version of every model it writes
(`publish_release`): the three of a pipeline run, or `retrieval` alone
when `mmse index` re-indexes; readers see all of a push or none of it.

Paths go through tf.io.gfile, so a `gs://` directory works as a local one.
"""
import logging
import os
from typing import (Callable, Collection, Dict, List, Mapping, Optional,
                    Sequence, Set)

# The three SavedModels served side by side.
QUERY_TOWER = "query_tower"
ITEM_TOWER = "item_tower"
RETRIEVAL = "retrieval"
SERVED_MODELS = (QUERY_TOWER, ITEM_TOWER, RETRIEVAL)

# Their `serving_default` signatures.
SERVING_SIGNATURE = "serving_default"
QUERY_INPUT = "query"  # query_tower, retrieval: tf.string [N]
EMBEDDING_OUTPUT = "embedding"  # the towers: float32 [N, D]
ITEM_IDS_OUTPUT = "item_ids"  # retrieval: string [N, k], the catalogue's ids
SCORES_OUTPUT = "scores"  # retrieval: float32 [N, k]

SAVED_MODEL_FILE = "saved_model.pb"
MODELS_CONFIG = "models.config"
# `<serving_dir>/.push-<version>.pending` while a push of that version runs.
_PENDING_PREFIX = ".push-"
_PENDING_SUFFIX = ".pending"
# Inside a retrieval version: TF Serving ignores `assets.extra`.
INDEX_SUBDIR = os.path.join("assets.extra", "index")
# Inside a query_tower version: the statistics of the data it was trained
# on, by input, as StatisticsGen wrote them; the next run's drift reference.
_TRAINING_STATISTICS_SUBDIR = os.path.join("assets.extra",
                                           "training_statistics")
# Where TFX's Trainer puts the exported models inside a Model artifact
# (`tfx.utils.path_utils.serving_model_dir`).
_TRAINER_SERVING_SUBDIR = "Format-Serving"
# Beside them, the same towers at their initial weights: the blessing's
# reference for "learned something" (never served).
_TRAINER_INITIAL_SUBDIR = "Format-Initial"


def _gfile():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.io.gfile


def trained_tower_dir(model_uri: str, tower: str) -> str:
  """A tower SavedModel inside a Trainer `Model` artifact."""
  return os.path.join(model_uri, _TRAINER_SERVING_SUBDIR, tower)


def initial_towers_dir(model_uri: str) -> str:
  """Where the Trainer writes the towers before training, in a `Model`."""
  return os.path.join(model_uri, _TRAINER_INITIAL_SUBDIR)


def initial_tower_dir(model_uri: str, tower: str) -> str:
  """A tower at its initial weights inside a Trainer `Model` artifact."""
  return os.path.join(initial_towers_dir(model_uri), tower)


def indexed_retrieval_dir(index_uri: str) -> str:
  """The `retrieval` SavedModel inside an IndexBuilder artifact."""
  return os.path.join(index_uri, RETRIEVAL)


def index_dir(retrieval_dir: str) -> str:
  """The ANN index inside a `retrieval` SavedModel directory."""
  return os.path.join(retrieval_dir, INDEX_SUBDIR)


def training_statistics_dir(query_tower_dir: str, input_name: str) -> str:
  """An input's statistics inside a pushed query_tower version."""
  return os.path.join(query_tower_dir, _TRAINING_STATISTICS_SUBDIR,
                      input_name)


def _version_dirs(model_dir: str) -> List[int]:
  """Every integer-named directory, loadable or not."""
  gfile = _gfile()
  if not gfile.isdir(model_dir):
    return []
  return sorted(int(n) for n in (n.rstrip("/") for n in gfile.listdir(
      model_dir)) if n.isdigit())


def _pending_marker(serving_dir: str, version: int) -> str:
  return os.path.join(serving_dir, f"{_PENDING_PREFIX}{version}"
                      f"{_PENDING_SUFFIX}")


def pending_versions(serving_dir: str) -> Set[int]:
  """Versions whose push has begun and not finished (or was killed)."""
  gfile = _gfile()
  if not gfile.isdir(serving_dir):
    return set()
  found = set()
  for name in gfile.listdir(serving_dir):
    name = name.rstrip("/")
    number = name[len(_PENDING_PREFIX):-len(_PENDING_SUFFIX)]
    if (name.startswith(_PENDING_PREFIX) and name.endswith(_PENDING_SUFFIX)
        and number.isdigit()):
      found.add(int(number))
  return found


def versions(model_dir: str,
             pending: Optional[Collection[int]] = None) -> List[int]:
  """Complete, loadable versions of a model, oldest first.

  A version counts when its directory is named by an integer and holds a
  saved_model.pb (as TF Serving sees it) and no push of that version is
  pending in the serving directory above (`publish_release`), so a reader
  never takes one tower of a push before the other has landed. `pending`
  saves re-reading the markers when one reader lists several models.
  """
  gfile = _gfile()
  if pending is None:
    pending = pending_versions(os.path.dirname(model_dir.rstrip("/")))
  return [v for v in _version_dirs(model_dir) if v not in pending and
          gfile.exists(os.path.join(model_dir, str(v), SAVED_MODEL_FILE))]


def latest_version_dir(serving_dir: str, model_name: str) -> str:
  """The newest loadable version of a model; FileNotFoundError if none."""
  model_dir = os.path.join(serving_dir, model_name)
  found = versions(model_dir)
  if not found:
    raise FileNotFoundError(
        f"No version of {model_name!r} with a {SAVED_MODEL_FILE} under "
        f"{model_dir}")
  return os.path.join(model_dir, str(found[-1]))


def latest_release_dirs(serving_dir: str,
                        names: Sequence[str] = (QUERY_TOWER, ITEM_TOWER)
                       ) -> Dict[str, str]:
  """The newest version that every model of `names` has, by model.

  The towers of one push share a version, so their pair is the newest
  version both have complete; a push landing while this reads is either
  wholly seen or not at all.
  """
  pending = pending_versions(serving_dir)
  common = set.intersection(*(
      set(versions(os.path.join(serving_dir, name), pending))
      for name in names))
  if not common:
    raise FileNotFoundError(
        f"No version common to {', '.join(names)} under {serving_dir}")
  version = str(max(common))
  return {name: os.path.join(serving_dir, name, version) for name in names}


def next_version(serving_dir: str) -> int:
  """One more than any served model's newest version directory."""
  return 1 + max((v for name in SERVED_MODELS
                  for v in _version_dirs(os.path.join(serving_dir, name))),
                 default=0)


def publish(serving_dir: str, model_name: str, version: int,
            write: Callable[[str], None]) -> str:
  """Writes one version of one model atomically; returns its directory.

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


def remove_abandoned_pushes(serving_dir: str) -> List[int]:
  """Deletes what killed pushes left (their versions, then their markers).

  Only one push may write to a serving directory at a time: a marker is
  taken as abandoned when the next push starts.
  """
  gfile = _gfile()
  abandoned = sorted(pending_versions(serving_dir))
  for version in abandoned:
    for name in SERVED_MODELS:
      for leftover in (str(version), f".{version}.incomplete"):
        path = os.path.join(serving_dir, name, leftover)
        if gfile.exists(path):
          gfile.rmtree(path)
    gfile.remove(_pending_marker(serving_dir, version))
  return abandoned


def publish_release(serving_dir: str,
                    writes: Mapping[str, Callable[[str], None]]) -> int:
  """Publishes one new version of each model in `writes` as one unit.

  A marker for the version is written first and removed last: readers
  (`versions`) ignore a version while its marker stands, so they see all of
  the models' new versions or none, and a push killed at any point leaves
  only a marker and partial versions that the next push removes. Then
  `models.config` is rewritten. `writes` maps a model name to the function
  that fills its version directory (`publish`).

  Returns:
    The version, one more than any model's newest (`next_version`).
  """
  gfile = _gfile()
  for version in remove_abandoned_pushes(serving_dir):
    logging.warning("Removed version %d of an unfinished push from %s",
                    version, serving_dir)
  version = next_version(serving_dir)
  gfile.makedirs(serving_dir)
  marker = _pending_marker(serving_dir, version)
  with gfile.GFile(marker, "w") as f:
    f.write(", ".join(writes))
  try:
    for name, write in writes.items():
      logging.info("Published %s", publish(serving_dir, name, version, write))
    write_models_config(serving_dir)
  except BaseException:
    remove_abandoned_pushes(serving_dir)  # Only this push's marker stands.
    raise
  _finish_push(marker)
  return version


def _finish_push(marker: str) -> None:
  _gfile().remove(marker)


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
