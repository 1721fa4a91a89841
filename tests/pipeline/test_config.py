"""Bad configuration gets one ConfigError naming the key and the allowed values."""
import os

import pytest
import yaml

from tfx_bonsai.pipeline import config as config_lib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DIGITS = os.path.join(REPO, "configs", "digits.yaml")


def test_shipped_digits_config_is_valid():
  config = config_lib.load(DIGITS)
  assert config.pipeline_name == "bonsai-digits"
  assert config.pruning.target_sparsity == 0.9 and config.conversion.quantization == "int8"
  assert config.metadata_path.endswith("metadata.sqlite")


def test_overrides_parse_values_as_yaml():
  config = config_lib.load(DIGITS, ["pruning.target_sparsity=0.8", "pruning.include_layers=[dense.*]",
                                    "runner.enable_cache=false"])
  assert config.pruning.target_sparsity == 0.8
  assert config.pruning.include_layers == ["dense.*"]
  assert config.runner.enable_cache is False


@pytest.mark.parametrize("override,message", [
    ("pruning.target_sparsty=0.8", r"pruning.target_sparsty: unknown key; did you mean 'pruning.target_sparsity'\?"),
    ("gaet.max_accuracy_drop=0.1", r"gaet: unknown key; did you mean 'gate'\?"),
    ("pruning.epochs=four", r"pruning.epochs: must be an integer, got 'four'"),
    ("pruning.epochs=2.5", r"pruning.epochs: must be an integer"),
    ("conversion.sparse_weights=yes please", r"conversion.sparse_weights: must be true or false"),
    ("pruning.include_layers=dense", r"pruning.include_layers: must be a list"),
    ("pruning.target_sparsity=1.5", r"pruning.target_sparsity: must be in \[0, 1\), got 1.5"),
    ("pruning.initial_sparsity=0.95", r"pruning.initial_sparsity: must be in \[0, target_sparsity=0.9\]"),
    ("pruning.epochs=0", r"pruning.epochs: must be >= 1, got 0"),
    ("pruning.batch_size=-1", r"pruning.batch_size: must be >= 1"),
    ("pruning.schedule=exponential", r"pruning.schedule: must be one of \['polynomial', 'constant'\]"),
    ("pruning.sparsity_m_by_n=2:4", None),
    ("pruning.pruning_policy=xnnpack", None),
    ("conversion.quantization=int4", r"conversion.quantization: must be one of \['none', 'dynamic', 'float16', 'int8'\], got 'int4'"),
    ("conversion.int8_io=true", None),
    ("gate.min_compression_ratio=1", r"gate.min_compression_ratio: must be > 1, got 1.0"),
    ("gate.max_accuracy_drop=-0.1", r"gate.max_accuracy_drop: must be in \[0, 1\]"),
    ("gate.max_latency_ratio=-1", r"gate.max_latency_ratio"),
    ("data.path=", r"data.path: must be set"),
    ("data.format=parquet", r"data.format: must be one of \['tfrecord', 'csv'\]"),
    ("push.destination=runs/digits/pipeline/serving", r"push.destination: .* is inside pipeline_root"),
    ("runner.type=airflow", r"runner.type: must be one of \['local', 'kubeflow', 'vertex'\]"),
    ("sparsity.min_sparsity=2", r"sparsity.min_sparsity: must be in \[0, 1\], got 2.0"),
])
def test_bad_values_name_the_key(override, message):
  if message is None:
    config_lib.load(DIGITS, [override])  # valid on its own
    return
  with pytest.raises(config_lib.ConfigError, match=message):
    config_lib.load(DIGITS, [override])


def test_m_by_n_with_xnnpack_policy_is_refused():
  with pytest.raises(config_lib.ConfigError, match="pruning.pruning_policy: 'xnnpack'.*cannot be combined"):
    config_lib.load(DIGITS, ["pruning.sparsity_m_by_n=2:4", "pruning.pruning_policy=xnnpack"])


def test_missing_data_directory_is_named(tmp_path):
  with pytest.raises(config_lib.ConfigError, match=r"data.path: '.*nowhere' is not a directory"):
    config_lib.load(DIGITS, ["data.embedded=", f"data.path={tmp_path / 'nowhere'}"])


def test_int8_io_needs_int8():
  with pytest.raises(config_lib.ConfigError, match="conversion.int8_io: needs quantization 'int8'"):
    config_lib.load(DIGITS, ["conversion.quantization=dynamic", "conversion.int8_io=true"])


