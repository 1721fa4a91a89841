"""The three roles of the data: train fits, `selection` serves every choice and check before
the gate, and the gate's `eval` split is seen by nothing else."""
import os

import pytest

from tfx_bonsai.pipeline import config as config_lib
from tfx_bonsai.pipeline import pipeline as pipeline_lib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DIGITS = os.path.join(REPO, "configs", "digits.yaml")


def _components(config):
  pipeline = pipeline_lib.create_pipeline(config)
  return {c.id: c for c in pipeline.components}


@pytest.mark.parametrize("search", ["false", "true"])
def test_default_pipeline_gives_each_role_its_own_split(search):
  components = _components(config_lib.load(DIGITS, [f"pruning.search.enabled={search}"]))
  example_gen = components["ImportExampleGen"]
  splits = example_gen.exec_properties["output_config"]
  assert '"name": "train"' in splits and '"name": "selection"' in splits
  assert '"name": "eval"' in splits
  trainer = components["Trainer"].exec_properties
  assert '"splits": [\n    "train"' in trainer["train_args"]
  assert '"splits": [\n    "selection"' in trainer["eval_args"]
  prune = components["PruneTrainer"].exec_properties
  assert (prune["train_split"], prune["eval_split"]) == ("train", "selection")
  convert = components["TFLiteConverter"].exec_properties
  assert (convert["representative_split"], convert["agreement_split"]) == ("train", "selection")
  assert components["CompressionEvaluator"].exec_properties["eval_split"] == "eval"
  # Nothing but the gate names the eval split.
  for component_id, component in components.items():
    if component_id in ("CompressionEvaluator", "ImportExampleGen"):
      continue
    for key, value in component.exec_properties.items():
      assert not (isinstance(value, str) and value == "eval"), (component_id, key)
      assert '"eval"' not in str(value), (component_id, key)


@pytest.mark.parametrize("overrides, key, use", [
    (["pruning.selection_split=eval", "pruning.allocation=sensitivity"], "pruning.selection_split",
     "PruneTrainer allocates per-layer sparsity by each layer's sensitivity on it "
     "(pruning.selection_split='eval')"),
    (["pruning.search.enabled=true", "pruning.selection_split=eval"], "pruning.selection_split",
     "PruneTrainer searches the sparsity level on it (pruning.selection_split='eval')"),
    (["gate.eval_split=train"], "gate.eval_split", "PruneTrainer fine-tunes on it"),
    (["conversion.agreement_split=eval"], "conversion.agreement_split",
     "TFLiteConverter passes or fails the conversion on it (conversion.agreement_split='eval')"),
    (["gate.eval_split=selection"], "pruning.selection_split",
     "TFLiteConverter passes or fails the conversion on it (conversion.agreement_split="
     "'selection')"),
])
def test_the_gate_on_a_split_that_shaped_the_model_is_refused(overrides, key, use):
  with pytest.raises(config_lib.ConfigError) as error:
    config_lib.load(DIGITS, overrides)
  message = str(error.value)
  assert message.startswith(f"{key}: the gate would judge on split "), message
  assert use in message
  assert "gate.allow_shared_splits: true" in message


def test_shared_splits_accepted_explicitly_reach_the_gate(caplog):
  config = config_lib.load(DIGITS, ["conversion.agreement_split=eval",
                                    "gate.allow_shared_splits=true"])
  assert "gate.allow_shared_splits: the gate judges on 'eval'" in caplog.text
  gate = _components(config)["CompressionEvaluator"].exec_properties
  assert gate["allow_shared_splits"] == 1
  assert _components(config_lib.load(DIGITS))["CompressionEvaluator"].exec_properties[
      "allow_shared_splits"] == 0


def test_plain_pruning_only_reports_on_its_split_so_the_converter_may_share_it():
  # Uniform pruning reads its eval_split only to report the validation metric: no role.
  uses = config_lib.data_uses(config_lib.load(DIGITS))
  assert [(u.component, u.role) for u in uses if u.split == "selection"] == [
      ("Trainer", "selection"), ("TFLiteConverter", "selection")]


@pytest.mark.parametrize("override, message", [
    ("pruning.selection_split=validation",
     r"pruning.selection_split: must be one of \['train', 'selection', 'eval'\], got 'validation'"),
    ("conversion.agreement_split=test", r"conversion.agreement_split: must be one of"),
    ("gate.eval_split=holdout", r"gate.eval_split: must be one of"),
    ("data.selection_buckets=0", r"data.selection_buckets: must be >= 1, got 0"),
    ("gate.accuracy_decision=mean",
     r"gate.accuracy_decision: must be one of \['point', 'confident'\], got 'mean'"),
    ("gate.min_accuracy=1.5", r"gate.min_accuracy: must be in \[0, 1\]"),
])
def test_bad_roles_and_decisions_name_the_key(override, message):
  with pytest.raises(config_lib.ConfigError, match=message):
    config_lib.load(DIGITS, [override])


def test_gate_decision_settings_reach_the_component():
  components = _components(config_lib.load(
      DIGITS, ["gate.accuracy_decision=point", "gate.min_accuracy=0.9"]))
  gate = components["CompressionEvaluator"].exec_properties
  assert gate["accuracy_decision"] == "point" and gate["min_accuracy"] == 0.9
  default = _components(config_lib.load(DIGITS))["CompressionEvaluator"].exec_properties
  assert default["accuracy_decision"] == "confident"
