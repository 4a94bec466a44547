"""ONNX normalisation and layout ops as graphc graph builders (one function per ONNX op).

Input: Tensors for data (and NumPy arrays only where table.py's `STATIC` asks), attributes under
their ONNX names, newest-opset form. Output: Tensors. Every op here is composed from graphc ops
(layer_norm, reshape, transpose, arg_max, ...), so gradients, kernels and export come from
theirs:
  InstanceNormalization, GroupNormalization (opset 18's per-group and opset 21's per-channel
  scale and bias), RMSNormalization, LpNormalization (p 1 or 2)   normalisations
  DepthToSpace, SpaceToDepth (DCR and CRD)                          reshape + transpose
  Shrink, Hardmax                                                   elementwise / one-hot
  PRelu                                                             graphc's prelu, with the
      per-channel slope of opset <= 6 that onnx's version converter passes on unchanged
(onnx's checker calls GroupNormalization-18 deprecated, so gc.load_onnx refuses opset 18-20
models holding it; the per-group form is still what such a node means.)
"""
from __future__ import annotations

import math

from graphc.builder import Tensor
from graphc.errors import GraphcError
from graphc.onnx.dtypes import onnx_dtype
from graphc.onnx.ops import as_float, back_to, iota
from graphc.ops import api as F
from graphc.types import FLOAT_DTYPES, broadcast_shapes


def _per_channel(v: Tensor, x: Tensor) -> Tensor:
    """A [C] tensor shaped to broadcast against [N, C, ...] data."""
    return F.reshape(v, (v.shape[0],) + (1,) * (x.ndim - 2))


def _need(ok: bool, message: str) -> None:
    if not ok:
        raise GraphcError(message)


def _broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """Whether `shape` broadcasts to `target` unidirectionally (target unchanged)."""
    try:
        return broadcast_shapes(tuple(shape), tuple(target)) == tuple(target)
    except GraphcError:
        return False


def _stash(x: Tensor, stash_type: int, op: str) -> Tensor:
    """x in the dtype ONNX's stash_type asks the statistics to be computed in."""
    dtype = onnx_dtype(stash_type, f"{op}: stash_type")
    _need(dtype in FLOAT_DTYPES, f"{op}: stash_type {stash_type} is not a float type")
    return x if x.dtype == dtype else F.cast(x, dtype)


def _standardised(x: Tensor, axis: int, epsilon: float) -> Tensor:
    """(x - mean) / sqrt(var + epsilon) over axes [axis, rank), by graphc's layer_norm (whose
    bprop is closed-form) with unit scale and zero bias."""
    return F.layer_norm(x, 1.0, 0.0, axis, epsilon)


# --- normalisations ------------------------------------------------------------------------------
def InstanceNormalization(input, scale, B, epsilon=1e-5):
    """Per-sample, per-channel statistics over the spatial axes of [N, C, D1, ...]."""
    x = input
    _need(x.ndim >= 3, f"InstanceNormalization: input must be [N, C, D1, ...], got "
                       f"{list(x.shape)}")
    c = x.shape[1]
    _need(scale.shape == (c,) and B.shape == (c,),
          f"InstanceNormalization: scale {list(scale.shape)} and B {list(B.shape)} must be "
          f"[{c}] for input {list(x.shape)}")
    return _standardised(x, 2, epsilon) * _per_channel(scale, x) + _per_channel(B, x)


