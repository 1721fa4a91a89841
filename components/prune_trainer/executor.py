"""PruneTrainer's executor: unpacks artifacts, builds the datasets, calls `pruning.prune`."""
import json
import os
from typing import Any, Dict, List

from absl import logging
import tensorflow as tf
from tfx import types
from tfx.components.trainer import fn_args_utils
from tfx.components.util import tfxio_utils
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import import_utils
from tfx.utils import io_utils

from tfx_bonsai.components.common import examples as examples_lib
from tfx_bonsai.components.common import heads
from tfx_bonsai.components.common import model_io
from tfx_bonsai.components.common import roles
from tfx_bonsai.components.common import stats
from tfx_bonsai.components.prune_trainer import collaborative
from tfx_bonsai.components.prune_trainer import pruning
from tfx_bonsai.components.prune_trainer import search
from tfx_bonsai.components.prune_trainer import settings
from tfx_bonsai.components.prune_trainer import spec

REPORT_FILE = "pruning.json"


def config_from_properties(exec_properties: Dict[str, Any]) -> settings.PruneTrainerSettings:
  """The validated settings (a RuntimeParameter's resolved value is checked here)."""
  return settings.PruneTrainerSettings.from_exec_properties(exec_properties)


def check_labels_fit(model, examples, split: str, schema, label_key: str,
                     sample: int = 2000) -> None:
  """For sparse categorical models: every label in a sample must be a valid class index."""
  loss = str(getattr(model, "loss", None) or "sparse_categorical_crossentropy")
  if "sparse_categorical" not in loss or len(model.outputs) != 1:
    return
  classes = model.output_shape[-1]
  labels = examples_lib.read_sample(examples, split, schema, label_key, sample)[label_key]
  if labels.dtype.kind not in "iu":
    raise examples_lib.DataError(f"label_key '{label_key}' holds {labels.dtype} values; a "
                                 "sparse categorical model needs integer class indices")
  if labels.min() < 0 or labels.max() >= classes:
    raise model_io.ModelError(
        f"model '{model.name}' outputs {classes} classes but label '{label_key}' has values "
        f"{int(labels.min())}..{int(labels.max())} in split '{split}'; labels must be in "
        f"[0, {classes - 1}]")


def check_within_budget(counts: stats.PairedCounts, budget: float, split: str) -> None:
  """Raises PruningError when the pruned model's selection accuracy is confidently (the
  paired 95% interval, as the gate's) more than `budget` below the dense model's."""
  comparison = stats.compare(counts, budget)
  if comparison.position != stats.OVER:
    return
  raise pruning.PruningError(
      f"pruning collapsed the selection accuracy past the budget: accuracy on split '{split}' "
      f"{counts.baseline_accuracy:.4f} dense, {counts.candidate_accuracy:.4f} pruned (drop "
      f"{comparison.drop:.4f}, 95% interval {comparison.low:.4f}..{comparison.high:.4f}, over "
      f"the budget {budget:.4f} of search_max_accuracy_drop); the pruned model is not "
      "published. Lower target_sparsity or turn on the search (search_levels), or set "
      "refuse_over_budget false to publish it anyway")


def no_level_message(found, metric: str) -> str:
  """'no level within budget', with every trial's level, sparsity and metric."""
  frontier = "; ".join(f"level {t.level:g}: sparsity {t.sparsity:.3f}, {metric} {t.accuracy:.4f} "
                       f"(drop {t.accuracy_drop:+.4f})" for t in sorted(found.trials,
                                                                         key=lambda t: t.level))
  tried = len(found.trials)
  return (f"no level within budget: the search tried {tried} level{'s' * (tried != 1)} against the "
          f"dense {metric} {found.dense_accuracy:.4f} (budget {found.max_accuracy_drop:.4f}, "
          f"{found.accuracy_decision}) and none held; measured frontier: {frontier}. Raise "
          "search_max_accuracy_drop, fine-tune longer (search_epochs_per_trial), or set "
          "refuse_over_budget false to publish the least sparse trial")


