"""sparsity.py on tiny models with known zero patterns and on a TFMOT 2:4-pruned model."""
import numpy as np
import pytest
import tensorflow_model_optimization as tfmot

from tfx_bonsai.components.common import model_io
from tfx_bonsai.components.sparsity_validator import sparsity
from tfx_bonsai.components.sparsity_validator import report as report_lib


def _zeros_first(shape, zeros):
  """An array of ones of `shape` whose first `zeros` entries (flat order) are 0."""
  values = np.ones(int(np.prod(shape)), dtype=np.float32)
  values[:zeros] = 0.0
  return values.reshape(shape)


@pytest.fixture(scope="module")
def known_model():
  """conv (kernel 72: 36 zeros, bias 4: none) -> bn (beta, moving_mean zero) -> dense
  (kernel 48: 36 zeros, bias 3: all zero). Kernels: 72/120 zeros; all: 83/143."""
  keras = model_io.keras()
  inputs = keras.Input((4, 4, 2))
  x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
  x = keras.layers.BatchNormalization(name="bn")(x)
  x = keras.layers.Flatten()(x)
  outputs = keras.layers.Dense(3, name="dense")(x)
  model = keras.Model(inputs, outputs)
  model.get_layer("conv").set_weights([_zeros_first((3, 3, 2, 4), 36), np.ones(4)])
  model.get_layer("bn").set_weights([np.ones(4), np.zeros(4), np.zeros(4), np.ones(4)])
  model.get_layer("dense").set_weights([_zeros_first((16, 3), 36), np.zeros(3)])
  return model


def test_tensor_table_counts_every_tensor(known_model):
  rows = {r["name"]: r for r in sparsity.tensor_table(known_model)}
  assert {n: (r["layer"], r["kind"], r["total"], r["zeros"]) for n, r in rows.items()} == {
      "conv/kernel:0": ("conv", "kernel", 72, 36),
      "conv/bias:0": ("conv", "bias", 4, 0),
      "bn/gamma:0": ("bn", "batchnorm", 4, 0),
      "bn/beta:0": ("bn", "batchnorm", 4, 4),
      "bn/moving_mean:0": ("bn", "batchnorm", 4, 4),
      "bn/moving_variance:0": ("bn", "batchnorm", 4, 0),
      "dense/kernel:0": ("dense", "kernel", 48, 36),
      "dense/bias:0": ("dense", "bias", 3, 3),
  }
  assert rows["dense/kernel:0"]["sparsity"] == 0.75
  assert rows["conv/kernel:0"]["shape"] == [3, 3, 2, 4]


def test_nested_layers_are_attributed_to_the_inner_layer():
  keras = model_io.keras()
  inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="inner_dense")],
                           name="block")
  inputs = keras.Input((5,))
  model = keras.Model(inputs, inner(keras.layers.Dense(3, name="outer")(inputs)))
  layers = {r["name"]: (r["layer"], r["kind"]) for r in sparsity.tensor_table(model)}
  assert layers["inner_dense/kernel:0"] == ("inner_dense", "kernel")
  assert layers["outer/bias:0"] == ("outer", "bias")


def test_global_figure_is_over_kernels_by_default(known_model):
  report = sparsity.validate(known_model, sparsity.SparsityTargets(min_sparsity=0.5))
  assert report.global_sparsity == pytest.approx(72 / 120)
  assert report.per_layer == {"conv": 0.5, "dense": 0.75}
  assert report.passed and report.reasons == []


def test_include_all_tensors_counts_biases_and_batchnorm(known_model):
  report = sparsity.validate(known_model, sparsity.SparsityTargets(
      min_sparsity=0.59, tolerance=0.0, include_all_tensors=True))
  assert report.global_sparsity == pytest.approx(83 / 143)
  assert not report.passed
  assert report.reasons[0].startswith("global sparsity (all tensors) 0.580 < target 0.590")


def test_tolerance_boundary(known_model):
  at_edge = sparsity.validate(known_model, sparsity.SparsityTargets(min_sparsity=0.61,
                                                                    tolerance=0.01))
  assert at_edge.passed
  beyond = sparsity.validate(known_model, sparsity.SparsityTargets(min_sparsity=0.6101,
                                                                   tolerance=0.01))
  assert not beyond.passed
  assert beyond.reasons == ["global kernel sparsity 0.600 < target 0.610 - tolerance 0.010"]
  check = beyond.checks[0]
  assert (check["name"], check["threshold"], check["passed"]) == ("global_sparsity", 0.6101, False)


