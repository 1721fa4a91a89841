"""SparsityValidator's executor: loads the model, calls `sparsity`, writes report and blessing."""
import dataclasses
import json
import os
from typing import Any, Dict, List, Optional

from absl import logging
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import io_utils

from tfx_bonsai.components.common import blessing as blessing_lib
from tfx_bonsai.components.common import model_io
from tfx_bonsai.components.sparsity_validator import report as report_lib
from tfx_bonsai.components.sparsity_validator import settings
from tfx_bonsai.components.sparsity_validator import sparsity
from tfx_bonsai.components.sparsity_validator import spec


def targets_from_properties(exec_properties: Dict[str, Any],
                            model_artifact: Optional[types.Artifact] = None
                            ) -> sparsity.SparsityTargets:
  """The validated targets (a RuntimeParameter's resolved value is checked here); with
  follow_pruning, a level PruneTrainer's search chose below min_sparsity replaces it."""
  chosen = settings.SparsityValidatorSettings.from_exec_properties(exec_properties)
  targets = sparsity.SparsityTargets.from_settings(chosen)
  searched = searched_level(model_artifact) if model_artifact is not None else None
  if chosen.follow_pruning and searched is not None and searched < targets.min_sparsity:
    logging.info("SparsityValidator: PruneTrainer's search chose level %.4f; it replaces "
                 "min_sparsity %.4f (follow_pruning)", searched, targets.min_sparsity)
    targets = dataclasses.replace(targets, min_sparsity=searched)
  return targets


def searched_level(model_artifact: types.Artifact) -> Optional[float]:
  """The level PruneTrainer's search chose for this model, or None (not searched)."""
  if not (model_artifact.has_custom_property(model_io.SEARCHED_PROPERTY)
          and model_artifact.get_int_custom_property(model_io.SEARCHED_PROPERTY)
          and model_artifact.has_custom_property(model_io.TARGET_SPARSITY_PROPERTY)):
    return None
  return model_artifact.get_float_custom_property(model_io.TARGET_SPARSITY_PROPERTY)


class Executor(base_executor.BaseExecutor):
  """Blesses the model when it meets the sparsity targets; a miss is NOT_BLESSED, not an error."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    self._log_startup(input_dict, output_dict, exec_properties)
    model_artifact = artifact_utils.get_single_instance(input_dict[spec.MODEL_KEY])
    targets = targets_from_properties(exec_properties, model_artifact)
    report_artifact = artifact_utils.get_single_instance(output_dict[spec.REPORT_KEY])
    blessing = artifact_utils.get_single_instance(output_dict[spec.BLESSING_KEY])

    model = model_io.load_keras_model(model_artifact.uri, compile=False)
    table = sparsity.tensor_table(model)
    tflite_table = None
    if input_dict.get(spec.TFLITE_MODEL_KEY):
      tflite_artifact = artifact_utils.get_single_instance(input_dict[spec.TFLITE_MODEL_KEY])
      tflite_table = sparsity.tflite_tensor_table(
          model_io.read_tflite(tflite_artifact.uri, spec.TFLITE_MODEL_KEY))
    pruned = (model_artifact.get_float_custom_property(model_io.PRUNED_SPARSITY_PROPERTY)
              if model_artifact.has_custom_property(model_io.PRUNED_SPARSITY_PROPERTY) else None)
    report = sparsity.validate(model, targets, table, tflite_table, pruned)

    fileio.makedirs(report_artifact.uri)
    io_utils.write_string_file(
        os.path.join(report_artifact.uri, spec.REPORT_JSON_FILE),
        json.dumps({"report": report.to_dict(), "tensors": table, "tflite_tensors": tflite_table},
                   indent=2, sort_keys=True))
    io_utils.write_string_file(os.path.join(report_artifact.uri, spec.REPORT_HTML_FILE),
                               report_lib.render_html(report, table, tflite_table))
    blessing_lib.write_blessing(blessing, report.passed, model_artifact, report.to_dict())
    blessing.set_float_custom_property(spec.GLOBAL_SPARSITY_PROPERTY, report.global_sparsity)
    if report.deployed_sparsity is not None:
      blessing.set_float_custom_property(spec.DEPLOYED_SPARSITY_PROPERTY, report.deployed_sparsity)

    logging.info("SparsityValidator: %s, global sparsity %.4f%s (target %.4f, tolerance %.4f)%s",
                 "BLESSED" if report.passed else "NOT_BLESSED", report.global_sparsity,
                 "" if report.deployed_sparsity is None
                 else f", deployed TFLite {report.deployed_sparsity:.4f}",
                 targets.min_sparsity, targets.tolerance,
                 "".join(f"; {r}" for r in report.reasons))
    logging.info("SparsityValidator: per-tensor sparsity\n%s", sparsity.format_table(table))
