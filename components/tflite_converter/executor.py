"""TFLiteConverter's executor: reads the model and samples, calls `conversion`, writes the file."""
import json
import os
from typing import Any, Dict, List, Optional, Tuple

from absl import logging
import numpy as np
import tensorflow as tf
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from tfx_bonsai.components.common import examples as examples_lib
from tfx_bonsai.components.common import heads
from tfx_bonsai.components.common import model_io
from tfx_bonsai.components.common import roles
from tfx_bonsai.components.common import tflite
from tfx_bonsai.components.tflite_converter import conversion
from tfx_bonsai.components.tflite_converter import latency
from tfx_bonsai.components.tflite_converter import metadata
from tfx_bonsai.components.tflite_converter import settings
from tfx_bonsai.components.tflite_converter import spec


def config_from_properties(exec_properties: Dict[str, Any]) -> settings.TFLiteConverterSettings:
  """The validated settings (a RuntimeParameter's resolved value is checked here)."""
  return settings.TFLiteConverterSettings.from_exec_properties(exec_properties)


def read_inputs(examples: types.Artifact, split: str, schema, label_key: Optional[str],
                count: int, count_key: str, at_most: bool = False) -> Dict[str, np.ndarray]:
  """The first `count` examples of `split` without the label.

  DataError when there are fewer, unless `at_most` (then all there are, at least one).
  """
  sample = examples_lib.read_sample(examples, split, schema, label_key, count)
  found = len(next(iter(sample.values())))
  if found < count and not at_most:
    raise examples_lib.DataError(
        f"{count_key}={count} but split '{split}' of {examples.uri} has only {found} "
        f"examples; set {count_key} <= {found}")
  return {name: value for name, value in sample.items() if name != label_key}


def write_model(output_uri: str, model_bytes: bytes) -> str:
  """Writes the TFLite file at `tflite_path(output_uri)` via a temporary name; returns the path."""
  path = model_io.tflite_path(output_uri)
  tf.io.gfile.makedirs(os.path.dirname(path))
  partial = os.path.join(output_uri, model_io.TFLITE_FILE_NAME + ".partial")
  with tf.io.gfile.GFile(partial, "wb") as f:
    f.write(model_bytes)
  tf.io.gfile.rename(partial, path, overwrite=True)
  return path


def measure_latency(keras_model,
                    model_bytes: bytes) -> Tuple[Dict[str, float], Dict[str, Any]]:
  """The candidate's and the dense float TFLite's batch-1 latency at 1 and all CPU threads.

  Returns (the float output properties: milliseconds and `latency_ratio`, candidate /
  dense at 1 thread; the full `latency.compare` figures for `conversion.json`).
  """
  dense_bytes = tflite.dense_float(keras_model)
  figures = latency.compare(model_bytes, dense_bytes, threads=os.cpu_count() or 1)
  properties = {
      spec.LATENCY_MS_1T_PROPERTY: figures["candidate_1t"]["median_ms"],
      spec.LATENCY_MS_NT_PROPERTY: figures["candidate_nt"]["median_ms"],
      spec.DENSE_LATENCY_MS_1T_PROPERTY: figures["dense_1t"]["median_ms"],
      spec.DENSE_LATENCY_MS_NT_PROPERTY: figures["dense_nt"]["median_ms"],
      spec.LATENCY_RATIO_PROPERTY: figures["ratio_1t"],
  }
  return properties, figures


def set_properties(output: types.Artifact, properties: Dict[str, Any]) -> None:
  """Sets each of `properties` as the custom property of its type (lists as JSON text)."""
  for key, value in properties.items():
    if isinstance(value, bool):
      output.set_int_custom_property(key, int(value))
    elif isinstance(value, int):
      output.set_int_custom_property(key, value)
    elif isinstance(value, float):
      output.set_float_custom_property(key, value)
    elif isinstance(value, (list, tuple)):
      output.set_string_custom_property(key, json.dumps(list(value)))
    else:
      output.set_string_custom_property(key, str(value))


