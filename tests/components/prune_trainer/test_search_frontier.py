"""The search's frontier: acceptance by the paired interval, bracketing downwards from a
level over budget, bisection between accepted and rejected levels, the per-layer cap."""
import dataclasses

import pytest

from tfx_bonsai.components.prune_trainer import pruning
from tfx_bonsai.components.prune_trainer import search


def test_next_levels_brackets_down_then_bisects():
  config = search.SearchConfig()
  assert search.next_levels(None, None, config) == []
  assert search.next_levels(None, 0.9, config) == [0.45]          # nothing accepted: halve
  assert search.next_levels(None, 0.08, config) == []              # below MIN_BRACKET_LEVEL
  assert search.next_levels(0.45, 0.9, config) == [0.675]          # bisect
  assert search.next_levels(0.9, 0.902, config) == []              # resolution reached
  assert search.next_levels(0.45, 0.9, dataclasses.replace(config, bisect=False)) == []


def test_paired_counts_from_outcomes():
  import numpy as np  # pylint: disable=g-import-not-at-top
  dense = np.array([True, True, True, False, False])
  candidate = np.array([True, False, True, True, False])
  counts = search.paired_counts(dense, candidate)
  assert (counts.n, counts.both, counts.baseline_only, counts.candidate_only) == (5, 2, 1, 1)
  with pytest.raises(pruning.PruningError, match="paired outcomes differ in length"):
    search.paired_counts(dense, candidate[:4])


def test_level_over_budget_first_brackets_down_and_bisects_with_confident_acceptance(setup):
  model, train, selection = setup
  # 360 selection examples, a 0.89-accurate dense model: about 5 % discordant pairs, so the
  # valid interval confirms ~3.5 pp at best (README, the gate's table); the budget is 5 pp.
  config = search.SearchConfig(levels=(0.999,), max_accuracy_drop=0.05, max_trials=3,
                               epochs_per_trial=1)
  assert config.accuracy_decision == search.CONFIDENT
  result = search.search(model, train, selection, 1437, pruning.PruningConfig(), config)
  levels = [t.level for t in result.trials]
  assert levels[0] == 0.999 and not result.trials[0].accepted
  assert levels[1] == 0.4995                                   # bracketed downwards
  assert result.trials[1].accepted and result.within_budget
  assert levels[2] == pytest.approx((0.4995 + 0.999) / 2, abs=1e-6)   # then bisected
  for trial in result.trials:
    assert trial.examples == 360
    assert trial.drop_ci_low <= trial.accuracy_drop <= trial.drop_ci_high
    # Accepted exactly when the whole interval is within the budget.
    assert trial.accepted == (trial.drop_ci_high <= 0.05 + 1e-9)
  best = max((t for t in result.trials if t.accepted), key=lambda t: t.level)
  assert result.result.sparsity == pytest.approx(best.sparsity)
  report = result.report()
  assert report["accuracy_decision"] == search.CONFIDENT and report["stopped"]


def test_per_layer_cap_is_configurable_up_to_below_one(setup):
  model = setup[0]
  layers = [l.name for l in model.layers if pruning.prunable_weights(l)]
  capped = pruning.allocate(model, layers, 0.998)
  assert max(capped.values()) <= pruning.MAX_LAYER_SPARSITY
  loose = pruning.allocate(model, layers, 0.998, max_layer_sparsity=0.9995)
  assert pruning.MAX_LAYER_SPARSITY < max(loose.values()) <= 0.9995


@pytest.mark.parametrize("change, message", [
    ({"accuracy_decision": "mean"},
     r"search.accuracy_decision must be one of \['point', 'confident'\], got 'mean'"),
    ({"max_layer_sparsity": 1.0}, r"search.max_layer_sparsity must be in \(0, 1\)"),
])
def test_invalid_frontier_settings_are_named(change, message):
  with pytest.raises(pruning.PruningError, match=message):
    dataclasses.replace(search.SearchConfig(), **change).validate()
