"""The README's table of confirmable budgets is the one `bench/gate_chart.py` computes, and its
exact P(bless) agrees with the closed form of a perfect candidate."""
import os

from bench import gate_chart

README = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "README.md")


def test_readme_table_is_the_computed_one():
  with open(README, encoding="utf-8") as f:
    assert gate_chart.table() in f.read()


def test_a_candidate_identical_to_the_baseline_is_blessed_exactly_when_n_suffices():
  # p_b = p_c = 0: b = c = 0 always, so P(bless) is 1 or 0 as the perfect-match bound is
  # within the budget or not (1.32 pp at n = 360, 0.48 pp at n = 1,000).
  assert gate_chart.bless_probability(360, 0.0, 0.0, 0.01) == 0.0
  assert gate_chart.bless_probability(1000, 0.0, 0.0, 0.01) == 1.0