def metadata_info(config: settings.TFLiteConverterSettings, keras_model,
                  model_artifact: types.Artifact) -> metadata.ModelInfo:
  """The LiteRT metadata the file will carry; MetadataError/HeadError when labels do not fit."""
  labels = (metadata.read_labels(config.labels_file) if config.labels_file
            else list(config.labels))
  try:
    head = heads.resolve(config.head, keras_model)
  except heads.HeadError:
    if labels:
      raise
    head = heads.REGRESSION  # one linear unit and head "auto": described as a value
  units = keras_model.output_shape[-1] if len(keras_model.output_shape) > 1 else 1
  metadata.check_labels(head, units, labels)
  if not config.normalization:
    logging.warning("TFLiteConverter: normalization not stated; the metadata tells apps "
                    "nothing about how to scale inputs (set normalization: {mean, std})")
  version = os.path.basename(model_artifact.uri.rstrip("/"))
  description = config.description or (
      f"Keras model '{keras_model.name}' ({model_artifact.uri}), converted to TFLite by "
      f"tfx-bonsai's TFLiteConverter; {head} head.")
  return metadata.ModelInfo(
      name=keras_model.name, version=version, description=description, head=head,
      mean=tuple(config.normalization.get("mean", ())),
      std=tuple(config.normalization.get("std", ())),
      input_range=tuple(config.input_range), labels=tuple(labels))


