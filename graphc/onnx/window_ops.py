"""ONNX Lp pooling, Col2Im, GridSample and AffineGrid as graphc graph builders.

Input: a node's operands (Tensors for data; NumPy arrays for the operands in table.py's
`STATIC`: Col2Im's image_shape and block_shape, AffineGrid's size) and its attributes under
their ONNX names. Output: a Tensor.

Everything is composed from graphc ops, so gradients, kernels and export come from theirs:
- LpPool sums |x|^p over graphc's `windows` (im2col; padding reads 0, ceil_mode extends the end
  pads as the other pools do) and takes the p-th root (a window of zeros gets gradient 0).
  A window overhanging the end (ceil_mode) is the Lp norm of what it holds, as in onnxruntime
  and the node suite's data; onnx's reference evaluator and torch scale it by kernel size /
  count held.
- Col2Im is graphc's `col2im` (windows' adjoint) on the columns laid out as [N, C, *O, *K],
  summed over the kernel axes.
- GridSample samples X at the grid's points (the grid's last axis lists x, y, z: the spatial
  axes from the last one back) as PyTorch's grid_sample (which the spec names) and
  onnxruntime do: a coordinate outside the border is clamped (border; not for cubic, where
  ONNX's reference alone clamps it) or reflected (reflection) first, then every tap (1
  nearest, 2 linear or 4 cubic per axis) reads its pixel through one gather from X laid out as [N * prod(S), C] with
  a computed row (clamped, reflected, or zero-weighted when outside for zeros). The gradient
  reaches X through the gathers and the grid through the interpolation weights.
- AffineGrid is a constant grid of normalised coordinates (x, y[, z], 1) times theta^T.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from graphc.builder import Tensor
from graphc.errors import GraphcError
from graphc.onnx.nn_ops import _window
from graphc.onnx.ops import ints
from graphc.ops import api as F
from graphc.ops.conv import check_window
from graphc.ops.pool import pool_pads


# --- pooling and its adjoint -------------------------------------------------------------------
def LpPool(X, auto_pad="NOTSET", ceil_mode=0, dilations=None, kernel_shape=None, p=2,
           pads=None, strides=None):
    """(sum over each window of |x|^p)^(1/p), padding counting as 0."""
    if kernel_shape is None or not X.type.is_float or X.ndim < 3:
        raise GraphcError(f"LpPool: need float X [N, C, *S] and kernel_shape, got {X.type} and "
                          f"kernel_shape {kernel_shape}")
    if p < 1:
        raise GraphcError(f"LpPool: p must be >= 1, got {p}")
    kernel = tuple(ints(kernel_shape))
    strides, pads, dilations = _window(X, kernel, strides, pads, dilations, auto_pad)
    full = pool_pads(X.shape[2:], kernel, strides, pads, dilations, bool(ceil_mode))
    powered = X * X if p == 2 else F.abs(X) if p == 1 else F.abs(X) ** float(p)
    d = len(kernel)
    total = F.sum(F.windows(powered, kernel, strides, full, dilations),
                  tuple(range(2 + d, 2 + 2 * d)))
    if p == 1:
        return total
    # a window of zeros (after a relu, say) has the root's subgradient 0, not 0 * inf
    held = total > 0.0
    safe = F.where(held, total, 1.0)
    return F.where(held, F.sqrt(safe) if p == 2 else safe ** (1.0 / p), 0.0)


def Col2Im(input, image_shape, block_shape, dilations=None, pads=None, strides=None):
    """[N, C * prod(K), L] columns summed back into [N, C, *image_shape]."""
    size, kernel = tuple(ints(image_shape)), tuple(ints(block_shape))
    d, k = len(size), math.prod(kernel)
    if input.ndim != 3 or len(kernel) != d or k == 0 or input.shape[1] % k:
        raise GraphcError(f"Col2Im: input {list(input.shape)} must be [N, C * prod(block_shape)"
                          f", L] with block_shape {list(kernel)} of image_shape's rank "
                          f"{d}")
    strides = tuple(ints(strides)) if strides is not None else (1,) * d
    dilations = tuple(ints(dilations)) if dilations is not None else (1,) * d
    pads = tuple(ints(pads)) if pads is not None else (0,) * (2 * d)
    out = check_window(size, kernel, strides, pads, dilations, "Col2Im")
    if math.prod(out) != input.shape[2]:
        raise GraphcError(f"Col2Im: an image {list(size)} has {math.prod(out)} blocks "
                          f"{list(out)} of {list(kernel)}, but input has {input.shape[2]}")
    n, c = input.shape[0], input.shape[1] // k
    cols = F.reshape(input, (n, c) + kernel + out)
    cols = F.transpose(cols, (0, 1, *range(2 + d, 2 + 2 * d), *range(2, 2 + d)))
    summed = F.col2im(cols, size, strides, pads, dilations)
    return F.sum(summed, tuple(range(2 + d, 2 + 2 * d)))


# --- GridSample --------------------------------------------------------------------------------
_MODES = {"linear": "linear", "bilinear": "linear", "nearest": "nearest", "cubic": "cubic",
          "bicubic": "cubic"}
_CUBIC_A = -0.75


def _reflect(x: Tensor, lo: float, hi: float) -> Tensor:
    """x folded into [lo, hi] by reflecting at the borders (a triangle wave of x)."""
    span = hi - lo
    if span == 0:
        return F.broadcast_to(F.constant(x.builder, lo, x.dtype), x.shape)
    return hi - F.abs(F.mod(x - lo, F.constant(x.builder, 2 * span, x.dtype)) - span)


def _cubic_weights(t: Tensor) -> list[Tensor]:
    """Keys' cubic convolution weights (a = -0.75) of the taps at -1, 0, 1, 2 from t in [0, 1)."""
    a = _CUBIC_A

    def near(s):  # |s| <= 1
        return ((a + 2) * s - (a + 3)) * s * s + 1

    def far(s):  # 1 < |s| < 2
        return ((a * s - 5 * a) * s + 8 * a) * s - 4 * a
    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def _fetch(i: Tensor, size: int, lo: float, hi: float, padding: str):
    """Tap positions i (integer-valued floats) -> (i64 rows along the axis, validity or None)."""
    if padding == "reflection":
        i = _reflect(i, lo, hi)
    inside = None if padding != "zeros" else F.logical_and(i >= 0.0, i <= size - 1.0)
    clamped = F.minimum(F.maximum(i, 0.0), size - 1.0)
    return F.cast(clamped, "i64"), inside


