"""create_pipeline: ExampleGen -> StatisticsGen -> SchemaGen -> Trainer -> PruneTrainer ->
TFLiteConverter -> SparsityValidator -> CompressionEvaluator -> Pusher."""
from typing import List, Optional

from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2

from tfx_bonsai.components.compression_evaluator.component import CompressionEvaluator
from tfx_bonsai.components.prune_trainer.component import PruneTrainer
from tfx_bonsai.components.pusher.executor import AtomicPushExecutor
from tfx_bonsai.components.sparsity_validator.component import SparsityValidator
from tfx_bonsai.components.tflite_converter.component import TFLiteConverter
from tfx_bonsai.pipeline import config as config_lib
from tfx_bonsai.pipeline.config import BonsaiConfig

PRODUCTION_RESOLVER_ID = "latest_blessed_model_resolver"


def _search_arguments(config: BonsaiConfig) -> dict:
  s = config_lib.search_config(config)
  return dict(search_levels=list(s.levels), search_max_accuracy_drop=s.max_accuracy_drop,
              search_max_trials=s.max_trials, search_time_budget_s=s.time_budget_s,
              search_epochs_per_trial=s.epochs_per_trial,
              search_accuracy_decision=s.accuracy_decision,
              search_max_layer_sparsity=s.max_layer_sparsity)


def create_pipeline(config: BonsaiConfig,
                    beam_pipeline_args: Optional[List[str]] = None,
                    metadata_connection_config=None) -> tfx.dsl.Pipeline:
  """The tfx-bonsai pipeline for a validated `config`.

  `beam_pipeline_args` (default: config.runner.beam_args) reach every Beam-using component.
  The production baseline is the latest TFLite model this pipeline's gate blessed.
  """
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
  statistics_gen = tfx.components.StatisticsGen(examples=examples)
  schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"],
                                        infer_feature_shape=True)
  schema = schema_gen.outputs["schema"]

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

  p = config.pruning
  prune_trainer = PruneTrainer(
      examples=examples, model=trainer.outputs["model"], schema=schema,
      label_key=config.data.label_key, target_sparsity=p.target_sparsity,
      initial_sparsity=p.initial_sparsity, schedule=p.schedule, epochs=p.epochs,
      begin_step=p.begin_step, end_step=p.end_step, frequency=p.frequency, batch_size=p.batch_size,
      learning_rate=p.learning_rate, include_layers=p.include_layers,
      exclude_layers=p.exclude_layers, sparsity_m_by_n=p.sparsity_m_by_n,
      pruning_policy=p.pruning_policy, allocation=p.allocation,
      train_split=config_lib.TRAIN_SPLIT, eval_split=p.selection_split,
      clusters=p.collaborative.clusters, cluster_epochs=p.collaborative.cluster_epochs,
      qat_epochs=p.collaborative.qat_epochs,
      collaborative_learning_rate=p.collaborative.learning_rate,
      **(_search_arguments(config) if p.search.enabled else {}))
  pruned_model = prune_trainer.outputs["pruned_model"]

  c = config.conversion
  converter = TFLiteConverter(
      model=pruned_model, examples=examples, schema=schema, quantization=c.quantization,
      sparse_weights=c.sparse_weights, int8_io=c.int8_io,
      representative_examples=c.representative_examples,
      agreement_examples=c.agreement_examples, min_agreement=c.min_agreement,
      max_abs_error=c.max_abs_error, label_key=config.data.label_key,
      representative_split=config_lib.TRAIN_SPLIT, agreement_split=c.agreement_split)

  s = config.sparsity
  sparsity_validator = SparsityValidator(
      model=pruned_model, tflite_model=converter.outputs["tflite_model"],
      min_sparsity=s.min_sparsity, tolerance=s.tolerance,
      per_layer_min_sparsity=s.per_layer_min_sparsity or None,
      include_all_tensors=s.include_all_tensors, sparsity_m_by_n=p.sparsity_m_by_n)

  production = tfx.dsl.Resolver(
      strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
      model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model,
                            producer_component_id=converter.id, output_key="tflite_model"),
      model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing,
                                     producer_component_id="CompressionEvaluator",
                                     output_key="blessing"),
  ).with_id(PRODUCTION_RESOLVER_ID)

  g = config.gate
  evaluator = CompressionEvaluator(
      model=converter.outputs["tflite_model"], dense_model=trainer.outputs["model"],
      examples=examples, baseline_model=production.outputs["model"],
      sparsity_blessing=sparsity_validator.outputs["blessing"],
      label_key=config.data.label_key, max_accuracy_drop=g.max_accuracy_drop,
      max_relative_accuracy_drop=g.max_relative_accuracy_drop,
      min_compression_ratio=g.min_compression_ratio, max_latency_ratio=g.max_latency_ratio,
      accuracy_decision=g.accuracy_decision, min_accuracy=g.min_accuracy,
      eval_split=g.eval_split)

  pusher = tfx.components.Pusher(
      model=converter.outputs["tflite_model"], model_blessing=evaluator.outputs["blessing"],
      push_destination=tfx.proto.PushDestination(
          filesystem=tfx.proto.PushDestination.Filesystem(
              base_directory=config.push.destination)),
      custom_executor_spec=executor_spec.ExecutorClassSpec(AtomicPushExecutor))

  return tfx.dsl.Pipeline(
      pipeline_name=config.pipeline_name,
      pipeline_root=config.pipeline_root,
      components=[example_gen, statistics_gen, schema_gen, trainer, prune_trainer,
                  converter, sparsity_validator, production, evaluator, pusher],
      enable_cache=config.runner.enable_cache,
      metadata_connection_config=metadata_connection_config,
      beam_pipeline_args=list(config.runner.beam_args if beam_pipeline_args is None
                              else beam_pipeline_args))
