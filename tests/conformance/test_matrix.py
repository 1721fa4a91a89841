"""The conformance matrix (tests/conformance/matrix.py): every cell ends as its row says, and
docs/conformance.md is the table of these outcomes.

BONSAI_UPDATE_CONFORMANCE=1 rewrites docs/conformance.md instead of comparing it.
"""
import os
import pathlib
import re

import pytest

from tests.conformance import matrix

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "conformance.md"
UPDATE_ENV = "BONSAI_UPDATE_CONFORMANCE"


@pytest.mark.parametrize("name", matrix.CELL_NAMES)
def test_cell(name):
  cell = matrix.cell(name)
  outcome = matrix.run(name)
  assert outcome.status == cell.expect, outcome
  if outcome.status == matrix.REFUSED:
    assert outcome.stage == "checks"  # before any training or conversion
    assert not any(raw in outcome.error for raw in matrix.RAW_ERRORS), outcome.error
    way_out = re.search(r"exclude_layers|PrunableLayer|keras\.Model\(inputs|keras\.Input\(",
                        outcome.error)
    assert way_out, f"the refusal names no way out: {outcome.error}"
    return
  assert outcome.sparsity >= matrix.TARGET - matrix.TOLERANCE
  assert outcome.search_sparsity >= matrix.SEARCH_LEVEL - matrix.TOLERANCE
  assert set(outcome.agreement) == {q for q, _ in matrix.QUANTIZATIONS}
  assert outcome.agreed, f"no conversion agrees: {outcome.agreement} {outcome.refusals}"
  for mode, message in outcome.refusals.items():
    assert not any(raw in message for raw in matrix.RAW_ERRORS), message
    assert "disagrees with the Keras model" in message and mode in message, (mode, message)
  # SparsityValidator counts the weights PruneTrainer pruned (per family naming agrees).
  assert abs(outcome.validator_sparsity - outcome.sparsity) <= matrix.TOLERANCE, outcome
  assert outcome.validator_passed
  assert outcome.blessed, outcome.reasons


def test_docs_table_is_the_matrix():
  """docs/conformance.md is generated from the outcomes (the cells' cached runs)."""
  outcomes = {name: matrix.run(name) for name in matrix.CELL_NAMES}
  for name, outcome in outcomes.items():  # shown with -s: where each cell's time went
    print(f"{name}: {outcome.status} in {outcome.seconds:.0f}s {outcome.stages}")
  table = matrix.render(outcomes)
  if os.environ.get(UPDATE_ENV):
    DOC.write_text(table)
  assert DOC.read_text() == table, (
      f"{DOC} is not the matrix's outcome: regenerate it with {UPDATE_ENV}=1 "
      "make test PYTEST_ARGS=tests/conformance/test_matrix.py")
