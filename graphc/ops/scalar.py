"""The scalar emitter protocol shared by elementwise bodies, and its NumPy implementation.

Input: an OpDef's `scalar(e, *args)` body. Output: the body evaluated on NumPy arrays
(`NumpyEmitter`); runtime/ provides the LLVM implementation with the same method names, so one
body defines both the interpreter-checkable semantics and the compiled kernel.
"""
from __future__ import annotations

import math

import numpy as np

from graphc.errors import GraphcError
from graphc.types import DTYPES

# trigonometric and hyperbolic functions and their inverses: NumPy's here, libm's compiled
TRIG_METHODS = ("sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh",
                "atanh")
EMITTER_METHODS = (
    "add", "sub", "mul", "div", "neg", "exp", "log", "tanh", "sqrt", "pow", "max", "min",
    "lt", "le", "gt", "ge", "eq", "ne", "select", "const", "cast",
    "floor", "ceil", "round", "erf", "floordiv", "mod", "xor", "shift_right", "fail_unless",
    "read_if", *TRIG_METHODS, "fmod", "bit_and", "bit_or", "bit_not", "shift_left",
    "shift_right_arith",
)


def erf_array(a):
    """erf elementwise (NumPy has none): math.erf in float64, rounded to the input's dtype."""
    a = np.asarray(a)
    out = np.asarray(np.frompyfunc(math.erf, 1, 1)(a.astype(np.float64)), dtype=np.float64)
    return out.astype(a.dtype)


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

    def read_if(self, cond, read, safe_read, default):
        """`read()` where cond holds, else `default`. NumPy evaluates every element, so it
        reads through `safe_read` (the index clamped into range) and selects."""
        value = safe_read()
        return np.where(cond, value, self.const(default, value))

    def const(self, value, like):
        dtype = np.asarray(like).dtype
        if dtype.kind in "iu" and isinstance(value, float) and np.isinf(value):
            value = np.iinfo(dtype).max if value > 0 else np.iinfo(dtype).min
        return np.asarray(value, dtype=dtype)
    def cast(self, a, dtype): return np.asarray(a).astype(DTYPES[dtype])
    def floor(self, a): return np.floor(a)
    def ceil(self, a): return np.ceil(a)
    def round(self, a): return np.round(a)  # half to even
    def erf(self, a): return erf_array(a)
    # i64 only: floor division and modulo (Python/NumPy signs), bitwise xor, logical shift
    def floordiv(self, a, b): return np.floor_divide(a, b)
    def mod(self, a, b): return np.mod(a, b)
    def xor(self, a, b): return np.bitwise_xor(a, b)
    def shift_right(self, a, k):
        return (np.asarray(a).astype(np.uint64) >> np.asarray(k).astype(np.uint64)).astype(np.int64)
    # i64 (and bool for and/or/not): bitwise logic; shifts by k outside [0, 64) give 0, or -1
    # for an arithmetic right shift of a negative a (NumPy's int64 shifts)
    def bit_and(self, a, b): return np.bitwise_and(a, b)
    def bit_or(self, a, b): return np.bitwise_or(a, b)
    def bit_not(self, a): return np.invert(a)
    def shift_left(self, a, k): return np.left_shift(a, k)
    def shift_right_arith(self, a, k): return np.right_shift(a, k)
    # C fmod: the sign of the dividend, fmod(x, ±inf) = x, fmod(±inf, y) = NaN; i64 x % 0 is 0
    def fmod(self, a, b): return np.fmod(a, b)
    def sin(self, a): return np.sin(a)
    def cos(self, a): return np.cos(a)
    def tan(self, a): return np.tan(a)
    def asin(self, a): return np.arcsin(a)
    def acos(self, a): return np.arccos(a)
    def atan(self, a): return np.arctan(a)
    def sinh(self, a): return np.sinh(a)
    def cosh(self, a): return np.cosh(a)
    def asinh(self, a): return np.arcsinh(a)
    def acosh(self, a): return np.arccosh(a)
    def atanh(self, a): return np.arctanh(a)

    def fail_unless(self, cond, message: str) -> None:
        """Data the shape rule could not see is invalid (an index out of range): an error,
        never a silent clamp. Compiled code raises the same error after the step."""
        if not np.all(cond):
            raise GraphcError(message)

    def run(self, body, *args, **attrs):
        with np.errstate(all="ignore"):  # a fresh context per run: NumPy 2 errstates are one-shot
            out = body(self, *[np.asarray(a) for a in args], **attrs)
        return np.asarray(out)
