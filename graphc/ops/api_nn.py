"""DSL functions for the CNN/transformer ops: `gc.gelu(x)`, `gc.conv2d(x, w, b)`, `gc.slice(...)`.

Input: Tensors from a GraphBuilder (and Python scalars). Output: new Tensors; each call adds
nodes through the op registry (ops/activations.py, shape.py, conv.py, norm.py). Shape helpers
with no op of their own (squeeze, unsqueeze, flatten, expand, split) are reshapes or slices;
reductions such as reduce_l2 or log_sum_exp are compositions. Layer helpers that own state
(batch_norm's running statistics, dropout's step counter) register their updates with the builder.
"""
from __future__ import annotations

import builtins
import itertools
import math
from collections.abc import Sequence

import numpy as np

from graphc.builder import Tensor
from graphc.ops import api as F
from graphc.ops.api import _apply, _axes, _axis, _fail


# --- elementwise -----------------------------------------------------------------------------
def abs(x): return _apply("abs", x)
def sign(x): return _apply("sign", x)
def floor(x): return _apply("floor", x)
def ceil(x): return _apply("ceil", x)
def round(x): return _apply("round", x)
def reciprocal(x): return _apply("reciprocal", x)
def erf(x): return _apply("erf", x)
def is_nan(x): return _apply("is_nan", x)
def is_inf(x): return _apply("is_inf", x)
def leaky_relu(x, alpha: float = 0.01): return _apply("leaky_relu", x, alpha=float(alpha))
def elu(x, alpha: float = 1.0): return _apply("elu", x, alpha=float(alpha))
def softplus(x): return _apply("softplus", x)
def hard_swish(x): return _apply("hard_swish", x)
def logical_and(a, b): return _apply("logical_and", a, b)
def logical_or(a, b): return _apply("logical_or", a, b)
def logical_xor(a, b): return _apply("logical_xor", a, b)
def logical_not(x): return _apply("logical_not", x)


def selu(x, alpha: float = 1.67326319217681884765625, gamma: float = 1.05070102214813232421875):
    return _apply("selu", x, alpha=float(alpha), gamma=float(gamma))


def hard_sigmoid(x, alpha: float = 0.2, beta: float = 0.5):
    return _apply("hard_sigmoid", x, alpha=float(alpha), beta=float(beta))


def gelu(x, approximate: str = "none"):
    """0.5 x (1 + erf(x / sqrt 2)); approximate="tanh" for the tanh form."""
    return _apply("gelu", x, approximate=approximate)


def clip(x, min=None, max=None):
    """ONNX Clip: bounds are scalars or tensors; a missing bound is +-inf (int range for i64)."""
    if x.type.is_float:
        lo, hi = -math.inf, math.inf
    else:
        info = np.iinfo(x.type.np_dtype) if x.dtype != "bool" else None
        lo, hi = (info.min, info.max) if info is not None else (False, True)
    return _apply("clip", x, lo if min is None else min, hi if max is None else max)


def prelu(x, slope):
    """x if x >= 0 else slope * x; slope broadcasts to x (ONNX PRelu)."""
    return _apply("prelu", x, slope)


# --- movement ----------------------------------------------------------------------------------
def slice(x: Tensor, starts: Sequence[int], ends: Sequence[int], axes: Sequence[int] | None = None,
          steps: Sequence[int] | None = None) -> Tensor:
    """ONNX Slice (negative indices count from the end; negative steps walk backwards)."""
    return _apply("slice", x, starts=tuple(starts), ends=tuple(ends),
                  axes=None if axes is None else tuple(axes),
                  steps=None if steps is None else tuple(steps))


def unslice(g: Tensor, shape: Sequence[int], starts: Sequence[int],
            steps: Sequence[int]) -> Tensor:
    """Zeros of `shape` with g at positions start + i * step (the adjoint of slice)."""
    return _apply("unslice", g, shape=tuple(shape), starts=tuple(starts), steps=tuple(steps))


def pad(x: Tensor, pads: Sequence[int], mode: str = "constant", value: float = 0.0) -> Tensor:
    """ONNX Pad: `pads` = (begin of each axis..., end of each axis...)."""
    return _apply("pad", x, pads=tuple(int(p) for p in pads), mode=mode, value=value)


def concat(xs: Sequence[Tensor], axis: int = 0) -> Tensor:
    return _apply("concat", *xs, axis=_axis(axis, xs[0], "concat"))


def gather(data: Tensor, indices: Tensor, axis: int = 0) -> Tensor:
    """ONNX Gather (embedding lookup for axis 0); indices are i64, negatives wrap."""
    return _apply("gather", data, indices, axis=_axis(axis, data, "gather"))


