"""Op cases for the trigonometric and hyperbolic ops (graphc/ops/trig.py), merged into
tests/op_cases.py's table.

Input: the generators and row constructors of tests/op_cases.py. Output: `RAW` (op name ->
case/bad rows). Expected values are independent NumPy formulas, not the functions themselves:
Euler's formula over complex exponentials for sin, cos and tan, atan2 of the legs of a right
triangle for the inverse functions, expm1/exp for sinh and cosh, and the log1p forms of the
inverse hyperbolic functions (log(2x) where x² would overflow). Special values: NaN, ±inf,
signed zero, domain edges (asin(1.5) = NaN, acosh(0.5) = NaN, atanh(1) = inf) and huge
arguments, in f32 and in f64.
"""
from __future__ import annotations

import numpy as np

from tests.op_cases import INF, NAN, bad, case, uniform, values

_BIG = 1e8  # beyond, the log forms use log(2|x|) (exact to 1e-17), where x² may overflow


def _exp_i(x, k=1):
    """e^(i k x), the unit complex number at angle k x."""
    return np.exp(1j * k * np.asarray(x))


def _sin(x): return ((_exp_i(x) - _exp_i(x, -1)) / 2j).real
def _cos(x): return ((_exp_i(x) + _exp_i(x, -1)) / 2).real
def _tan(x): return ((_exp_i(x, 2) - 1) / (1j * (_exp_i(x, 2) + 1))).real


def _leg(x):
    """sqrt(1 - x²) without cancellation near |x| = 1 (NaN outside [-1, 1])."""
    return np.sqrt((1 - x) * (1 + x))


def _asinh(x):
    x = np.asarray(x, np.float64)
    a = np.abs(x)
    small = np.log1p(a + a * a / (1 + np.sqrt(1 + a * a)))
    return np.where(np.isnan(x), x, np.sign(x) * np.where(a > _BIG, np.log(2) + np.log(a),
                                                           small))


def _acosh(x):
    x = np.asarray(x, np.float64)
    return np.where(x > _BIG, np.log(2) + np.log(x),
                    np.log1p((x - 1) + np.sqrt((x - 1) * (x + 1))))


def _atanh(x):
    """Odd: log1p of a positive argument, so no cancellation near x = -1."""
    a = np.abs(x)
    return np.where(np.isnan(x), x, np.sign(x) * 0.5 * np.log1p(2 * a / (1 - a)))


_SPECIAL = {
    "sin": [INF, -INF, NAN, 0.0, -0.0, 1e30, -3e7],
    "cos": [INF, -INF, NAN, 0.0, -0.0, 1e30, 3e7],
    "tan": [INF, -INF, NAN, 0.0, -0.0, 1e30, 1.0],
    "asin": [1.5, -1.5, 1.0, -1.0, NAN, INF, -INF, -0.0],
    "acos": [1.5, -1.5, 1.0, -1.0, NAN, INF, -INF, 0.0],
    "atan": [INF, -INF, NAN, 0.0, -0.0, 1e30, -1e-30],
    "sinh": [INF, -INF, NAN, 0.0, -0.0, 100.0, -100.0, 1e-30],
    "cosh": [INF, -INF, NAN, 0.0, -0.0, 100.0, -100.0],
    "asinh": [INF, -INF, NAN, 0.0, -0.0, 1e30, -1e30, 1e-30],
    "acosh": [0.5, -1.0, 1.0, INF, -INF, NAN, 1e30, 0.0],
    "atanh": [1.0, -1.0, 1.5, -1.5, NAN, INF, -INF, 0.0, -0.0],
}
# the f64 special rows add arguments that only f64 holds or that overflow only there
_SPECIAL_F64 = {
    "sin": [1e300, -1e22], "cos": [1e300, 1e22], "tan": [1e300, 1e22],
    "asin": [1.0000000000000002, -0.9999999999999999],
    "acos": [1.0000000000000002, -0.9999999999999999],
    "atan": [1e300, -1e-300], "sinh": [800.0, -800.0, 700.0], "cosh": [800.0, -800.0, 700.0],
    "asinh": [1e300, -1e300, 1e-300], "acosh": [1e300, 0.9999999999999999, 1.0000000000000002],
    "atanh": [0.9999999999999999, -0.9999999999999999, 1.0000000000000002],
}

_FORMULAS = {
    "sin": (_sin, uniform(-4, 4)),
    "cos": (_cos, uniform(-4, 4)),
    "tan": (_tan, uniform(-1.2, 1.2)),
    "asin": (lambda x: np.arctan2(x, _leg(x)), uniform(-0.9, 0.9)),
    "acos": (lambda x: np.arctan2(_leg(x), x), uniform(-0.9, 0.9)),
    "atan": (lambda x: np.arctan2(x, np.ones_like(x)), uniform(-4, 4)),
    "sinh": (lambda x: (np.expm1(x) - np.expm1(-x)) / 2, uniform(-3, 3)),
    "cosh": (lambda x: (np.exp(x) + np.exp(-x)) / 2, uniform(-3, 3)),
    "asinh": (_asinh, uniform(-3, 3)),
    "acosh": (_acosh, uniform(1.2, 3)),
    "atanh": (_atanh, uniform(-0.9, 0.9)),
}


def _rows(op: str) -> list:
    fn, gen = _FORMULAS[op]
    special = _SPECIAL[op]
    special_f64 = special + _SPECIAL_F64[op]
    return [case("f32", "f32[2,3]", fn, gen), case("f64_scalar", "f64[]", fn, gen),
            case("f64_3d", "f64[2,1,2]", fn, gen),
            case("f32_special", f"f32[{len(special)}]", fn, values(special), grad=False),
            case("f64_special", f"f64[{len(special_f64)}]", fn, values(special_f64),
                 grad=False),
            bad("i64", "i64[2]", "not supported"), bad("bool", "bool[2]", "not supported"),
            bad("arity", "f32[2] f32[2]", "takes 1 input")]


RAW: dict[str, list] = {op: _rows(op) for op in _FORMULAS}
