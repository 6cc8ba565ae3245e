"""After distillation: prune, quantise, export and serve a student, and measure what each step buys (lesson 06).

Three different steps, at three different stages:

* **pruning** removes weights. :func:`prune_magnitude` zeroes the smallest weights (``torch.nn.utils.prune``,
  made permanent): the tensors keep their shape, so dense kernels run as before, and only a compressed
  file gets smaller. :func:`prune_structured` removes whole hidden units, giving a smaller dense model.
* **quantisation** changes how the weights are stored and run: :func:`quantize_onnx_int8` stores
  them as int8 in an ONNX file (ONNX Runtime's dynamic quantisation), nothing is learned again.
* **export** (:func:`export_onnx`, :class:`OnnxModel`) runs the model outside Python's PyTorch, in
  ONNX Runtime; :func:`equivalence` says whether it still computes the same thing.

The module is generic: it knows the course's :class:`~course_lib.models.MLP` and no lesson's model. A model
with a structure of its own offers its surgery as methods, e.g. the router's ``NgramStudent.prune_dims``
(which :func:`prune_structured` calls) and ``NgramStudent.as_flat_module`` (a graph to export).

Why ONNX Runtime and not ``torch.ao.quantization.quantize_dynamic``: the installed PyTorch marks its
eager-mode quantisation as deprecated (it prints migration warnings), and a course must not teach an
API on its way out. ``torch.onnx.export`` (the ``torch.export``-based exporter) and ONNX Runtime are
maintained, run on any laptop CPU, and the int8 file is the one a service would ship.
"""
from __future__ import annotations

import contextlib
import copy
import gzip
import logging
import os
import tempfile
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

from . import cache, models, timing

#: Layer types whose ``weight`` :func:`prune_magnitude` prunes and :func:`sparsity` counts.
PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Embedding, nn.EmbeddingBag)
#: Default tolerance of :func:`equivalence` on logits (float32 kernels differ in summation order).
ATOL = 1e-4

PathLike = Union[str, os.PathLike]


# --- pruning ----------------------------------------------------------------------------------------
def _prunable(model: nn.Module) -> list[tuple[nn.Module, str]]:
    return [(module, "weight") for module in model.modules() if isinstance(module, PRUNABLE)]


def prune_magnitude(model: nn.Module, amount: float, permanent: bool = True) -> nn.Module:
    """A copy of ``model`` with the ``amount`` share of its smallest weights set to zero (introduced in lesson 06).

    Global L1 (magnitude) pruning over the weights of every Linear, Conv and Embedding layer
    (biases untouched): the threshold is one number for the whole model, so a layer with many
    small weights loses more of them.

    Args:
        amount: share of those weights to zero, in [0, 1).
        permanent: True folds the masks into the weights (:func:`make_permanent`). False leaves
            ``torch.nn.utils.prune``'s masks in place, so fine-tuning keeps pruned weights at zero;
            call :func:`make_permanent` after it. A model with masks in place stores *two* tensors per
            weight (``weight_orig`` and ``weight_mask``): its file is bigger, not smaller.
    Returns:
        The pruned copy; ``model`` itself is not changed. A model with none of those layers
        (:data:`PRUNABLE`) is a ``ValueError``.
    """
    if not 0.0 <= amount < 1.0:
        raise ValueError(f"amount must lie in [0, 1), got {amount!r}")
    if not _prunable(model):
        raise ValueError(f"{type(model).__name__} has no Linear, Conv or Embedding layer, so no weights to prune: "
                         "pass the model that holds them (a model wrapped in another object: pass the inner nn.Module)")
    pruned = copy.deepcopy(model)
    prune.global_unstructured(_prunable(pruned), pruning_method=prune.L1Unstructured, amount=float(amount))
    return make_permanent(pruned) if permanent else pruned


def make_permanent(model: nn.Module) -> nn.Module:
    """Fold every pruning mask of ``model`` into its weight and drop the mask (in place); returns ``model``."""
    for module in model.modules():
        names = [hook._tensor_name for hook in module._forward_pre_hooks.values()
                 if isinstance(hook, prune.BasePruningMethod)]
        for name in names:
            prune.remove(module, name)
    return model


def has_masks(model: nn.Module) -> bool:
    """True while ``model`` still carries ``torch.nn.utils.prune`` masks (``*_mask`` buffers)."""
    return any(name.endswith("_mask") for name, _ in model.named_buffers())


