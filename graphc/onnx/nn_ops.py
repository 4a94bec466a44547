"""ONNX reductions and NN ops as graphc graph builders (one function per ONNX op, named like it).

Input: Tensors for data and NumPy arrays for static operands (axes), attributes under their ONNX
names, newest-opset form. Output: Tensors (or tuples, one per ONNX output). Only ONNX ops whose
semantics differ from a graphc op are here (ArgMax, LRN, ... are their records' `onnx` names):
Conv, pools and normalizations map onto graphc ops after filling in ONNX's defaults; the rest
are written with graph ops, so their gradients come from autodiff.
"""
from __future__ import annotations

import numpy as np

from graphc.errors import GraphcError
from graphc.onnx.ops import as_float, back_to, ints
from graphc.ops import api as F
from graphc.ops import api_nn as N


# --- reductions --------------------------------------------------------------------------------
def _axes(data, axes, noop_with_empty_axes):
    """None when the reduction is the identity (empty axes with noop_with_empty_axes)."""
    listed = ints(axes) if axes is not None else []
    if not listed:
        return None if noop_with_empty_axes else list(range(data.ndim))
    return listed


def _reducer(fn, finish=None, bool_ok=False):
    def reduce(data, axes=None, keepdims=1, noop_with_empty_axes=0):
        axes = _axes(data, axes, noop_with_empty_axes)
        if axes is None:
            return data if finish is None else finish(data, data)
        x = F.cast(data, "i64") if data.dtype == "bool" else data
        y = fn(x, axes, bool(keepdims))
        y = y if finish is None else finish(y, x)
        return F.greater(y, 0) if data.dtype == "bool" and bool_ok else y
    return reduce


def _logsumexp(x, axes, keepdims):
    m = F.stop_gradient(F.max(x, axes, keepdims=True))
    m = F.where(m == -float("inf"), 0.0, m)
    s = F.log(F.sum(F.exp(x - m), axes, keepdims=True)) + m
    return s if keepdims else F.reshape(s, F.sum(x, axes, keepdims=False).shape)


ReduceSum = _reducer(F.sum)
ReduceMean = _reducer(lambda x, a, k: F.mean(as_float(x), a, k))
ReduceMax = _reducer(F.max, bool_ok=True)
ReduceMin = _reducer(F.reduce_min, bool_ok=True)
ReduceSumSquare = _reducer(lambda x, a, k: F.sum(x * x, a, k))
ReduceL1 = _reducer(lambda x, a, k: F.sum(F.abs(x), a, k))
ReduceL2 = _reducer(lambda x, a, k: F.sum(as_float(x) * as_float(x), a, k),
                    lambda y, x: back_to(F.sqrt(as_float(y)), x))
ReduceLogSum = _reducer(F.sum, lambda y, x: F.log(y))
ReduceLogSumExp = _reducer(lambda x, a, k: _logsumexp(as_float(x), a, k),
                           lambda y, x: back_to(y, x))


# --- convolution and pooling (any spatial rank) ------------------------------------------------
def _window(X, kernel_shape, strides, pads, dilations, auto_pad):
    """ONNX window attributes filled in: strides/dilations default to 1, pads to 0, and
    auto_pad (SAME_UPPER, SAME_LOWER, VALID) becomes explicit pads."""
    d = X.ndim - 2
    strides = tuple(strides or (1,) * d)
    dilations = tuple(dilations or (1,) * d)
    if auto_pad not in ("NOTSET", ""):
        pads = N.auto_pads(X.shape[2:], kernel_shape, strides, dilations, auto_pad)
    return strides, tuple(pads or (0,) * (2 * d)), dilations


def _as_2d(fn):
    """1-D convolutions run as 2-D ones of height 1: [N, C, L] -> [N, C, 1, L] and back."""
    def wrapped(X, W, *args, kernel_shape=None, pads=None, strides=None, dilations=None, **kw):
        if X.ndim != 3:
            return fn(X, W, *args, kernel_shape=kernel_shape, pads=pads, strides=strides,
                      dilations=dilations, **kw)
        y = fn(F.reshape(X, X.shape[:2] + (1,) + X.shape[2:]),
               F.reshape(W, W.shape[:2] + (1,) + W.shape[2:]), *args,
               kernel_shape=None if kernel_shape is None else (1, *kernel_shape),
               pads=None if pads is None else (0, pads[0], 0, pads[1]),
               strides=None if strides is None else (1, *strides),
               dilations=None if dilations is None else (1, *dilations), **kw)
        return F.reshape(y, y.shape[:2] + y.shape[3:])
    wrapped.__name__ = fn.__name__
    return wrapped


