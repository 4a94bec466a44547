"""Normalisation, dropout and losses: composites with closed-form bprops, and a random mask.

Input: nothing (imported for its side effect). Output: registered OpDefs:
  batch_norm(x, scale, bias, mean, var; epsilon=1e-5)       ONNX BatchNormalization, inference
  batch_norm_training(x, scale, bias; epsilon=1e-5)         normalised by the batch statistics
      (running statistics are graph state updated by the layer helper, see ops/api_nn.py)
  layer_norm(x, scale, bias; axis=-1, epsilon=1e-5)         ONNX LayerNormalization (Y only)
  lrn(x; size, alpha=1e-4, beta=0.75, bias=1.0)             ONNX LRN across channels
  dropout_mask(step: i64[]; shape, ratio, seed=0) -> bool   keep-mask from a counter-based hash
  nll_loss(input, target: i64, weight; reduction="mean", ignore_index=None)
                                                        ONNX NegativeLogLikelihoodLoss
Channel axis is 1 (NCHW or [N, C, ...]); statistics are biased (divide by the count), as ONNX.
layer_norm and nll_loss have op-API functions here; the others' are derived from their records.
"""
from __future__ import annotations

import math

import numpy as np

from graphc.builder import Tensor
from graphc.errors import GraphcError, ShapeError
from graphc.ops import api as F
from graphc.ops.api import _apply, _axis
from graphc.ops.registry import NOT_DIFFERENTIABLE, REQUIRED, OpDef, register
from graphc.ops.scalar import NumpyEmitter
from graphc.types import FLOAT_DTYPES, TensorType


def _float(types, op: str) -> str:
    if len({t.dtype for t in types}) != 1 or types[0].dtype not in FLOAT_DTYPES:
        raise ShapeError(f"{op}: operands must share one float dtype, got "
                         f"{', '.join(str(t) for t in types)}")
    return types[0].dtype


def _ch(v, rank: int):
    """A per-channel [C] tensor shaped to broadcast against [N, C, ...] of `rank`."""
    return F.reshape(v, (v.shape[0],) + (1,) * (rank - 2))


def _np_ch(v, rank: int):
    return v.reshape((v.shape[0],) + (1,) * (rank - 2))


def _stat_axes(x) -> tuple[int, ...]:
    return (0,) + tuple(range(2, x.ndim))


# --- batch normalisation --------------------------------------------------------------------
def _bn_rule(types, attrs):
    x, *per_channel = types
    _float(types, "batch_norm")
    if x.rank < 2 or any(t.shape != (x.shape[1],) for t in per_channel):
        raise ShapeError(f"batch_norm: x must be [N, C, ...] and scale/bias/mean/var [C], got "
                         f"{', '.join(str(t) for t in types)}")
    return [x]


def _np_bn(x, scale, bias, mean, var, epsilon):
    r = x.ndim
    inv = 1 / np.sqrt(_np_ch(var, r) + x.dtype.type(epsilon))
    return ((x - _np_ch(mean, r)) * inv * _np_ch(scale, r) + _np_ch(bias, r)).astype(x.dtype)


def _bn_decompose(x, scale, bias, mean, var, epsilon):
    r = x.ndim
    k = scale / F.sqrt(var + epsilon)
    return x * _ch(k, r) + _ch(bias - mean * k, r)


def _bn_bprop(x, scale, bias, mean, var, y, g, epsilon):
    r, axes = x.ndim, _stat_axes(x)
    inv = 1 / F.sqrt(var + epsilon)
    centred = x - _ch(mean, r)
    gsum, gc_sum = F.sum(g, axes), F.sum(g * centred, axes)
    return [g * _ch(scale * inv, r), gc_sum * inv, gsum, -(gsum * scale * inv),
            gc_sum * scale * (-0.5) * inv * inv * inv]


register(OpDef(
    name="batch_norm", doc="ONNX BatchNormalization with given (running) mean and variance",
    kind="composite", infer=_bn_rule, reference=_np_bn, bprop=_bn_bprop, arity=5,
    attrs={"epsilon": 1e-5}, decompose=_bn_decompose, onnx="BatchNormalization"))


def _np_bn_train(x, scale, bias, epsilon):
    axes = (0,) + tuple(range(2, x.ndim))
    mean, var = x.mean(axis=axes), x.var(axis=axes)
    return _np_bn(x, scale, bias, mean, var, epsilon)


def _normalised(x, axes, epsilon):
    mean = F.mean(x, axes, keepdims=True)
    d = x - mean
    inv = 1 / F.sqrt(F.mean(d * d, axes, keepdims=True) + epsilon)
    return d * inv, inv


