"""Op cases for `mod` (graphc/ops/modulo.py, ONNX Mod), merged into tests/op_cases.py's table.

Input: the row constructors of tests/op_cases.py. Output: `RAW` (op name -> case/bad rows).
Expected values are independent formulas: a - b * trunc(a / b) (fmod=1) or a - b * floor(a / b)
(fmod=0) for floats whose quotients stay away from integers (where the remainder jumps), the
special cases as ONNX's Mod specification lists them, and Python's integer % and its C
counterpart for i64 (x % 0 is 0, as in NumPy). Signed zeros are checked in
tests/test_onnx_mod.py (this table's comparison does not see the sign of a zero).
"""
from __future__ import annotations

import numpy as np

from tests.op_cases import INF, NAN, bad, case, values


def _quotients():
    """b with |b| in [0.5, 2] and either sign; a = b * q where q's fraction is in [0.2, 0.8]
    (q in (-4, 4)), so trunc and floor of a / b are far from a jump."""
    def gen(rng, types):
        ta, tb = types
        b = rng.uniform(0.5, 2, tb.shape) * rng.choice([-1, 1], tb.shape)
        q = rng.integers(-3, 4, ta.shape) + rng.uniform(0.2, 0.8, ta.shape)
        return [np.asarray(b * q).astype(ta.np_dtype), np.asarray(b).astype(tb.np_dtype)]
    return gen


def _float_rem(rounding):
    return lambda a, b: a.astype(np.float64) - b * rounding(a.astype(np.float64) / b)


# ONNX's special cases (operator doc of Mod), as rows: a, b
_A = [0.0, -0.0, 0.0, -0.0, -3.0, 3.0, -1.0, 1.0, INF, -INF, 1.0, 1.0, NAN, 2.5, 7.5]
_B = [-2.0, 2.0, 2.0, -2.0, INF, INF, -INF, -INF, 2.0, 2.0, 0.0, -0.0, 1.0, NAN, -2.0]


def _spec_fmod(a, b):
    """fmod=1: NaN for NaN, a = ±inf or b = ±0; a for b = ±inf; else a - b trunc(a / b)."""
    plain = _float_rem(np.trunc)(a, np.where(np.isinf(b), 1.0, b))
    return np.where(np.isnan(a) | np.isnan(b) | np.isinf(a) | (b == 0), NAN,
                    np.where(np.isinf(b), a, plain))


def _spec_mod(a, b):
    """fmod=0: as fmod=1, except that b = ±inf gives b when a and b differ in sign (a != 0)."""
    plain = _float_rem(np.floor)(a, np.where(np.isinf(b), 1.0, b))
    at_inf = np.where((a != 0) & ((a < 0) != (b < 0)), b, a)
    return np.where(np.isnan(a) | np.isnan(b) | np.isinf(a) | (b == 0), NAN,
                    np.where(np.isinf(b), at_inf, plain))


def _int_rem(c_style: bool):
    """Python's % (floor) or C's (truncating) remainder of Python ints; x % 0 is 0."""
    def rem(a, b):
        if b == 0:
            return 0
        return (abs(a) % abs(b)) * (-1 if a < 0 else 1) if c_style else a % b

    def apply(a, b):
        a, b = np.broadcast_arrays(a, b)
        out = [rem(int(x), int(y)) for x, y in zip(a.reshape(-1), b.reshape(-1))]
        return np.array(out, np.int64).reshape(a.shape)
    return apply


_INT_A = [7, -7, 7, -7, 0, 5, -(2**63), 2**63 - 1, -(2**63)]
_INT_B = [3, 3, -3, -3, 4, 0, -1, 2**62 + 1, 7]


def _rows(fmod: int) -> list:
    rounding, spec = (np.trunc, _spec_fmod) if fmod else (np.floor, _spec_mod)
    name = f"fmod{fmod}"
    return [
        case(f"{name}_f32_bcast", "f32[2,3] f32[3]", _float_rem(rounding), _quotients(),
             fmod=fmod),
        case(f"{name}_f64", "f64[3,2] f64[3,2]", _float_rem(rounding), _quotients(), fmod=fmod),
        case(f"{name}_f32_special", f"f32[{len(_A)}] f32[{len(_B)}]", spec, values(_A, _B),
             grad=False, fmod=fmod),
        case(f"{name}_f64_special", f"f64[{len(_A)}] f64[{len(_B)}]", spec, values(_A, _B),
             grad=False, fmod=fmod),
        case(f"{name}_i64", f"i64[{len(_INT_A)}] i64[{len(_INT_B)}]", _int_rem(bool(fmod)),
             values(_INT_A, _INT_B), fmod=fmod),
        case(f"{name}_i64_bcast", "i64[2,3] i64[3]", _int_rem(bool(fmod)),
             values([5, -5, 9, -9, 1, 0], [3, -2, 4]), fmod=fmod),
    ]


RAW: dict[str, list] = {
    "mod": _rows(1) + _rows(0) + [
        bad("fmod", "f32[2] f32[2]", "fmod must be 0 or 1", fmod=2),
        bad("bool", "bool[2] bool[2]", "not supported"),
        bad("dtype_mix", "f32[2] i64[2]", "dtypes differ"),
        bad("bcast", "f32[2,3] f32[2]", "do not broadcast")],
}