def test_per_layer_targets(known_model):
  report = sparsity.validate(known_model, sparsity.SparsityTargets(
      min_sparsity=0.0, per_layer={"conv": 0.5, "dense": 0.8}))
  results = {c["name"]: c["passed"] for c in report.checks}
  assert results == {"global_sparsity": True, "layer_sparsity/conv": True,
                     "layer_sparsity/dense": False}
  assert report.reasons == ["layer 'dense' kernel sparsity 0.750 < target 0.800 - tolerance 0.010"]


def test_per_layer_target_for_an_unknown_layer_lists_the_layers(known_model):
  with pytest.raises(ValueError, match=r"\['nope'\].*\['conv', 'dense'\]"):
    sparsity.validate(known_model, sparsity.SparsityTargets(per_layer={"nope": 0.5}))
  with pytest.raises(ValueError, match=r"\['bn'\]"):  # a layer without a kernel
    sparsity.validate(known_model, sparsity.SparsityTargets(per_layer={"bn": 0.5}))


def test_model_without_kernels_fails_with_a_reason():
  keras = model_io.keras()
  inputs = keras.Input((4,))
  model = keras.Model(inputs, keras.layers.BatchNormalization()(inputs))
  report = sparsity.validate(model, sparsity.SparsityTargets(min_sparsity=0.0))
  assert not report.passed
  assert "no prunable kernels" in report.reasons[0]


@pytest.mark.parametrize("kwargs, message", [
    ({"min_sparsity": 1.5}, r"min_sparsity must be in \[0, 1\], got 1.5"),
    ({"min_sparsity": -0.1}, r"min_sparsity must be in \[0, 1\], got -0.1"),
    ({"tolerance": 2}, r"tolerance must be in \[0, 1\], got 2"),
    ({"per_layer": {"dense": 1.2}}, r"per_layer_min_sparsity entry 'dense' must be in \[0, 1\], got 1.2"),
    ({"m_by_n": "4:2"}, r"m_by_n must be '' or 'M:N' with 0 < M < N.*got '4:2'"),
    ({"m_by_n": "2x4"}, r"m_by_n must be .*got '2x4'"),
    ({"include_all_tensors": 2}, r"include_all_tensors must be True or False"),
])
def test_invalid_targets_name_the_field(kwargs, message):
  with pytest.raises(ValueError, match=message):
    sparsity.SparsityTargets(**kwargs)


def test_check_m_by_n_groups_along_input_channels():
  # Dense kernel [in=8, out=2]: groups are 4 consecutive inputs of one output column.
  kernel = np.zeros((8, 2), dtype=np.float32)
  kernel[[0, 1, 4, 6], 0] = 1.0   # 2 non-zeros in each of column 0's groups: fine
  kernel[[0, 1, 2], 1] = 1.0      # 3 non-zeros in column 1's first group: violation
  assert sparsity.check_m_by_n(kernel, 2, 4) == 0.25
  # 2:4 along the output axis is not 2:4 along the inputs: columns 0 and 1 are all ones.
  by_rows = np.tile(np.array([[1.0, 1.0, 0.0, 0.0]], dtype=np.float32), (4, 1))
  assert sparsity.check_m_by_n(by_rows, 2, 4) == 0.5
  assert sparsity.check_m_by_n(by_rows.T, 2, 4) == 0.0
  # Conv2D kernel [h, w, in, out]: groups run along `in`; a short last group is padded.
  conv = np.ones((1, 1, 6, 1), dtype=np.float32)
  conv[0, 0, [2, 3, 5], 0] = 0.0   # groups [1,1,0,0] and [1,0]: both fine
  assert sparsity.check_m_by_n(conv, 2, 4) == 0.0
  conv[0, 0, 5, 0] = 1.0           # short group [1,1] still holds only 2 non-zeros
  assert sparsity.check_m_by_n(conv, 2, 4) == 0.0
  assert sparsity.check_m_by_n(conv, 3, 4) == 1.0


