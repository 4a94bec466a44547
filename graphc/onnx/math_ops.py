"""ONNX math ops with no graphc op of their own, built from the op API: ReduceProd.

Input: a node's data operand (a Tensor), its axes (a NumPy array: `STATIC` in table.py; or the
attribute of opsets before 18) and its attributes under their ONNX names. Output: a Tensor.

ReduceProd multiplies pairs of halves of the reduced elements until one is left (a balanced
tree of log2(n) slice-and-multiply steps), so its gradient is autodiff's through `mul`: exact
where elements are zero (one zero: the product of the others at it, 0 elsewhere; two or more:
0 everywhere), which the textbook prod / x is not. An empty reduction gives 1.
"""
from __future__ import annotations

import math

import numpy as np

from graphc.builder import Tensor
from graphc.onnx.nn_ops import _reducer
from graphc.onnx.ops import const
from graphc.ops import api as F


def _pairwise_product(rows: Tensor) -> Tensor:
    """[m, n] -> [m, 1]: the product along axis 1, halves multiplied pairwise (an odd element
    out waits for the next round)."""
    n = rows.shape[1]
    while n > 1:
        half = n // 2
        y = F.slice(rows, [0], [half], [1]) * F.slice(rows, [half], [2 * half], [1])
        rows = F.concat([y, F.slice(rows, [2 * half], [n], [1])], 1) if n % 2 else y
        n = rows.shape[1]
    return rows


def _product(x: Tensor, axes: list[int], keepdims: bool) -> Tensor:
    reduced = sorted({a % x.ndim for a in axes})
    kept = [a for a in range(x.ndim) if a not in reduced]
    out_shape = tuple(1 if a in reduced else d for a, d in enumerate(x.shape)
                      if keepdims or a not in reduced)
    if not reduced:
        return x
    if x.type.size == 0:  # an empty product is 1 (and nothing to compute when no row is left)
        return const(x.builder, np.ones(out_shape, x.type.np_dtype))
    moved = F.transpose(x, kept + reduced) if kept + reduced != list(range(x.ndim)) else x
    rows = F.reshape(moved, (math.prod(x.shape[a] for a in kept),
                             math.prod(x.shape[a] for a in reduced)))
    return F.reshape(_pairwise_product(rows), out_shape)


_reduce_prod = _reducer(_product)


def ReduceProd(data, axes=None, keepdims=1, noop_with_empty_axes=0):
    return _reduce_prod(data, axes, keepdims, noop_with_empty_axes)
