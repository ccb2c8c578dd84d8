"""Config knobs: one name and default everywhere, overrides validated."""
import pytest

from tfx_pipeline import configs


def _config():
  return configs.PipelineConfig("logs/*.csv", "catalog.csv", "/tmp/out")


def test_overrides_change_only_the_named_knobs():
  config = configs.with_overrides(
      _config(), ["model.epochs=3", "mining.popularity_exponent=0",
                  "evaluation.cutoffs=[5, 50]", "model.use_unclicked=false"])
  assert config.model.epochs == 3
  assert config.model.use_unclicked is False
  assert config.mining.popularity_exponent == 0.0
  assert isinstance(config.mining.popularity_exponent, float)
  assert config.evaluation.cutoffs == (5, 50)
  assert config.text == configs.TextConfig()


@pytest.mark.parametrize("assignment, message", [
    ("model.no_such_knob=1", "no_such_knob"),
    ("nosection.epochs=1", "unknown config section"),
    ("epochs=1", "section.field=value"),
])
def test_bad_overrides_are_clear_errors(assignment, message):
  with pytest.raises(ValueError, match=message):
    configs.with_overrides(_config(), [assignment])


def test_slate_size_counts_anchor_context_and_random_items():
  mining = configs.MiningConfig(num_context_items=3, num_random_negatives=2)
  assert mining.slate_size == 6


def test_a_moved_knob_keeps_its_old_words():
  config = configs.with_overrides(_config(), ["model.retrieval_k=50"])
  assert config.index.k == 50
