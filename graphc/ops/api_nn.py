"""Op-API helpers for the CNN/transformer layers that have no op of their own.

Input: Tensors from a GraphBuilder (and Python scalars). Output: new Tensors built from ops
(the op functions are in graphc/ops/api.py and beside each op's record): reductions that are
compositions (reduce_l2, reduce_log_sum_exp, ...), global pools, ONNX auto_pad, and layer
helpers that own state (batch_norm_layer's running statistics, dropout's step counter), which
register their updates with the builder.
"""
from __future__ import annotations

import builtins
from collections.abc import Sequence

import numpy as np

from graphc.builder import Tensor
from graphc.ops import api as F
from graphc.ops.api import _axes, defined_here
from graphc.ops.pool import avg_pool, max_pool


# --- reductions ----------------------------------------------------------------------------------
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


# --- pooling (NC + spatial axes; pads are all begins, then all ends) ---------------------------
max_pool2d, avg_pool2d = max_pool, avg_pool  # the 2-D names the models use


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


def global_avg_pool(x: Tensor) -> Tensor:
    """ONNX GlobalAveragePool: the mean over all spatial axes, kept as size 1."""
    return F.mean(x, tuple(range(2, x.ndim)), keepdims=True)


def global_max_pool(x: Tensor) -> Tensor:
    return F.max(x, tuple(range(2, x.ndim)), keepdims=True)


# --- batch normalisation, dropout, losses -----------------------------------------------------------
def batch_statistics(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and biased variance of [N, C, ...] (what batch_norm_training uses)."""
    axes = (0,) + tuple(range(2, x.ndim))
    mean = F.mean(x, axes, keepdims=True)
    d = x - mean
    return F.reshape(mean, (x.shape[1],)), F.mean(d * d, axes)


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
        return F.batch_norm(x, scale, shift, mean, var, epsilon)
    batch_mean, batch_var = batch_statistics(x)
    b.update(mean.name, mean * momentum + batch_mean * (1 - momentum))
    b.update(var.name, var * momentum + batch_var * (1 - momentum))
    return F.batch_norm_training(x, scale, shift, epsilon)


STEP_STATE = "rng.step"


def step_counter(builder) -> Tensor:
    """The graph's i64 step counter (state `rng.step`, incremented by every run)."""
    for i in builder.inputs:
        if i.name == STEP_STATE:
            return builder.tensor(i.value)
    step = builder.state(STEP_STATE, np.int64(0))
    builder.update(STEP_STATE, step + 1)
    return step


def dropout(x: Tensor, ratio: float = 0.5, training: bool = True, seed: int | None = None,
            return_mask: bool = False):
    """ONNX Dropout: in training, x * mask / (1 - ratio) with a fresh mask every run (the
    builder's step counter); otherwise the identity (mask all True)."""
    b = x.builder
    if not training or ratio == 0:
        return (x, F.broadcast_to(b.lift(True), x.shape)) if return_mask else x
    if seed is None:  # distinct layers get distinct streams
        seed = builtins.sum(1 for n in b.nodes if n.op == "dropout_mask")
    mask = F.dropout_mask(step_counter(b), x.shape, float(ratio), seed)
    y = F.where(mask, x * (1.0 / (1.0 - ratio)), 0)
    return (y, mask) if return_mask else y


def softmax_cross_entropy_loss(scores: Tensor, labels: Tensor, weight=None,
                               reduction: str = "mean", ignore_index: int | None = None):
    """ONNX SoftmaxCrossEntropyLoss: nll_loss of log_softmax over the class axis 1."""
    return F.nll_loss(F.log_softmax(scores, 1), labels, weight, reduction, ignore_index)


__all__ = [*defined_here(globals()), "max_pool2d", "avg_pool2d"]  # noqa: PLE0604
