"""RuntimeParameters: compiled into the KFP job as pipeline parameters, checked by the executor."""
import os

import pytest
from tfx import types
from tfx import v1 as tfx

from tfx_bonsai.components.common import settings as settings_lib
from tfx_bonsai.components.compression_evaluator import component as evaluator_component
from tfx_bonsai.components.compression_evaluator import executor as evaluator_executor
from tfx_bonsai.components.tflite_converter import component as converter_component
from tfx_bonsai.components.tflite_converter import executor as converter_executor
from tfx_bonsai.pipeline import config as config_lib
from tfx_bonsai.pipeline.runners import kubeflow

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VERTEX = os.path.join(REPO, "configs", "vertex.yaml")
IMAGE = "us-central1-docker.pkg.dev/p/bonsai/tfx-bonsai:0.2.0"
RUNTIME = ["gate.max_accuracy_drop", "conversion.sparse_weights", "pruning.target_sparsity"]


def _channels(component_cls):
  return {name: types.Channel(type=p.type)
          for name, p in component_cls.SPEC_CLASS.INPUTS.items() if not p.optional}


def _artifacts(component_cls, tmp_path):
  """Empty artifacts for every input and output (the settings are checked before any is read)."""
  spec = component_cls.SPEC_CLASS
  made = {}
  for name, parameter in {**spec.INPUTS, **spec.OUTPUTS}.items():
    artifact = parameter.type()
    artifact.uri = str(tmp_path / name)
    made[name] = [artifact]
  return ({k: v for k, v in made.items() if k in spec.INPUTS},
          {k: v for k, v in made.items() if k in spec.OUTPUTS})


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
  config = config_lib.load(VERTEX, ["runner.project=p", f"runner.image={IMAGE}"])
  path = str(tmp_path_factory.mktemp("kfp") / "pipeline.json")
  return kubeflow.compile_pipeline(config, path, runtime_parameters=RUNTIME), path


@pytest.fixture(scope="module")
def job(compiled):
  return compiled[0]


def test_runtime_parameters_compile_into_the_job_parameters(job):
  declared = job["pipelineSpec"]["root"]["inputDefinitions"]["parameters"]
  names = [config_lib.runtime_parameter_name(key) for key in RUNTIME]
  assert set(names) <= set(declared)
  assert declared["gate_max_accuracy_drop"]["type"] == "DOUBLE"
  assert declared["conversion_sparse_weights"]["type"] == "INT"  # booleans as 0/1
  # Defaults are the config's values (configs/vertex.yaml).
  defaults = job["runtimeConfig"]["parameters"]
  config = config_lib.load(VERTEX, ["runner.project=p", f"runner.image={IMAGE}"])
  assert defaults["gate_max_accuracy_drop"] == {"doubleValue": config.gate.max_accuracy_drop}
  assert defaults["pruning_target_sparsity"] == {"doubleValue": config.pruning.target_sparsity}
  assert config.conversion.sparse_weights is True
  assert defaults["conversion_sparse_weights"] == {"intValue": "1"}
  # ... and the components read them from the pipeline parameter, not a constant.
  tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
  gate = tasks["CompressionEvaluator"]["inputs"]["parameters"]["max_accuracy_drop"]
  assert gate["componentInputParameter"] == "gate_max_accuracy_drop"
  prune = tasks["PruneTrainer"]["inputs"]["parameters"]["target_sparsity"]
  assert prune["componentInputParameter"] == "pruning_target_sparsity"


def test_only_scalar_yaml_keys_can_be_runtime_parameters(tmp_path):
  config = config_lib.load(VERTEX, ["runner.project=p", f"runner.image={IMAGE}"])
  with pytest.raises(config_lib.ConfigError, match=r"\['pruning.include_layers'\]: not settable"):
    kubeflow.compile_pipeline(config, str(tmp_path / "p.json"),
                              runtime_parameters=["pruning.include_layers"])


def test_a_bad_runtime_value_is_refused_by_the_executor_with_the_components_message(tmp_path):
  with pytest.raises(settings_lib.SettingsError) as at_construction:
    evaluator_component.CompressionEvaluator(**_channels(evaluator_component.CompressionEvaluator),
                                             max_accuracy_drop=1.5)
  parameter = tfx.dsl.experimental.RuntimeParameter(name="gate_max_accuracy_drop", ptype=float,
                                                    default=0.01)
  component = evaluator_component.CompressionEvaluator(
      **_channels(evaluator_component.CompressionEvaluator), max_accuracy_drop=parameter)
  assert component.exec_properties["max_accuracy_drop"] is parameter
  resolved = {**component.exec_properties, "max_accuracy_drop": 1.5}  # what the run passes
  inputs, outputs = _artifacts(evaluator_component.CompressionEvaluator, tmp_path)
  with pytest.raises(settings_lib.SettingsError) as at_run:
    evaluator_executor.Executor().Do(inputs, outputs, resolved)
  assert str(at_run.value) == str(at_construction.value) == (
      "max_accuracy_drop must be in [0, 1], got 1.5")


