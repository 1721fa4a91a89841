"""create_pipeline: ExampleGen -> StatisticsGen -> SchemaGen (or ImportSchemaGen) -> Trainer ->
PruneTrainer -> TFLiteConverter -> SparsityValidator -> CompressionEvaluator -> Pusher."""
import hashlib
import os
from typing import List, Optional, Sequence

from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec
from kfp.pipeline_spec import pipeline_spec_pb2 as pipeline_pb2
from tfx.proto import example_gen_pb2

from tfx_bonsai.components.common import blessing
from tfx_bonsai.components.compression_evaluator.component import CompressionEvaluator
from tfx_bonsai.components.prune_trainer.component import PruneTrainer
from tfx_bonsai.components.pusher.executor import AtomicPushExecutor
from tfx_bonsai.components.sparsity_validator.component import SparsityValidator
from tfx_bonsai.components.tflite_converter.component import TFLiteConverter
from tfx_bonsai.pipeline import config as config_lib
from tfx_bonsai.pipeline.config import BonsaiConfig

PRODUCTION_RESOLVER_ID = "latest_blessed_model_resolver"


def _with_runtime_parameters(section: str, settings, runtime_parameters: Sequence[str]) -> dict:
  """The settings as component arguments, with the named YAML keys of `section` turned into
  RuntimeParameters (named by config.runtime_parameter_name, defaulting to the config value)."""
  arguments = settings.as_dict()
  paths = {f"{section}.{path}": name for name, path in type(settings).config_paths().items()}
  for key in runtime_parameters:
    if key not in paths:
      continue
    name = paths[key]
    value = arguments[name]
    ptype = int if isinstance(value, bool) else type(value)
    arguments[name] = tfx.dsl.experimental.RuntimeParameter(
        name=config_lib.runtime_parameter_name(key), ptype=ptype,
        default=int(value) if isinstance(value, bool) else value)
  return arguments


def resource_spec(resources: config_lib.ResourceSection):
  """The KFP v2 ResourceSpec of one task (TFX's platform config), legacy and current fields."""
  spec = pipeline_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec()
  if resources.cpu:
    spec.cpu_limit = resources.cpu
    spec.resource_cpu_limit = f"{resources.cpu:g}"
  if resources.memory_gb:
    spec.memory_limit = resources.memory_gb
    spec.resource_memory_limit = f"{resources.memory_gb:g}G"
  if resources.accelerator:
    spec.accelerator.type = resources.accelerator
    spec.accelerator.count = resources.accelerator_count
    spec.accelerator.resource_type = resources.accelerator
    spec.accelerator.resource_count = str(resources.accelerator_count)
  return spec


def _content_addressed(path: str, pipeline_root: str) -> str:
  """A local schema file as `<pipeline_root>/_schemas/<sha256 of its bytes>.pbtxt`.

  ImportSchemaGen's cache key holds the file's path, not its contents: an edited schema at
  the same path would silently reuse the cached, stale one. A copy named by its contents
  gets a new path exactly when the contents change. Remote paths (gs://) are used as given.
  """
  if "://" in path or "://" in pipeline_root:
    return path
  with open(path, "rb") as f:
    content = f.read()
  target = os.path.join(os.path.abspath(pipeline_root), "_schemas",
                        hashlib.sha256(content).hexdigest()[:16] + ".pbtxt")
  if not os.path.exists(target):
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target + ".partial", "wb") as f:
      f.write(content)
    os.replace(target + ".partial", target)
  return target


def production_resolver(resolver_id: str = PRODUCTION_RESOLVER_ID) -> tfx.dsl.Resolver:
  """The model in production: the latest model the gate blessed (a CompressionBlessing).

  The blessing's type alone tells the deployable lineage from the dense one, so a TFX
  Evaluator's baseline resolver (ModelBlessing) and this one never pick each other's models,
  locally and on Vertex (compiled by `runners.kubeflow.KubeflowV2DagRunner`).
  """
  return tfx.dsl.Resolver(
      strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
      model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
      model_blessing=tfx.dsl.Channel(type=blessing.CompressionBlessing),
  ).with_id(resolver_id)


