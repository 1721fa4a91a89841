"""Measuring and checking the sparsity of a Keras model's weights (knows nothing of TFX).

Prunable kernels are what magnitude pruning (TFMOT's registry) zeroes: the `kernel`,
`recurrent_kernel` and `pointwise_kernel` weights of Dense/Conv/RNN/attention layers and
Embedding's `embeddings`; depthwise kernels, biases and BatchNormalization statistics are
left dense. The global figure therefore counts
kernels only unless asked otherwise: a fully zero bias would otherwise inflate it.
"""
import dataclasses
import re
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from tfx_bonsai.components.common import settings as settings_lib
from tfx_bonsai.components.sparsity_validator import settings

KERNEL = "kernel"
BIAS = "bias"
BATCHNORM = "batchnorm"
OTHER = "other"
_BATCHNORM_WEIGHTS = ("moving_mean", "moving_variance")
_PRUNABLE_WEIGHTS = ("embeddings",)    # prunable weights not named '*kernel'
_DENSE_KERNELS = ("depthwise_kernel",)  # kernels TFMOT never prunes (DepthwiseConv2D's)
_EPSILON = 1e-9  # float slack so that a figure exactly at the threshold passes


def _base_name(weight_name: str) -> str:
  """'block/dense/kernel:0' -> 'kernel'."""
  return re.sub(r":\d+$", "", weight_name).rsplit("/", 1)[-1]


def _layers(module) -> list:
  """Keras layers below `module` (duck-typed: anything with `weights`)."""
  return [m for m in module.submodules if hasattr(m, "weights")]


def _owners(model) -> Dict[int, Any]:
  """Maps id(weight) to the innermost layer that holds it (the model itself for its own)."""
  owners = {}
  for layer in [model] + _layers(model):
    inner = {id(w) for sub in _layers(layer) for w in sub.weights}
    for weight in layer.weights:
      if id(weight) not in inner:
        owners[id(weight)] = layer
  return owners


def _kind(weight_name: str, layer) -> str:
  base = _base_name(weight_name)
  if base in _PRUNABLE_WEIGHTS or (base.endswith("kernel") and base not in _DENSE_KERNELS):
    return KERNEL
  if "BatchNormalization" in type(layer).__name__ or base in _BATCHNORM_WEIGHTS:
    return BATCHNORM
  if base == "bias":
    return BIAS
  return OTHER


def tensor_table(model) -> List[Dict[str, Any]]:
  """One row per weight tensor of `model` (nested layers included).

  Rows: name, layer, kind ("kernel", "bias", "batchnorm", "other"), shape, total,
  zeros, sparsity (the fraction of exact zeros).
  """
  owners = _owners(model)
  rows = []
  for weight in model.weights:
    values = np.asarray(weight.numpy())
    layer = owners.get(id(weight), model)
    total = int(values.size)
    zeros = int(total - np.count_nonzero(values))
    rows.append({
        "name": weight.name,
        "layer": layer.name,
        "kind": _kind(weight.name, layer),
        "shape": [int(d) for d in values.shape],
        "total": total,
        "zeros": zeros,
        "sparsity": zeros / total if total else 0.0,
    })
  return rows


# TFLite tensor types that hold weights (schema TensorType values).
_TFLITE_WEIGHT_TYPES = {0: np.float32, 1: np.float16, 3: np.uint8, 9: np.int8}


def tflite_tensor_table(model_bytes: bytes) -> List[Dict[str, Any]]:
  """One row per weight tensor of rank >= 2 in a TFLite flatbuffer: the kernels as deployed.

  Read from the flatbuffer's buffers without running anything. A sparse-encoded tensor
  stores only some of its values; its zeros are the dense size minus the stored non-zeros.
  Quantized weights are symmetric (zero point 0), so a stored 0 is a pruned weight.
  Rows have the keys of `tensor_table` (kind "kernel", layer "tflite") plus `encoding`.
  """
  from tensorflow.lite.tools import flatbuffer_utils  # pylint: disable=g-import-not-at-top
  model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
  rows = []
  for subgraph in model.subgraphs:
    for tensor in subgraph.tensors:
      data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
      dtype = _TFLITE_WEIGHT_TYPES.get(tensor.type)
      if data is None or dtype is None or tensor.shape is None or len(tensor.shape) < 2:
        continue
      values = np.frombuffer(bytes(bytearray(data)), dtype=dtype)
      total = int(np.prod(tensor.shape))
      zeros = int(total - np.count_nonzero(values))
      name = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
      rows.append({"name": name, "layer": "tflite", "kind": KERNEL,
                   "shape": [int(d) for d in tensor.shape], "total": total, "zeros": zeros,
                   "sparsity": zeros / total if total else 0.0,
                   "encoding": "sparse" if tensor.sparsity is not None else "dense"})
  return rows


