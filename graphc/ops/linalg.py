"""Matrix multiply and data movement: matmul (batched, broadcasting), transpose, reshape.

Input: nothing (imported for its side effect). Output: registered OpDefs. Movement ops carry a
`view` fact (input element strides per output dim), so one strided-copy kernel lowers them all.
`transpose` (perm defaults to reversed axes) and `reshape` (one -1 is inferred) have their
op-API functions here.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from graphc.builder import Tensor
from graphc.errors import GraphcError, ShapeError
from graphc.ops import api as F
from graphc.ops.api import _apply, _axis, _fail
from graphc.ops.registry import REQUIRED, OpDef, register
from graphc.types import FLOAT_DTYPES, TensorType, broadcast_shapes


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= d
    return tuple(reversed(strides))


def _matmul_rule(types, attrs):
    a, b = types
    if a.rank < 2 or b.rank < 2:
        raise ShapeError(f"matmul needs operands of rank >= 2, got {a} and {b}")
    if a.dtype != b.dtype or a.dtype not in FLOAT_DTYPES:
        raise ShapeError(f"matmul needs two operands of the same float dtype, got {a} and {b}")
    if a.shape[-1] != b.shape[-2]:
        raise ShapeError(f"matmul inner dimensions differ: {a.shape} @ {b.shape} "
                         f"({a.shape[-1]} != {b.shape[-2]})")
    try:
        batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except GraphcError as err:
        raise ShapeError(f"matmul batch dimensions: {err}") from None
    return [TensorType(batch + (a.shape[-2], b.shape[-1]), a.dtype)]


def _matmul_bprop(a, b, y, g):
    """dA = g Bᵀ, dB = Aᵀ g. When a batched A meets a plain matrix B (a dense layer applied to
    a sequence), dB folds the batch into the contraction, one [K, N] product, instead of a
    batch of products summed afterwards."""
    if b.ndim == 2 and a.ndim > 2:
        k, n = b.shape
        grad_b = F.transpose(F.reshape(a, (-1, k))) @ F.reshape(g, (-1, n))
    else:
        grad_b = F.swapaxes(a, -1, -2) @ g
    return [g @ F.swapaxes(b, -1, -2), grad_b]


def _matmul_reference(a, b):
    """np.matmul in the operands' dtype (ml_dtypes' bf16 matmul accumulates and returns f32)."""
    return np.matmul(a, b).astype(a.dtype, copy=False)


register(OpDef(
    name="matmul", doc="a @ b; batch dims broadcast like NumPy", kind="matmul",
    infer=_matmul_rule, reference=_matmul_reference, arity=2, bprop=_matmul_bprop, onnx="MatMul"))


def _transpose_rule(types, attrs):
    (x,), perm = types, tuple(attrs["perm"])
    if sorted(perm) != list(range(x.rank)):
        raise ShapeError(f"transpose: perm {perm} is not a permutation of {x.rank} axes")
    return [TensorType(tuple(x.shape[p] for p in perm), x.dtype)]


def _transpose_view(x: TensorType, y: TensorType, perm) -> tuple[int, ...]:
    strides = contiguous_strides(x.shape)
    return tuple(strides[p] for p in perm)


def transpose(x: Tensor, perm: Sequence[int] | None = None) -> Tensor:
    perm = tuple(reversed(range(x.ndim))) if perm is None else \
        tuple(_axis(p, x, "transpose") for p in perm)
    return _apply("transpose", x, perm=perm)


register(OpDef(
    name="transpose", doc="permute axes", kind="movement", infer=_transpose_rule,
    reference=lambda x, perm: np.array(np.transpose(x, perm), order="C"),
    bprop=lambda x, y, g, perm: [F.transpose(g, tuple(np.argsort(perm).tolist()))],
    attrs={"perm": REQUIRED}, view=_transpose_view, onnx="Transpose", dsl=transpose))


def _reshape_rule(types, attrs):
    (x,), shape = types, tuple(attrs["shape"])
    if any(d < 0 for d in shape) or int(np.prod(shape)) != x.size:
        raise ShapeError(f"reshape: cannot reshape {x.shape} ({x.size} elements) to {shape}")
    return [TensorType(shape, x.dtype)]


def reshape(x: Tensor, shape: Sequence[int]) -> Tensor:
    shape = tuple(int(d) for d in shape)
    if shape.count(-1) > 1:
        _fail(f"reshape to {shape}: at most one dimension may be -1", x, "reshape")
    if -1 in shape:
        known = 1
        for d in shape:
            known *= d if d != -1 else 1
        if known == 0 or x.type.size % known:
            _fail(f"cannot reshape {x.shape} to {shape}", x, "reshape")
        shape = tuple(x.type.size // known if d == -1 else d for d in shape)
    return _apply("reshape", x, shape=shape)


register(OpDef(
    name="reshape", doc="same elements, new shape (row-major)", kind="movement",
    infer=_reshape_rule, reference=lambda x, shape: np.reshape(x, shape).copy(),
    bprop=lambda x, y, g, shape: [F.reshape(g, x.shape)], attrs={"shape": REQUIRED},
    view=lambda x, y, shape: contiguous_strides(y.shape), dsl=reshape))
