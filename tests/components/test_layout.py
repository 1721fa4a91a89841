"""Where a reader looks for a thing: one module each, no reaching into another component."""
import ast
import os

import pytest

COMPONENTS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "components")
NAMES = ("prune_trainer", "sparsity_validator", "tflite_converter", "compression_evaluator")


def _imports(path):
  tree = ast.parse(open(path).read())
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module:
      found.add(node.module)
      found.update(f"{node.module}.{a.name}" for a in node.names)
    elif isinstance(node, ast.Import):
      found.update(a.name for a in node.names)
  return found


@pytest.mark.parametrize("name", NAMES)
def test_a_component_imports_no_other_components_modules(name):
  """Shared code lives in components/common/ (e.g. the gate's dense float TFLite and gzip size)."""
  others = [f"tfx_bonsai.components.{other}" for other in NAMES if other != name]
  folder = os.path.join(COMPONENTS, name)
  for file in sorted(os.listdir(folder)):
    if file.endswith(".py"):
      reached = {i for i in _imports(os.path.join(folder, file))
                 if any(i == o or i.startswith(o + ".") for o in others)}
      assert not reached, f"{name}/{file} imports {sorted(reached)}"


@pytest.mark.parametrize("name", NAMES)
def test_settings_modules_import_neither_tensorflow_nor_tfx(name):
  imports = _imports(os.path.join(COMPONENTS, name, "settings.py"))
  heavy = {i for i in imports if i.split(".")[0] in ("tensorflow", "tfx", "tensorflow_model_analysis",
                                                      "tensorflow_model_optimization", "numpy")}
  assert not heavy
  ours = {i for i in imports if i.startswith("tfx_bonsai")} - {"tfx_bonsai.components.common"}
  assert all(i.startswith("tfx_bonsai.components.common.settings") for i in ours), ours


def test_the_gates_tfma_plumbing_is_its_own_module():
  executor = _imports(os.path.join(COMPONENTS, "compression_evaluator", "executor.py"))
  assert not any(i.startswith("tensorflow_model_analysis.extractors") for i in executor)
  assert any(i.startswith("tensorflow_model_analysis.extractors")
             for i in _imports(os.path.join(COMPONENTS, "compression_evaluator", "extractors.py")))