@dataclasses.dataclass(frozen=True)
class SparsityTargets:
  """What a model must reach.

  min_sparsity: global minimum, over prunable kernels (all tensors with include_all_tensors).
  per_layer: layer name -> minimum sparsity of that layer's kernel.
  tolerance: absolute slack subtracted from every minimum.
  m_by_n: "" or "M:N" (TFMOT's sparsity_m_by_n): every N consecutive kernel weights along
    the input-channel axis hold at least M zeros. Checked on the layers of `per_layer`,
    or on every prunable kernel when `per_layer` is empty.
  """
  min_sparsity: float = 0.85
  per_layer: Mapping[str, float] = dataclasses.field(default_factory=dict)
  tolerance: float = 0.01
  include_all_tensors: bool = False
  m_by_n: str = ""

  def __post_init__(self):
    """Checks the targets with SparsityValidator's settings (ValueError naming the field)."""
    if not isinstance(self.per_layer, Mapping):
      raise ValueError(f"per_layer must map layer names to minimum sparsities, got {self.per_layer!r}")
    self.as_settings().validate()

  def as_settings(self) -> settings.SparsityValidatorSettings:
    return settings.SparsityValidatorSettings(
        min_sparsity=self.min_sparsity, per_layer_min_sparsity=dict(self.per_layer),
        tolerance=self.tolerance, include_all_tensors=self.include_all_tensors,
        sparsity_m_by_n=self.m_by_n)

  @classmethod
  def from_settings(cls, chosen: settings.SparsityValidatorSettings) -> "SparsityTargets":
    return cls(min_sparsity=chosen.min_sparsity, per_layer=dict(chosen.per_layer_min_sparsity),
               tolerance=chosen.tolerance, include_all_tensors=chosen.include_all_tensors,
               m_by_n=chosen.sparsity_m_by_n)


@dataclasses.dataclass
class Report:
  """The outcome of `validate`: figures, one entry per check, and why it failed."""
  global_sparsity: float
  per_layer: Dict[str, float]
  checks: List[Dict[str, Any]]
  passed: bool
  reasons: List[str]
  targets: Dict[str, Any]
  deployed_sparsity: Optional[float] = None   # over the TFLite's kernels, when one was given

  def to_dict(self) -> Dict[str, Any]:
    return dataclasses.asdict(self)


def _m_by_n_rows(kernel: np.ndarray) -> np.ndarray:
  """TFMOT's layout for m_by_n (pruning_utils.weights_rearrange): one row per output
  position, the input channels along the row. Dense [in, out] -> [out, in]; Conv2D
  [h, w, in, out] -> [out*h*w, in]; other ranks by the same rule."""
  if kernel.ndim < 2:
    raise ValueError(f"m_by_n needs a kernel of rank >= 2, got shape {list(kernel.shape)}")
  return np.moveaxis(kernel, -1, 0).reshape(-1, kernel.shape[-2])