def create_pipeline(config: BonsaiConfig,
                    beam_pipeline_args: Optional[List[str]] = None,
                    metadata_connection_config=None,
                    runtime_parameters: Sequence[str] = (),
                    schema_path: Optional[str] = None) -> tfx.dsl.Pipeline:
  """The tfx-bonsai pipeline for a validated `config`.

  `schema_path` (default: config.data.schema): a schema.pbtxt the pipeline imports with
  ImportSchemaGen instead of computing statistics and inferring the schema each run
  (StatisticsGen and SchemaGen are left out); "" infers it.

  `beam_pipeline_args` (default: config.runner.beam_args) reach every Beam-using component.
  The production baseline is the latest TFLite model this pipeline's gate blessed.
  `runtime_parameters`: YAML keys (of config.runtime_parameter_keys()) that become
  pipeline parameters, settable per run on Kubeflow/Vertex (default: the config's
  `runner.runtime_parameters`); their default is the config's value, and each component
  checks the value it gets when the run starts.
  """
  runtime_parameters = list(runtime_parameters or config.runner.runtime_parameters)
  unknown = sorted(set(runtime_parameters) - set(config_lib.runtime_parameter_keys()))
  if unknown:
    raise config_lib.ConfigError(f"runtime parameters {unknown}: not settable at run time; "
                                 f"allowed: {config_lib.runtime_parameter_keys()}")
  split = example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
      example_gen_pb2.SplitConfig.Split(name=config_lib.TRAIN_SPLIT,
                                        hash_buckets=config.data.train_buckets),
      example_gen_pb2.SplitConfig.Split(name=config_lib.SELECTION_SPLIT,
                                        hash_buckets=config.data.selection_buckets),
      example_gen_pb2.SplitConfig.Split(name=config_lib.EVAL_SPLIT,
                                        hash_buckets=config.data.eval_buckets)]))
  if config.data.format == "csv":
    example_gen = tfx.components.CsvExampleGen(input_base=config.data.path, output_config=split)
  else:
    example_gen = tfx.components.ImportExampleGen(input_base=config.data.path,
                                                  output_config=split)
  examples = example_gen.outputs["examples"]
  schema_key = "data.schema" if schema_path is None else "schema_path"
  schema_path = config.data.schema if schema_path is None else schema_path
  if schema_path:
    config_lib.validate_schema(schema_path, config.data.label_key, schema_key)
    schema_components = [tfx.components.ImportSchemaGen(
        schema_file=_content_addressed(schema_path, config.pipeline_root))]
  else:
    statistics_gen = tfx.components.StatisticsGen(examples=examples)
    schema_components = [statistics_gen, tfx.components.SchemaGen(
        statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True)]
  schema = schema_components[-1].outputs["schema"]

  trainer_args = dict(
      examples=examples, schema=schema,
      train_args=tfx.proto.TrainArgs(splits=[config_lib.TRAIN_SPLIT],
                                     num_steps=config.trainer.train_steps),
      # The Trainer validates on the selection split: the gate's split stays unseen.
      eval_args=tfx.proto.EvalArgs(splits=[config.pruning.selection_split],
                                   num_steps=config.trainer.eval_steps),
      custom_config=dict(config.trainer.custom_config))
  if config.trainer.module_file:
    trainer = tfx.components.Trainer(module_file=config.trainer.module_file, **trainer_args)
  else:
    trainer = tfx.components.Trainer(run_fn=config.trainer.run_fn, **trainer_args)

  def arguments(section: str, settings) -> dict:
    return _with_runtime_parameters(section, settings, runtime_parameters)

  prune_trainer = PruneTrainer(
      examples=examples, model=trainer.outputs["model"], schema=schema,
      **arguments("pruning", config_lib.prune_trainer_settings(config)))
  pruned_model = prune_trainer.outputs["pruned_model"]

  converter = TFLiteConverter(
      model=pruned_model, examples=examples, schema=schema,
      **arguments("conversion", config_lib.tflite_converter_settings(config)))

  sparsity_validator = SparsityValidator(
      model=pruned_model, tflite_model=converter.outputs["tflite_model"],
      **arguments("sparsity", config_lib.sparsity_validator_settings(config)))

  production = production_resolver()

  evaluator = CompressionEvaluator(
      model=converter.outputs["tflite_model"], dense_model=trainer.outputs["model"],
      examples=examples, baseline_model=production.outputs["model"],
      sparsity_blessing=sparsity_validator.outputs["blessing"],
      **arguments("gate", config_lib.compression_evaluator_settings(config)))

  pusher = tfx.components.Pusher(
      model=converter.outputs["tflite_model"], model_blessing=evaluator.outputs["blessing"],
      push_destination=tfx.proto.PushDestination(
          filesystem=tfx.proto.PushDestination.Filesystem(
              base_directory=config.push.destination)),
      custom_executor_spec=executor_spec.ExecutorClassSpec(AtomicPushExecutor))

  components = [example_gen, *schema_components, trainer, prune_trainer,
                converter, sparsity_validator, production, evaluator, pusher]
  if config.runner.type in ("vertex", "kubeflow"):
    for component in components:
      resources = config.runner.resources.get(component.id)
      if resources is not None:
        component.with_platform_config(resource_spec(resources))
  return tfx.dsl.Pipeline(
      pipeline_name=config.pipeline_name,
      pipeline_root=config.pipeline_root,
      components=components,
      enable_cache=config.runner.enable_cache,
      metadata_connection_config=metadata_connection_config,
      beam_pipeline_args=list(config.runner.beam_args if beam_pipeline_args is None
                              else beam_pipeline_args))
