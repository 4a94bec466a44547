"""Pooling over 1, 2 or 3 (any d) spatial axes of [N, C, *S] tensors, as windows + max/sum.

Input: nothing (imported for its side effect). Output: registered composite OpDefs:
  max_pool(x; kernel_shape, strides, pads, dilations, ceil_mode)               ONNX MaxPool Y
  max_pool_indices(x; ..., storage_order)   ONNX MaxPool's Indices: the int64 flat index into x
      of each window's first maximum (row-major, or with storage_order=1 column-major spatial
      axes); not differentiable
  avg_pool(x; kernel_shape, strides, pads, dilations, ceil_mode, count_include_pad)
                                                                             ONNX AveragePool
pads are ONNX's (all begins, then all ends); strides/dilations default to 1, pads to 0. The
spatial rank d is len(kernel_shape). ceil_mode extends the end pads so floor division gives
ONNX's ceiled size; those overhang positions never count (padding never wins a max and never
counts in an average). Bprops are written with windows/col2im; the ops decompose into
windows + max/sum/arg_max after autodiff. Each op has its op-API function here (an int is the
same on every spatial axis; strides default to 1, like ONNX).
"""
from __future__ import annotations

import functools

import numpy as np

from graphc.builder import Tensor
from graphc.errors import ShapeError
from graphc.ops import api as F
from graphc.ops.api import _apply
from graphc.ops.conv import (
    _windows_reference,
    check_window,
    col2im,
    geometry,
    out_size,
    pad_ends,
    spatial,
    windows,
)
from graphc.ops.registry import NOT_DIFFERENTIABLE, REQUIRED, OpDef, register
from graphc.types import FLOAT_DTYPES, TensorType


