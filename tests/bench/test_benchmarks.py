"""The benchmarks' row building and tables on tiny inputs; nothing here asserts a timing."""
import json

import numpy as np
import pytest

from bench import __main__ as bench_main
from bench import compression
from bench import latency as latency_bench
from bench import overhead
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
  rows = overhead.rows_for({"seconds": 150.0, "candidate_accuracy": 0.97, "blessed": True,
                            "component_seconds": {"Trainer": 20.0, "PruneTrainer": 40.0}},
                           {"seconds": 100.0, "candidate_accuracy": 0.98})
  assert [r["overhead_ratio"] for r in rows] == [1.0, 1.5]
  text = overhead.table(rows)
  assert "1.50x" in text and "0.9700" in text
  assert "60 s of 150 s inside components" in text and "PruneTrainer 40, Trainer 20" in text
  # The config's Beam arguments, and the multi-processing variant measured beside them.
  assert config.runner.beam_args == ["--direct_running_mode=in_memory"]
  multi = overhead.load_config(str(tmp_path), overhead.MULTI_PROCESSING)
  assert multi.runner.beam_args == ["--direct_running_mode=multi_processing",
                                    "--direct_num_workers=0"]
  rows = overhead.rows_for({"seconds": 150.0}, {"seconds": 100.0}, {"seconds": 200.0})
  assert [r["overhead_ratio"] for r in rows] == [1.0, 1.5, 2.0]


def test_compression_table_on_fake_rows():
  rows = [{"benchmark": "compression", "config": "seed", "seed": s, "sparsity": 0.86,
           "ratio": 16.0 + s, "ratio_vs_h5": 16.0, "accuracy_drop_pp": 0.5 * s,
           "deployable_bytes": 3e6, "deployable_gzip_bytes": 8e5, "dense_tflite_bytes": 1.3e7,
           "dense_h5_bytes": 1.3e7} for s in (0, 1)]
  [summary] = compression.summarize(rows)
  assert summary["ratio"] == 16.5 and summary["ratio_min"] == 16.0
  assert "16.5x (16.0-17.0)" in compression.table([summary])


@pytest.mark.parametrize("argv, names, seeds", [
    ([], ["compression", "latency", "throughput", "overhead"], (0, 1, 2)),
    (["latency", "compression", "--seeds", "2"], ["compression", "latency"], (0, 1)),
    (["1"], ["compression", "latency", "throughput", "overhead"], (0,)),
])
def test_bench_selects_benchmarks_in_order(argv, names, seeds):
  assert bench_main.parse_args(argv) == (names, seeds)


def test_bench_rejects_an_unknown_name(capsys):
  with pytest.raises(SystemExit):
    bench_main.parse_args(["speed"])
  assert "unknown benchmark 'speed'" in capsys.readouterr().err