def _bn_train_decompose(x, scale, bias, epsilon):
    xhat, _ = _normalised(x, _stat_axes(x), epsilon)
    return xhat * _ch(scale, x.ndim) + _ch(bias, x.ndim)


def _norm_input_grad(dxhat, xhat, inv, axes):
    """d x of xhat = (x - mean) * inv with statistics over `axes`."""
    return inv * (dxhat - F.mean(dxhat, axes, keepdims=True)
                  - xhat * F.mean(dxhat * xhat, axes, keepdims=True))


def _bn_train_bprop(x, scale, bias, y, g, epsilon):
    axes = _stat_axes(x)
    xhat, inv = _normalised(x, axes, epsilon)
    dx = _norm_input_grad(g * _ch(scale, x.ndim), xhat, inv, axes)
    return [dx, F.sum(g * xhat, axes), F.sum(g, axes)]


register(OpDef(
    name="batch_norm_training", doc="batch normalisation by the batch's own statistics",
    kind="composite", infer=_bn_rule, reference=_np_bn_train, bprop=_bn_train_bprop, arity=3,
    attrs={"epsilon": 1e-5}, decompose=_bn_train_decompose))


# --- layer normalisation --------------------------------------------------------------------
def _ln_axes(x, axis: int) -> tuple[int, ...]:
    return tuple(range(axis % x.ndim, x.ndim))


def _ln_rule(types, attrs):
    x, scale, bias = types
    _float(types, "layer_norm")
    if not -x.rank <= attrs["axis"] < x.rank:
        raise ShapeError(f"layer_norm: axis {attrs['axis']} out of range for {x}")
    tail = x.shape[attrs["axis"] % x.rank:]
    for t in (scale, bias):
        if t.rank > len(tail) or any(d not in (1, n) for d, n in zip(t.shape[::-1], tail[::-1])):
            raise ShapeError(f"layer_norm: scale/bias {t} must broadcast to {tail}")
    return [x]


