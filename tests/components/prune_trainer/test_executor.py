import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx.types import standard_artifacts

from tfx_bonsai.components.common import model_io
from tfx_bonsai.components.common import roles
from tfx_bonsai.components.prune_trainer import component as component_lib
from tfx_bonsai.components.prune_trainer import executor as executor_lib
from tfx_bonsai.components.prune_trainer import pruning
from tfx_bonsai.components.prune_trainer import spec

PROPERTIES = {
    spec.LABEL_KEY: "label", spec.TRAIN_SPLIT_KEY: "train", spec.EVAL_SPLIT_KEY: "eval",
    spec.TARGET_SPARSITY_KEY: 0.9, spec.INITIAL_SPARSITY_KEY: 0.5,
    spec.SCHEDULE_KEY: "polynomial", spec.EPOCHS_KEY: 2, spec.BEGIN_STEP_KEY: 0,
    spec.FREQUENCY_KEY: 0, spec.BATCH_SIZE_KEY: 32, spec.LEARNING_RATE_KEY: 1e-3,
    spec.INCLUDE_LAYERS_KEY: "[]", spec.EXCLUDE_LAYERS_KEY: "[]",
    spec.SPARSITY_M_BY_N_KEY: "", spec.PRUNING_POLICY_KEY: "",
}


def _outputs(tmp_path):
  pruned = standard_artifacts.Model()
  pruned.uri = str(tmp_path / "pruned")
  run = standard_artifacts.ModelRun()
  run.uri = str(tmp_path / "run")
  return {spec.PRUNED_MODEL_KEY: [pruned], spec.MODEL_RUN_KEY: [run]}


def test_do_prunes_to_target_and_writes_serving_model(tmp_path, small_dense_model,
                                                      digits_examples, digits_schema):
  outputs = _outputs(tmp_path)
  executor_lib.Executor().Do(
      {spec.EXAMPLES_KEY: [digits_examples], spec.MODEL_KEY: [small_dense_model],
       spec.SCHEMA_KEY: [digits_schema]}, outputs, dict(PROPERTIES))
  pruned = outputs[spec.PRUNED_MODEL_KEY][0]
  assert pruned.get_float_custom_property(spec.SPARSITY_PROPERTY) >= 0.89
  assert pruned.get_float_custom_property(spec.ACCURACY_PROPERTY) > 0.8
  # Uniform pruning fits on train and only reports on eval_split: no selection recorded.
  assert roles.decode(pruned.get_string_custom_property(spec.DATA_ROLES_PROPERTY)) == [
      roles.Use("train", roles.FIT, "PruneTrainer", "train_split", "fine-tunes on it")]
  model = model_io.load_keras_model(pruned.uri)
  assert pruning.kernel_sparsity(model) >= 0.85
  report = json.load(open(os.path.join(pruned.uri, executor_lib.REPORT_FILE)))
  assert report["schedule"]["end_step"] < report["schedule"]["total_steps"]
  assert report["train_examples"] == 1437 and len(report["history"]["loss"]) == 2
  loaded = tf.saved_model.load(model_io.serving_dir(pruned.uri))
  assert "examples" in loaded.signatures["serving_default"].structured_input_signature[1]
  events = tf.io.gfile.glob(os.path.join(outputs[spec.MODEL_RUN_KEY][0].uri, "**", "*tfevents*"))
  assert events, "PruningSummaries wrote no TensorBoard logs"


def test_do_without_schema_infers_one(tmp_path, small_dense_model, digits_examples):
  outputs = _outputs(tmp_path)
  executor_lib.Executor().Do(
      {spec.EXAMPLES_KEY: [digits_examples], spec.MODEL_KEY: [small_dense_model]}, outputs,
      {**PROPERTIES, spec.EPOCHS_KEY: 1, spec.TARGET_SPARSITY_KEY: 0.5,
       spec.INITIAL_SPARSITY_KEY: 0.2})
  assert outputs[spec.PRUNED_MODEL_KEY][0].get_float_custom_property(spec.SPARSITY_PROPERTY) >= 0.49


def test_do_with_user_input_fn(tmp_path, small_dense_model, digits_examples, digits_schema):
  module = tmp_path / "user_module.py"
  module.write_text(
      "from tfx_bsl.public.tfxio import TensorFlowDatasetOptions\n"
      "def input_fn(file_pattern, data_accessor, schema, batch_size):\n"
      "  ds = data_accessor.tf_dataset_factory(file_pattern, TensorFlowDatasetOptions(\n"
      "      batch_size=batch_size, label_key='label', num_epochs=1), schema)\n"
      "  return ds.map(lambda f, y: (f['image'], y))\n")
  outputs = _outputs(tmp_path)
  executor_lib.Executor().Do(
      {spec.EXAMPLES_KEY: [digits_examples], spec.MODEL_KEY: [small_dense_model],
       spec.SCHEMA_KEY: [digits_schema]}, outputs,
      {**PROPERTIES, spec.EPOCHS_KEY: 1, spec.MODULE_FILE_KEY: str(module),
       spec.REFUSE_OVER_BUDGET_KEY: 0})   # one epoch to 0.9 costs this model ~20 pp
  assert outputs[spec.PRUNED_MODEL_KEY][0].get_float_custom_property(spec.SPARSITY_PROPERTY) >= 0.89


