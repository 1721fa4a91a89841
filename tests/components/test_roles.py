"""Data roles: what each component records of its splits, and the gate's one error."""
import pytest
from tfx import v1 as tfx

from tfx_bonsai.components.common import roles
from tfx_bonsai.components.prune_trainer import settings as prune_settings
from tfx_bonsai.components.tflite_converter import settings as converter_settings


def test_the_selection_split_snippet_is_valid_tfx_and_builds_three_splits(tmp_path):
  namespace = {"tfx": tfx, "data_path": str(tmp_path)}
  exec(roles.SELECTION_SPLIT_SNIPPET, namespace)  # pylint: disable=exec-used
  splits = namespace["output_config"].split_config.splits
  assert [(s.name, s.hash_buckets) for s in splits] == [("train", 6), ("selection", 2),
                                                        ("eval", 2)]
  example_gen = namespace["example_gen"]
  assert isinstance(example_gen, tfx.components.CsvExampleGen)
  assert '"name": "selection"' in example_gen.exec_properties["output_config"]


def test_a_template_project_is_told_how_to_add_a_selection_split_and_how_to_opt_out():
  uses = roles.converter_uses(converter_settings.TFLiteConverterSettings(agreement_split="eval"))
  shared = roles.on_split(uses, "eval")
  assert [u.parameter for u in shared] == ["agreement_split"]
  message = roles.shared_split_message("eval", shared, ["train", "eval"])
  assert message.startswith("eval_split: the gate would judge on split 'eval', which shaped "
                            "the model it judges: TFLiteConverter passes or fails the "
                            "conversion on it (agreement_split='eval').")
  assert "only the splits ['train', 'eval']" in message
  assert roles.SELECTION_SPLIT_SNIPPET in message
  assert "agreement_split='selection' to TFLiteConverter" in message
  assert "allow_shared_splits=True" in message
  # With a third split there is somewhere to move: no snippet.
  three = roles.shared_split_message("eval", shared, ["train", "selection", "eval"])
  assert roles.SELECTION_SPLIT_SNIPPET not in three and "allow_shared_splits=True" in three


@pytest.mark.parametrize("values, selected", [
    ({}, False),                                          # uniform: eval_split only reports
    ({"allocation": "global_magnitude"}, False),
    ({"allocation": "sensitivity"}, True),
    ({"search_levels": [0.9, 0.95]}, True),
])
def test_prune_trainer_records_a_selection_only_when_it_chooses_on_the_split(values, selected):
  uses = roles.prune_trainer_uses(prune_settings.PruneTrainerSettings(
      train_split="train", eval_split="selection", **values))
  assert uses[0] == roles.Use("train", roles.FIT, "PruneTrainer", "train_split",
                              "fine-tunes on it")
  assert bool(roles.on_split(uses, "selection")) is selected
  assert all(u.role == roles.SELECTION for u in roles.on_split(uses, "selection"))


def test_converter_records_calibration_only_for_int8_and_nothing_without_examples():
  int8 = roles.converter_uses(converter_settings.TFLiteConverterSettings(
      agreement_split="selection"))
  assert [(u.split, u.role) for u in int8] == [("train", roles.FIT),
                                               ("selection", roles.SELECTION)]
  dynamic = roles.converter_uses(converter_settings.TFLiteConverterSettings(
      quantization="dynamic", agreement_split="selection"))
  assert [(u.split, u.role) for u in dynamic] == [("selection", roles.SELECTION)]
  assert roles.converter_uses(converter_settings.TFLiteConverterSettings(),
                              with_examples=False) == []


def test_the_property_round_trips_without_duplicates_and_refuses_garbage():
  uses = roles.prune_trainer_uses(prune_settings.PruneTrainerSettings(allocation="sensitivity"))
  text = roles.encode(uses + uses)
  assert roles.decode(text) == uses
  assert roles.decode("") == []
  with pytest.raises(roles.DataRoleError, match="property 'data_roles' is not a JSON list"):
    roles.decode('{"split": "eval"}')
