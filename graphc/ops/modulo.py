"""The remainder of a division, with either sign convention (ONNX Mod).

Input: nothing (imported for its side effect). Output: one registered elementwise OpDef,
`mod(a, b, fmod=0)` on f32, f64 or i64 with broadcasting, ONNX Mod one-to-one:
  fmod=1: C fmod, a - trunc(a / b) * b computed exactly (the emitters' `fmod` primitive: libm's
          fmod / LLVM `frem`); the result has a's sign, -0.0 included; fmod(x, ±inf) = x,
          fmod(±inf, y) = fmod(x, ±0) = NaN.
  fmod=0: a - floor(a / b) * b, NumPy's np.mod (Python's %): the result has b's sign, a zero
          result is ±0 with b's sign, mod(x, ±inf) = x when x and the infinity agree in sign,
          else the infinity.
Integer division by zero gives 0 either way, as in NumPy. The gradient is g for a and
-g * (the integer quotient) for b.
"""
from __future__ import annotations

import numpy as np

from graphc.errors import ShapeError
from graphc.ops import api as F
from graphc.ops.elementwise import NUMERIC, _broadcast, _check_dtypes, _ew, _ignore
from graphc.types import TensorType


def _remainder(e, a, b):
    """np.mod from C fmod: add b when the remainder's sign differs from b's; a zero takes b's
    sign (NumPy's npy_divmod). A NaN remainder (b = 0, a = inf) stays NaN."""
    r = e.fmod(a, b)
    zero = e.const(0, r)
    nonzero = e.ne(r, zero)
    differ = e.select(nonzero, e.ne(e.lt(r, zero), e.lt(b, zero)), nonzero)
    r = e.select(differ, e.add(r, b), r)
    signed_zero = e.select(e.lt(b, zero), e.const(-0.0, r), zero)
    return e.select(e.eq(r, zero), signed_zero, r)


def _mod(e, a, b, fmod):
    return e.fmod(a, b) if fmod else _remainder(e, a, b)


def _mod_rule(types, attrs):
    if attrs["fmod"] not in (0, 1):
        raise ShapeError(f"mod: fmod must be 0 or 1, got {attrs['fmod']!r}")
    return [TensorType(_broadcast(types), _check_dtypes(types, NUMERIC))]


def _mod_bprop(a, b, y, g, fmod):
    """d/da = 1, d/db = -n for the integer n = (a - y) / b the forward took away."""
    return [g, -(g * F.round((a - y) / b))]


_ew("mod", "remainder of a / b: the sign of b (fmod=0, NumPy's mod) or of a (fmod=1, C fmod)",
    _ignore(lambda a, b, fmod: np.fmod(a, b) if fmod else np.mod(a, b)), _mod, _mod_bprop,
    NUMERIC, arity=2, attrs={"fmod": 0}, infer=_mod_rule, onnx="Mod")