class Executor(base_executor.BaseExecutor):
  """Fine-tunes the upstream model with magnitude pruning and saves it stripped."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    self._log_startup(input_dict, output_dict, exec_properties)
    config = config_from_properties(exec_properties)
    search_config = config.search_config()
    collab_config = config.collaborative_config()
    examples = artifact_utils.get_single_instance(input_dict[spec.EXAMPLES_KEY])
    model_artifact = artifact_utils.get_single_instance(input_dict[spec.MODEL_KEY])
    output = artifact_utils.get_single_instance(output_dict[spec.PRUNED_MODEL_KEY])
    model_run = artifact_utils.get_single_instance(output_dict[spec.MODEL_RUN_KEY])
    label_key, train_split, eval_split = config.label_key, config.train_split, config.eval_split

    # Everything that can be checked cheaply is checked before any training.
    model = model_io.load_trainer_model(model_artifact.uri, config.model_fn,
                                        config.module_file or None)
    head = heads.resolve(config.head, model, config.metric)
    metric = heads.metric_for(head, config.metric)
    loss = heads.keras_loss(head, model)
    logging.info("PruneTrainer: head %s, scored by %s", head, metric)
    pruning.check_model(model)
    if config.pruning_policy != "xnnpack":
      pruning.select_layers(model, config)
    schema = self._schema(input_dict, examples, train_split)
    serving_spec = None
    if not input_dict.get(spec.TRANSFORM_GRAPH_KEY):
      examples_lib.check_label(schema, label_key)
      features = examples_lib.feature_spec(schema)
      model_io.model_inputs(model, features)  # names a model input the examples lack
      serving_spec = {k: v for k, v in features.items() if k != label_key}
    if serving_spec is not None and head == heads.MULTICLASS:
      check_labels_fit(model, examples, train_split, schema, label_key)
    num_train = examples_lib.count_examples(examples, train_split)
    num_eval = examples_lib.count_examples(examples, eval_split)
    logging.info("PruneTrainer: %d train / %d eval examples", num_train, num_eval)

    train_ds, eval_ds = self._datasets(config.module_file, examples, schema, model, label_key,
                                       train_split, eval_split, config.batch_size)
    search_report = None
    strategy = pruning.make_strategy(config.distribution)
    guarded = config.refuse_over_budget and head != heads.REGRESSION
    dense_correct = search.correct(model, eval_ds, head) if guarded else None
    if search_config is not None:
      found = search.search(model, train_ds, eval_ds, num_train, config, search_config,
                            loss=loss, log_dir=model_run.uri, head=head, metric=metric,
                            metrics=heads.keras_metrics(head, metric), strategy=strategy)
      result, search_report = found.result, found.report()
      sensitivity = search_report["sensitivity"]
      if config.refuse_over_budget and not found.within_budget:
        raise pruning.PruningError(no_level_message(found, metric))
      level = max(t.level for t in found.trials if t.accepted) if found.within_budget else None
    else:
      result = pruning.prune(model, train_ds, eval_ds, num_train, config, loss=loss,
                             metrics=heads.keras_metrics(head, metric), log_dir=model_run.uri,
                             strategy=strategy, head=head, metric=metric)
      sensitivity = result.sensitivity.report() if result.sensitivity else None
      level = None

    accuracy = (result.history.get(f"val_{metric}") or [None])[-1]
    final_model, final_sparsity, stages = result.model, result.sparsity, None
    if collab_config.enabled:
      optimized = collaborative.optimize(
          result.model, result.pruned_layers, train_ds, eval_ds, result.schedule.steps_per_epoch,
          collab_config, loss, heads.keras_metrics(head, metric))
      final_model, stages = optimized.model, [s.as_dict() for s in optimized.stages]
      final_sparsity = optimized.stages[-1].sparsity
      if optimized.stages[-1].accuracy is not None:
        accuracy = optimized.stages[-1].accuracy

    if guarded:
      final_correct = search.correct(final_model, eval_ds, head)
      check_within_budget(search.paired_counts(dense_correct, final_correct),
                          config.search_max_accuracy_drop, eval_split)
      if metric == heads.ACCURACY:  # the model as published (after BatchNorm re-estimation)
        accuracy = float(sum(final_correct)) / len(final_correct)

    if (model_io.has_keras_metadata(model_artifact.uri)
        and not input_dict.get(spec.TRANSFORM_GRAPH_KEY)):
      model_io.save_keras_model(final_model, model_io.serving_dir(output.uri), serving_spec)
    else:  # tf.saved_model.save export: keep its signatures (e.g. raw tf.Example -> Transform)
      model_io.save_with_serving_of(final_model, model_artifact.uri,
                                    model_io.serving_dir(output.uri))
    report = {
        "target_sparsity": config.target_sparsity,
        "sparsity": final_sparsity,
        "pruned_sparsity": result.sparsity,
        "collaborative": stages,
        "pruned_layers": result.pruned_layers,
        "schedule": {"begin_step": result.schedule.begin_step,
                     "end_step": result.schedule.end_step,
                     "frequency": result.schedule.frequency,
                     "steps_per_epoch": result.schedule.steps_per_epoch,
                     "total_steps": result.schedule.total_steps},
        "history": result.history,
        "layer_sparsity": result.layer_sparsity,
        "allocation": config.resolved_allocation(searching=search_config is not None),
        # Each layer pruned alone on the selection split (allocation "sensitivity").
        "sensitivity": sensitivity,
        "search": search_report,
        "head": head,
        "metric": metric,
        "train_examples": num_train,
        "eval_examples": num_eval,
    }
    io_utils.write_string_file(os.path.join(output.uri, REPORT_FILE),
                               json.dumps(report, indent=2, sort_keys=True))
    output.set_float_custom_property(spec.SPARSITY_PROPERTY, final_sparsity)
    output.set_float_custom_property(spec.TARGET_SPARSITY_PROPERTY,
                                     config.target_sparsity if level is None else level)
    output.set_int_custom_property(spec.SEARCHED_PROPERTY, int(level is not None))
    output.set_float_custom_property(spec.PRUNED_SPARSITY_PROPERTY, result.sparsity)
    output.set_int_custom_property(spec.QUANTIZATION_AWARE_PROPERTY,
                                   int(model_io.is_quantization_aware(final_model)))
    output.set_string_custom_property(spec.HEAD_PROPERTY, head)
    output.set_string_custom_property(spec.METRIC_PROPERTY, metric)
    output.set_string_custom_property(spec.DATA_ROLES_PROPERTY,
                                      roles.encode(roles.prune_trainer_uses(config)))
    if accuracy is not None:
      output.set_float_custom_property(spec.EVAL_METRIC_PROPERTY, accuracy)
      if metric == heads.ACCURACY:
        output.set_float_custom_property(spec.ACCURACY_PROPERTY, accuracy)
    logging.info("PruneTrainer: sparsity %.4f (target %.4f) over %d layers, eval %s %s%s; "
                 "model at %s", final_sparsity, config.target_sparsity,
                 len(result.pruned_layers), metric,
                 "n/a" if accuracy is None else f"{accuracy:.4f}",
                 f", after {' + '.join(s['stage'] for s in stages)}" if stages else "", output.uri)

  def _schema(self, input_dict, examples, train_split):
    if input_dict.get(spec.TRANSFORM_GRAPH_KEY):
      return examples_lib.load_transformed_schema(
          artifact_utils.get_single_instance(input_dict[spec.TRANSFORM_GRAPH_KEY]))
    if input_dict.get(spec.SCHEMA_KEY):
      return examples_lib.load_schema(artifact_utils.get_single_instance(input_dict[spec.SCHEMA_KEY]))
    logging.info("PruneTrainer: no schema given; inferring one from the '%s' split", train_split)
    return examples_lib.infer_schema(examples, train_split)

  def _datasets(self, module_file, examples, schema, model, label_key, train_split,
                eval_split, batch_size):
    """(train, eval) datasets of (model inputs, label): the user's input_fn, or tfx_bsl's."""
    input_fn = None
    if module_file:
      try:
        input_fn = import_utils.import_func_from_source(module_file, "input_fn")
      except AttributeError:  # a module_file only for model_fn
        logging.info("PruneTrainer: %s has no input_fn; reading examples with tfx_bsl", module_file)
    if input_fn is not None:
      accessor = fn_args_utils.DataAccessor(
          tf_dataset_factory=tfxio_utils.get_tf_dataset_factory_from_artifact([examples], []),
          record_batch_factory=tfxio_utils.get_record_batch_factory_from_artifact([examples], []),
          data_view_decode_fn=None)

      def from_module(split):
        pattern = io_utils.all_files_pattern(artifact_utils.get_split_uri([examples], split))
        return input_fn([pattern], accessor, schema, batch_size)

      # A user's input_fn shuffles (and may repeat) by default: cached after its first pass,
      # every later pass (the dense model's, each candidate's) reads the same examples in the
      # same order, which the paired comparisons need.
      return from_module(train_split), from_module(eval_split).take(
          -(-examples_lib.count_examples(examples, eval_split) // batch_size)).cache()

    def to_inputs(features, label):
      return model_io.model_inputs(model, features), label

    train = examples_lib.make_dataset(examples, train_split, schema, label_key, batch_size)
    evaluation = examples_lib.make_dataset(examples, eval_split, schema, label_key, batch_size,
                                           num_epochs=1, shuffle=False)
    return train.map(to_inputs), evaluation.map(to_inputs)