@pytest.fixture(scope="module")
def m_by_n_models():
  """(the TFMOT 2:4-pruned and stripped model, the same architecture dense)."""
  keras = model_io.keras()

  def build():
    return keras.Sequential([
        keras.Input((16,)), keras.layers.Dense(32, name="dense"),
        keras.layers.Reshape((2, 2, 8)), keras.layers.Conv2D(8, 3, padding="same", name="conv"),
        keras.layers.Flatten(), keras.layers.Dense(4, name="head")])

  rng = np.random.default_rng(0)
  pruned = tfmot.sparsity.keras.prune_low_magnitude(build(), sparsity_m_by_n=(2, 4))
  pruned.compile(optimizer="adam", loss="mse")
  pruned.fit(rng.normal(size=(64, 16)), rng.normal(size=(64, 4)), batch_size=16, epochs=1,
             verbose=0, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
  return tfmot.sparsity.keras.strip_pruning(pruned), build()


def test_m_by_n_passes_on_a_tfmot_2_by_4_model(m_by_n_models):
  pruned, _ = m_by_n_models
  for weight in pruned.weights:
    if weight.name.endswith("kernel:0"):
      assert sparsity.check_m_by_n(weight.numpy(), 2, 4) == 0.0, weight.name
  report = sparsity.validate(pruned, sparsity.SparsityTargets(min_sparsity=0.45, m_by_n="2:4"))
  assert report.passed, report.reasons
  assert [c["name"] for c in report.checks if c["name"].startswith("m_by_n")] == [
      "m_by_n/dense", "m_by_n/conv", "m_by_n/head"]
  assert report.per_layer["conv"] == pytest.approx(0.5)
  stricter = sparsity.validate(pruned, sparsity.SparsityTargets(min_sparsity=0.0, m_by_n="3:4"))
  assert not stricter.passed


def test_m_by_n_fails_on_a_dense_model(m_by_n_models):
  _, dense = m_by_n_models
  report = sparsity.validate(dense, sparsity.SparsityTargets(min_sparsity=0.0, m_by_n="2:4"))
  assert not report.passed
  assert any("breaks 2:4 structure" in r for r in report.reasons)
  only_head = sparsity.validate(dense, sparsity.SparsityTargets(
      min_sparsity=0.0, per_layer={"head": 0.0}, m_by_n="2:4"))
  assert [c["name"] for c in only_head.checks if c["name"].startswith("m_by_n")] == ["m_by_n/head"]


def test_render_html_embeds_chart_and_table(known_model):
  table = sparsity.tensor_table(known_model)
  report = sparsity.validate(known_model, sparsity.SparsityTargets(
      min_sparsity=0.7, per_layer={"dense": 0.7}), table)
  page = report_lib.render_html(report, table)
  assert page.startswith("<!DOCTYPE html>")
  assert "FAILED" in page and "global kernel sparsity 0.600 &lt; target 0.700" in page
  assert '<img alt=\'kernel sparsity per layer\' src="data:image/png;base64,iVBOR' in page
  assert "<td>bn/moving_mean:0</td>" in page and "<td>75.00%</td>" in page


@pytest.mark.parametrize("pruned_sparsity, lost", [(None, False), (0.5, False), (0.9, True)])
def test_zeros_are_said_lost_only_below_what_pruning_reached(pruned_sparsity, lost):
  """Keras and TFLite kernels both half zeros against a 0.85 target: lost only if pruning
  had reached more."""
  keras = model_io.keras()
  model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(10, use_bias=False)])
  kernel = np.ones((10, 10), np.float32)
  kernel[:5] = 0.0
  model.layers[0].kernel.assign(kernel)
  tflite = [{"name": "dense", "encoding": "dense", "shape": [10, 10], "total": 100, "zeros": 50,
             "sparsity": 0.5}]
  report = sparsity.validate(model, sparsity.SparsityTargets(), tflite_table=tflite,
                             pruned_sparsity=pruned_sparsity)
  assert not report.passed and report.deployed_sparsity == 0.5
  deployed = [r for r in report.reasons if r.startswith("the converted TFLite's")]
  assert len(deployed) == 1
  assert ("zeros were lost after pruning: pruning reached 0.900" in deployed[0]) == lost
  assert ("under target and its zeros were kept" in deployed[0]) == (not lost)
