"""data.schema / create_pipeline(schema_path=...): ImportSchemaGen instead of StatisticsGen and
SchemaGen; the imported schema reaches every component that reads one. (The end-to-end run
with it is test_pipeline_e2e.py's: configs/digits.yaml imports the digits schema.)"""
import json
import os

import pytest

from tfx_bonsai.pipeline import config as config_lib
from tfx_bonsai.pipeline import pipeline as pipeline_lib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DIGITS = os.path.join(REPO, "configs", "digits.yaml")
SCHEMA = os.path.join(REPO, "configs", "digits.schema.pbtxt")
INFERRED = ["StatisticsGen", "SchemaGen"]


def _components(config, **kwargs):
  return {c.id: c for c in pipeline_lib.create_pipeline(config, **kwargs).components}


def _schema_producer(component):
  return component.inputs["schema"].producer_component_id


def test_schema_option_imports_the_schema_and_leaves_out_statistics():
  components = _components(config_lib.load(DIGITS, [f"data.schema={SCHEMA}"]))
  assert "ImportSchemaGen" in components and not set(INFERRED) & set(components)
  imported = components["ImportSchemaGen"].exec_properties["schema_file"]
  assert open(imported, "rb").read() == open(SCHEMA, "rb").read()
  for consumer in ("Trainer", "PruneTrainer", "TFLiteConverter"):
    assert _schema_producer(components[consumer]) == "ImportSchemaGen"


def test_default_still_infers_the_schema():
  components = _components(config_lib.load(DIGITS, ["data.schema="]))
  assert set(INFERRED) <= set(components) and "ImportSchemaGen" not in components
  assert _schema_producer(components["Trainer"]) == "SchemaGen"


def test_schema_path_argument_overrides_the_config():
  config = config_lib.load(DIGITS, ["data.schema="])
  assert "ImportSchemaGen" in _components(config, schema_path=SCHEMA)
  inferred = _components(config_lib.load(DIGITS), schema_path="")
  assert set(INFERRED) <= set(inferred)


def test_a_bad_schema_path_argument_is_refused_naming_it(tmp_path):
  with pytest.raises(config_lib.ConfigError, match=r"schema_path: no such file"):
    _components(config_lib.load(DIGITS), schema_path=str(tmp_path / "absent.pbtxt"))


def test_imported_schema_on_vertex_from_a_bucket_takes_resources():
  config = config_lib.load(os.path.join(REPO, "configs", "vertex.yaml"),
                           ["data.schema=gs://YOUR_BUCKET/bonsai/schema.pbtxt",
                            "runner.resources={ImportSchemaGen: {cpu: 1}}"])
  component = _components(config)["ImportSchemaGen"]
  assert component.exec_properties["schema_file"] == "gs://YOUR_BUCKET/bonsai/schema.pbtxt"
  assert component.platform_config.cpu_limit == 1


def test_compiled_for_vertex_with_the_schema_from_a_bucket(tmp_path):
  from tfx_bonsai.pipeline.runners import kubeflow
  config = config_lib.load(os.path.join(REPO, "configs", "vertex.yaml"), [
      "runner.project=p", "runner.image=us-central1-docker.pkg.dev/p/bonsai/tfx-bonsai:0.2.0",
      "data.schema=gs://YOUR_BUCKET/bonsai/schema.pbtxt"])
  job = kubeflow.compile_pipeline(config, str(tmp_path / "pipeline.json"))
  tasks = set(job["pipelineSpec"]["root"]["dag"]["tasks"])
  assert "ImportSchemaGen" in tasks and not set(INFERRED) & tasks
  assert "gs://YOUR_BUCKET/bonsai/schema.pbtxt" in json.dumps(job)


def test_an_edited_schema_gets_a_new_path_so_the_cache_cannot_serve_the_old_one(tmp_path):
  """ImportSchemaGen's cache key is the path: the pipeline imports a copy named by content."""
  schema = tmp_path / "schema.pbtxt"
  schema.write_bytes(open(SCHEMA, "rb").read())
  config = config_lib.load(DIGITS, [f"data.schema={schema}",
                                    f"pipeline_root={tmp_path / 'root'}"])
  first = _components(config)["ImportSchemaGen"].exec_properties["schema_file"]
  assert first.startswith(str(tmp_path / "root" / "_schemas"))
  assert _components(config)["ImportSchemaGen"].exec_properties["schema_file"] == first
  schema.write_text(schema.read_text() + "\n# edited\n")
  second = _components(config)["ImportSchemaGen"].exec_properties["schema_file"]
  assert second != first and open(second).read().endswith("# edited\n")
  assert open(first).read() == open(SCHEMA).read()