def sparsity(model: nn.Module) -> float:
    """Share of exactly-zero values among the weights of ``model``'s Linear, Conv and Embedding layers.

    Reads ``module.weight`` (the masked weight while masks are in place); biases are not counted.
    """
    zeros = total = 0
    for module, name in _prunable(model):
        weight = getattr(module, name)
        zeros += int((weight == 0).sum())
        total += weight.numel()
    if total == 0:
        raise ValueError("the model has no Linear, Conv or Embedding weights to count")
    return zeros / total


def _unit_scores(incoming: torch.Tensor, outgoing: torch.Tensor) -> torch.Tensor:
    """Importance of each hidden unit: L2 norm of its incoming weights times that of its outgoing ones.

    Both factors matter: after a ReLU, scaling a unit's incoming weights by c and its outgoing
    ones by 1/c computes the same function, and the product is the same for both.
    """
    return incoming.norm(dim=1) * outgoing.norm(dim=0)


def _keep(scores: torch.Tensor, amount: float) -> torch.Tensor:
    n_keep = max(1, int(round(len(scores) * (1.0 - amount))))
    return scores.topk(n_keep).indices.sort().values


def _sliced_linear(layer: nn.Linear, rows: Optional[torch.Tensor], cols: Optional[torch.Tensor]) -> nn.Linear:
    weight = layer.weight.detach()
    weight = weight if rows is None else weight[rows]
    weight = weight if cols is None else weight[:, cols]
    new = nn.Linear(weight.shape[1], weight.shape[0], bias=layer.bias is not None).to(weight.device)
    with torch.no_grad():
        new.weight.copy_(weight)
        if layer.bias is not None:
            new.bias.copy_(layer.bias.detach() if rows is None else layer.bias.detach()[rows])
    return new


@torch.no_grad()
def prune_structured(model: nn.Module, amount: float) -> nn.Module:
    """A smaller dense copy of ``model`` with the ``amount`` share of each hidden layer's units removed (lesson 06).

    Written out by hand because no maintained PyTorch tool shrinks the tensors (``prune.ln_structured``
    only zeroes whole rows and keeps the shape). Units are ranked by :func:`_unit_scores`; the rows
    of the kept units (and their biases) and the matching columns of the next layer are copied into
    new, smaller layers, so each kept unit computes exactly what it computed before.

    Supports :class:`~course_lib.models.MLP` (hidden units of every hidden layer) and any model that
    offers its own surgery as a ``prune_dims(amount)`` method, e.g. the router's ``NgramStudent``
    (dimensions of its embedding): the model knows its own structure, this module stays generic.
    Returns a new model; ``model`` is not changed.
    """
    if not 0.0 <= amount < 1.0:
        raise ValueError(f"amount must lie in [0, 1), got {amount!r}")
    if has_masks(model):
        raise ValueError("the model still has pruning masks: call make_permanent(model) first")
    if not isinstance(model, models.MLP):
        if callable(getattr(model, "prune_dims", None)):
            return model.prune_dims(amount)
        raise TypeError(f"prune_structured supports course_lib.models.MLP and models with a prune_dims(amount) "
                        f"method (e.g. the router's NgramStudent), got {type(model).__name__}")
    small = copy.deepcopy(model)
    linears = [block[0] for block in small.layers] + [small.head]
    cols = None
    for i, block in enumerate(small.layers):
        layer, following = linears[i], linears[i + 1]
        in_weight = layer.weight if cols is None else layer.weight[:, cols]
        out_weight = following.weight
        rows = _keep(_unit_scores(torch.cat([in_weight, layer.bias[:, None]], 1), out_weight), amount)
        block[0] = _sliced_linear(layer, rows, cols)
        cols = rows
    small.head = _sliced_linear(small.head, None, cols)
    small.hidden = tuple(block[0].out_features for block in small.layers)
    return small


# --- sizes ------------------------------------------------------------------------------------------
def file_size_bytes(path: PathLike, compressed: bool = False) -> int:
    """Bytes of the file at ``path``, or of its gzip-compressed copy (level 9) with ``compressed=True``.

    Zeros compress: unstructured sparsity shows in the compressed size while the plain file, whose
    dense tensors keep their shape, stays as big as before.
    """
    if not compressed:
        return os.path.getsize(path)
    data = Path(path).read_bytes()
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def model_size_bytes(model: nn.Module, compressed: bool = False) -> int:
    """Bytes of ``torch.save(model.state_dict())`` on disk (or gzip-compressed): what a service would load.

    Not a parameter count: the file holds every tensor of the state dict (buffers and pruning masks
    too), at its dtype's width, plus the container's overhead.
    """
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.pt"
        torch.save(model.state_dict(), path)
        return file_size_bytes(path, compressed)