def _channel_affine(v: Tensor, groups: int, channels: int, what: str) -> Tensor:
    """GroupNormalization's scale or bias as [C]: opset 21's is [C]; opset 18's is [G], each
    group's value shared by its C/G channels (the two forms agree when G == C)."""
    if v.shape == (channels,):
        return v
    _need(v.shape == (groups,), f"GroupNormalization: {what} must be [{channels}] (one per "
                                f"channel) or [{groups}] (one per group, opset 18), got "
                                f"{list(v.shape)}")
    per_group = F.broadcast_to(F.reshape(v, (groups, 1)), (groups, channels // groups))
    return F.reshape(per_group, (channels,))


def GroupNormalization(X, scale, bias, num_groups, epsilon=1e-5, stash_type=1):
    """Statistics per sample over each group of C/num_groups channels and the spatial axes."""
    _need(X.ndim >= 2, f"GroupNormalization: X must be [N, C, ...], got {list(X.shape)}")
    n, c = X.shape[:2]
    _need(num_groups > 0 and c % num_groups == 0,
          f"GroupNormalization: num_groups {num_groups} must divide the {c} channels")
    grouped = F.reshape(_stash(X, stash_type, "GroupNormalization"),
                        (n, num_groups, math.prod(X.shape[1:]) // num_groups))
    y = back_to(F.reshape(_standardised(grouped, 2, epsilon), X.shape), X)
    s = _channel_affine(scale, num_groups, c, "scale")
    b = _channel_affine(bias, num_groups, c, "bias")
    return y * _per_channel(s, X) + _per_channel(b, X)


def RMSNormalization(X, scale, axis=-1, epsilon=1e-5, stash_type=1):
    """X / sqrt(mean(X^2 over axes [axis, rank)) + epsilon) * scale."""
    _need(-X.ndim <= axis < X.ndim, f"RMSNormalization: axis {axis} is out of range for "
                                    f"X {list(X.shape)}")
    axes = list(range(axis % X.ndim, X.ndim))
    tail = X.shape[axes[0]:]
    _need(_broadcasts_to(scale.shape, tail), f"RMSNormalization: scale {list(scale.shape)} must "
                                           f"broadcast to the normalised axes {list(tail)}")
    x = _stash(X, stash_type, "RMSNormalization")
    inv = 1.0 / F.sqrt(F.mean(x * x, axes, keepdims=True) + epsilon)
    return back_to(x * inv, X) * scale


def LpNormalization(input, axis=-1, p=2):
    """x / ||x||_p along `axis` (p is 1 or 2); a zero norm gives 0, as ONNX's reference."""
    x = input
    _need(p in (1, 2), f"LpNormalization: p must be 1 or 2, got {p}")
    _need(-x.ndim <= axis < x.ndim, f"LpNormalization: axis {axis} is out of range for "
                                    f"input {list(x.shape)}")
    zero = F.constant(x.builder, 0.0, x.dtype)
    if p == 1:
        norm = F.sum(F.abs(x), axis, keepdims=True)
        is_zero = F.equal(norm, zero)
    else:  # sqrt of a sum that is never 0, so the gradient has no 0/0 either
        squares = F.sum(x * x, axis, keepdims=True)
        is_zero = F.equal(squares, zero)
        norm = F.sqrt(F.where(is_zero, 1.0, squares))
    return F.where(is_zero, 0.0, x / F.where(is_zero, 1.0, norm))


# --- layout: blocks of space moved into channels and back ---------------------------------------
def _blocks(x: Tensor, blocksize: int, mode: str, op: str) -> None:
    _need(x.ndim == 4, f"{op}: input must be [N, C, H, W], got {list(x.shape)}")
    _need(blocksize > 0, f"{op}: blocksize must be positive, got {blocksize}")
    _need(mode in ("DCR", "CRD"), f"{op}: mode must be 'DCR' or 'CRD', got {mode!r}")


def DepthToSpace(input, blocksize, mode="DCR"):
    """[N, C, H, W] -> [N, C/b^2, H*b, W*b]; DCR reads channels as (b, b, C/b^2), CRD as
    (C/b^2, b, b)."""
    x, b = input, blocksize
    _blocks(x, b, mode, "DepthToSpace")
    n, c, h, w = x.shape
    _need(c % (b * b) == 0, f"DepthToSpace: {c} channels are not a multiple of blocksize^2 = "
                            f"{b * b}")
    if mode == "DCR":
        split, perm = (n, b, b, c // (b * b), h, w), (0, 3, 4, 1, 5, 2)
    else:
        split, perm = (n, c // (b * b), b, b, h, w), (0, 1, 4, 2, 5, 3)
    moved = F.transpose(F.reshape(x, split), perm)
    return F.reshape(moved, (n, c // (b * b), h * b, w * b))


def SpaceToDepth(input, blocksize, mode="DCR"):
    """[N, C, H, W] -> [N, C*b^2, H/b, W/b], the inverse of DepthToSpace in the same mode."""
    x, b = input, blocksize
    _blocks(x, b, mode, "SpaceToDepth")
    n, c, h, w = x.shape
    _need(h % b == 0 and w % b == 0, f"SpaceToDepth: height {h} and width {w} must be "
                                     f"multiples of blocksize {b}")
    perm = (0, 3, 5, 1, 2, 4) if mode == "DCR" else (0, 1, 3, 5, 2, 4)
    moved = F.transpose(F.reshape(x, (n, c, h // b, b, w // b, b)), perm)
    return F.reshape(moved, (n, c * b * b, h // b, w // b))


# --- elementwise and one-hot ---------------------------------------------------------------------
def Shrink(input, bias=0.0, lambd=0.5):
    """x + bias below -lambd, x - bias above lambd, 0 between (integers: computed in f64 and
    truncated back, as ONNX's reference casts)."""
    x = as_float(input)
    y = F.where(x < -lambd, x + bias, F.where(x > lambd, x - bias, 0.0))
    return back_to(y, input)


def Hardmax(input, axis=-1):
    """1 where x is the first maximum along `axis`, else 0 (piecewise constant: no gradient)."""
    x = input
    _need(-x.ndim <= axis < x.ndim, f"Hardmax: axis {axis} is out of range for input "
                                    f"{list(x.shape)}")
    best = F.arg_max(x, axis, keepdims=True)
    return F.cast(F.equal(iota(x, axis % x.ndim), best), x.dtype)


# --- PRelu ---------------------------------------------------------------------------------------
def PRelu(X, slope):
    """graphc's prelu, the slope broadcast unidirectionally to X (opset 7 on). A 1-D slope of
    X's channel count that does not broadcast so is opset <= 6's per-channel slope (Caffe2's
    NCHW PRelu, as PyTorch exported it), which onnx's version converter keeps unchanged: it is
    shaped [C, 1, ...]. (When C equals X's last dimension the two readings coincide in shape and
    the opset-7 one is taken.)"""
    if not _broadcasts_to(slope.shape, X.shape) and slope.ndim == 1 and X.ndim >= 3 and \
            slope.shape[0] == X.shape[1]:
        slope = _per_channel(slope, X)
    _need(_broadcasts_to(slope.shape, X.shape), f"PRelu: slope {list(slope.shape)} does not "
                                              f"broadcast to X {list(X.shape)}")
    return F.prelu(X, slope)