def _m_by_n_counts(kernel, m: int, n: int) -> Tuple[int, int]:
  """(violating groups, groups) of `kernel` under M:N structure."""
  if not 0 < m < n:
    raise ValueError(f"m_by_n must satisfy 0 < m < n, got m={m}, n={n}")
  rows = _m_by_n_rows(np.asarray(kernel))
  width = -(-rows.shape[1] // n) * n
  padded = np.zeros((rows.shape[0], width), dtype=bool)
  padded[:, :rows.shape[1]] = rows != 0
  nonzeros = padded.reshape(rows.shape[0], -1, n).sum(axis=-1)
  return int(np.sum(nonzeros > n - m)), int(nonzeros.size)


def check_m_by_n(kernel, m: int, n: int) -> float:
  """Fraction of groups violating M:N structure (TFMOT's sparsity_m_by_n=(m, n)).

  Groups are n consecutive weights along the input-channel axis (the last group of a
  row may be shorter); each may hold at most n - m non-zeros. Returns 0.0 for a kernel
  pruned with TFMOT's sparsity_m_by_n=(m, n).
  """
  violating, groups = _m_by_n_counts(kernel, m, n)
  return violating / groups if groups else 0.0


def _check(name: str, measured: float, threshold: float, tolerance: float) -> Dict[str, Any]:
  return {"name": name, "measured": measured, "threshold": threshold, "tolerance": tolerance,
          "passed": measured + _EPSILON >= threshold - tolerance}


def validate(model, targets: SparsityTargets,
             table: Optional[List[Dict[str, Any]]] = None,
             tflite_table: Optional[List[Dict[str, Any]]] = None,
             pruned_sparsity: Optional[float] = None) -> Report:
  """Checks `model` against `targets`; a failed check is reported, never raised.

  Raises ValueError only when `targets.per_layer` names a layer without a prunable kernel.
  `table` is `tensor_table(model)`, when already computed. With `tflite_table`
  (`tflite_tensor_table` of the model's conversion), the deployed kernels must reach
  `min_sparsity` too: zeros lost in quantization-aware training or conversion fail here,
  said so only when the TFLite holds fewer zeros than the Keras kernels or than
  `pruned_sparsity` (what pruning reached, before any later stage).
  """
  table = tensor_table(model) if table is None else table
  kernels = [r for r in table if r["kind"] == KERNEL]
  per_layer: Dict[str, float] = {}
  for layer in dict.fromkeys(r["layer"] for r in kernels):
    rows = [r for r in kernels if r["layer"] == layer]
    total = sum(r["total"] for r in rows)
    per_layer[layer] = sum(r["zeros"] for r in rows) / total if total else 0.0
  unknown = [name for name in targets.per_layer if name not in per_layer]
  if unknown:
    raise ValueError(f"per_layer names {unknown}, which have no prunable kernel in the model; "
                     f"layers with kernels are {sorted(per_layer)}")

  scope = table if targets.include_all_tensors else kernels
  total = sum(r["total"] for r in scope)
  global_sparsity = sum(r["zeros"] for r in scope) / total if total else 0.0
  what = "global sparsity (all tensors)" if targets.include_all_tensors else "global kernel sparsity"
  tol = targets.tolerance
  checks, reasons = [], []

  if not kernels:
    checks.append({"name": "prunable_kernels", "measured": 0.0, "threshold": 1.0,
                   "tolerance": 0.0, "passed": False})
    reasons.append("the model has no prunable kernels (no Dense/Conv '*kernel' weights), "
                   "so there is no pruned sparsity to validate")

  check = _check("global_sparsity", global_sparsity, targets.min_sparsity, tol)
  checks.append(check)
  if not check["passed"]:
    reasons.append(f"{what} {global_sparsity:.3f} < target {targets.min_sparsity:.3f} "
                   f"- tolerance {tol:.3f}")

  for layer, minimum in targets.per_layer.items():
    check = _check(f"layer_sparsity/{layer}", per_layer[layer], float(minimum), tol)
    checks.append(check)
    if not check["passed"]:
      reasons.append(f"layer '{layer}' kernel sparsity {per_layer[layer]:.3f} < target "
                     f"{float(minimum):.3f} - tolerance {tol:.3f}")

  deployed = None
  if tflite_table is not None:
    total = sum(r["total"] for r in tflite_table)
    deployed = sum(r["zeros"] for r in tflite_table) / total if total else 0.0
    check = _check("deployed_sparsity", deployed, targets.min_sparsity, tol)
    checks.append(check)
    if not check["passed"]:
      kernel_total = sum(r["total"] for r in kernels)
      keras_sparsity = sum(r["zeros"] for r in kernels) / kernel_total if kernel_total else 0.0
      reached = max(keras_sparsity, pruned_sparsity or 0.0)
      why = (f"zeros were lost after pruning: pruning reached {reached:.3f} "
             "(non-preserving quantization-aware training or clustering?)"
             if deployed + tol < reached else
             f"as sparse as the model was pruned ({reached:.3f}): the model itself is "
             "under target and its zeros were kept")
      reasons.append(f"the converted TFLite's kernel sparsity {deployed:.3f} < target "
                     f"{targets.min_sparsity:.3f} - tolerance {tol:.3f}, {why}")

  m_by_n = settings_lib.parse_m_by_n(targets.m_by_n) if targets.m_by_n else None
  if m_by_n:
    m, n = m_by_n
    pairs = [(w, r) for w, r in zip(model.weights, table) if r["kind"] == KERNEL]
    for layer in list(targets.per_layer) or list(per_layer):
      counts = [_m_by_n_counts(w.numpy(), m, n)
                for w, r in pairs if r["layer"] == layer and len(r["shape"]) >= 2]
      bad, groups = sum(c[0] for c in counts), sum(c[1] for c in counts)
      if not groups:
        continue
      check = _check(f"m_by_n/{layer}", 1.0 - bad / groups, 1.0, 0.0)
      checks.append(check)
      if not check["passed"]:
        reasons.append(f"layer '{layer}' kernel breaks {m}:{n} structure: {bad} of {groups} "
                       f"groups of {n} input channels hold more than {n - m} non-zeros")

  return Report(global_sparsity=global_sparsity, per_layer=per_layer, checks=checks,
                passed=bool(kernels) and all(c["passed"] for c in checks), reasons=reasons,
                targets=dataclasses.asdict(targets) | {"per_layer": dict(targets.per_layer)},
                deployed_sparsity=deployed)


def format_table(table: List[Dict[str, Any]]) -> str:
  """The per-tensor table as aligned text, for logs."""
  width = max([len(r["name"]) for r in table] + [6])
  lines = [f"{'tensor':<{width}}  {'kind':<9}  {'total':>9}  {'zeros':>9}  pruned"]
  lines += [f"{r['name']:<{width}}  {r['kind']:<9}  {r['total']:>9}  {r['zeros']:>9}  "
            f"{100 * r['sparsity']:6.2f}%" for r in table]
  return "\n".join(lines)