def pool_pads(size, kernel_shape, strides, pads, dilations, ceil_mode) -> tuple[int, ...]:
    """Pads with the ends extended so floor division gives ONNX's ceil_mode size (a last
    window that would start inside the end padding is dropped, as in ONNX and PyTorch)."""
    strides, pads, dilations = geometry(kernel_shape, strides, pads, dilations, "pool")
    if not ceil_mode:
        return pads
    d = len(kernel_shape)
    ends = list(pads[d:])
    for a in range(d):
        span = size[a] + pads[a] + pads[d + a] - dilations[a] * (kernel_shape[a] - 1) - 1
        out = -(-span // strides[a]) + 1
        if (out - 1) * strides[a] >= size[a] + pads[a]:
            out -= 1
        ends[a] += max(0, (out - 1) * strides[a] - span)
    return (*pads[:d], *ends)


def _spatial(x, d: int):
    return x.shape[2:2 + d]


def _pool_rule(types, attrs, dtypes=FLOAT_DTYPES, out_dtype=None):
    (x,), kernel = types, tuple(attrs["kernel_shape"])
    d = len(kernel)
    if x.rank != 2 + d or x.dtype not in dtypes:
        raise ShapeError(f"pooling with a {d}-D kernel needs a float [N,C,*S] tensor of rank "
                         f"{2 + d}, got {x}")
    pads = pool_pads(_spatial(x, d), kernel, attrs["strides"], attrs["pads"], attrs["dilations"],
                     attrs["ceil_mode"])
    out = check_window(_spatial(x, d), kernel, attrs["strides"], pads, attrs["dilations"], "pool")
    return [TensorType(x.shape[:2] + out, out_dtype or x.dtype)]


def _window_axes(d: int) -> tuple[int, ...]:
    return tuple(range(2 + d, 2 + 2 * d))


def _geometry(x, kernel_shape, strides, pads, dilations, ceil_mode, **_):
    """The windows op's (kernel, strides, pads, dilations) for a pool of x, ceil_mode applied."""
    strides, pads, dilations = geometry(kernel_shape, strides, pads, dilations, "pool")
    pads = pool_pads(_spatial(x, len(kernel_shape)), kernel_shape, strides, pads, dilations,
                     ceil_mode)
    return tuple(kernel_shape), strides, pads, dilations


def _tiling(x, kernel, strides, pads, dilations) -> bool:
    """Whether the windows tile x exactly (stride = kernel, no padding or dilation, every
    position in one window): then windows are a reshape + transpose and their adjoint the
    inverse one, which fuse as strided reads instead of bounds-checked gathers."""
    d = len(kernel)
    return (tuple(strides) == tuple(kernel) and not any(pads) and set(dilations) == {1}
            and all(s % k == 0 for s, k in zip(_spatial(x, d), kernel)))


def _tile_perm(d: int) -> tuple[int, ...]:
    """[N,C,O1,K1,...,Od,Kd] -> [N,C,O1..Od,K1..Kd]."""
    return (0, 1, *range(2, 2 + 2 * d, 2), *range(3, 3 + 2 * d, 2))


def _pool_windows(x, value, **attrs):
    kernel, strides, pads, dilations = _geometry(x, **attrs)
    if not _tiling(x, kernel, strides, pads, dilations):
        return windows(x, kernel, strides, pads, dilations, value)
    split = [n for s, k in zip(_spatial(x, len(kernel)), kernel) for n in (s // k, k)]
    return F.transpose(F.reshape(x, (*x.shape[:2], *split)), _tile_perm(len(kernel)))


def _windows_np(x, value, **attrs):
    return _windows_reference(x, *_geometry(x, **attrs), value)


def _expand(t, d: int):
    """[N,C,*O] -> [N,C,*O,1,...,1] (one size-1 axis per kernel axis)."""
    return F.reshape(t, t.shape + (1,) * d)


def _scatter(cols, x, **attrs):
    """col2im of per-window-element gradients [N,C,*O,*K], summed back to x's shape."""
    kernel, strides, pads, dilations = _geometry(x, **attrs)
    d = len(kernel)
    if _tiling(x, kernel, strides, pads, dilations):
        perm = _tile_perm(d)
        inverse = tuple(sorted(range(len(perm)), key=perm.__getitem__))
        return F.reshape(F.transpose(cols, inverse), x.shape)
    return F.sum(col2im(cols, _spatial(x, d), strides, pads, dilations), _window_axes(d))


def _pool(op: str, x: Tensor, kernel_shape, strides, pads, dilations, ceil_mode, **attrs):
    d = x.ndim - 2
    return _apply(op, x, kernel_shape=spatial(kernel_shape, d, "kernel_shape"),
                  strides=spatial(1 if strides is None else strides, d, "strides"),
                  pads=pad_ends(pads, d), dilations=spatial(dilations, d, "dilations"),
                  ceil_mode=bool(ceil_mode), **attrs)


# --- max_pool -----------------------------------------------------------------------------
def _max_pool_reference(x, **attrs):
    return _windows_np(x, -np.inf, **attrs).max(axis=_window_axes(len(attrs["kernel_shape"])))


def _max_pool_bprop(x, y, g, **attrs):
    """Like max's: the gradient is shared equally by the elements that attain the maximum."""
    d = len(attrs["kernel_shape"])
    cols = _pool_windows(x, -np.inf, **attrs)
    mask = F.cast(F.equal(cols, _expand(y, d)), x.dtype)
    share = mask * (_expand(g, d) / F.sum(mask, _window_axes(d), keepdims=True))
    return [_scatter(share, x, **attrs)]


def max_pool(x: Tensor, kernel_shape, strides=None, pads=0, dilations=1,
             ceil_mode: bool = False) -> Tensor:
    """ONNX MaxPool over x's spatial axes [N,C,*S] (strides default to 1, like ONNX; pass
    strides=kernel for the usual pool)."""
    return _pool("max_pool", x, kernel_shape, strides, pads, dilations, ceil_mode)


_POOL_ATTRS = {"kernel_shape": REQUIRED, "strides": None, "pads": None, "dilations": None,
               "ceil_mode": False}
register(OpDef(
    name="max_pool", doc="ONNX MaxPool over the spatial axes (padding never wins)",
    kind="composite", infer=_pool_rule, reference=_max_pool_reference, bprop=_max_pool_bprop,
    attrs=_POOL_ATTRS, decompose=lambda x, **attrs: F.max(
        _pool_windows(x, -np.inf, **attrs), _window_axes(len(attrs["kernel_shape"]))),
    dsl=max_pool))


# --- max_pool_indices ---------------------------------------------------------------------
def flat_index(shape, storage_order: int) -> np.ndarray:
    """ONNX MaxPool's index of every element of an [N, C, *S] tensor: (n*C + c)*prod(S) plus
    the spatial offset, row-major (storage_order 0) or column-major (1)."""
    spatial = shape[2:]
    count = int(np.prod(spatial))
    offsets = np.arange(count).reshape(spatial[::-1]).transpose() if storage_order else \
        np.arange(count).reshape(spatial)
    base = np.arange(shape[0] * shape[1]).reshape(shape[:2] + (1,) * len(spatial)) * count
    return (base + offsets).astype(np.int64)


def _indices_reference(x, storage_order, **attrs):
    d = len(attrs["kernel_shape"])
    flat = lambda a: a.reshape(a.shape[:2 + d] + (-1,))
    first = flat(_windows_np(x, -np.inf, **attrs)).argmax(axis=-1)[..., None]
    where = flat(_windows_np(flat_index(x.shape, storage_order), -1, **attrs))
    return np.take_along_axis(where, first, axis=-1)[..., 0]


def _indices_decompose(x, storage_order, **attrs):
    d = len(attrs["kernel_shape"])
    cols = _pool_windows(x, -np.inf, **attrs)
    count = int(np.prod(attrs["kernel_shape"]))
    first = F.arg_max(F.reshape(cols, cols.shape[:2 + d] + (count,)), -1, keepdims=True)
    index = F.broadcast_to(F.constant(x.builder, flat_index(x.shape, storage_order), "i64"),
                           x.shape)
    where = F.reshape(_pool_windows(index, -1, **attrs), cols.shape[:2 + d] + (count,))
    taps = x.builder.apply("iota", [], shape=(1,) * (2 + d) + (count,), axis=2 + d,
                           dtype="i64")
    return F.sum(F.where(F.equal(taps, first), where, 0), -1)


def max_pool_indices(x: Tensor, kernel_shape, strides=None, pads=0, dilations=1,
                     ceil_mode: bool = False, storage_order: int = 0) -> Tensor:
    """ONNX MaxPool's Indices output: i64 flat index into x of each window's first maximum."""
    return _pool("max_pool_indices", x, kernel_shape, strides, pads, dilations, ceil_mode,
                 storage_order=int(storage_order))


register(OpDef(
    name="max_pool_indices", doc="ONNX MaxPool's Indices: int64 flat input index of each max",
    kind="composite", infer=functools.partial(_pool_rule, out_dtype="i64"),
    reference=_indices_reference, bprop=NOT_DIFFERENTIABLE,
    attrs={**_POOL_ATTRS, "storage_order": 0}, decompose=_indices_decompose,
    dsl=max_pool_indices))


# --- avg_pool -----------------------------------------------------------------------------
def pool_divisor(size, kernel_shape, strides, pads, dilations, ceil_mode, count_include_pad):
    """[*O] element counts of each window: inside the input, or inside the explicitly padded
    input when count_include_pad (the ceil_mode overhang never counts)."""
    strides, pads, dilations = geometry(kernel_shape, strides, pads, dilations, "pool")
    full = pool_pads(size, kernel_shape, strides, pads, dilations, ceil_mode)
    d = len(kernel_shape)
    counts = []
    for a in range(d):
        out = out_size(size[a], kernel_shape[a], strides[a], full[a], full[d + a], dilations[a])
        pos = (np.arange(out)[:, None] * strides[a] + np.arange(kernel_shape[a])[None, :]
               * dilations[a] - pads[a])
        lo, hi = (-pads[a], size[a] + pads[d + a]) if count_include_pad else (0, size[a])
        counts.append(((pos >= lo) & (pos < hi)).sum(axis=1))
    return functools.reduce(np.multiply.outer, counts)


def _avg_pool_reference(x, count_include_pad, **attrs):
    d = len(attrs["kernel_shape"])
    total = _windows_np(x, 0.0, **attrs).sum(axis=_window_axes(d))
    div = pool_divisor(_spatial(x, d), count_include_pad=count_include_pad, **attrs)
    return (total / div).astype(x.dtype)


def _divisor(x, count_include_pad, **attrs):
    div = pool_divisor(_spatial(x, len(attrs["kernel_shape"])),
                       count_include_pad=count_include_pad, **attrs)
    return F.constant(x.builder, div, x.dtype)


def _avg_pool_bprop(x, y, g, count_include_pad, **attrs):
    d = len(attrs["kernel_shape"])
    share = _expand(g / _divisor(x, count_include_pad, **attrs), d)
    return [_scatter(F.broadcast_to(share, g.shape + tuple(attrs["kernel_shape"])), x, **attrs)]


def avg_pool(x: Tensor, kernel_shape, strides=None, pads=0, dilations=1,
             ceil_mode: bool = False, count_include_pad: bool = False) -> Tensor:
    """ONNX AveragePool over x's spatial axes."""
    return _pool("avg_pool", x, kernel_shape, strides, pads, dilations, ceil_mode,
                 count_include_pad=bool(count_include_pad))


register(OpDef(
    name="avg_pool", doc="ONNX AveragePool over the spatial axes (count_include_pad as in ONNX)",
    kind="composite", infer=_pool_rule, reference=_avg_pool_reference, bprop=_avg_pool_bprop,
    attrs={**_POOL_ATTRS, "count_include_pad": False},
    decompose=lambda x, count_include_pad, **attrs: F.sum(
        _pool_windows(x, 0.0, **attrs), _window_axes(len(attrs["kernel_shape"])))
    / _divisor(x, count_include_pad, **attrs), dsl=avg_pool))
