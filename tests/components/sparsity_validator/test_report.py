"""The validator's HTML report with and without matplotlib (the optional [report] extra)."""
import logging
import sys

import pytest

from tfx_bonsai.components.common import model_io
from tfx_bonsai.components.sparsity_validator import report as report_lib
from tfx_bonsai.components.sparsity_validator import sparsity


@pytest.fixture(scope="module")
def report_and_table():
  keras = model_io.keras()
  inputs = keras.Input((6,))
  model = keras.Model(inputs, keras.layers.Dense(2, name="head")(inputs))
  table = sparsity.tensor_table(model)
  return sparsity.validate(model, sparsity.SparsityTargets(min_sparsity=0.5), table), table


def test_with_matplotlib_the_page_has_the_chart(report_and_table):
  page = report_lib.render_html(*report_and_table)
  assert "data:image/png;base64,iVBOR" in page
  assert report_lib.NO_CHART_CLASS not in page


def test_without_matplotlib_the_table_is_written_and_the_log_says_so_once(
    report_and_table, monkeypatch, caplog):
  """An environment without the extra: `import matplotlib` fails as it would there."""
  for name in [n for n in sys.modules if n == "matplotlib" or n.startswith("matplotlib.")]:
    monkeypatch.delitem(sys.modules, name)
  monkeypatch.setitem(sys.modules, "matplotlib", None)
  monkeypatch.setattr(report_lib, "_said_no_matplotlib", False)
  with caplog.at_level(logging.WARNING):
    pages = [report_lib.render_html(*report_and_table) for _ in range(2)]
  for page in pages:
    assert "data:image/png" not in page
    assert f"<p class='{report_lib.NO_CHART_CLASS}'>No chart: matplotlib is not installed.</p>" in page
    assert "<td>head/kernel:0</td>" in page and "FAILED" in page
  said = [r for r in caplog.records if "matplotlib is not installed" in r.getMessage()]
  assert len(said) == 1
  assert "tfx-bonsai[report]" in said[0].getMessage()