def test_missing_and_invalid_files(tmp_path):
  with pytest.raises(config_lib.ConfigError, match="--config: no such file"):
    config_lib.load(str(tmp_path / "absent.yaml"))
  bad = tmp_path / "bad.yaml"
  bad.write_text("pipeline_name: [unclosed\n")
  with pytest.raises(config_lib.ConfigError, match="not valid YAML"):
    config_lib.load(str(bad))
  section = tmp_path / "section.yaml"
  section.write_text(yaml.safe_dump({**yaml.safe_load(open(DIGITS)), "pruning": 0.9}))
  with pytest.raises(config_lib.ConfigError, match="pruning: must be a mapping, got 0.9"):
    config_lib.load(str(section))


def test_bad_override_syntax():
  with pytest.raises(config_lib.ConfigError, match="expected key.path=value"):
    config_lib.load(DIGITS, ["pruning.target_sparsity"])


def test_cli_reports_config_errors_with_exit_code_2(capsys):
  from tfx_bonsai.pipeline import cli
  assert cli.main(["run", "--config", DIGITS, "--set", "pruning.target_sparsity=1.5"]) == 2
  assert "pruning.target_sparsity: must be in [0, 1)" in capsys.readouterr().err


def test_unquoted_m_by_n_in_yaml_gets_a_hint(tmp_path):
  path = tmp_path / "c.yaml"
  path.write_text(open(DIGITS).read().replace("  epochs: 4\nsparsity:", "  epochs: 4\n  sparsity_m_by_n: 2:4\nsparsity:"))
  with pytest.raises(config_lib.ConfigError, match=r"pruning.sparsity_m_by_n: must be a quoted string such as '2:4'"):
    config_lib.load(str(path))


def test_search_section_defaults_to_the_gate_budget_and_is_validated():
  config = config_lib.load(DIGITS, ["pruning.search.enabled=true", "gate.max_accuracy_drop=0.02"])
  assert config_lib.search_config(config).max_accuracy_drop == 0.02
  config = config_lib.load(DIGITS, ["pruning.search.enabled=true", "pruning.search.max_accuracy_drop=0.005"])
  assert config_lib.search_config(config).max_accuracy_drop == 0.005
  with pytest.raises(config_lib.ConfigError, match=r"pruning.search.levels: must be increasing"):
    config_lib.load(DIGITS, ["pruning.search.enabled=true", "pruning.search.levels=[0.99, 0.9]"])
  with pytest.raises(config_lib.ConfigError, match=r"pruning.search.max_trails: unknown key; did you mean 'pruning.search.max_trials'"):
    config_lib.load(DIGITS, ["pruning.search.max_trails=3"])
  with pytest.raises(config_lib.ConfigError, match=r"pruning.allocation: must be one of"):
    config_lib.load(DIGITS, ["pruning.allocation=random"])


def test_schema_file_is_checked_before_anything_runs(tmp_path):
  config = config_lib.load(DIGITS)
  assert config.data.schema == "configs/digits.schema.pbtxt"
  assert config_lib.load(DIGITS, ["data.schema="]).data.schema == ""
  with pytest.raises(config_lib.ConfigError, match=r"data.schema: no such file '.*absent.pbtxt'"):
    config_lib.load(DIGITS, [f"data.schema={tmp_path / 'absent.pbtxt'}"])
  garbage = tmp_path / "garbage.pbtxt"
  garbage.write_text("feature { name: 'image' type: FLAOT }\n")
  with pytest.raises(config_lib.ConfigError,
                     match=r"data.schema: '.*garbage.pbtxt' is not a TFMD Schema in text format"):
    config_lib.load(DIGITS, [f"data.schema={garbage}"])
  empty = tmp_path / "empty.pbtxt"
  empty.write_text("")
  with pytest.raises(config_lib.ConfigError, match=r"data.schema: '.*empty.pbtxt' has no features"):
    config_lib.load(DIGITS, [f"data.schema={empty}"])
  no_label = tmp_path / "no_label.pbtxt"
  no_label.write_text("feature { name: 'image' type: FLOAT }\n")
  with pytest.raises(config_lib.ConfigError,
                     match=r"data.schema: .* has no feature 'label' \(data.label_key\); its "
                           r"features are \['image'\]"):
    config_lib.load(DIGITS, [f"data.schema={no_label}"])
  # A remote URI is read by ImportSchemaGen when the run starts.
  assert config_lib.load(DIGITS, ["data.schema=gs://b/schema.pbtxt"]).data.schema.startswith("gs://")