def test_a_shuffling_input_fn_gives_every_pass_the_same_eval_examples(
    tmp_path, small_dense_model, digits_examples, digits_schema):
  """The template's input_fn shuffles and repeats: the paired comparisons (the collapse
  refusal, the search) need each pass over the eval split to read the same examples in order."""
  module = tmp_path / "shuffling_module.py"
  module.write_text(
      "from tfx_bsl.public.tfxio import TensorFlowDatasetOptions\n"
      "def input_fn(file_pattern, data_accessor, schema, batch_size):\n"
      "  ds = data_accessor.tf_dataset_factory(file_pattern, TensorFlowDatasetOptions(\n"
      "      batch_size=batch_size, label_key='label', shuffle=True), schema)\n"
      "  return ds.map(lambda f, y: (f['image'], y))\n")
  model = model_io.load_keras_model(small_dense_model.uri, compile=False)
  executor = executor_lib.Executor()
  schema = executor._schema({spec.SCHEMA_KEY: [digits_schema]}, digits_examples, "train")  # pylint: disable=protected-access
  _, eval_ds = executor._datasets(  # pylint: disable=protected-access
      str(module), digits_examples, schema, model, "label", "train", "eval", 32)
  passes = [np.concatenate([y.numpy() for _, y in eval_ds]) for _ in range(3)]
  assert len(passes[0]) >= 360
  assert all(np.array_equal(passes[0], other) for other in passes[1:])


def test_wrong_label_key_fails_before_training(tmp_path, small_dense_model, digits_examples,
                                              digits_schema):
  from tfx_bonsai.components.common import examples as examples_lib
  with pytest.raises(examples_lib.DataError, match=r"label_key 'digit'.*\['image', 'label'\]"):
    executor_lib.Executor().Do(
        {spec.EXAMPLES_KEY: [digits_examples], spec.MODEL_KEY: [small_dense_model],
         spec.SCHEMA_KEY: [digits_schema]}, _outputs(tmp_path), {**PROPERTIES, spec.LABEL_KEY: "digit"})
  assert not os.path.exists(tmp_path / "pruned" / "Format-Serving")


def test_missing_model_fails_clearly(tmp_path, digits_examples):
  empty = standard_artifacts.Model()
  empty.uri = str(tmp_path / "nothing")
  with pytest.raises(model_io.ModelError, match="no SavedModel at"):
    executor_lib.Executor().Do({spec.EXAMPLES_KEY: [digits_examples], spec.MODEL_KEY: [empty]},
                               _outputs(tmp_path), dict(PROPERTIES))


def test_component_validates_at_construction():
  from tfx.types import channel_utils
  examples = channel_utils.as_channel([standard_artifacts.Examples()])
  model = channel_utils.as_channel([standard_artifacts.Model()])
  with pytest.raises(pruning.PruningError, match=r"target_sparsity must be in \[0, 1\), got 1.5"):
    component_lib.PruneTrainer(examples=examples, model=model, target_sparsity=1.5)
  trainer = component_lib.PruneTrainer(examples=examples, model=model, include_layers=["dense.*"])
  assert trainer.exec_properties[spec.INCLUDE_LAYERS_KEY] == ["dense.*"]
  assert set(trainer.outputs) == {spec.PRUNED_MODEL_KEY, spec.MODEL_RUN_KEY}


def test_do_with_search_records_every_trial(tmp_path, small_dense_model, digits_examples,
                                            digits_schema):
  outputs = _outputs(tmp_path)
  executor_lib.Executor().Do(
      {spec.EXAMPLES_KEY: [digits_examples], spec.MODEL_KEY: [small_dense_model],
       spec.SCHEMA_KEY: [digits_schema]}, outputs,
      {**PROPERTIES, spec.SEARCH_LEVELS_KEY: "[0.5, 0.8]", spec.SEARCH_MAX_TRIALS_KEY: 2,
       spec.SEARCH_EPOCHS_KEY: 1, spec.SEARCH_MAX_ACCURACY_DROP_KEY: 0.05})
  pruned = outputs[spec.PRUNED_MODEL_KEY][0]
  report = json.load(open(os.path.join(pruned.uri, executor_lib.REPORT_FILE)))
  trials = report["search"]["trials"]
  assert [t["level"] for t in trials] == [0.5, 0.8]
  assert report["search"]["accuracy_decision"] == "confident"   # the default, as the gate's
  assert all(t["accepted"] == (t["drop_ci_high"] <= 0.05 + 1e-9) for t in trials)
  accepted = [t for t in trials if t["accepted"]]
  assert accepted and pruned.get_float_custom_property(spec.SPARSITY_PROPERTY) == pytest.approx(
      max(accepted, key=lambda t: t["level"])["sparsity"])
  # The search chose its level on eval_split: the model says so, for the gate.
  (selected,) = roles.on_split(
      roles.decode(pruned.get_string_custom_property(spec.DATA_ROLES_PROPERTY)), "eval")
  assert (selected.role, selected.parameter) == (roles.SELECTION, "eval_split")
  assert pruned.get_float_custom_property(spec.TARGET_SPARSITY_PROPERTY) == max(
      t["level"] for t in accepted)
  assert pruned.get_int_custom_property(spec.SEARCHED_PROPERTY) == 1


