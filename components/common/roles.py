"""Data roles that travel with the artifacts: which split each component fitted or selected on.

PruneTrainer and TFLiteConverter write their uses of the data as one string custom property,
`data_roles`, on their output model (the converter adds its own to those of the model it
converted), so that the gate can refuse to judge a model on a split that shaped it, whoever
wired the pipeline and wherever it runs. The YAML config refuses the same combinations
before any work, from the same functions. Splits are compared by name.

Nothing here imports TensorFlow or TFX.
"""
import dataclasses
import json
from typing import Any, Iterable, List, Mapping, Optional, Sequence

# The output model's custom property (a JSON list of Use records).
DATA_ROLES_PROPERTY = "data_roles"
# The roles a split can play before the gate.
FIT = "fit"               # weights or quantization ranges were fitted on it
SELECTION = "selection"   # a choice was made on it (a level, a per-layer allocation, a pass/fail)
# The verdict's record of an accepted overlap (gate parameter allow_shared_splits).
SHARED_SPLITS_KEY = "shared_splits"
ALLOW_SHARED_SPLITS = "allow_shared_splits"

# What a TFX template project (ExampleGen with `train` and `eval` only) pastes to get the
# three splits; `tests/components/test_roles.py` builds this very text.
SELECTION_SPLIT_SNIPPET = """\
output_config = tfx.proto.Output(
    split_config=tfx.proto.SplitConfig(splits=[
        tfx.proto.SplitConfig.Split(name='train', hash_buckets=6),
        tfx.proto.SplitConfig.Split(name='selection', hash_buckets=2),
        tfx.proto.SplitConfig.Split(name='eval', hash_buckets=2),
    ]))
example_gen = tfx.components.CsvExampleGen(input_base=data_path, output_config=output_config)
"""


class DataRoleError(ValueError):
  """The gate was asked to judge on a split an upstream component fitted or selected on."""


@dataclasses.dataclass(frozen=True)
class Use:
  """One component's use of one split: `role` (FIT or SELECTION), by `parameter`, for `purpose`."""
  split: str
  role: str
  component: str
  parameter: str
  purpose: str

  def describe(self) -> str:
    return f"{self.component} {self.purpose} ({self.parameter}='{self.split}')"


def prune_trainer_uses(settings) -> List[Use]:
  """PruneTrainer's uses: it fits on train_split; it selects on eval_split only when the search
  picks a level or the sensitivity allocation measures layers there (otherwise eval_split only
  reports the validation metric).

  Its refusal of a collapse (refuse_over_budget) is a pass/fail on eval_split too, but not a
  role the gate must refuse: it refuses only when the drop's interval lies wholly over the
  budget, and the gate blesses only when it lies wholly within it, so on one split every
  candidate the gate would bless passes the refusal, and the gate's false-bless rate is the
  same with or without it."""
  uses = [Use(settings.train_split, FIT, "PruneTrainer", "train_split", "fine-tunes on it")]
  if settings.search_levels:
    uses.append(Use(settings.eval_split, SELECTION, "PruneTrainer", "eval_split",
                    "searches the sparsity level on it"))
  if settings.resolved_allocation(searching=bool(settings.search_levels)) == "sensitivity":
    uses.append(Use(settings.eval_split, SELECTION, "PruneTrainer", "eval_split",
                    "allocates per-layer sparsity by each layer's sensitivity on it"))
  return uses


def converter_uses(settings, with_examples: bool = True) -> List[Use]:
  """TFLiteConverter's uses: int8 calibrates on representative_split; the agreement check that
  passes or fails the conversion runs on agreement_split (both only when it has examples)."""
  if not with_examples:
    return []
  uses = []
  if settings.quantization == "int8":
    uses.append(Use(settings.representative_split, FIT, "TFLiteConverter",
                    "representative_split", "calibrates the int8 ranges on it"))
  uses.append(Use(settings.agreement_split, SELECTION, "TFLiteConverter", "agreement_split",
                  "passes or fails the conversion on it"))
  return uses


def encode(uses: Iterable[Use]) -> str:
  """The property value: a JSON list of the uses, without duplicates, in order."""
  unique = list(dict.fromkeys(uses))
  return json.dumps([dataclasses.asdict(u) for u in unique], sort_keys=True)


def decode(text: Optional[str]) -> List[Use]:
  """The uses a property value holds ([] for an empty or absent one)."""
  if not text:
    return []
  try:
    return [Use(**record) for record in json.loads(text)]
  except (ValueError, TypeError) as e:
    raise DataRoleError(f"property {DATA_ROLES_PROPERTY!r} is not a JSON list of data uses "
                        f"({e}): {text[:200]!r}") from e


def on_split(uses: Iterable[Use], split: str) -> List[Use]:
  """The uses of `split`."""
  return [u for u in uses if u.split == split]


def shared_split_message(split: str, uses: Sequence[Use], splits: Sequence[str] = (),
                         gate_key: str = "eval_split",
                         opt_out: str = f"{ALLOW_SHARED_SPLITS}=True") -> str:
  """The one error for judging on `split` that `uses` shaped, with the ways out.

  `splits`: the split names the examples have; with no third split to move to (a TFX
  template's ExampleGen has `train` and `eval`), the message shows how to add `selection`.
  """
  used = "; ".join(u.describe() for u in uses)
  if len(set(splits)) >= 3:
    move = (f"set {gate_key} to a split nothing upstream used, or move the upstream parameter "
            f"to another of the splits {list(splits)}")
  else:
    move = (f"the examples have only the splits {list(splits)}: add a 'selection' split to "
            "the ExampleGen (its output_config):\n\n" + SELECTION_SPLIT_SNIPPET
            + "\nand pass eval_split='selection' to PruneTrainer, agreement_split='selection' "
            "to TFLiteConverter (and the Trainer's eval_args), keeping the gate on "
            f"'{split}'")
  return (f"{gate_key}: the gate would judge on split '{split}', which shaped the model it "
          f"judges: {used}. Its accuracy there is biased upwards. Either {move}. Or accept "
          f"the bias explicitly with {opt_out} (logged and recorded in the verdict as "
          f"'{SHARED_SPLITS_KEY}').")


def shared_record(split: str, uses: Sequence[Use]) -> Mapping[str, Any]:
  """The verdict's record of an accepted overlap."""
  return {"split": split, ALLOW_SHARED_SPLITS: True, "uses": [u.describe() for u in uses]}