# --- ONNX export, int8 quantisation, ONNX Runtime --------------------------------------------------
def _as_inputs(example_input) -> tuple:
    return tuple(example_input) if isinstance(example_input, (tuple, list)) else (example_input,)


def export_onnx(model: nn.Module, example_input, path: PathLike,
                input_names: Optional[Sequence[str]] = None) -> Path:
    """Export ``model`` to one self-contained ONNX file (weights inside) with a free first dimension.

    Uses ``torch.onnx.export(..., dynamo=True)``, the maintained ``torch.export``-based exporter.
    The file is written atomically and sealed (:func:`course_lib.cache.seal`: ``<path>.sha256`` beside
    it), so :class:`OnnxModel` refuses it if a byte changes afterwards.

    Args:
        example_input: a tensor or a tuple of tensors the model takes (any first dimension).
        input_names: names of the ONNX inputs (default ``x`` or ``input0``, ``input1``, ...).
    Returns:
        ``path``. The model is exported from a CPU copy in eval mode; ``model`` is not changed.
    """
    inputs = tuple(t.cpu() for t in _as_inputs(example_input))
    names = list(input_names or (["x"] if len(inputs) == 1 else [f"input{i}" for i in range(len(inputs))]))
    cpu_model = copy.deepcopy(model).cpu().eval()
    dynamic = tuple({0: torch.export.Dim.DYNAMIC} for _ in inputs)
    path = Path(path)
    with _quiet_logs():
        cache.atomic_write(path, lambda tmp: torch.onnx.export(
            cpu_model, inputs, str(tmp), input_names=names, output_names=["logits"], dynamic_shapes=dynamic,
            dynamo=True, external_data=False, verbose=False))
    cache.seal(path)
    return path


@contextlib.contextmanager
def _quiet_logs():
    """Hide INFO/WARNING log lines of the exporter and the quantiser (advice, not errors) for the block."""
    root = logging.getLogger()
    previous = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(previous)


