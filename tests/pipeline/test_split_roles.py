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


def test_search_on_the_gates_split_is_refused():
  with pytest.raises(config_lib.ConfigError) as error:
    config_lib.load(DIGITS, ["pruning.search.enabled=true", "pruning.selection_split=eval"])
  assert str(error.value).startswith(
      "pruning.selection_split: the search would select on 'eval', the split the gate then "
      "reports (gate.eval_split)")
  # Moving the gate instead is refused the same way.
  with pytest.raises(config_lib.ConfigError, match="pruning.selection_split: the search would "
                                                   "select on 'selection'"):
    config_lib.load(DIGITS, ["pruning.search.enabled=true", "gate.eval_split=selection"])


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
