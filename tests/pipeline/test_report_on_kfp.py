"""Why the report is a file beside the blessing on KFP v2 / Vertex, not a console visualisation.

The consoles draw HTML / Markdown only for output artifacts of type `system.HTML` /
`system.Markdown`. TFX 1.21's KubeflowV2DagRunner writes a custom artifact type's
TYPE_NAME as its schema title, and its container entrypoint imports that title as a
`module.Class` path: a type named `system.HTML` compiles but cannot run.
"""
import pytest
import yaml
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx.orchestration.kubeflow.v2 import compiler_utils
from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils
from tfx.types import artifact


class _Html(artifact.Artifact):
  TYPE_NAME = "system.HTML"


def test_a_system_html_artifact_compiles_but_tfx_cannot_load_it_in_the_container():
  schema = compiler_utils.get_artifact_schema(_Html)
  assert yaml.safe_load(schema)["title"] == "system.HTML"  # what the console would draw
  runtime = pipeline_spec_pb2.RuntimeArtifact(
      uri="gs://bucket/report.html",
      type=pipeline_spec_pb2.ArtifactTypeSchema(instance_schema=schema))
  with pytest.raises(ImportError, match="system"):
    kubeflow_v2_entrypoint_utils._parse_raw_artifact(runtime, {})  # pylint: disable=protected-access
