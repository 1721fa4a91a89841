import numpy as np
import pytest

from tfx_bonsai.components.common import blessing as blessing_lib
from tfx_bonsai.components.common import examples as examples_lib
from tfx_bonsai.components.common import model_io
from tfx.types import standard_artifacts


def test_examples_fixture_has_both_splits(digits_examples):
  assert examples_lib.count_examples(digits_examples, "train") == 1437
  assert examples_lib.count_examples(digits_examples, "eval") == 360


def test_inferred_schema_has_fixed_shapes(digits_examples):
  schema = examples_lib.infer_schema(digits_examples, "train")
  shapes = {f.name: [d.size for d in f.shape.dim] for f in schema.feature}
  assert shapes == {"image": [784], "label": [1]}


def test_missing_split_names_the_available_ones(digits_examples):
  with pytest.raises(examples_lib.DataError, match=r"split 'test'.*\['train', 'eval'\]"):
    examples_lib.split_files(digits_examples, "test")


def test_dataset_yields_features_and_label(digits_examples, digits_schema):
  schema = examples_lib.load_schema(digits_schema)
  features, label = next(iter(examples_lib.make_dataset(
      digits_examples, "train", schema, "label", batch_size=8, num_epochs=1)))
  assert features["image"].shape == (8, 784)
  assert label.shape == (8, 1)


def test_unknown_label_key_is_named(digits_examples, digits_schema):
  schema = examples_lib.load_schema(digits_schema)
  with pytest.raises(examples_lib.DataError, match=r"label_key 'digit'.*\['image', 'label'\]"):
    examples_lib.make_dataset(digits_examples, "train", schema, "digit", batch_size=8)


def test_read_sample_is_dense_numpy(digits_examples, digits_schema):
  sample = examples_lib.read_sample(digits_examples, "eval", examples_lib.load_schema(digits_schema),
                                    "label", limit=50)
  assert sample["image"].shape == (50, 784) and sample["label"].shape == (50, 1)


def test_saved_model_reloads_with_example_signature(small_dense_model, digits_examples, digits_schema):
  model = model_io.load_keras_model(small_dense_model.uri)
  sample = examples_lib.read_sample(digits_examples, "eval", examples_lib.load_schema(digits_schema),
                                    "label", limit=360)
  accuracy = np.mean(np.argmax(model.predict(sample["image"], verbose=0), 1) == sample["label"][:, 0])
  assert accuracy > 0.85
  import tensorflow as tf
  loaded = tf.saved_model.load(model_io.serving_dir(small_dense_model.uri))
  assert "examples" in loaded.signatures["serving_default"].structured_input_signature[1]


def test_missing_model_is_a_clear_error(tmp_path):
  with pytest.raises(model_io.ModelError, match="no SavedModel at .*Format-Serving"):
    model_io.load_keras_model(str(tmp_path))


def test_blessing_is_what_the_stock_pusher_reads(tmp_path):
  from tfx.components.util import model_utils
  model = standard_artifacts.Model()
  model.uri = str(tmp_path / "model")
  model.id = 7
  blessing = standard_artifacts.ModelBlessing()
  blessing.uri = str(tmp_path / "blessing")
  blessing_lib.write_blessing(blessing, False, model, {"reasons": ["ratio 3.0 < 10.0"]})
  assert not model_utils.is_model_blessed(blessing)
  assert (tmp_path / "blessing" / "NOT_BLESSED").exists()
  assert blessing.get_int_custom_property("current_model_id") == 7
  assert blessing_lib.read_verdict(blessing)["reasons"] == ["ratio 3.0 < 10.0"]
  blessing_lib.write_blessing(blessing, True, model)
  assert model_utils.is_model_blessed(blessing) and blessing_lib.is_blessed(blessing)


def _save(model, tmp_path):
  uri = str(tmp_path / "m")
  model_io.save_keras_model(model, model_io.serving_dir(uri))
  return uri


def test_lambda_layers_are_refused_unless_allowed(tmp_path, monkeypatch):
  import tensorflow as tf
  keras = model_io.keras()
  inputs = keras.Input((4,), name="x")
  outputs = keras.layers.Dense(2)(keras.layers.Lambda(lambda t: t * 2.0, name="double")(inputs))
  uri = _save(keras.Model(inputs, outputs), tmp_path)
  assert model_io.code_layers(model_io.serving_dir(uri)) == ["double"]
  with pytest.raises(model_io.ModelError, match=r"Lambda layer\(s\) \['double'\].*BONSAI_ALLOW_UNSAFE_DESERIALIZATION=1"):
    model_io.load_keras_model(uri)
  monkeypatch.setenv(model_io.UNSAFE_ENV, "1")
  assert model_io.load_keras_model(uri).get_layer("double") is not None


def test_models_without_code_layers_load(small_dense_model):
  assert model_io.code_layers(model_io.serving_dir(small_dense_model.uri)) == []


def test_corrupt_savedmodel_is_a_clear_error(tmp_path):
  serving = tmp_path / "m" / "Format-Serving"
  serving.mkdir(parents=True)
  (serving / "saved_model.pb").write_bytes(b"not a saved model")
  with pytest.raises(model_io.ModelError, match=r"cannot load the Keras model at .*Format-Serving"):
    model_io.load_keras_model(str(tmp_path / "m"))


def test_examples_that_do_not_match_the_schema_are_named(tmp_path, digits_schema):
  import tensorflow as tf
  from tfx.types import artifact_utils
  from tfx_bonsai.pipeline.models import digits
  examples = standard_artifacts.Examples()
  examples.uri = str(tmp_path / "short")
  examples.split_names = artifact_utils.encode_split_names(["train"])
  split_dir = tmp_path / "short" / "Split-train"
  split_dir.mkdir(parents=True)
  with tf.io.TFRecordWriter(str(split_dir / "data.gz"), options="GZIP") as writer:
    for _ in range(3):  # 700 pixels where the schema says 784
      writer.write(digits.to_example(np.zeros(700, np.float32), 1).SerializeToString())
  with pytest.raises(examples_lib.DataError, match=r"split 'train' .* do not match the schema: .*image"):
    examples_lib.read_sample(examples, "train", examples_lib.load_schema(digits_schema), "label", 3)