def split(x: Tensor, sizes: Sequence[int] | int, axis: int = 0) -> tuple[Tensor, ...]:
    """ONNX Split as slices: `sizes` per part, or a number of equal parts."""
    axis = _axis(axis, x, "split")
    if isinstance(sizes, int):
        if x.shape[axis] % sizes:
            _fail(f"cannot split {x.shape[axis]} into {sizes} equal parts", x, "split")
        sizes = [x.shape[axis] // sizes] * sizes
    if builtins.sum(sizes) != x.shape[axis]:
        _fail(f"split sizes {list(sizes)} do not add up to {x.shape[axis]}", x, "split")
    bounds = np.cumsum([0, *sizes]).tolist()
    return tuple(slice(x, [lo], [hi], [axis]) for lo, hi in itertools.pairwise(bounds))


def squeeze(x: Tensor, axes: int | Sequence[int] | None = None) -> Tensor:
    """Drop size-1 axes (all of them when `axes` is None)."""
    drop = [a for a in range(x.ndim) if x.shape[a] == 1] if axes is None else _axes(axes, x,
                                                                                       "squeeze")
    if any(x.shape[a] != 1 for a in drop):
        _fail(f"squeeze: axes {drop} are not all of size 1", x, "squeeze")
    return F.reshape(x, [d for a, d in enumerate(x.shape) if a not in drop])


def unsqueeze(x: Tensor, axes: int | Sequence[int]) -> Tensor:
    """Insert size-1 axes at `axes` (positions in the result, negatives allowed)."""
    axes = (axes,) if isinstance(axes, int) else tuple(axes)
    rank = x.ndim + len(axes)
    where = sorted(a % rank for a in axes)
    dims = iter(x.shape)
    return F.reshape(x, [1 if a in where else next(dims) for a in range(rank)])


def flatten(x: Tensor, axis: int = 1) -> Tensor:
    """ONNX Flatten: [prod(shape[:axis]), prod(shape[axis:])]."""
    axis = axis % (x.ndim + 1) if axis < 0 else axis
    return F.reshape(x, (math.prod(x.shape[:axis]), math.prod(x.shape[axis:])))


def expand(x: Tensor, shape: Sequence[int]) -> Tensor:
    """ONNX Expand: bidirectional broadcast of x and `shape`."""
    target = np.broadcast_shapes(tuple(x.shape), tuple(shape))
    return F.broadcast_to(x, target)


# --- reductions ----------------------------------------------------------------------------------
def reduce_min(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    return _apply("min", x, axes=_axes(axis, x, "min"), keepdims=keepdims)


def arg_max(x: Tensor, axis: int = 0, keepdims: bool = True,
            select_last_index: bool = False) -> Tensor:
    return _apply("arg_max", x, axis=_axis(axis, x, "arg_max"), keepdims=keepdims,
                  select_last_index=select_last_index)


def arg_min(x: Tensor, axis: int = 0, keepdims: bool = True,
            select_last_index: bool = False) -> Tensor:
    return _apply("arg_min", x, axis=_axis(axis, x, "arg_min"), keepdims=keepdims,
                  select_last_index=select_last_index)


def reduce_sum_square(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    return F.sum(x * x, axis, keepdims)


def reduce_l2(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    return F.sqrt(reduce_sum_square(x, axis, keepdims))


def reduce_log_sum_exp(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    """log(sum(exp(x))) computed stably (the max is shifted out and not differentiated)."""
    m = F.stop_gradient(F.max(x, axis, keepdims=True))
    out = F.log(F.sum(F.exp(x - m), axis, keepdims=True)) + m
    return out if keepdims else F.reshape(out, [d for a, d in enumerate(x.shape)
                                                 if a not in _axes(axis, x, "log_sum_exp")])


def reduce_log_sum(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    return F.log(F.sum(x, axis, keepdims))


def mean_of(xs: Sequence[Tensor]) -> Tensor:
    """ONNX variadic Mean: the elementwise mean of broadcastable tensors."""
    return builtins.sum(xs[1:], xs[0]) / len(xs)


# --- convolution and pooling (NC + spatial axes; pads are all begins, then all ends) ----------
def _spatial(v, d: int, name: str) -> tuple[int, ...]:
    """An int (the same on every spatial axis), one value per axis, or None (1s)."""
    v = (1 if v is None else v,) * d if v is None or isinstance(v, int) else tuple(v)
    if len(v) != d:
        raise ValueError(f"{name} needs 1 or {d} values, got {v}")
    return tuple(int(a) for a in v)


def _pair(v, name: str) -> tuple[int, int]:
    return _spatial(v, 2, name)


def _pads(pads, d: int) -> tuple[int, ...]:
    """An int, one pad per axis (both ends), ONNX's (begins..., ends...), or None (0s)."""
    pads = (pads or 0,) * (2 * d) if pads is None or isinstance(pads, int) else tuple(pads)
    return tuple(int(p) for p in (pads * 2 if len(pads) == d else pads))


def _pads4(pads) -> tuple[int, int, int, int]:
    """An int, (pad_h, pad_w) or ONNX's (top, left, bottom, right)."""
    return _pads(pads, 2)


def auto_pads(size: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
              dilations: Sequence[int], auto_pad: str) -> tuple[int, ...]:
    """ONNX auto_pad (SAME_UPPER, SAME_LOWER, VALID) as explicit (begins..., ends...)."""
    if auto_pad in ("VALID", "NOTSET"):
        return (0,) * (2 * len(size))
    begin, end = [], []
    for n, k, s, d in zip(size, kernel, strides, dilations):
        total = builtins.max(0, (-(-n // s) - 1) * s + (k - 1) * d + 1 - n)
        small, big = total // 2, total - total // 2
        begin.append(small if auto_pad == "SAME_UPPER" else big)
        end.append(big if auto_pad == "SAME_UPPER" else small)
    return (*begin, *end)


def windows(x: Tensor, kernel, strides=1, pads=0, dilations=1, value: float = 0.0) -> Tensor:
    """im2col: [N,C,*S] -> [N,C,*O,*K] (`value` where a window reads padding); an int kernel
    means a 2-D one."""
    d = 2 if isinstance(kernel, int) else len(kernel)
    return _apply("windows", x, kernel=_spatial(kernel, d, "kernel"),
                  strides=_spatial(strides, d, "strides"), pads=_pads(pads, d),
                  dilations=_spatial(dilations, d, "dilations"), value=value)


def col2im(g: Tensor, size, strides=1, pads=0, dilations=1) -> Tensor:
    """windows' adjoint: [N,C,*O,*K] -> [N,C,*S,*K] (an int size means a 2-D one)."""
    d = 2 if isinstance(size, int) else len(size)
    return _apply("col2im", g, size=_spatial(size, d, "size"),
                  strides=_spatial(strides, d, "strides"), pads=_pads(pads, d),
                  dilations=_spatial(dilations, d, "dilations"))


def conv2d(x: Tensor, w: Tensor, b: Tensor | None = None, strides=1, pads=0, dilations=1,
           group: int = 1) -> Tensor:
    """ONNX Conv: x [N,C,H,W], w [O,C/group,KH,KW], optional bias [O]."""
    args = (x, w) if b is None else (x, w, b)
    return _apply("conv2d", *args, strides=_pair(strides, "strides"), pads=_pads4(pads),
                  dilations=_pair(dilations, "dilations"), group=int(group))


def _pool(op: str, x: Tensor, kernel_shape, strides, pads, dilations, ceil_mode, **attrs):
    d = x.ndim - 2
    return _apply(op, x, kernel_shape=_spatial(kernel_shape, d, "kernel_shape"),
                  strides=_spatial(1 if strides is None else strides, d, "strides"),
                  pads=_pads(pads, d), dilations=_spatial(dilations, d, "dilations"),
                  ceil_mode=bool(ceil_mode), **attrs)


def max_pool(x: Tensor, kernel_shape, strides=None, pads=0, dilations=1,
             ceil_mode: bool = False) -> Tensor:
    """ONNX MaxPool over x's spatial axes [N,C,*S] (strides default to 1, like ONNX; pass
    strides=kernel for the usual pool)."""
    return _pool("max_pool", x, kernel_shape, strides, pads, dilations, ceil_mode)


def max_pool_indices(x: Tensor, kernel_shape, strides=None, pads=0, dilations=1,
                     ceil_mode: bool = False, storage_order: int = 0) -> Tensor:
    """ONNX MaxPool's Indices output: i64 flat index into x of each window's first maximum."""
    return _pool("max_pool_indices", x, kernel_shape, strides, pads, dilations, ceil_mode,
                 storage_order=int(storage_order))


def avg_pool(x: Tensor, kernel_shape, strides=None, pads=0, dilations=1,
             ceil_mode: bool = False, count_include_pad: bool = False) -> Tensor:
    """ONNX AveragePool over x's spatial axes."""
    return _pool("avg_pool", x, kernel_shape, strides, pads, dilations, ceil_mode,
                 count_include_pad=bool(count_include_pad))


max_pool2d, avg_pool2d = max_pool, avg_pool  # the 2-D names the models use


def global_avg_pool(x: Tensor) -> Tensor:
    """ONNX GlobalAveragePool: the mean over all spatial axes, kept as size 1."""
    return F.mean(x, tuple(range(2, x.ndim)), keepdims=True)


def global_max_pool(x: Tensor) -> Tensor:
    return F.max(x, tuple(range(2, x.ndim)), keepdims=True)


# --- normalisation, dropout, losses -----------------------------------------------------------
def batch_norm(x: Tensor, scale, bias, mean, var, epsilon: float = 1e-5) -> Tensor:
    """ONNX BatchNormalization (inference): per-channel (axis 1) given mean and variance."""
    return _apply("batch_norm", x, scale, bias, mean, var, epsilon=float(epsilon))


def batch_norm_training(x: Tensor, scale, bias, epsilon: float = 1e-5) -> Tensor:
    """Batch normalisation by the batch's own mean and (biased) variance."""
    return _apply("batch_norm_training", x, scale, bias, epsilon=float(epsilon))


def batch_statistics(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and biased variance of [N, C, ...] (what batch_norm_training uses)."""
    from graphc.ops.norm import batch_stats

    return batch_stats(x)


def batch_norm_layer(x: Tensor, name: str, training: bool = True, momentum: float = 0.9,
                     epsilon: float = 1e-5) -> Tensor:
    """A batch-norm layer with params `NAME.weight`, `NAME.bias` and state
    `NAME.running_mean`, `NAME.running_var`. In training the output uses the batch statistics
    and the running statistics are updated as ONNX does (running * momentum + batch *
    (1 - momentum), biased variance); otherwise it uses the running statistics."""
    b, c, dtype = x.builder, x.shape[1], x.type.np_dtype
    scale = b.param(f"{name}.weight", np.ones(c, dtype))
    shift = b.param(f"{name}.bias", np.zeros(c, dtype))
    mean = b.state(f"{name}.running_mean", np.zeros(c, dtype))
    var = b.state(f"{name}.running_var", np.ones(c, dtype))
    if not training:
        return batch_norm(x, scale, shift, mean, var, epsilon)
    batch_mean, batch_var = batch_statistics(x)
    b.update(mean.name, mean * momentum + batch_mean * (1 - momentum))
    b.update(var.name, var * momentum + batch_var * (1 - momentum))
    return batch_norm_training(x, scale, shift, epsilon)


def layer_norm(x: Tensor, scale, bias, axis: int = -1, epsilon: float = 1e-5) -> Tensor:
    """ONNX LayerNormalization over axes [axis, rank); scale/bias broadcast to them."""
    return _apply("layer_norm", x, scale, bias, axis=_axis(axis, x, "layer_norm"),
                  epsilon=float(epsilon))


def lrn(x: Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75,
        bias: float = 1.0) -> Tensor:
    return _apply("lrn", x, size=int(size), alpha=float(alpha), beta=float(beta),
                  bias=float(bias))


STEP_STATE = "rng.step"


def step_counter(builder) -> Tensor:
    """The graph's i64 step counter (state `rng.step`, incremented by every run)."""
    for i in builder.inputs:
        if i.name == STEP_STATE:
            return builder.tensor(i.value)
    step = builder.state(STEP_STATE, np.int64(0))
    builder.update(STEP_STATE, step + 1)
    return step


def dropout_mask(step: Tensor, shape: Sequence[int], ratio: float, seed: int = 0) -> Tensor:
    """bool keep-mask of `shape`: True with probability 1 - ratio, a function of (seed, step,
    element index) only, so forward and backward see the same mask."""
    return _apply("dropout_mask", step, shape=tuple(shape), ratio=float(ratio), seed=int(seed))


def dropout(x: Tensor, ratio: float = 0.5, training: bool = True, seed: int | None = None,
            return_mask: bool = False):
    """ONNX Dropout: in training, x * mask / (1 - ratio) with a fresh mask every run (the
    builder's step counter); otherwise the identity (mask all True)."""
    b = x.builder
    if not training or ratio == 0:
        return (x, F.broadcast_to(b.lift(True), x.shape)) if return_mask else x
    if seed is None:  # distinct layers get distinct streams
        seed = builtins.sum(1 for n in b.nodes if n.op == "dropout_mask")
    mask = dropout_mask(step_counter(b), x.shape, ratio, seed)
    y = F.where(mask, x * (1.0 / (1.0 - ratio)), 0)
    return (y, mask) if return_mask else y


def nll_loss(x: Tensor, target: Tensor, weight=None, reduction: str = "mean",
             ignore_index: int | None = None) -> Tensor:
    """ONNX NegativeLogLikelihoodLoss: x [N, C, ...] log-probabilities, target [N, ...] i64."""
    if weight is None:
        weight = F.constant(x.builder, np.ones(x.shape[1]), x.dtype)
    return _apply("nll_loss", x, target, weight, reduction=reduction,
                  ignore_index=None if ignore_index is None else int(ignore_index))


def softmax_cross_entropy_loss(scores: Tensor, labels: Tensor, weight=None,
                               reduction: str = "mean", ignore_index: int | None = None):
    """ONNX SoftmaxCrossEntropyLoss: nll_loss of log_softmax over the class axis 1."""
    return nll_loss(F.log_softmax(scores, 1), labels, weight, reduction, ignore_index)