class Executor(base_executor.BaseExecutor):
  """Converts the Keras model to TFLite, climbing the quantization ladder until it agrees.

  When no mode agrees the output holds the closest file with `agreed` 0 and the reason in
  `conversion_failure`; the gate then refuses it without evaluating (nothing is pushed).
  """

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    self._log_startup(input_dict, output_dict, exec_properties)
    config = config_from_properties(exec_properties)
    model_artifact = artifact_utils.get_single_instance(input_dict[spec.MODEL_KEY])
    output = artifact_utils.get_single_instance(output_dict[spec.TFLITE_MODEL_KEY])
    examples = (artifact_utils.get_single_instance(input_dict[spec.EXAMPLES_KEY])
                if input_dict.get(spec.EXAMPLES_KEY) else None)
    label_key = config.label_key or None
    representative_split, agreement_split = config.representative_split, config.agreement_split
    calibrated = [m for m in config.modes if settings.MODES[m].representative_data]
    if calibrated and examples is None:
      if calibrated[0] == config.quantization:
        raise ValueError(f"quantization={config.quantization!r} needs the examples input: it "
                         f"calibrates on representative_examples of the "
                         f"{representative_split!r} split")
      config = config.replace(fallback=[m for m in config.fallback if m not in calibrated])
      logging.warning("TFLiteConverter: no examples, so no fallback to %s", calibrated)

    # Everything that can be checked cheaply is checked before converting.
    keras_model = model_io.load_keras_model(model_artifact.uri, compile=False)
    if model_io.is_quantization_aware(keras_model) and config.quantization != settings.INT8:
      raise ValueError(
          f"quantization must be 'int8' for a quantization-aware trained model (PruneTrainer's "
          f"qat_epochs > 0), got {config.quantization!r}: its ranges were learned for 8-bit")
    head = config.head
    if head != heads.AUTO:
      heads.resolve(head, keras_model)  # a head that does not fit the model, before converting
    info = metadata_info(config, keras_model, model_artifact)
    representative = None
    if examples is not None:
      schema = (examples_lib.load_schema(artifact_utils.get_single_instance(
          input_dict[spec.SCHEMA_KEY])) if input_dict.get(spec.SCHEMA_KEY)
                else examples_lib.infer_schema(examples, agreement_split))
      if calibrated:
        representative = read_inputs(examples, representative_split, schema, label_key,
                                     config.representative_examples,
                                     spec.REPRESENTATIVE_EXAMPLES_KEY)
      checked = read_inputs(examples, agreement_split, schema, label_key,
                            config.agreement_examples, spec.AGREEMENT_EXAMPLES_KEY, at_most=True)
      checked_on = f"split '{agreement_split}'"
    else:
      checked = conversion.synthetic_inputs(keras_model, config.agreement_examples)
      checked_on = "synthetic uniform [0, 1) inputs (no examples given)"
      logging.warning("TFLiteConverter: no examples; checking agreement on %s", checked_on)
    conversion.model_inputs(keras_model, checked)  # names a model input the examples lack

    outcome = conversion.convert_with_fallback(keras_model, config, representative, checked, head)
    result = outcome.agreement
    model_bytes = metadata.populate(outcome.model_bytes, info)  # the file as shipped
    path = write_model(output.uri, model_bytes)
    raw, gzipped = len(model_bytes), conversion.gzip_size(model_bytes)
    upstream = (roles.decode(model_artifact.get_string_custom_property(spec.DATA_ROLES_PROPERTY))
                if model_artifact.has_custom_property(spec.DATA_ROLES_PROPERTY) else [])
    properties = {
        spec.DATA_ROLES_PROPERTY: roles.encode(
            upstream + roles.converter_uses(config, with_examples=examples is not None)),
        spec.TFLITE_BYTES_PROPERTY: raw,
        spec.TFLITE_GZIP_BYTES_PROPERTY: gzipped,
        spec.METADATA_BYTES_PROPERTY: raw - len(outcome.model_bytes),
        spec.QUANTIZATION_PROPERTY: outcome.mode,
        spec.REQUESTED_QUANTIZATION_PROPERTY: config.quantization,
        spec.FLOAT_LAYERS_PROPERTY: list(outcome.float_layers),
        spec.SPARSE_WEIGHTS_PROPERTY: bool(config.sparse_weights),
        spec.AGREED_PROPERTY: outcome.agreed,
    }
    if result is not None:  # None: no mode gave a file the interpreter runs
      properties.update({spec.AGREEMENT_PROPERTY: result.value,
                         spec.AGREEMENT_KIND_PROPERTY: result.kind,
                         spec.AGREEMENT_EXAMPLES_PROPERTY: result.examples})
    if not outcome.agreed:
      properties[spec.CONVERSION_FAILURE_PROPERTY] = outcome.failure
    set_properties(output, properties)
    report = {
        **properties,
        "source_model": model_artifact.uri,
        "tflite": path,
        spec.INT8_IO_KEY: bool(config.int8_io),
        spec.REPRESENTATIVE_EXAMPLES_KEY: config.representative_examples if representative else 0,
        "agreement_inputs": checked_on,
        "ladder": [attempt.to_dict() for attempt in outcome.attempts],
    }
    if result is not None:
      report.update(agreement_raw=result.raw, agreement_ties=result.ties,
                    agreement_step=result.step)
    if not outcome.agreed:
      logging.warning("TFLiteConverter: conversion failed: %s", outcome.failure)
    elif config.measure_latency:
      try:
        latencies, figures = measure_latency(keras_model, model_bytes)
      except (RuntimeError, ValueError) as e:  # a gate checking latency then names it missing
        logging.warning("TFLiteConverter: latency not measured: %s: %s", type(e).__name__, e)
        report["latency_error"] = f"{type(e).__name__}: {e}"
      else:
        for key, value in latencies.items():
          output.set_float_custom_property(key, value)
        report.update(latencies, latency=figures)
        logging.info("TFLiteConverter: batch-1 latency %.3f ms vs dense float %.3f ms "
                     "(ratio %.2f) on 1 thread; %.3f ms vs %.3f ms on %d threads",
                     latencies[spec.LATENCY_MS_1T_PROPERTY],
                     latencies[spec.DENSE_LATENCY_MS_1T_PROPERTY],
                     latencies[spec.LATENCY_RATIO_PROPERTY],
                     latencies[spec.LATENCY_MS_NT_PROPERTY],
                     latencies[spec.DENSE_LATENCY_MS_NT_PROPERTY],
                     figures["candidate_nt"]["threads"])
    with tf.io.gfile.GFile(os.path.join(output.uri, spec.REPORT_FILE), "w") as f:
      f.write(json.dumps(report, indent=2, sort_keys=True))
    logging.info("TFLiteConverter: %s -> %d bytes (%d gzipped), %s",
                 config.mode_label(outcome.mode), raw, gzipped,
                 result.describe() if outcome.agreed else "NOT AGREED")