def quantize_onnx_int8(src: PathLike, dst: PathLike, per_channel: bool = True,
                       op_types: Optional[Sequence[str]] = None) -> Path:
    """Write ``dst``: ``src`` with its weights stored as int8 (ONNX Runtime's dynamic quantisation).

    Weights of MatMul/Gemm and Gather (embedding tables) become int8 with a scale per tensor (or per
    output channel); activations are quantised on the fly at run time. Nothing is trained: the
    model computes what it learned, at lower precision. ``src`` must match its seal (written by
    :func:`export_onnx`); ``dst`` is written atomically and sealed in turn.

    Args:
        per_channel: one scale per output channel of each weight matrix (smaller rounding error).
        op_types: quantise only these ONNX operators, e.g. ``["Gather"]`` for a model whose bytes are all
            in an embedding table (its small last layer then keeps fp32 inputs and weights); default: all
            that ONNX Runtime can quantise.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    cache.verify_sealed(src)
    dst = Path(dst)
    with _quiet_logs():
        cache.atomic_write(dst, lambda tmp: quantize_dynamic(
            str(src), str(tmp), weight_type=QuantType.QInt8, per_channel=per_channel,
            op_types_to_quantize=list(op_types) if op_types else None))
    cache.seal(dst)
    return dst


class OnnxModel:
    """An ONNX file run by ONNX Runtime on the CPU (introduced in lesson 06).

    The file must match the seal :func:`export_onnx` or :func:`quantize_onnx_int8` wrote beside it:
    it is checked and read once, here, and every session is built from those bytes, so a changed byte
    is a :class:`course_lib.cache.CacheError` and the file is never re-read unverified.

    The model never chooses its threads: each call runs a session with the count of the
    enclosing ``timing.pinned_threads(n)`` block, or torch's thread count outside one (one
    session per count, built on first use and kept).

    Args:
        path: the ``.onnx`` file.
    """

    def __init__(self, path: PathLike):
        self.path = Path(path)
        cache.verify_sealed(self.path)
        self._model_bytes = self.path.read_bytes()
        self._sessions: dict = {}
        self.input_names = [i.name for i in self.session.get_inputs()]

    @property
    def session(self):
        """The ONNX Runtime session for the current thread count (see the class docstring)."""
        threads = timing.pinned_count() or torch.get_num_threads()
        if threads not in self._sessions:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            self._sessions[threads] = ort.InferenceSession(self._model_bytes, options,
                                                           providers=["CPUExecutionProvider"])
        return self._sessions[threads]

    def run(self, *inputs) -> np.ndarray:
        """One call of the model on numpy arrays or CPU tensors; the first output as a numpy array."""
        feeds = {name: (x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x))
                 for name, x in zip(self.input_names, inputs)}
        return self.session.run(None, feeds)[0]

    def predict_logits(self, *inputs, batch_size: int = 1024) -> torch.Tensor:
        """Logits as a float32 CPU tensor; a single input is run in batches of ``batch_size`` rows."""
        if len(inputs) != 1:
            return torch.from_numpy(self.run(*inputs))
        x = inputs[0]
        if len(x) == 0:
            raise ValueError("predict_logits got an empty input (x has 0 rows)")
        return torch.from_numpy(np.concatenate([self.run(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]))


def equivalence(reference_logits, other_logits, atol: float = ATOL, rtol: float = 1e-4) -> dict:
    """Do two models compute the same thing? Compare their logits on the same inputs (introduced in lesson 06).

    Args:
        reference_logits, other_logits: (N, C) logits (tensors or arrays), e.g. PyTorch's and ONNX Runtime's.
        atol, rtol: the stated tolerance (as ``numpy.allclose``): an exported fp32 model should pass it;
            an int8 model will not, and its argmax agreement says what the precision cost.
    Returns:
        ``{"max_abs_diff", "within_tolerance", "argmax_agreement", "argmax_differences", "atol", "rtol"}``.
    """
    a = np.asarray(reference_logits.detach().cpu() if isinstance(reference_logits, torch.Tensor) else reference_logits,
                   dtype=np.float64)
    b = np.asarray(other_logits.detach().cpu() if isinstance(other_logits, torch.Tensor) else other_logits,
                   dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"expected two (N, C) arrays of the same shape, got {a.shape} and {b.shape}")
    same = a.argmax(axis=1) == b.argmax(axis=1)
    return {"max_abs_diff": float(np.abs(a - b).max()), "within_tolerance": bool(np.allclose(b, a, atol=atol, rtol=rtol)),
            "argmax_agreement": float(same.mean()), "argmax_differences": int((~same).sum()), "atol": atol, "rtol": rtol}


def pareto_front(costs: Sequence[float], scores: Sequence[float]) -> list[int]:
    """Indices of the models no other model beats: none is at least as cheap *and* at least as good, and better in one.

    Args:
        costs: lower is better (bytes, milliseconds); scores: higher is better (accuracy).
    Returns:
        The frontier's indices, cheapest first (introduced in lesson 06).
    A NaN or infinite cost or score is a ``ValueError``: NaN compares false with everything,
    so no model would beat it and it would always sit on the front.
    """
    costs, scores = np.asarray(costs, dtype=float), np.asarray(scores, dtype=float)
    if costs.shape != scores.shape or costs.ndim != 1:
        raise ValueError(f"costs and scores must be two 1-D sequences of the same length, got {costs.shape} and {scores.shape}")
    bad = np.flatnonzero(~(np.isfinite(costs) & np.isfinite(scores)))
    if len(bad):
        i = int(bad[0])
        raise ValueError(f"costs and scores must be finite numbers; model {i} has cost {costs[i]} and score {scores[i]}: "
                         "measure it again or leave it out")
    front = [i for i in range(len(costs))
             if not np.any((costs <= costs[i]) & (scores >= scores[i]) & ((costs < costs[i]) | (scores > scores[i])))]
    return sorted(front, key=lambda i: (costs[i], -scores[i]))


#: CPU features that decide whether int8 kernels beat fp32 ones (x86 names as /proc/cpuinfo spells them).
INT8_CPU_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "avx512bw", "avx2")


def cpu_int8_flags(cpuinfo: PathLike = "/proc/cpuinfo") -> dict:
    """Which of :data:`INT8_CPU_FLAGS` this CPU has, and its model name (introduced in lesson 06).

    Integer matrix kernels pay off with dot-product instructions for 8-bit integers (VNNI in
    AVX-512 or AVX, AMX); without them, int8 can be slower than fp32. Returns
    ``{"model": str, "flags": {flag: bool}}``, or ``{"model": "unknown", "flags": {}}`` where
    ``cpuinfo`` cannot be read (macOS, Windows): unknown, never guessed.
    """
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return {"model": "unknown", "flags": {}}
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    flags = set(fields.get("flags", "").split())
    return {"model": fields.get("model name", "unknown"), "flags": {flag: flag in flags for flag in INT8_CPU_FLAGS}}
