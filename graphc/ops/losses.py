"""Neural-network composites: softmax, log_softmax, softmax_cross_entropy, mse.

Input: nothing (imported for its side effect). Output: registered composite OpDefs; each keeps a
cheap, stable bprop through autodiff and is decomposed into primitives afterwards. softmax and
log_softmax have op-API functions here (axis defaults to -1).
"""
from __future__ import annotations

import numpy as np

from graphc.builder import Tensor
from graphc.errors import GraphcError, ShapeError
from graphc.ops import api as F
from graphc.ops.api import _apply, _axis
from graphc.ops.registry import REQUIRED, OpDef, register
from graphc.types import FLOAT_DTYPES, TensorType


def _float_axis_rule(types, attrs):
    (x,) = types
    if x.dtype not in FLOAT_DTYPES:
        raise ShapeError(f"expected a float tensor, got {x}")
    if not 0 <= attrs["axis"] < x.rank:
        raise ShapeError(f"axis {attrs['axis']} out of range for {x}")
    return [x]


def _np_log_softmax(x, axis):
    shifted = x - np.max(x, axis=axis, keepdims=True)
    with np.errstate(all="ignore"):
        return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def _log_softmax(x, axis):
    shifted = x - F.max(x, axis, keepdims=True)
    return shifted - F.log(F.sum(F.exp(shifted), axis, keepdims=True))


def _softmax(x, axis):
    e = F.exp(x - F.max(x, axis, keepdims=True))
    return e / F.sum(e, axis, keepdims=True)


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    return _apply("softmax", x, axis=_axis(axis, x, "softmax"))


register(OpDef(
    name="softmax", doc="exp(x) / sum(exp(x)) along axis, computed stably", kind="composite",
    infer=_float_axis_rule, reference=lambda x, axis: np.exp(_np_log_softmax(x, axis)),
    bprop=lambda x, y, g, axis: [y * (g - F.sum(g * y, axis, keepdims=True))],
    attrs={"axis": REQUIRED}, decompose=_softmax, onnx="Softmax", dsl=softmax))


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    return _apply("log_softmax", x, axis=_axis(axis, x, "log_softmax"))


register(OpDef(
    name="log_softmax", doc="x - logsumexp(x) along axis, computed stably", kind="composite",
    infer=_float_axis_rule, reference=_np_log_softmax,
    bprop=lambda x, y, g, axis: [g - F.exp(y) * F.sum(g, axis, keepdims=True)],
    attrs={"axis": REQUIRED}, decompose=_log_softmax, onnx="LogSoftmax", dsl=log_softmax))


def _sce_rule(types, attrs):
    logits, labels = types
    if logits.rank != 2 or logits.dtype not in FLOAT_DTYPES:
        raise ShapeError(f"softmax_cross_entropy: logits must be a float [batch, classes] "
                         f"tensor, got {logits}")
    if labels.shape != logits.shape[:1] or labels.dtype != "i64":
        raise ShapeError(f"softmax_cross_entropy: labels must be i64[{logits.shape[0]}] class "
                         f"indices, got {labels}")
    return [TensorType((), logits.dtype)]


def _check_labels(types, arrays):
    classes, labels = types[0].shape[1], arrays[1]
    if labels is None:
        return
    if labels.dtype.kind == "i" and labels.size and \
            labels.view(f"u{labels.dtype.itemsize}").max() < classes:
        return  # one reduction (a negative label is a huge unsigned one): runs every step
    bad = (labels < 0) | (labels >= classes)
    if np.any(bad):
        i = int(np.argmax(bad))
        raise GraphcError(f"softmax_cross_entropy: label {int(labels[i])} at index {i} is "
                          f"outside [0, {classes})")


def _np_sce(logits, labels):
    picked = np.take_along_axis(_np_log_softmax(logits, 1), labels[:, None], axis=1)
    return np.asarray(-np.mean(picked), dtype=logits.dtype)


def one_hot(labels, classes: int, dtype: str):
    """[N] i64 labels -> [N, classes] one-hot of `dtype`, built from primitives."""
    cols = labels.builder.apply("iota", [], shape=(1, classes), axis=1, dtype="i64")
    return F.cast(F.equal(F.reshape(labels, (labels.shape[0], 1)), cols), dtype)


def _sce_bprop(logits, labels, y, g):
    n, classes = logits.shape
    target = one_hot(labels, classes, logits.dtype)
    return [(F.softmax(logits, 1) - target) * (g / n), None]


def _sce_decompose(logits, labels):
    n, classes = logits.shape
    picked = F.log_softmax(logits, 1) * one_hot(labels, classes, logits.dtype)
    return -F.sum(picked) / n


register(OpDef(
    name="softmax_cross_entropy", doc="mean over the batch of -log_softmax(logits)[label]",
    kind="composite", infer=_sce_rule, reference=_np_sce, bprop=_sce_bprop, arity=2,
    decompose=_sce_decompose, check_inputs=_check_labels))


def _mse_rule(types, attrs):
    pred, target = types
    if pred != target or pred.dtype not in FLOAT_DTYPES:
        raise ShapeError(f"mse: prediction and target must have the same float type, got "
                         f"{pred} and {target}")
    return [TensorType((), pred.dtype)]


def _mse_bprop(pred, target, y, g):
    d = (pred - target) * (g * (2.0 / pred.type.size))
    return [d, -d]


register(OpDef(
    name="mse", doc="mean over all elements of (pred - target) ** 2", kind="composite",
    infer=_mse_rule, reference=lambda p, t: np.asarray(np.mean((p - t) ** 2), dtype=p.dtype),
    bprop=_mse_bprop, arity=2, decompose=lambda p, t: F.mean((p - t) * (p - t))))
