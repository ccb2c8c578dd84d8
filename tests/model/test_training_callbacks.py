"""Training's progress lines, TensorBoard scalars and Projector files."""
import logging
import math

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins import projector

from contracts import text
from model import in_slate_eval
from model import preprocessing
from model import training_callbacks
from tests.model import test_trainer_export as tiny

# The tiny run's fixtures: Transform output and examples, and `run_fn` on them.
transformed = tiny.transformed
trained = tiny.trained

HEAD_KINDS = ("mixed", "tokens", "trigrams")  # tiny.MODEL has num_heads=3
# 12 train slates in batches of 8: two steps per epoch, two epochs.
EPOCH_END_STEPS = [2, 4]


def test_recall_and_ndcg_match_hand_computed_values():
  ranked = np.array([[5, 1, 7, 2], [9, 8, 3, 4]])
  judgments = [{1: 3.0, 2: 2.5}, {4: 2.5, 6: 3.0}]
  result = in_slate_eval.recall_and_ndcg(ranked, judgments, cutoffs=(2, 4))
  # Query 1: item 1 (gain 2) at rank 2, item 2 (gain 1.5) at rank 4.
  dcg2 = 2 / math.log2(3)
  idcg2 = 2 + 1.5 / math.log2(3)
  dcg4 = dcg2 + 1.5 / math.log2(5)
  # Query 2: item 4 (gain 1.5) at rank 4; item 6 (gain 2) is not ranked.
  q2_dcg4 = 1.5 / math.log2(5)
  assert result == pytest.approx({
      "recall@2": (0.5 + 0.0) / 2,
      "recall@4": (1.0 + 0.5) / 2,
      "ndcg@2": (dcg2 / idcg2 + 0.0) / 2,
      "ndcg@4": (dcg4 / idcg2 + q2_dcg4 / idcg2) / 2,
  }, abs=1e-9)


def test_recall_leaves_out_queries_without_a_relevant_item():
  result = in_slate_eval.recall_and_ndcg(
      np.array([[1, 2], [3, 4]]), [{1: 3.0}, {3: 2.0}], cutoffs=(1,))
  # Query 2's grade 2.0 is below the recall threshold but gains 1.0 in NDCG.
  assert result == pytest.approx({"recall@1": 1.0, "ndcg@1": 1.0}, abs=1e-9)


def _split_dataset(tmp, spec, split):
  files = tf.io.gfile.glob(str(tmp / "examples" / f"Split-{split}" / "*"))
  return tf.data.TFRecordDataset(files, compression_type="GZIP").batch(
      5).map(lambda records: tf.io.parse_example(records, spec))


def test_slate_items_judge_eval_queries_and_keep_each_item_once(transformed):
  tmp, output, _ = transformed
  spec = output.transformed_feature_spec()
  items = in_slate_eval.SlateItems.collect(_split_dataset(tmp, spec, "eval"),
                                           _split_dataset(tmp, spec, "train"))
  assert sorted(i.decode() for i in items.item_ids.tolist()) == sorted(
      tiny.ITEMS)
  assert len(items.item_ids) == len(tiny.ITEMS)
  for name, values in items.item_features.items():
    assert len(values) == len(tiny.ITEMS), name
  # Every query anchors both of its items (ORDERED) in one slate or another.
  assert sorted(sorted(j.items()) for j in items.judgments) == sorted(
      sorted((i.encode(), 3.0) for i in group)
      for group in tiny.QUERIES.values())
  assert items.query_features[preprocessing.QUERY_TOKENS].shape == (
      len(tiny.QUERIES), tiny.TEXT["max_query_tokens"])


def _scalars(run_dir):
  accumulator = event_accumulator.EventAccumulator(
      str(run_dir), size_guidance={event_accumulator.TENSORS: 0})
  accumulator.Reload()
  return {
      tag: [(e.step, float(tf.make_ndarray(e.tensor_proto)))
            for e in accumulator.Tensors(tag)]
      for tag in accumulator.Tags()[event_accumulator.TENSORS]
  }


