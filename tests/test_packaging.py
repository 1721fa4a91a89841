"""The wheel installs one package, tfx_bonsai, beside a TFX project's own `pipeline`/`components`."""
import os
import subprocess
import sys
import textwrap
import zipfile

import pytest

from tfx_bonsai.pipeline import config as config_lib
from tfx_bonsai.pipeline.runners import kubeflow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
  out = tmp_path_factory.mktemp("wheel")
  subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                  "--no-build-isolation", "--wheel-dir", str(out), REPO],
                 check=True, cwd=str(out), capture_output=True, text=True)
  (path,) = out.glob("tfx_bonsai-*.whl")
  return path


def test_the_wheels_only_top_level_package_is_tfx_bonsai(wheel):
  with zipfile.ZipFile(wheel) as archive:
    names = archive.namelist()
    record = next(n for n in names if n.endswith(".dist-info/RECORD"))
    recorded = [line.split(",")[0] for line in archive.read(record).decode().splitlines()]
  tops = {name.split("/")[0] for name in names + recorded if not name.split("/")[0].endswith(".dist-info")}
  assert tops == {"tfx_bonsai"}
  assert "tfx_bonsai/pipeline/cli.py" in names
  assert "tfx_bonsai/components/prune_trainer/settings.py" in names
  assert not any(n.startswith("tests/") for n in names)


def test_installed_beside_a_project_with_its_own_pipeline_and_components(wheel, tmp_path):
  site = tmp_path / "site"
  subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
                  str(site), str(wheel)], check=True, capture_output=True, text=True)
  project = tmp_path / "project"  # as `tfx template copy` makes it: a top-level pipeline/
  for package, module in (("pipeline", "configs"), ("components", "model")):
    (project / package).mkdir(parents=True)
    (project / package / "__init__.py").write_text("")
    (project / package / f"{module}.py").write_text(f"OWNER = 'user {package}'\n")
  check = textwrap.dedent(f"""
      import pipeline.configs, components.model
      import tfx_bonsai
      from tfx_bonsai import PruneTrainer, CompressionEvaluator
      from tfx_bonsai.pipeline import cli
      from tfx_bonsai.components.prune_trainer import executor
      assert pipeline.configs.OWNER == 'user pipeline', pipeline.__file__
      assert components.model.OWNER == 'user components', components.__file__
      for module in (tfx_bonsai, cli, executor):
        assert module.__file__.startswith({str(site)!r}), module.__file__
      print('ok', PruneTrainer.__name__, CompressionEvaluator.__name__)
  """)
  # The project first on the path, as TFX's image puts it; run outside the repository,
  # whose own tfx_bonsai/ folder would otherwise shadow the installed one.
  env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(project), str(site)])}
  run = subprocess.run([sys.executable, "-c", check], cwd=str(project), env=env,
                       capture_output=True, text=True)
  assert run.returncode == 0, run.stderr[-3000:]
  assert run.stdout.strip().endswith("ok PruneTrainer CompressionEvaluator")
  cli_help = subprocess.run([sys.executable, "-m", "tfx_bonsai.pipeline.cli", "--help"],
                            cwd=str(project), env=env, capture_output=True, text=True)
  assert cli_help.returncode == 0, cli_help.stderr[-3000:]
  assert "compile" in cli_help.stdout and "submit" in cli_help.stdout


def test_compiled_executor_paths_name_tfx_bonsai(tmp_path):
  config = config_lib.load(os.path.join(REPO, "configs", "vertex.yaml"),
                           ["runner.project=p", "runner.image=example.invalid/bonsai:1"])
  job = kubeflow.compile_pipeline(config, str(tmp_path / "pipeline.json"))
  executors = job["pipelineSpec"]["deploymentSpec"]["executors"]
  paths = {}
  for name, executor in executors.items():
    args = executor.get("container", {}).get("args", [])
    if "--executor_class_path" in args:
      paths[name] = args[args.index("--executor_class_path") + 1]
  ours = {name: path for name, path in paths.items()
          if name.split("_executor")[0] in ("PruneTrainer", "SparsityValidator", "TFLiteConverter",
                                            "CompressionEvaluator", "Pusher")}
  assert len(ours) == 5, paths
  assert all(path.startswith("tfx_bonsai.components.") for path in ours.values()), ours
  assert not any(path.startswith(("components.", "pipeline.")) for path in paths.values()), paths


def test_the_locked_environment_passes_pip_check():
  run = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
  assert run.returncode == 0, run.stdout + run.stderr
