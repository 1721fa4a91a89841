"""Reading TFX Examples artifacts: schemas, tf.data pipelines and small in-memory samples."""
import os
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_transform.tf_metadata import schema_utils
from tfx import types
from tfx.components.util import tfxio_utils
from tfx.types import artifact_utils
from tfx.utils import io_utils
from tfx_bsl.public.tfxio import TensorFlowDatasetOptions


class DataError(ValueError):
  """Examples that cannot be used, with the split, the feature and what was found."""


def split_names(examples: types.Artifact) -> List[str]:
  return artifact_utils.decode_split_names(examples.split_names)


def split_files(examples: types.Artifact, split: str) -> List[str]:
  """The data files of one split. Raises DataError naming the split when it is absent or empty."""
  available = split_names(examples)
  if split not in available:
    raise DataError(f"split '{split}' is not in the examples at {examples.uri}; "
                    f"splits are {available}")
  uri = artifact_utils.get_split_uri([examples], split)
  files = sorted(tf.io.gfile.glob(os.path.join(uri, "*")))
  if not files:
    raise DataError(f"split '{split}' at {uri} has no data files")
  return files


def load_schema(schema: Optional[types.Artifact]) -> Optional[schema_pb2.Schema]:
  if schema is None:
    return None
  path = io_utils.get_only_uri_in_dir(schema.uri)
  return io_utils.parse_pbtxt_file(path, schema_pb2.Schema())


def load_transformed_schema(transform_graph: types.Artifact) -> schema_pb2.Schema:
  import tensorflow_transform as tft  # pylint: disable=g-import-not-at-top
  return tft.TFTransformOutput(transform_graph.uri).transformed_metadata.schema


def _raw_records(files: List[str]) -> tf.data.Dataset:
  compression = "GZIP" if files[0].endswith(".gz") else ""
  return tf.data.TFRecordDataset(files, compression_type=compression)


def count_examples(examples: types.Artifact, split: str) -> int:
  """Number of records in a split (reads the split once)."""
  return int(_raw_records(split_files(examples, split)).reduce(np.int64(0), lambda n, _: n + 1))


def infer_schema(examples: types.Artifact, split: str, max_records: int = 1000) -> schema_pb2.Schema:
  """A minimal schema from the first records: each feature's type, and its shape when fixed."""
  lengths: Dict[str, set] = {}
  kinds: Dict[str, str] = {}
  seen: Dict[str, int] = {}
  total = 0
  for record in _raw_records(split_files(examples, split)).take(max_records):
    example = tf.train.Example.FromString(record.numpy())
    total += 1
    for name, feature in example.features.feature.items():
      kind = feature.WhichOneof("kind")
      if kind is None:
        continue
      kinds[name] = kind
      seen[name] = seen.get(name, 0) + 1
      lengths.setdefault(name, set()).add(len(getattr(feature, kind).value))
  if not kinds:
    raise DataError(f"split '{split}' of {examples.uri} has no readable tf.Examples")
  types_by_kind = {"float_list": schema_pb2.FLOAT, "int64_list": schema_pb2.INT,
                   "bytes_list": schema_pb2.BYTES}
  schema = schema_pb2.Schema()
  for name in sorted(kinds):
    feature = schema.feature.add(name=name, type=types_by_kind[kinds[name]])
    if len(lengths[name]) == 1 and seen[name] == total:
      feature.shape.dim.add(size=lengths[name].pop())
      feature.presence.min_fraction = 1.0
  return schema


def feature_spec(schema: schema_pb2.Schema) -> Dict[str, object]:
  return schema_utils.schema_as_feature_spec(schema).feature_spec


def check_label(schema: schema_pb2.Schema, label_key: str) -> None:
  names = [f.name for f in schema.feature]
  if label_key not in names:
    raise DataError(f"label_key '{label_key}' is not a feature of the schema; features are {names}")


def make_dataset(examples: types.Artifact, split: str, schema: schema_pb2.Schema,
                 label_key: str, batch_size: int, num_epochs: Optional[int] = None,
                 shuffle: bool = True) -> tf.data.Dataset:
  """(features, label) batches of one split, parsed with `schema` by tfx_bsl like TFX's Trainer."""
  check_label(schema, label_key)
  factory = tfxio_utils.get_tf_dataset_factory_from_artifact([examples], [])
  pattern = io_utils.all_files_pattern(artifact_utils.get_split_uri([examples], split))
  split_files(examples, split)  # a clear error for a missing or empty split
  options = TensorFlowDatasetOptions(batch_size=batch_size, label_key=label_key,
                                     num_epochs=num_epochs, shuffle=shuffle)
  return factory([pattern], options, schema)


def read_sample(examples: types.Artifact, split: str, schema: schema_pb2.Schema,
                label_key: Optional[str], limit: int) -> Dict[str, np.ndarray]:
  """The first `limit` examples of a split as dense numpy arrays keyed by feature name."""
  spec = feature_spec(schema)
  parsed = _raw_records(split_files(examples, split)).take(limit).batch(max(1, min(limit, 1024)))
  columns: Dict[str, List[np.ndarray]] = {}
  for batch in parsed:
    try:
      features = tf.io.parse_example(batch, spec)
    except tf.errors.InvalidArgumentError as e:
      raise DataError(f"examples of split '{split}' at {examples.uri} do not match the schema: "
                      f"{e.message.splitlines()[0]}") from e
    for name, value in features.items():
      if isinstance(value, tf.SparseTensor):
        value = tf.sparse.to_dense(value)
      columns.setdefault(name, []).append(value.numpy())
  if not columns:
    raise DataError(f"split '{split}' of {examples.uri} is empty")
  sample = {name: np.concatenate(parts) for name, parts in columns.items()}
  if label_key is not None and label_key not in sample:
    raise DataError(f"label_key '{label_key}' is not a feature of the examples; "
                    f"features are {sorted(sample)}")
  return sample
