import dataclasses

import numpy as np
import pytest

from tfx_bonsai.components.prune_trainer import pruning
from tfx_bonsai.components.prune_trainer import search


def test_global_magnitude_allocation_prunes_the_big_layer_hardest(setup):
  model = setup[0]
  layers = [l.name for l in model.layers if pruning.prunable_weights(l)]
  targets = pruning.allocate(model, layers, 0.95)
  by_size = sorted(layers, key=lambda n: model.get_layer(n).kernel.shape.num_elements())
  assert targets[by_size[-1]] > targets[by_size[0]]  # dense (50k) sparser than conv1 (200)
  total = sum(model.get_layer(n).kernel.shape.num_elements() for n in layers)
  reached = sum(targets[n] * model.get_layer(n).kernel.shape.num_elements() for n in layers) / total
  assert reached == pytest.approx(0.95, abs=0.01)
  assert max(targets.values()) <= pruning.MAX_LAYER_SPARSITY


def test_search_keeps_the_highest_level_within_budget_and_records_trials(setup):
  model, train, evaluation = setup
  config = search.SearchConfig(levels=(0.5, 0.8, 0.999), max_accuracy_drop=0.03, max_trials=4,
                               epochs_per_trial=1, accuracy_decision=search.POINT)
  result = search.search(model, train, evaluation, 1437, pruning.PruningConfig(batch_size=32),
                         config)
  assert 1 <= len(result.trials) <= 4
  levels = [t.level for t in result.trials]
  assert levels[:2] == [0.5, 0.8]
  accepted = [t for t in result.trials if t.accepted]
  assert result.within_budget and accepted
  assert all(t.accuracy_drop <= 0.03 + 1e-9 for t in accepted)
  assert all(t.accuracy_drop > 0.03 for t in result.trials if not t.accepted)
  best = max(accepted, key=lambda t: t.level)
  assert result.result.sparsity == pytest.approx(best.sparsity)
  assert search.accuracy(result.model, evaluation) == pytest.approx(best.accuracy)
  # Sparser trials are smaller.
  ordered = sorted(result.trials, key=lambda t: t.sparsity)
  assert ordered[0].weights_gzip_bytes > ordered[-1].weights_gzip_bytes
  report = result.report()
  assert report["trials"][0]["level"] == 0.5 and "layer_sparsity" in report["trials"][0]


def test_search_respects_max_trials(setup):
  model, train, evaluation = setup
  config = search.SearchConfig(levels=(0.3, 0.5, 0.7, 0.9), max_accuracy_drop=1.0, max_trials=2,
                               epochs_per_trial=1)
  result = search.search(model, train, evaluation, 1437, pruning.PruningConfig(), config)
  assert [t.level for t in result.trials] == [0.3, 0.5]
  assert result.result.sparsity >= 0.49  # continued from the accepted 0.3 model to 0.5


def test_no_level_within_budget_returns_the_least_sparse_and_says_so(setup):
  model, train, evaluation = setup
  config = search.SearchConfig(levels=(0.999,), max_accuracy_drop=0.0, max_trials=1,
                               epochs_per_trial=1)
  result = search.search(model, train, evaluation, 1437, pruning.PruningConfig(), config)
  assert not result.within_budget and len(result.trials) == 1 and not result.trials[0].accepted


@pytest.mark.parametrize("change,message", [
    ({"levels": (0.9, 0.8)}, r"search_levels must be increasing values in \(0, 1\)"),
    ({"levels": ()}, r"search_levels must list at least one"),
    ({"max_trials": 0}, r"search_max_trials must be >= 1"),
    ({"max_accuracy_drop": 2.0}, r"search_max_accuracy_drop must be in \[0, 1\]"),
    ({"time_budget_s": -1.0}, r"search_time_budget_s must be >= 0"),
])
def test_invalid_search_config(change, message):
  with pytest.raises(pruning.PruningError, match=message):
    dataclasses.replace(search.SearchConfig(), **change).validate()


def test_allocation_is_validated():
  with pytest.raises(pruning.PruningError, match=(
      r"allocation must be one of \['', 'uniform', 'global_magnitude', 'sensitivity'\]")):
    pruning.PruningConfig(allocation="random").validate()
  with pytest.raises(pruning.PruningError, match="cannot be combined with sparsity_m_by_n"):
    pruning.PruningConfig(allocation="global_magnitude", sparsity_m_by_n="2:4").validate()
