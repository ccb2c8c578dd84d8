"""Version policy: newest complete version served, partial/corrupt ignored."""
import logging
import os
import threading

import pytest

from serving import model_registry


class _FakeLoader:
  """Loads a version dir by reading its `saved_model.pb` text.

  A file reading "corrupt" fails the load, as a truncated SavedModel would.
  """

  def __init__(self):
    self.calls = []

  def __call__(self, name, version, path):
    self.calls.append((name, version))
    with open(os.path.join(path, "saved_model.pb")) as f:
      content = f.read()
    if content == "corrupt":
      raise ValueError("truncated graph")
    return (name, version, content)


def _write_version(base, version, content="ok", complete=True):
  path = os.path.join(base, str(version))
  os.makedirs(os.path.join(path, "variables"), exist_ok=True)
  if complete:
    with open(os.path.join(path, "saved_model.pb"), "w") as f:
      f.write(content)
  return path


@pytest.fixture
def registry(tmp_path):
  base = str(tmp_path / "m")
  os.makedirs(base)
  loader = _FakeLoader()
  reg = model_registry.ModelRegistry([model_registry.ModelSource("m", base)],
                                     loader)
  return reg, base, loader


def test_serves_newest_version_and_unloads_the_old(registry):
  reg, base, _ = registry
  _write_version(base, 1)
  reg.poll()
  assert reg.get("m")[1] == 1
  _write_version(base, 3)
  _write_version(base, 2)
  reg.poll()
  assert reg.get("m")[1] == 3
  with pytest.raises(model_registry.NotFoundError, match="loaded versions"):
    reg.get("m", 1)
  states = {s.version: s.state for s in reg.statuses("m")}
  assert states == {3: model_registry.State.AVAILABLE,
                    1: model_registry.State.END}


def test_partial_version_is_ignored_and_logged_once(registry, caplog):
  reg, base, loader = registry
  _write_version(base, 1)
  _write_version(base, 2, complete=False)
  os.makedirs(os.path.join(base, ".3.incomplete"))  # A pusher's staging dir.
  with caplog.at_level(logging.WARNING):
    reg.poll()
    reg.poll()
  assert reg.get("m")[1] == 1
  partial_logs = [r for r in caplog.records if "partial" in r.getMessage()]
  assert len(partial_logs) == 1 and "version 2" in partial_logs[0].getMessage()
  assert loader.calls == [("m", 1)]
  # Once complete, it is picked up.
  _write_version(base, 2)
  reg.poll()
  assert reg.get("m")[1] == 2


def test_corrupt_version_keeps_the_previous_serving_until_fixed(registry):
  reg, base, loader = registry
  _write_version(base, 1)
  reg.poll()
  _write_version(base, 2, content="corrupt")
  reg.poll()
  reg.poll()
  assert reg.get("m")[1] == 1
  assert loader.calls.count(("m", 2)) == 1  # Not retried while unchanged.
  status = reg.statuses("m", 2)[0]
  assert status.state == model_registry.State.END
  assert "truncated graph" in status.error
  _write_version(base, 2, content="fixed!")
  reg.poll()
  assert reg.get("m") == ("m", 2, "fixed!")


def test_an_unloaded_version_is_freed_by_a_poll_not_its_last_request(
    tmp_path):
  base = str(tmp_path / "m")
  _write_version(base, 1)
  freed = []

  class Servable:

    def __init__(self, version):
      self.version = version

    def __del__(self):
      freed.append((self.version, threading.current_thread().name))

  reg = model_registry.ModelRegistry(
      [model_registry.ModelSource("m", base)],
      lambda name, version, path: Servable(version))
  reg.poll()
  in_flight = reg.get("m")  # A request still answering on version 1.
  _write_version(base, 2)
  reg.poll()
  assert reg.get("m").version == 2 and not freed
  del in_flight  # The request finishes, on the event loop in the server...
  assert not freed  # ...without paying for freeing the version.
  poll = threading.Thread(target=reg.poll, name="poll")
  poll.start()
  poll.join()
  assert freed == [(1, "poll")]
  # One held for ever is let go after a while, not kept by the registry.
  stuck = reg.get("m")
  _write_version(base, 3)
  for _ in range(model_registry._MAX_RETIRED_POLLS + 1):  # pylint: disable=protected-access
    reg.poll()
  del stuck
  assert freed[-1] == (2, threading.current_thread().name)


def test_on_change_runs_after_a_swap_only(tmp_path):
  base = str(tmp_path / "m")
  _write_version(base, 1)
  changes = []
  reg = model_registry.ModelRegistry([model_registry.ModelSource("m", base)],
                                     _FakeLoader(),
                                     on_change=lambda: changes.append(1))
  reg.poll()
  reg.poll()
  assert changes == [1]
  _write_version(base, 2)
  reg.poll()  # Loads 2 and unloads 1 in one poll.
  assert changes == [1, 1]  # Once per swap, before 2 answers.


def test_unknown_model_and_nothing_loaded_are_not_found(registry):
  reg, _, _ = registry
  with pytest.raises(model_registry.NotFoundError, match="no model named"):
    reg.get("other")
  reg.poll()
  with pytest.raises(model_registry.NotFoundError, match="no version"):
    reg.get("m")


def test_latest_two_policy(tmp_path):
  base = str(tmp_path / "m")
  for v in (1, 2, 3):
    _write_version(base, v)
  reg = model_registry.ModelRegistry([
      model_registry.ModelSource(
          "m", base, model_registry.VersionPolicy(num_versions=2))
  ], _FakeLoader())
  reg.poll()
  assert reg.get("m")[1] == 3 and reg.get("m", 2)[1] == 2


def test_read_sources_from_models_config(tmp_path):
  serving = tmp_path / "serving"
  (serving / "retrieval").mkdir(parents=True)
  (serving / "models.config").write_text(
      'model_config_list {\n'
      '  config { name: "query_tower" base_path: "/elsewhere/query_tower"\n'
      '           model_platform: "tensorflow" }\n'
      '  config { name: "retrieval" base_path: "/moved/retrieval"\n'
      '           model_platform: "tensorflow"\n'
      '           model_version_policy { specific { versions: 4 } } }\n'
      '}\n')
  sources = {s.name: s for s in model_registry.read_sources(str(serving))}
  # The config's path does not exist but the model sits beside the config.
  assert sources["retrieval"].base_path == str(serving / "retrieval")
  assert sources["retrieval"].policy.aspired([3, 4, 5]) == [4]
  assert sources["query_tower"].base_path == "/elsewhere/query_tower"


def test_read_sources_without_config_and_bad_config(tmp_path):
  (tmp_path / "query_tower").mkdir()
  sources = model_registry.read_sources(str(tmp_path))
  assert [s.name for s in sources] == ["query_tower"]
  (tmp_path / "models.config").write_text("model_config_list { oops }")
  with pytest.raises(ValueError, match="models.config"):
    model_registry.read_sources(str(tmp_path))
  with pytest.raises(FileNotFoundError):
    model_registry.read_sources(str(tmp_path / "empty"))