def _np_ln(x, scale, bias, axis, epsilon):
    axes = tuple(range(axis % x.ndim, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return ((x - mean) / np.sqrt(var + x.dtype.type(epsilon)) * scale + bias).astype(x.dtype)


def _ln_decompose(x, scale, bias, axis, epsilon):
    xhat, _ = _normalised(x, _ln_axes(x, axis), epsilon)
    return xhat * scale + bias


def _ln_bprop(x, scale, bias, y, g, axis, epsilon):
    axes = _ln_axes(x, axis)
    xhat, inv = _normalised(x, axes, epsilon)
    lead = tuple(range(axes[0]))
    return [_norm_input_grad(g * scale, xhat, inv, axes), F.sum(g * xhat, lead), F.sum(g, lead)]


def layer_norm(x: Tensor, scale, bias, axis: int = -1, epsilon: float = 1e-5) -> Tensor:
    """ONNX LayerNormalization over axes [axis, rank); scale/bias broadcast to them."""
    return _apply("layer_norm", x, scale, bias, axis=_axis(axis, x, "layer_norm"),
                  epsilon=float(epsilon))


register(OpDef(
    name="layer_norm", doc="ONNX LayerNormalization over axes [axis, rank)", kind="composite",
    infer=_ln_rule, reference=_np_ln, bprop=_ln_bprop, arity=3,
    attrs={"axis": -1, "epsilon": 1e-5}, decompose=_ln_decompose, dsl=layer_norm))


# --- local response normalisation -----------------------------------------------------------
def _lrn_window(size: int) -> tuple[int, int]:
    """Channels before and after c that its window covers (ONNX: floor and ceil of (size-1)/2)."""
    return (size - 1) // 2, size // 2


def _channel_window_sum(t, before: int, after: int):
    """s[:, c] = sum of t[:, c - before : c + after + 1] (zero outside), by pad and slices."""
    c = t.shape[1]
    p = F.pad(t, (0, before) + (0,) * (t.ndim - 2) + (0, after) + (0,) * (t.ndim - 2))
    parts = [F.slice(p, [k], [k + c], [1]) for k in range(before + after + 1)]
    return sum(parts[1:], parts[0])


def _lrn_rule(types, attrs):
    (x,) = types
    _float(types, "lrn")
    if x.rank < 3 or attrs["size"] < 1:
        raise ShapeError(f"lrn: x must be [N, C, d1, ...] and size >= 1, got {x}, size "
                         f"{attrs['size']}")
    return [x]


def _np_lrn(x, size, alpha, beta, bias):
    before, after = _lrn_window(size)
    sq = np.zeros_like(x)
    for c in range(x.shape[1]):
        lo, hi = max(0, c - before), min(x.shape[1], c + after + 1)
        sq[:, c] = (x[:, lo:hi] ** 2).sum(axis=1)
    return (x / (bias + alpha / size * sq) ** beta).astype(x.dtype)


def _lrn_scale(x, size, alpha, bias):
    return bias + (alpha / size) * _channel_window_sum(x * x, *_lrn_window(size))


def _lrn_bprop(x, y, g, size, alpha, beta, bias):
    s = _lrn_scale(x, size, alpha, bias)
    inner = g * x * (-beta) * F.pow(s, -beta - 1.0)
    before, after = _lrn_window(size)
    return [g * F.pow(s, -beta) + 2 * (alpha / size) * x * _channel_window_sum(inner, after, before)]


register(OpDef(
    name="lrn", doc="ONNX LRN: x / (bias + alpha/size * windowed sum of x^2) ** beta",
    kind="composite", infer=_lrn_rule, reference=_np_lrn, bprop=_lrn_bprop,
    attrs={"size": REQUIRED, "alpha": 1e-4, "beta": 0.75, "bias": 1.0},
    decompose=lambda x, size, alpha, beta, bias: x * F.pow(_lrn_scale(x, size, alpha, bias),
                                                           -beta), onnx="LRN"))


# --- dropout's random mask ------------------------------------------------------------------
def _i64(c: int) -> int:
    return c - 2**64 if c >= 2**63 else c


GOLDEN, SEED_MIX = _i64(0x9E3779B97F4A7C15), _i64(0xD1B54A32D192ED03)
MIX1, MIX2 = _i64(0xBF58476D1CE4E5B9), _i64(0x94D049BB133111EB)


def hash_uniform(e, step, index, seed: int):
    """A uniform [0, 1) f64 from (seed, step, element index): splitmix64's finaliser on
    step * golden + index + seed * constant, with wrapping i64 arithmetic."""
    z = e.add(e.add(e.mul(step, e.const(GOLDEN, step)), index), e.const(_i64(
        (seed * 0xD1B54A32D192ED03) % 2**64), step))
    z = e.mul(e.xor(z, e.shift_right(z, e.const(30, z))), e.const(MIX1, z))
    z = e.mul(e.xor(z, e.shift_right(z, e.const(27, z))), e.const(MIX2, z))
    z = e.xor(z, e.shift_right(z, e.const(31, z)))
    top = e.cast(e.shift_right(z, e.const(11, z)), "f64")
    return e.mul(top, e.const(2.0 ** -53, top))


def _mask_rule(types, attrs):
    (step,) = types
    if step != TensorType((), "i64") or not 0 <= attrs["ratio"] < 1:
        raise ShapeError(f"dropout_mask: needs an i64[] step counter and 0 <= ratio < 1, got "
                         f"{step} and ratio {attrs['ratio']}")
    return [TensorType(tuple(attrs["shape"]), "bool")]


def _flat_index(e, idx, shape, like):
    flat = e.const(0, like)
    for i, stride in zip(idx, [math.prod(shape[d + 1:]) for d in range(len(shape))]):
        flat = e.add(flat, e.mul(i, e.const(stride, i)))
    return flat


def _mask_index_map(at, e, idx, in_types, out_type, shape, ratio, seed):
    step = at(0, ())
    u = hash_uniform(e, step, _flat_index(e, idx, shape, step), seed)
    return e.ge(u, e.const(ratio, u))


def _mask_reference(step, shape, ratio, seed):
    idx = tuple(np.indices(shape)) if shape else ()
    e = NumpyEmitter()
    with np.errstate(all="ignore"):
        keep = _mask_index_map(lambda k, i: np.asarray(step), e, idx, [], None, shape, ratio, seed)
    return np.broadcast_to(keep, shape).copy()


register(OpDef(
    name="dropout_mask", doc="keep-mask (True with probability 1 - ratio) from a hash of "
    "(seed, step, element index)", kind="movement", infer=_mask_rule, reference=_mask_reference,
    bprop=NOT_DIFFERENTIABLE, attrs={"shape": REQUIRED, "ratio": REQUIRED, "seed": 0},
    index_map=_mask_index_map))


# --- negative log-likelihood ----------------------------------------------------------------
REDUCTIONS = ("mean", "sum", "none")


def _nll_rule(types, attrs):
    x, target, weight = types
    if x.rank < 2 or x.dtype not in FLOAT_DTYPES or weight != TensorType((x.shape[1],), x.dtype):
        raise ShapeError(f"nll_loss: input must be float [N, C, ...] and weight [C] of its dtype, "
                         f"got {x} and {weight}")
    if target.dtype != "i64" or target.shape != x.shape[:1] + x.shape[2:]:
        raise ShapeError(f"nll_loss: target must be i64{list(x.shape[:1] + x.shape[2:])}, got "
                         f"{target}")
    if attrs["reduction"] not in REDUCTIONS:
        raise ShapeError(f"nll_loss: reduction must be one of {REDUCTIONS}")
    return [TensorType(target.shape if attrs["reduction"] == "none" else (), x.dtype)]


_UNKNOWN = object()


def _check_target(types, arrays, ignore_index=_UNKNOWN, **attrs):
    """Targets in [0, C) or equal to ignore_index. A caller that does not pass the attributes
    gets the loose check (negative targets may be an ignore_index): the decomposition compares
    with one-hot columns, so an unchecked target only drops out, it never reads memory."""
    classes, target = types[0].shape[1], arrays[1]
    if target is None:
        return
    bad = (target >= classes) if ignore_index is _UNKNOWN else \
        ((target < 0) | (target >= classes)) & (target != ignore_index)
    if np.any(bad):
        at = [int(i) for i in np.unravel_index(int(np.argmax(bad)), bad.shape)]
        raise GraphcError(f"nll_loss: target {int(target[tuple(at)])} at {at} is outside "
                          f"[0, {classes}) and is not the ignore_index")


def _np_nll(x, target, weight, reduction, ignore_index):
    valid = target != ignore_index
    t = np.where(valid, target, 0)
    picked = np.take_along_axis(x, t[:, None], axis=1)[:, 0]
    w = weight[t] * valid
    loss = -picked * w
    if reduction == "none":
        return loss.astype(x.dtype)
    with np.errstate(all="ignore"):
        total = loss.sum() / (w.sum() if reduction == "mean" else 1)
    return np.asarray(total, x.dtype)


def _hot(x, target, ignore_index):
    """bool [N, C, ...]: class c is the (non-ignored) target."""
    shape = (x.shape[0], 1) + x.shape[2:]
    classes = x.builder.apply("iota", [], shape=(1, x.shape[1]) + (1,) * (x.ndim - 2), axis=1,
                              dtype="i64")
    t = F.reshape(target, shape)
    hot = F.equal(t, classes)
    return hot if ignore_index is None else F.logical_and(hot, F.not_equal(t, ignore_index))


def _nll_parts(x, target, weight, ignore_index):
    """(hot, per-element weight w[t] (0 where ignored), picked log-probability)."""
    hot = _hot(x, target, ignore_index)
    w = F.sum(F.where(hot, _per_class(weight, x.ndim), 0), 1)
    return hot, w, F.sum(F.where(hot, x, 0), 1)


def _per_class(weight, rank):
    return F.reshape(weight, (weight.shape[0],) + (1,) * (rank - 2))


def _nll_decompose(x, target, weight, reduction, ignore_index):
    _, w, picked = _nll_parts(x, target, weight, ignore_index)
    loss = -(picked * w)
    if reduction == "none":
        return loss
    return F.sum(loss) / F.sum(w) if reduction == "mean" else F.sum(loss)


def _nll_bprop(x, target, weight, y, g, reduction, ignore_index):
    hot, w, picked = _nll_parts(x, target, weight, ignore_index)
    shape = (x.shape[0], 1) + x.shape[2:]
    if reduction == "mean":
        total = F.sum(w)
        coef, dl = g / total, -picked - y  # d y / d w_n = (l_n - y) / W with l_n = -picked_n
    else:
        coef, dl = g, -picked
    dx = F.where(hot, -F.reshape(w * coef, shape), 0)
    dw_elem = F.reshape(dl * coef, shape)
    axes = (0,) + tuple(range(2, x.ndim))
    return [dx, None, F.sum(F.where(hot, dw_elem, 0), axes)]


def nll_loss(x: Tensor, target: Tensor, weight=None, reduction: str = "mean",
             ignore_index: int | None = None) -> Tensor:
    """ONNX NegativeLogLikelihoodLoss: x [N, C, ...] log-probabilities, target [N, ...] i64."""
    if weight is None:
        weight = F.constant(x.builder, np.ones(x.shape[1]), x.dtype)
    return _apply("nll_loss", x, target, weight, reduction=reduction,
                  ignore_index=None if ignore_index is None else int(ignore_index))


register(OpDef(
    name="nll_loss", doc="ONNX NegativeLogLikelihoodLoss (class axis 1, weights, ignore_index)",
    kind="composite", infer=_nll_rule, reference=_np_nll, bprop=_nll_bprop, arity=3,
    attrs={"reduction": "mean", "ignore_index": None}, decompose=_nll_decompose,
    check_inputs=_check_target, onnx="NegativeLogLikelihoodLoss", dsl=nll_loss))