def test_training_writes_step_epoch_and_in_slate_scalars(trained):
  serving, _ = trained
  train = _scalars(serving.parent / "run" / training_callbacks.TRAIN_RUN)
  step_tags = ["loss/total", "loss/retrieval", "loss/ranking",
               "optimizer/learning_rate"] + [
                   f"fusion/head_weight_{kind}" for kind in HEAD_KINDS]
  for tag in step_tags:
    assert [step for step, _ in train[tag]] == [1], tag
  assert train["optimizer/learning_rate"][0][1] == pytest.approx(
      tiny.MODEL["learning_rate"], abs=1e-7)
  assert all(train[f"fusion/head_weight_{kind}"][0][1] > 0
             for kind in HEAD_KINDS)

  validation = _scalars(serving.parent / "run" /
                        training_callbacks.VALIDATION_RUN)
  for run in (train, validation):
    for tag in ("epoch/loss", "epoch/retrieval_loss", "epoch/ranking_loss"):
      assert [step for step, _ in run[tag]] == EPOCH_END_STEPS, tag
  for metric in ("recall@10", "ndcg@10", "recall@100", "ndcg@100"):
    values = validation[f"eval/{metric}_in_slate_items"]
    assert [step for step, _ in values] == EPOCH_END_STEPS
    assert all(0.0 <= value <= 1.0 + 1e-6 for _, value in values)
  # Six candidates: every relevant item is within the top 10.
  assert validation["eval/recall@10_in_slate_items"][-1][1] == pytest.approx(
      1.0, abs=1e-6)


def test_training_writes_item_embeddings_for_the_projector(trained):
  serving, _ = trained
  run_dir = serving.parent / "run" / training_callbacks.TRAIN_RUN
  config = text_format.Parse(
      (run_dir / "projector_config.pbtxt").read_text(),
      projector.ProjectorConfig())
  [embedding] = config.embeddings
  assert embedding.metadata_path == training_callbacks.PROJECTOR_METADATA

  lines = (run_dir / embedding.metadata_path).read_text().splitlines()
  assert lines[0].split("\t") == ["item_id", "title", "brand"]
  rows = [line.split("\t") for line in lines[1:]]
  # Titles and brands as the Transform saw them (normalised words).
  assert {item_id: [title, brand] for item_id, title, brand in rows} == {
      item_id: [" ".join(text.words(title)), brand]
      for item_id, (title, brand, _) in tiny.ITEMS.items()}

  # Row i is item i's vector from the trained item tower.
  vectors = tf.train.load_variable(
      tf.train.latest_checkpoint(str(run_dir)), embedding.tensor_name)
  item_tower = tf.saved_model.load(str(serving / "item_tower")).signatures[
      "serving_default"]
  exported = item_tower(**tiny._item_inputs(  # pylint: disable=protected-access
      [row[0] for row in rows]))["embedding"].numpy()
  np.testing.assert_allclose(vectors, exported, rtol=1e-4, atol=1e-5)


class _Clock:

  def __init__(self):
    self.now = 0.0

  def __call__(self):
    return self.now


def test_progress_log_is_throttled_and_reports_each_epoch(caplog):
  clock = _Clock()
  progress = training_callbacks.ProgressLog(batch_size=4, every_seconds=10.0,
                                            clock=clock)
  progress.set_params({"epochs": 2, "steps": None})
  logs = {"mean_loss": 2.0, "retrieval_loss": 1.5, "ranking_loss": 1.0,
          "loss": 2.5}
  with caplog.at_level(logging.INFO):
    progress.on_train_begin()
    for epoch in range(2):
      progress.on_epoch_begin(epoch)
      for batch in range(6):
        clock.now += 4.0
        progress.on_train_batch_end(batch, logs)
      progress.on_epoch_end(epoch, {**logs, "val_mean_loss": 3.0,
                                    "val_retrieval_loss": 2.0,
                                    "in_slate_recall@10": 0.25})
  lines = [r.getMessage() for r in caplog.records]
  # A line at 12 s and 24 s of each epoch (steps 3 and 6), then the epoch's.
  assert lines == [
      "Epoch 1/2, step 3: loss 2.0000 (retrieval 1.5000, ranking 1.0000), "
      "1 examples/s",
      "Epoch 1/2, step 6: loss 2.0000 (retrieval 1.5000, ranking 1.0000), "
      "1 examples/s",
      "Epoch 1/2 done in 24.0 s: loss 2.0000 (retrieval 1.5000, ranking "
      "1.0000); validation loss 3.0000 (retrieval 2.0000); in-slate "
      "recall@10 0.2500",
      "Epoch 2/2, step 3/6: loss 2.0000 (retrieval 1.5000, ranking 1.0000), "
      "1 examples/s",
      "Epoch 2/2, step 6/6: loss 2.0000 (retrieval 1.5000, ranking 1.0000), "
      "1 examples/s",
      "Epoch 2/2 done in 24.0 s: loss 2.0000 (retrieval 1.5000, ranking "
      "1.0000); validation loss 3.0000 (retrieval 2.0000); in-slate "
      "recall@10 0.2500",
  ]
