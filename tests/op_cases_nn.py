"""Op cases for the CNN/transformer ops (activations, shape, conv, norm), merged into
tests/op_cases.py's table.

Input: the generators and row constructors of tests/op_cases.py. Output: `NN_RAW` (op name ->
case/bad rows) and `NN_BAD_DATA`. Expected values are independent NumPy formulas written from the
ONNX operator specification (Gauss-Legendre quadrature for erf, explicit loops or one-hot sums
for the movement ops), not calls of the op's reference.
"""
from __future__ import annotations

import math

import numpy as np

from tests.op_cases import (
    INF,
    NAN,
    _types,
    away,
    bad,
    case,
    distinct,
    per_operand,
    positive,
    uniform,
    values,
)

_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(60)


def erf(x) -> np.ndarray:
    """2/sqrt(pi) * integral_0^x exp(-t^2) dt by 60-point Gauss-Legendre (|x| <= 4: < 1e-14)."""
    x = np.asarray(x, np.float64)
    t = 0.5 * x[..., None] * (_NODES + 1)
    return (x * np.sum(_WEIGHTS * np.exp(-t * t), axis=-1)) / math.sqrt(math.pi)


def _round_half_even(x):
    f = np.floor(x)
    d = x - f
    odd = np.mod(f, 2) == 1
    return np.where((d > 0.5) | ((d == 0.5) & odd), f + 1, f)


def _unary_rows(fn, gen=None, special=None, int_ok=False, **attrs):
    rows = [case("f32", "f32[2,3]", fn, gen, **attrs),
            case("f64_scalar", "f64[]", fn, gen, **attrs),
            case("f64_3d", "f64[2,1,2]", fn, gen, **attrs)]
    if special is not None:
        rows.append(case("special", f"f32[{len(special)}]", fn, values(special), grad=False,
                         **attrs))
    if int_ok:
        rows.append(case("i64", "i64[5]", fn, away(), **attrs))
    return rows


_FLOAT_ONLY = [bad("i64", "i64[2]", "not supported")]
_NUMERIC_ONLY = [bad("bool", "bool[2]", "not supported")]
_BOOL_ONLY = [bad("f32", "f32[2] f32[2]", "not supported")]
SELU_A, SELU_G = 1.67326319217681884765625, 1.05070102214813232421875  # ONNX's defaults


def _gelu_tanh(x):
    x = x.astype(np.float64)
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


