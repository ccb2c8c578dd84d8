"""Which versions of which models are served: TF Serving's version policy.

A model is a base path holding version directories, as
`contracts.serving_layout.versions` lists them. A poll thread lists them,
loads each version the policy aspires to (the newest by default) while the
current one keeps answering, then swaps it in with one reference
assignment, so no request in flight fails: a request holds the servable it
started with until it finishes. A version that is partial (no
`saved_model.pb` yet) or fails to load is logged once and skipped, and the
versions already loaded keep serving; a failed version is retried when its
files change.
"""
import dataclasses
import enum
import logging
import os
import sys
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from contracts import serving_layout


class NotFoundError(LookupError):
  """No such model or version is being served."""


class State(enum.Enum):
  """A version's lifecycle, as TF Serving's ModelVersionStatus names it."""
  LOADING = "LOADING"
  AVAILABLE = "AVAILABLE"
  UNLOADING = "UNLOADING"
  END = "END"


@dataclasses.dataclass(frozen=True)
class VersionPolicy:
  """`latest` N versions, `all`, or `specific` versions."""
  kind: str = "latest"
  num_versions: int = 1
  versions: Tuple[int, ...] = ()

  def aspired(self, candidates: Sequence[int]) -> List[int]:
    """The versions to serve among loadable ones, newest first."""
    newest_first = sorted(candidates, reverse=True)
    if self.kind == "latest":
      return newest_first[:self.num_versions]
    if self.kind == "all":
      return newest_first
    return [v for v in newest_first if v in self.versions]


@dataclasses.dataclass(frozen=True)
class ModelSource:
  name: str
  base_path: str
  policy: VersionPolicy = VersionPolicy()


@dataclasses.dataclass(frozen=True)
class VersionStatus:
  version: int
  state: State
  error: str = ""


def _policy(config) -> VersionPolicy:
  policy = config.model_version_policy
  which = policy.WhichOneof("policy_choice")
  if which == "all":
    return VersionPolicy(kind="all")
  if which == "specific":
    if not policy.specific.versions:
      raise ValueError(f"model {config.name!r}: empty specific versions")
    return VersionPolicy(kind="specific",
                         versions=tuple(policy.specific.versions))
  return VersionPolicy(num_versions=max(1, policy.latest.num_versions)
                       if which == "latest" else 1)


def read_sources(model_base_path: str) -> List[ModelSource]:
  """The models to serve: `models.config` under the path, else its subdirs.

  A `base_path` in the config that does not exist but whose model sits under
  `model_base_path` (the directory was moved or mounted elsewhere, as in a
  container) is looked up there.
  """
  config_path = os.path.join(model_base_path, serving_layout.MODELS_CONFIG)
  if not os.path.exists(config_path):
    names = [n for n in serving_layout.SERVED_MODELS
             if os.path.isdir(os.path.join(model_base_path, n))]
    if not names:
      raise FileNotFoundError(
          f"{model_base_path} has no {serving_layout.MODELS_CONFIG} and "
          f"none of {list(serving_layout.SERVED_MODELS)}")
    return [ModelSource(n, os.path.join(model_base_path, n)) for n in names]
  with open(config_path, encoding="utf-8") as f:
    try:
      config = text_format.Parse(f.read(),
                                 model_server_config_pb2.ModelServerConfig())
    except text_format.ParseError as e:
      raise ValueError(f"{config_path}: {e}") from e
  sources = []
  for model in config.model_config_list.config:
    if model.model_platform not in ("", "tensorflow"):
      raise ValueError(f"{config_path}: model {model.name!r} has platform "
                       f"{model.model_platform!r}; only tensorflow is served")
    base = model.base_path
    if not os.path.isabs(base):
      base = os.path.join(model_base_path, base)
    moved = os.path.join(model_base_path, model.name)
    if not os.path.isdir(base) and os.path.isdir(moved):
      logging.info("%s: %s is missing; serving %s from %s", config_path, base,
                   model.name, moved)
      base = moved
    sources.append(ModelSource(model.name, base, _policy(model)))
  if not sources:
    raise ValueError(f"{config_path} lists no model")
  if len({s.name for s in sources}) != len(sources):
    raise ValueError(f"{config_path} lists a model name twice")
  return sources


class _Model:
  """Bookkeeping of one model: loaded servables, states, skipped versions."""

  def __init__(self, source: ModelSource):
    self.source = source
    self.loaded: Dict[int, object] = {}  # Replaced whole, never mutated.
    self.statuses: Dict[int, VersionStatus] = {}
    # version -> file stamp when it failed or was seen partial; a new stamp
    # means new files, so the version is looked at again.
    self.failed: Dict[int, tuple] = {}
    self.partial: Dict[int, tuple] = {}