def test_output_too_narrow_for_the_labels_fails_before_training(tmp_path, digits_examples,
                                                               digits_schema):
  keras = model_io.keras()
  inputs = keras.Input((784,), name="image")
  model = keras.Model(inputs, keras.layers.Dense(5, activation="softmax")(keras.layers.Dense(8)(inputs)))
  model.compile(loss="sparse_categorical_crossentropy")
  narrow = standard_artifacts.Model()
  narrow.uri = str(tmp_path / "narrow")
  model_io.save_keras_model(model, model_io.serving_dir(narrow.uri))
  with pytest.raises(model_io.ModelError, match=r"outputs 5 classes but label 'label' has values 0..9.*\[0, 4\]"):
    executor_lib.Executor().Do(
        {spec.EXAMPLES_KEY: [digits_examples], spec.MODEL_KEY: [narrow],
         spec.SCHEMA_KEY: [digits_schema]}, _outputs(tmp_path), dict(PROPERTIES))
  assert not os.path.exists(tmp_path / "pruned" / "Format-Serving")


def test_a_collapse_past_the_budget_is_refused_with_both_accuracies(tmp_path, small_dense_model,
                                                                  digits_examples, digits_schema):
  """99.5 % of the weights gone in one epoch: the model is refused, not published."""
  outputs = _outputs(tmp_path)
  collapse = {**PROPERTIES, spec.EPOCHS_KEY: 1, spec.TARGET_SPARSITY_KEY: 0.995,
              spec.INITIAL_SPARSITY_KEY: 0.99, spec.SEARCH_MAX_ACCURACY_DROP_KEY: 0.03}
  with pytest.raises(pruning.PruningError,
                     match=r"pruning collapsed the selection accuracy past the budget: accuracy "
                           r"on split 'eval' 0\.[89]\d+ dense, 0\.[0-7]\d+ pruned") as raised:
    executor_lib.Executor().Do(
        {spec.EXAMPLES_KEY: [digits_examples], spec.MODEL_KEY: [small_dense_model],
         spec.SCHEMA_KEY: [digits_schema]}, outputs, collapse)
  assert "over the budget 0.0300" in str(raised.value)
  assert not tf.io.gfile.exists(model_io.serving_dir(outputs[spec.PRUNED_MODEL_KEY][0].uri))
  executor_lib.Executor().Do(   # the old behaviour, asked for
      {spec.EXAMPLES_KEY: [digits_examples], spec.MODEL_KEY: [small_dense_model],
       spec.SCHEMA_KEY: [digits_schema]}, outputs, {**collapse, spec.REFUSE_OVER_BUDGET_KEY: 0})
  pruned = outputs[spec.PRUNED_MODEL_KEY][0]
  assert pruned.get_float_custom_property(spec.ACCURACY_PROPERTY) < 0.8
  assert pruned.get_float_custom_property(spec.TARGET_SPARSITY_PROPERTY) == 0.995
  assert pruned.get_int_custom_property(spec.SEARCHED_PROPERTY) == 0


def test_a_search_with_no_level_within_budget_says_so_with_the_frontier(
    tmp_path, small_dense_model, digits_examples, digits_schema):
  # One trial at 0.99 (the weak 3-epoch dense model, fine-tuned at 0.495, can beat it
  # confidently, which a 0 budget accepts).
  with pytest.raises(pruning.PruningError,
                     match=r"no level within budget: the search tried 1 level against .* measured "
                           r"frontier: level 0.99: sparsity 0\.\d+, accuracy 0\.\d+ \(drop "
                           r"[-+]0\.\d+\)"):
    executor_lib.Executor().Do(
        {spec.EXAMPLES_KEY: [digits_examples], spec.MODEL_KEY: [small_dense_model],
         spec.SCHEMA_KEY: [digits_schema]}, _outputs(tmp_path),
        {**PROPERTIES, spec.SEARCH_LEVELS_KEY: "[0.99, 0.995]", spec.SEARCH_MAX_TRIALS_KEY: 1,
         spec.SEARCH_EPOCHS_KEY: 1, spec.SEARCH_MAX_ACCURACY_DROP_KEY: 0.0})