def test_rules_across_fields_wait_for_the_runtime_value(tmp_path):
  quantization = tfx.dsl.experimental.RuntimeParameter(name="q", ptype=str, default="int8")
  converter = converter_component.TFLiteConverter(
      **_channels(converter_component.TFLiteConverter), quantization=quantization, int8_io=True)
  resolved = {**converter.exec_properties, "quantization": "dynamic"}
  inputs, outputs = _artifacts(converter_component.TFLiteConverter, tmp_path)
  with pytest.raises(settings_lib.SettingsError, match="^int8_io needs quantization 'int8', got 'dynamic'$"):
    converter_executor.Executor().Do(inputs, outputs, resolved)


def test_plain_values_are_still_checked_beside_a_runtime_parameter():
  quantization = tfx.dsl.experimental.RuntimeParameter(name="q", ptype=str, default="int8")
  with pytest.raises(settings_lib.SettingsError, match=r"^min_agreement must be in \(0, 1\], got 1.5$"):
    converter_component.TFLiteConverter(**_channels(converter_component.TFLiteConverter),
                                        quantization=quantization, min_agreement=1.5)


def test_a_runtime_parameter_of_the_wrong_type_is_refused():
  with pytest.raises(settings_lib.SettingsError,
                     match="^sparse_weights must be a RuntimeParameter of ptype int, got str$"):
    converter_component.TFLiteConverter(
        **_channels(converter_component.TFLiteConverter), quantization="dynamic",
        sparse_weights=tfx.dsl.experimental.RuntimeParameter(name="s", ptype=str))


def _request(path, parameters=None):
  from google.auth import credentials as auth_credentials  # pylint: disable=g-import-not-at-top
  config = config_lib.load(VERTEX, ["runner.project=p", f"runner.image={IMAGE}"])
  pipeline_job = kubeflow.vertex_pipeline_job(
      config, path, parameters, credentials=auth_credentials.AnonymousCredentials())
  return config, kubeflow.vertex_request(config, pipeline_job)


def test_the_vertex_request_carries_the_parameters_and_their_defaults(compiled):
  config, request = _request(compiled[1])
  parameters = request["pipelineJob"]["runtimeConfig"]["parameters"]
  assert parameters["gate_max_accuracy_drop"]["doubleValue"] == config.gate.max_accuracy_drop
  assert parameters["conversion_sparse_weights"]["intValue"] == "1"


def test_param_sets_a_runtime_parameter_for_the_run(compiled):
  job, path = compiled
  values = kubeflow.parse_parameters(job, ["gate.max_accuracy_drop=0.02",
                                           "conversion_sparse_weights=0"])
  assert values == {"gate_max_accuracy_drop": 0.02, "conversion_sparse_weights": 0}
  _, request = _request(path, values)
  parameters = request["pipelineJob"]["runtimeConfig"]["parameters"]
  assert parameters["gate_max_accuracy_drop"]["doubleValue"] == 0.02
  assert parameters["conversion_sparse_weights"]["intValue"] == "0"
  assert parameters["pruning_target_sparsity"]["doubleValue"] == 0.9  # the default stays
  with pytest.raises(config_lib.ConfigError, match=r"--param gate.max_accuracy_drop: must be a "
                                                   r"number \(DOUBLE\), got 'lots'"):
    kubeflow.parse_parameters(job, ["gate.max_accuracy_drop=lots"])


def test_cli_submit_dry_run_with_runtime_parameters_from_the_config(tmp_path, capsys):
  from tfx_bonsai.pipeline import cli  # pylint: disable=g-import-not-at-top
  code = cli.main(["submit", "--config", VERTEX, "--set", "runner.project=p", "--set",
                   f"runner.image={IMAGE}", "--set",
                   "runner.runtime_parameters=[gate.max_accuracy_drop]",
                   "--param", "gate.max_accuracy_drop=0.03", "--dry-run",
                   "--output", str(tmp_path / "p.json")])
  assert code == 0
  import json  # pylint: disable=g-import-not-at-top
  request = json.loads(capsys.readouterr().out)
  assert request["pipelineJob"]["runtimeConfig"]["parameters"]["gate_max_accuracy_drop"] == {
      "doubleValue": 0.03}


def test_runtime_parameters_need_a_remote_runner():
  with pytest.raises(config_lib.ConfigError, match=r"runner.runtime_parameters: only for runner.type"):
    config_lib.load(os.path.join(REPO, "configs", "digits.yaml"),
                    ["runner.runtime_parameters=[gate.max_accuracy_drop]"])
  with pytest.raises(config_lib.ConfigError, match=r"'gate.max_acuracy_drop' cannot be a runtime "
                                                   r"parameter; did you mean 'gate.max_accuracy_drop'"):
    config_lib.load(VERTEX, ["runner.project=p", "runner.runtime_parameters=[gate.max_acuracy_drop]"])


def test_search_placeholders_default_to_the_value_the_component_gets():
  """pruning.search.max_accuracy_drop < 0 and accuracy_decision "" mean "the gate's": the
  pipeline parameter defaults to that resolved value, which PruneTrainer accepts."""
  config = config_lib.load(VERTEX, ["runner.project=p", f"runner.image={IMAGE}",
                                    "pruning.search.enabled=true", "gate.max_accuracy_drop=0.02",
                                    "gate.accuracy_decision=point"])
  keys = ["pruning.search.max_accuracy_drop", "pruning.search.accuracy_decision",
          "gate.accuracy_decision"]
  assert config_lib.runtime_parameter_defaults(config, keys) == {
      "pruning_search_max_accuracy_drop": 0.02, "pruning_search_accuracy_decision": "point",
      "gate_accuracy_decision": "point"}
