"""The scalar emitter protocol shared by elementwise bodies, and its NumPy implementation.

Input: an OpDef's `scalar(e, *args)` body. Output: the body evaluated on NumPy arrays
(`NumpyEmitter`); runtime/ provides the LLVM implementation with the same method names, so one
body defines both the interpreter-checkable semantics and the compiled kernel.
"""
from __future__ import annotations

import numpy as np

from ..types import DTYPES

EMITTER_METHODS = (
    "add", "sub", "mul", "div", "neg", "exp", "log", "tanh", "sqrt", "pow", "max", "min",
    "lt", "le", "gt", "ge", "eq", "ne", "select", "const", "cast",
)


class NumpyEmitter:
    """Evaluates scalar bodies elementwise on NumPy arrays (IEEE semantics, no warnings)."""

    def add(self, a, b): return a + b
    def sub(self, a, b): return a - b
    def mul(self, a, b): return a * b
    def div(self, a, b): return a / b
    def neg(self, a): return -a
    def exp(self, a): return np.exp(a)
    def log(self, a): return np.log(a)
    def tanh(self, a): return np.tanh(a)
    def sqrt(self, a): return np.sqrt(a)
    def pow(self, a, b): return np.power(a, b)
    def max(self, a, b): return np.maximum(a, b)
    def min(self, a, b): return np.minimum(a, b)
    def lt(self, a, b): return a < b
    def le(self, a, b): return a <= b
    def gt(self, a, b): return a > b
    def ge(self, a, b): return a >= b
    def eq(self, a, b): return a == b
    def ne(self, a, b): return a != b
    def select(self, c, a, b): return np.where(c, a, b)
    def const(self, value, like):
        dtype = np.asarray(like).dtype
        if dtype.kind in "iu" and isinstance(value, float) and np.isinf(value):
            value = np.iinfo(dtype).max if value > 0 else np.iinfo(dtype).min
        return np.asarray(value, dtype=dtype)
    def cast(self, a, dtype): return np.asarray(a).astype(DTYPES[dtype])

    def run(self, body, *args, **attrs):
        with np.errstate(all="ignore"):  # a fresh context per run: NumPy 2 errstates are one-shot
            out = body(self, *[np.asarray(a) for a in args], **attrs)
        return np.asarray(out)