def _axis_taps(x: Tensor, size: int, mode: str, padding: str, align_corners: bool):
    """One spatial axis: x the pixel coordinates [N, *Dout]; its taps as (rows, weight)."""
    lo, hi = (0.0, size - 1.0) if align_corners else (-0.5, size - 0.5)
    if mode == "nearest":
        x = F.round(x)
    # border and reflection first move an outside coordinate inside, except cubic border,
    # which (as in PyTorch and onnxruntime, the spec's model) only clamps each tap
    if padding == "reflection" or (padding == "border" and mode != "cubic"):
        adjusted = F.minimum(F.maximum(x, 0.0), size - 1.0) if padding == "border" else \
            _reflect(x, lo, hi)
        x = F.where(F.logical_or(x < lo, x > hi), adjusted, x)
    if mode == "nearest":
        rows, inside = _fetch(F.floor(F.stop_gradient(x)), size, lo, hi, padding)
        return [(rows, None if inside is None else F.cast(inside, x.dtype))]
    base = F.floor(F.stop_gradient(x))
    t = x - base
    weights = [1.0 - t, t] if mode == "linear" else _cubic_weights(t)
    first = 0 if mode == "linear" else -1
    taps = []
    for j, w in enumerate(weights):
        rows, inside = _fetch(base + float(first + j), size, lo, hi, padding)
        taps.append((rows, w if inside is None else F.where(inside, w, 0.0)))
    return taps