ACTIVATIONS = {
    "abs": _unary_rows(lambda x: np.maximum(x, -x), away(), [NAN, -0.0, -INF, 2.0], True)
    + _NUMERIC_ONLY,
    "sign": _unary_rows(lambda x: np.where(np.isnan(x), x, (x > 0) * 1 - (x < 0) * 1), away(),
                        [NAN, 0.0, -INF, 2.0], True) + _NUMERIC_ONLY,
    "floor": _unary_rows(lambda x: np.where(np.isfinite(x), x - np.mod(x, 1), x), uniform(-3, 3), [-0.5, 2.0, NAN, -INF])
    + _FLOAT_ONLY,
    "ceil": _unary_rows(lambda x: np.where(np.isfinite(x), x + np.mod(-x, 1), x), uniform(-3, 3), [-0.5, 2.0, NAN, INF])
    + _FLOAT_ONLY,
    "round": _unary_rows(_round_half_even, uniform(-3, 3),
                         [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4999, NAN]) + _FLOAT_ONLY,
    "reciprocal": _unary_rows(lambda x: x ** -1.0, away(0.3), [0.0, -0.0, INF, NAN])
    + _FLOAT_ONLY,
    "erf": _unary_rows(erf, uniform(-3, 3), [0.0, 4.0, -4.0, 1e-3]) + _FLOAT_ONLY,
    "is_nan": [case("f32", "f32[4]", lambda x: np.not_equal(x, x), values([NAN, 1.0, INF, -0.0])),
               case("f64", "f64[2,2]", lambda x: np.not_equal(x, x), values([1.0, NAN]))] + _FLOAT_ONLY,
    "is_inf": [case("f32", "f32[4]", lambda x: (x == INF) | (x == -INF),
                    values([NAN, 1.0, INF, -INF])),
               case("f64", "f64[3]", lambda x: (x == INF) | (x == -INF), values([1e308, INF]))]
    + _FLOAT_ONLY,
    "leaky_relu": _unary_rows(lambda x: np.maximum(x, 0) + 0.01 * np.minimum(x, 0), away(0.1),
                              [NAN, -INF, -1.0, 2.0])
    + [case("alpha", "f32[2,3]", lambda x: np.maximum(x, 0) + 0.3 * np.minimum(x, 0), away(0.1),
            alpha=0.3)] + _FLOAT_ONLY,
    "elu": _unary_rows(lambda x: np.where(x > 0, x, np.expm1(x)), away(0.1), [-INF, NAN, -50.0])
    + [case("alpha", "f64[2,3]", lambda x: np.where(x > 0, x, 0.5 * np.expm1(x)), away(0.1),
            alpha=0.5)] + _FLOAT_ONLY,
    "selu": _unary_rows(lambda x: SELU_G * np.where(x > 0, x, SELU_A * np.expm1(x)), away(0.1),
                        [-INF, NAN, 3.0]) + _FLOAT_ONLY,
    "softplus": _unary_rows(lambda x: np.log1p(np.exp(x.astype(np.float64))), uniform(-4, 4),
                            [-100.0, 100.0, NAN, 0.0, -30.0]) + _FLOAT_ONLY,
    "hard_sigmoid": _unary_rows(lambda x: np.minimum(1, np.maximum(0, 0.2 * x + 0.5)),
                                uniform(-2, 2), [NAN, -10.0, 10.0])
    + [case("alpha_beta", "f64[3,2]", lambda x: np.minimum(1, np.maximum(0, 0.5 * x + 0.25)),
            uniform(-3, 3), alpha=0.5, beta=0.25)] + _FLOAT_ONLY,
    "hard_swish": _unary_rows(lambda x: x * np.minimum(6, np.maximum(0, x + 3)) / 6,
                              uniform(-4, 4), [-10.0, 10.0, NAN]) + _FLOAT_ONLY,
    "gelu": _unary_rows(lambda x: 0.5 * x * (1 + erf(x / math.sqrt(2))), uniform(-4, 4),
                        [-10.0, 10.0, NAN])
    + [case("tanh", "f32[2,3]", _gelu_tanh, uniform(-4, 4), approximate="tanh"),
       case("tanh_f64", "f64[4]", _gelu_tanh, uniform(-4, 4), approximate="tanh"),
       bad("approximate", "f32[2]", "approximate", approximate="erf")] + _FLOAT_ONLY,
    "clip": [
        case("f32_scalar_bounds", "f32[2,3] f32[] f32[]",
             lambda x, lo, hi: np.where(x < lo, lo, np.where(x > hi, hi, x)),
             per_operand(uniform(-2, 2), values(-0.55), values(0.75))),
        case("f64_tensor_bounds", "f64[2,3] f64[3] f64[2,1]",
             lambda x, lo, hi: np.where(x < lo, lo, np.where(x > hi, hi, x)),
             per_operand(uniform(-2, 2), values([-1.05, -0.25, 0.05]), values([0.55, 1.35]))),
        case("i64", "i64[6] i64[] i64[]",
             lambda x, lo, hi: np.where(x < lo, lo, np.where(x > hi, hi, x)),
             per_operand(uniform(), values(-2), values(3))),
        case("nan", "f32[3] f32[] f32[]", lambda x, lo, hi: np.where(np.isnan(x), x, 0.5),
             values([NAN, 0.5, 3.0], 0.5, 0.5), grad=False),
        bad("dtype", "f32[2] f64[] f32[]", "dtypes differ")],
    "prelu": [
        case("f32_channel", "f32[2,3] f32[3]", lambda x, s: np.maximum(x, 0) + s * np.minimum(x, 0),
             per_operand(away(0.1), uniform(0.1, 0.5))),
        case("f64_4d", "f64[2,3,2,2] f64[3,1,1]",
             lambda x, s: np.maximum(x, 0) + s * np.minimum(x, 0),
             per_operand(away(0.1), uniform(0.1, 0.5))),
        bad("slope_bigger", "f32[3] f32[2,3]", "must broadcast to x"),
        bad("i64", "i64[3] i64[3]", "not supported")],
    "logical_and": [case("bool", "bool[2,3] bool[3]", lambda a, b: a * b == 1)] + _BOOL_ONLY,
    "logical_or": [case("bool", "bool[2,3] bool[3]", lambda a, b: (a * 1 + b * 1) > 0)]
    + _BOOL_ONLY,
    "logical_xor": [case("bool", "bool[2,3] bool[2,1]", lambda a, b: (a * 1 + b * 1) == 1)]
    + _BOOL_ONLY,
    "logical_not": [case("bool", "bool[5]", lambda a: a * 1 == 0),
                    bad("f32", "f32[2]", "not supported")],
}

NN_RAW: dict[str, list] = {**ACTIVATIONS}
NN_BAD_DATA: dict = {}
_ = (_types, distinct, positive)  # re-exported helpers used by later sections