def _stamp(version_dir: str) -> tuple:
  """Changes when files are added to or rewritten in a version directory."""
  stamps = []
  for root, _, files in os.walk(version_dir):
    for name in files:
      try:
        stat = os.stat(os.path.join(root, name))
      except FileNotFoundError:
        continue
      stamps.append((os.path.relpath(os.path.join(root, name), version_dir),
                     stat.st_size, stat.st_mtime_ns))
  return tuple(sorted(stamps))


# Polls an unloaded servable may wait for its last request before the
# registry lets go of it anyway.
_MAX_RETIRED_POLLS = 60


@dataclasses.dataclass
class _Retired:
  servable: object
  polls: int = 0


class ModelRegistry:
  """Loads, swaps and unloads versions of the configured models."""

  def __init__(self, sources: Sequence[ModelSource],
               loader: Callable[[str, int, str], object],
               poll_interval_s: float = 1.0,
               on_change: Callable[[], None] = lambda: None):
    """Creates the registry; nothing is loaded before `start` or `poll`.

    Args:
      sources: the models and their base paths and policies.
      loader: `(name, version, path) -> servable`; raises if it cannot load.
      poll_interval_s: seconds between two looks at the base paths.
      on_change: called once per poll that changed what is served: after
        a version loaded and before it is made available (so a pause it
        takes, such as a garbage collection, is over before the version
        answers), or after unloading when nothing loaded.
    """
    self._models = {s.name: _Model(s) for s in sources}
    self._loader = loader
    self._poll_interval_s = poll_interval_s
    self._on_change = on_change
    self._changed = False  # This poll loaded a version.
    self._unloaded = False  # This poll unloaded one.
    self._pending: Dict[str, Set[int]] = {}  # Unfinished pushes, by dir.
    # Unloaded servables, until no request holds them (`_release_retired`).
    self._retired: List[_Retired] = []
    self._lock = threading.Lock()
    self._stop = threading.Event()
    self._thread: Optional[threading.Thread] = None

  @property
  def model_names(self) -> List[str]:
    return sorted(self._models)

  def start(self) -> None:
    """Loads what is on disk now, then keeps polling in the background."""
    self.poll()
    self._thread = threading.Thread(target=self._poll_forever,
                                    name="model-registry-poll", daemon=True)
    self._thread.start()

  def stop(self) -> None:
    self._stop.set()
    if self._thread is not None:
      self._thread.join()

  def _poll_forever(self) -> None:
    while not self._stop.wait(self._poll_interval_s):
      try:
        self.poll()
      except Exception:  # pylint: disable=broad-except
        # A poll must never end the thread: the next one may succeed.
        logging.exception("Polling the model directories failed")

  def poll(self) -> None:
    """One pass over every model: load, swap, unload as the policy says."""
    self._release_retired()
    self._changed = False
    self._unloaded = False
    # Read once per pass, so the models of one push are taken together.
    self._pending = {
        parent: serving_layout.pending_versions(parent)
        for parent in {os.path.dirname(m.source.base_path.rstrip("/"))
                       for m in self._models.values()}}
    for model in self._models.values():
      self._poll_model(model)
    if self._unloaded and not self._changed:
      self._on_change()

  def _candidates(self, model: _Model) -> List[int]:
    """Loadable versions on disk not known to fail; logs partial ones once."""
    base = model.source.base_path
    loadable = serving_layout.versions(
        base, self._pending.get(os.path.dirname(base.rstrip("/"))))
    self._note_partial(model, loadable)
    candidates = []
    for version in loadable:
      failed = model.failed.get(version)
      if failed is not None:
        if failed == _stamp(os.path.join(base, str(version))):
          continue
        del model.failed[version]
      candidates.append(version)
    return candidates

  @staticmethod
  def _note_partial(model: _Model, loadable: Sequence[int]) -> None:
    """Warns once per change of files about versions still being written."""
    base = model.source.base_path
    try:
      names = os.listdir(base)
    except FileNotFoundError:
      names = []
    # A version directory is named by an integer (serving_layout.versions);
    # one without a saved_model.pb yet is being copied in place, one with it
    # but not loadable belongs to an unfinished push.
    partial = {int(n) for n in names
               if n.isdigit() and os.path.isdir(os.path.join(base, n))
              } - set(loadable)
    for version in list(model.partial):
      if version not in partial:
        del model.partial[version]
    for version in sorted(partial):
      path = os.path.join(base, str(version))
      stamp = _stamp(path)
      if model.partial.get(version) != stamp:
        model.partial[version] = stamp
        logging.warning("%s version %d at %s is partial (no %s yet, or its "
                        "push is unfinished); ignored", model.source.name,
                        version, path, serving_layout.SAVED_MODEL_FILE)

  def _poll_model(self, model: _Model) -> None:
    name = model.source.name
    candidates = self._candidates(model)
    if not candidates:
      if model.loaded:
        logging.debug("%s: no loadable version on disk; keeping %s", name,
                      sorted(model.loaded))
      return
    while True:
      aspired = model.source.policy.aspired(candidates)
      to_load = [v for v in aspired if v not in model.loaded]
      if not to_load:
        break
      version = to_load[0]
      if not self._load(model, version):
        candidates.remove(version)
    stale = [v for v in model.loaded if v not in aspired]
    if aspired and stale:
      self._unload(model, stale)

  def _set_status(self, model: _Model, version: int, state: State,
                  error: str = "") -> None:
    with self._lock:
      model.statuses = {**model.statuses,
                        version: VersionStatus(version, state, error)}

  def _load(self, model: _Model, version: int) -> bool:
    name = model.source.name
    path = os.path.join(model.source.base_path, str(version))
    self._set_status(model, version, State.LOADING)
    started = time.monotonic()
    stamp = _stamp(path)
    try:
      servable = self._loader(name, version, path)
    except Exception as e:  # pylint: disable=broad-except
      # Whatever a broken version raises, the served ones stay.
      model.failed[version] = stamp
      self._set_status(model, version, State.END, f"{type(e).__name__}: {e}")
      logging.error("%s version %d at %s failed to load and is ignored; "
                    "still serving %s: %s", name, version, path,
                    sorted(model.loaded) or "nothing", e)
      return False
    if not self._changed:
      self._on_change()
      self._changed = True
    with self._lock:
      model.loaded = {**model.loaded, version: servable}
    self._set_status(model, version, State.AVAILABLE)
    logging.info("%s version %d loaded after %d warm-up requests in %.1fs "
                 "from %s (%s)", name, version,
                 getattr(servable, "warmup_requests", 0),
                 time.monotonic() - started, path,
                 getattr(servable, "description", ""))
    return True

  def _unload(self, model: _Model, versions: List[int]) -> None:
    for version in versions:
      self._set_status(model, version, State.UNLOADING)
    with self._lock:
      self._retired += [_Retired(model.loaded[v]) for v in versions]
      model.loaded = {v: s for v, s in model.loaded.items()
                      if v not in versions}
    self._unloaded = True
    # Requests still holding an old servable finish with it; the next poll
    # frees it (`_release_retired`).
    for version in versions:
      self._set_status(model, version, State.END)
      logging.info("%s version %d unloaded", model.source.name, version)

  def _release_retired(self) -> None:
    """Frees the unloaded servables no request holds any more, here on the
    polling thread. Freeing one takes milliseconds (an index's memory); had
    the last request to use it dropped it, the event loop would have paid
    them, in the first request on the new version. One still held after
    `_MAX_RETIRED_POLLS` polls (a reference cycle, a stuck request) is left
    to whoever drops it last, or to the garbage collector."""
    for retired in self._retired:
      retired.polls += 1
    # Unheld: referenced only by its entry and getrefcount's argument.
    self._retired = [retired for retired in self._retired
                     if sys.getrefcount(retired.servable) > 2 and
                     retired.polls < _MAX_RETIRED_POLLS]

  def get(self, name: str, version: Optional[int] = None):
    """The servable for a request; the newest loaded one without version."""
    model = self._models.get(name)
    request = f"Specific({name}, {version})" if version else f"Latest({name})"
    if model is None:
      raise NotFoundError(f"Servable not found for request: {request}: "
                          f"no model named {name!r} (serving "
                          f"{self.model_names})")
    loaded = model.loaded
    if not loaded:
      raise NotFoundError(f"Servable not found for request: {request}: no "
                          f"version of {name!r} is loaded")
    if version is None:
      return loaded[max(loaded)]
    if version not in loaded:
      raise NotFoundError(f"Servable not found for request: {request}: "
                          f"loaded versions are {sorted(loaded)}")
    return loaded[version]

  def statuses(self, name: str,
               version: Optional[int] = None) -> List[VersionStatus]:
    model = self._models.get(name)
    if model is None:
      raise NotFoundError(f"Could not find any versions of model {name!r}")
    statuses = model.statuses
    if version is not None:
      if version not in statuses:
        raise NotFoundError(f"Could not find version {version} of model "
                            f"{name!r}")
      return [statuses[version]]
    return [statuses[v] for v in sorted(statuses, reverse=True)]