@_as_2d
def Conv(X, W, B=None, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None,
         pads=None, strides=None):
    """2-D as conv2d, 1-D as a 2-D one of height 1 (`_as_2d`), 3-D and up as the N-d conv."""
    if kernel_shape is not None and tuple(kernel_shape) != tuple(W.shape[2:]):
        raise GraphcError(f"Conv: kernel_shape {list(kernel_shape)} differs from the weight's "
                          f"spatial shape {list(W.shape[2:])}")
    strides, pads, dilations = _window(X, kernel_shape or W.shape[2:], strides, pads, dilations,
                                       auto_pad)
    conv = F.conv2d if X.ndim == 4 else F.conv
    return conv(X, W, B, strides, pads, dilations, group)


def MaxPool(X, auto_pad="NOTSET", ceil_mode=0, dilations=None, kernel_shape=None, pads=None,
            storage_order=0, strides=None):
    """Y and the int64 Indices (computed only when the model reads them)."""
    strides, pads, dilations = _window(X, kernel_shape, strides, pads, dilations, auto_pad)
    x = as_float(X)
    y = F.max_pool(x, kernel_shape, strides, pads, dilations, bool(ceil_mode))
    return back_to(y, X), F.max_pool_indices(x, kernel_shape, strides, pads, dilations,
                                             bool(ceil_mode), storage_order)


def AveragePool(X, auto_pad="NOTSET", ceil_mode=0, count_include_pad=0, dilations=None,
                kernel_shape=None, pads=None, strides=None):
    strides, pads, dilations = _window(X, kernel_shape, strides, pads, dilations, auto_pad)
    return F.avg_pool(X, kernel_shape, strides, pads, dilations, bool(ceil_mode),
                      bool(count_include_pad))


# --- pooling and normalization -----------------------------------------------------------------
def GlobalAveragePool(X):
    return F.mean(X, list(range(2, X.ndim)), keepdims=True)


def GlobalMaxPool(X):
    return F.max(X, list(range(2, X.ndim)), keepdims=True)


def _channel(v, x):
    """A per-channel [C] tensor shaped to broadcast against NC... data."""
    return F.reshape(v, (v.shape[0],) + (1,) * (x.ndim - 2))


def LayerNormalization(X, Scale, B=None, axis=-1, epsilon=1e-5, stash_type=1):
    """Y from graphc's layer_norm; the optional Mean and InvStdDev outputs are composed (and
    dropped as dead code when the model does not read them)."""
    axis %= X.ndim
    bias = B if B is not None else F.constant(X.builder, np.zeros(Scale.shape), X.dtype)
    y = F.layer_norm(X, Scale, bias, axis, epsilon)
    axes = list(range(axis, X.ndim))
    mean = F.mean(X, axes, keepdims=True)
    d = X - mean
    return y, mean, 1.0 / F.sqrt(F.mean(d * d, axes, keepdims=True) + epsilon)


def BatchNormalization(X, scale, B, input_mean, input_var, epsilon=1e-5, momentum=0.9,
                       training_mode=0):
    """Inference uses the given statistics; training mode normalises with the batch's and also
    returns the updated running statistics (ONNX outputs 2 and 3)."""
    if not training_mode:
        return F.batch_norm(X, scale, B, input_mean, input_var, epsilon)
    axes = [0] + list(range(2, X.ndim))
    mean = F.mean(X, axes, keepdims=True)
    d = X - mean
    var = F.mean(d * d, axes, keepdims=True)
    y = d / F.sqrt(var + epsilon) * _channel(scale, X) + _channel(B, X)
    c = X.shape[1]
    running_mean = input_mean * momentum + F.reshape(mean, (c,)) * (1 - momentum)
    running_var = input_var * momentum + F.reshape(var, (c,)) * (1 - momentum)
    return y, running_mean, running_var


# --- losses ------------------------------------------------------------------------------------
def _nll(logp, target, weight, ignore_index, reduction):
    """Per-element -logp[n, target[n, ...], ...] with class weights, ignore_index and reduction;
    logp is [N, C, d...], target [N, d...] i64. (Composed rather than graphc's nll_loss, whose
    compiled label check does not yet see ignore_index.)"""
    c = logp.shape[1]
    t = F.reshape(target, (target.shape[0], 1) + tuple(target.shape[1:]))
    classes = logp.builder.apply("iota", [], shape=(1, c) + (1,) * (logp.ndim - 2), axis=1,
                                 dtype="i64")
    onehot = F.cast(F.equal(t, classes), logp.dtype)
    if ignore_index is not None:
        onehot = onehot * F.cast(F.not_equal(t, int(ignore_index)), logp.dtype)
    w = onehot if weight is None else onehot * F.reshape(weight, classes.shape)
    loss = -F.sum(logp * w, 1)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return F.sum(loss)
    return F.sum(loss) / F.sum(F.sum(w, 1))


def NegativeLogLikelihoodLoss(input, target, weight=None, ignore_index=None, reduction="mean"):
    return _nll(input, target, weight, ignore_index, reduction)


def SoftmaxCrossEntropyLoss(scores, labels, weights=None, ignore_index=None, reduction="mean"):
    logp = F.log_softmax(scores, 1)
    return _nll(logp, labels, weights, ignore_index, reduction), logp