def _pixel_coordinates(grid: Tensor, sizes: tuple[int, ...], align_corners: bool):
    """Per spatial axis (first to last) the pixel coordinate of every grid point [N, *Dout]."""
    d, lead = len(sizes), grid.shape[:-1]
    coords = []
    for a, size in enumerate(sizes):
        c = d - 1 - a  # the grid lists the last spatial axis first
        n = F.reshape(F.slice(grid, [c], [c + 1], [-1]), lead)
        coords.append((n + 1.0) * ((size - 1) / 2.0) if align_corners else
                      ((n + 1.0) * float(size) - 1.0) / 2.0)
    return coords


def GridSample(X, grid, align_corners=0, mode="linear", padding_mode="zeros"):
    if mode not in _MODES:
        raise GraphcError(f"GridSample: mode {mode!r} is not one of {sorted(_MODES)}")
    if padding_mode not in ("zeros", "border", "reflection"):
        raise GraphcError(f"GridSample: padding_mode {padding_mode!r} is not zeros, border or "
                          f"reflection")
    d = X.ndim - 2
    if d < 1 or not X.type.is_float or not grid.type.is_float or grid.ndim != X.ndim or \
            grid.shape[0] != X.shape[0] or grid.shape[-1] != d:
        raise GraphcError(f"GridSample: need float X [N, C, *S] and grid [N, *D_out, {d}] of "
                          f"the same rank, got {X.type} and {grid.type}")
    g = grid if grid.dtype == X.dtype else F.cast(grid, X.dtype)
    n, c, sizes = X.shape[0], X.shape[1], X.shape[2:]
    per_axis = [_axis_taps(x, size, _MODES[mode], padding_mode, bool(align_corners))
                for x, size in zip(_pixel_coordinates(g, sizes, bool(align_corners)), sizes)]
    pixels = math.prod(sizes)
    table = F.reshape(F.transpose(X, (0, *range(2, 2 + d), 1)), (n * pixels, c))
    batch_rows = X.builder.apply("iota", [], shape=(n,) + (1,) * (d), axis=0,
                                 dtype="i64") * pixels
    strides = [math.prod(sizes[a + 1:]) for a in range(d)]
    total = None
    for combination in itertools.product(*per_axis):
        rows, weight = batch_rows, None
        for (axis_rows, w), stride in zip(combination, strides):
            rows = rows + (axis_rows * stride if stride != 1 else axis_rows)
            weight = w if weight is None else (weight if w is None else weight * w)
        values = F.gather(table, rows, 0)                       # [N, *Dout, C]
        term = values if weight is None else values * F.unsqueeze(weight, -1)
        total = term if total is None else total + term
    return F.transpose(total, (0, d + 1, *range(1, d + 1)))


# --- AffineGrid --------------------------------------------------------------------------------
def _normalised(size: int, align_corners: bool) -> np.ndarray:
    if size == 1:
        return np.zeros(1)
    if align_corners:
        return np.linspace(-1.0, 1.0, size)
    return (2.0 * np.arange(size) + 1.0) / size - 1.0


def AffineGrid(theta, size, align_corners=0):
    """grid[n, *p] = theta[n] @ (x, y[, z], 1) of point p's normalised coordinates."""
    shape = tuple(ints(size))
    d = len(shape) - 2
    if d not in (2, 3) or theta.shape != (shape[0], d, d + 1) or not theta.type.is_float:
        raise GraphcError(f"AffineGrid: need size [N, C, H, W] or [N, C, D, H, W] and float "
                          f"theta [N, 2, 3] or [N, 3, 4] for it, got size {list(shape)} and "
                          f"theta {theta.type}")
    spatial = shape[2:]
    axes = np.meshgrid(*[_normalised(s, bool(align_corners)) for s in spatial], indexing="ij")
    columns = [axes[a].reshape(-1) for a in reversed(range(d))] + \
        [np.ones(math.prod(spatial))]
    base = F.constant(theta.builder, np.stack(columns, 1).astype(theta.type.np_dtype))
    points = base @ F.transpose(theta, (0, 2, 1))             # [N, prod(S), d]
    return F.reshape(points, (shape[0],) + spatial + (d,))
