"""Op cases for the CNN/transformer ops (activations, shape, conv, norm), merged into
tests/op_cases.py's table.

Input: the generators and row constructors of tests/op_cases.py. Output: `RAW` (op name ->
case/bad rows) and `BAD_DATA`. Expected values are independent NumPy formulas written from the
ONNX operator specification (Gauss-Legendre quadrature for erf, explicit loops or one-hot sums
for the movement ops), not calls of the op's reference.
"""
from __future__ import annotations

import math

import numpy as np

from tests.conv_loops import col2im_loop, conv_loop, pool_loop, windows_loop
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



# --- movement ----------------------------------------------------------------------------------
def _padded(x, pads, value):
    """Constant pad by explicit placement (negative pads crop)."""
    r = x.ndim
    shape = [d + b + e for d, b, e in zip(x.shape, pads[:r], pads[r:])]
    out = np.full(shape, value, x.dtype)
    src = tuple(slice(max(-b, 0), d - max(-e, 0)) for d, b, e in zip(x.shape, pads[:r], pads[r:]))
    dst = tuple(slice(max(b, 0), max(b, 0) + (s.stop - s.start)) for b, s in zip(pads[:r], src))
    out[dst] = x[src]
    return out


def _mapped_pad(source):
    """Pad where output index o along each axis reads x at source(o - begin, dim)."""
    def expected(pads):
        def fn(x):
            r = x.ndim
            index = [np.array([source(o - b, d) for o in range(d + b + e)])
                     for d, b, e in zip(x.shape, pads[:r], pads[r:])]
            return x[np.ix_(*index)]
        return fn
    return expected


_reflect = _mapped_pad(lambda t, d: -t if t < 0 else (2 * (d - 1) - t if t >= d else t))
_edge = _mapped_pad(lambda t, d: min(max(t, 0), d - 1))


def _unsliced(shape, rows):
    """zeros(shape) with g[i, j] at (rows[0][i], rows[1][j])."""
    def fn(g):
        out = np.zeros(shape, g.dtype)
        for i, r in enumerate(rows[0]):
            for j, c in enumerate(rows[1]):
                out[r, c] = g[i, j]
        return out
    return fn


def _take(axis):
    """Gather by an explicit loop over the indices (negatives wrap)."""
    def fn(data, idx):
        k = data.shape[axis]
        parts = [np.take(data, [int(i) % k], axis=axis) for i in np.ravel(idx)]
        out = np.concatenate(parts, axis=axis)
        return out.reshape(data.shape[:axis] + np.shape(idx) + data.shape[axis + 1:])
    return fn


BIG = 2**63 - 1
MOVEMENT = {
    "slice": [
        case("f32_axis1", "f32[3,5]", lambda x: x[:, 1:4], starts=(1,), ends=(4,), axes=(1,)),
        case("f64_negative_steps", "f64[3,5]", lambda x: x[::-1, 4:0:-2],
             starts=(4, -1), ends=(0, -BIG), axes=(1, 0), steps=(-2, -1)),
        case("f32_clamped", "f32[2,3,4]", lambda x: x[:, -2:, 1::2],
             starts=(-2, 1), ends=(BIG, 100), axes=(-2, 2), steps=(1, 2)),
        case("i64_all_axes", "i64[4,3]", lambda x: x[1:3, 0:2], starts=(1, 0), ends=(3, 2)),
        case("bool", "bool[6]", lambda x: x[5:1:-3], starts=(5,), ends=(1,), steps=(-3,)),
        bad("step0", "f32[3]", "step 0", starts=(0,), ends=(3,), steps=(0,)),
        bad("lengths", "f32[3]", "differ in length", starts=(0,), ends=(3, 1)),
        bad("axis", "f32[3]", "out of range", starts=(0,), ends=(3,), axes=(1,))],
    "unslice": [
        case("f32_steps", "f32[2,2]", _unsliced((3, 5), ([0, 2], [1, 3])), shape=(3, 5),
             starts=(0, 1), steps=(2, 2)),
        case("f64_negative", "f64[3,2]", _unsliced((3, 5), ([2, 1, 0], [4, 1])), shape=(3, 5),
             starts=(2, 4), steps=(-1, -3)),
        case("i64_dense", "i64[2,3]", _unsliced((2, 4), ([0, 1], [1, 2, 3])), shape=(2, 4),
             starts=(0, 1), steps=(1, 1)),
        bad("outside", "f32[3]", "leave", shape=(4,), starts=(2,), steps=(1,))],
    "pad": [
        case("f32_constant", "f32[2,3]", lambda x: _padded(x, (1, 0, 0, 2), 0.5),
             pads=(1, 0, 0, 2), value=0.5),
        case("f64_crop", "f64[3,4]", lambda x: _padded(x, (-1, 2, 1, -2), 0.0),
             pads=(-1, 2, 1, -2)),
        case("f64_reflect", "f64[3,4]", _reflect((1, 2, 2, 1)), pads=(1, 2, 2, 1),
             mode="reflect"),
        case("f32_edge", "f32[2,3]", _edge((2, 1, 1, 3)), pads=(2, 1, 1, 3), mode="edge"),
        case("f64_1d_reflect", "f64[5]", _reflect((2, 1)), pads=(2, 1), mode="reflect"),
        case("f64_1d_edge", "f64[4]", _edge((1, 3)), pads=(1, 3), mode="edge"),
        case("f32_4d_spatial", "f32[1,2,3,3]", lambda x: _padded(x, (0, 0, 1, 0, 0, 0, 0, 2), 0),
             pads=(0, 0, 1, 0, 0, 0, 0, 2)),
        case("i64", "i64[3]", lambda x: _padded(x, (2, 1), 7), pads=(2, 1), value=7),
        case("bool_edge", "bool[2,2]", _edge((1, 0, 0, 1)), pads=(1, 0, 0, 1), mode="edge"),
        bad("count", "f32[2,3]", "need 4 pads", pads=(1, 1)),
        bad("mode", "f32[2]", "mode", pads=(1, 1), mode="wrap"),
        bad("reflect_big", "f32[2]", "reflect pads", pads=(2, 0), mode="reflect"),
        bad("crop", "f32[2]", "below zero", pads=(-2, -1))],
    "concat": [
        case("f32_axis1", "f32[2,3] f32[2,2]", lambda a, b: np.hstack([a, b]), axis=1),
        case("f64_three", "f64[1,2] f64[3,2] f64[2,2]", lambda a, b, c: np.vstack([a, b, c]),
             axis=0),
        case("f32_negative_axis", "f32[2,1,2] f32[2,1,3]",
             lambda a, b: np.block([a, b]), axis=-1),
        case("i64_one", "i64[3]", lambda a: a, axis=0),
        case("bool", "bool[2] bool[1]", lambda a, b: np.hstack([a, b]), axis=0),
        bad("mismatch", "f32[2,3] f32[3,3]", "does not match", axis=1),
        bad("dtype", "f32[2] i64[2]", "does not match", axis=0),
        bad("axis", "f32[2] f32[2]", "out of range", axis=1)],
    "gather": [
        case("f32_rows", "f32[5,3] i64[4]", _take(0),
             per_operand(uniform(), values([1, -1, 3, 1])), axis=0),
        case("f64_axis1_2d", "f64[2,4,3] i64[2,2]", _take(1),
             per_operand(uniform(), values([3, 0, -4, 3])), axis=1),
        case("f32_scalar_index", "f32[3,2] i64[]", _take(1), per_operand(uniform(), values(-1)),
             axis=1),
        case("i64_data", "i64[4] i64[3]", _take(0), per_operand(uniform(), values([0, 3, 0]))),
        bad("f32_indices", "f32[3] f32[2]", "indices must be i64"),
        bad("axis", "f32[3] i64[2]", "out of range", axis=1)],
    "min": [
        case("f32_axis1", "f32[2,3]", lambda x: np.sort(x, 1)[:, 0], distinct(), axes=(1,)),
        case("f64_all_keep", "f64[2,3]", lambda x: np.full((1, 1), np.sort(x.ravel())[0]),
             distinct(), axes=(0, 1), keepdims=True),
        case("i64_axis0", "i64[3,2]", lambda x: np.sort(x, 0)[0], axes=(0,)),
        case("nan", "f32[2,3]", lambda x: np.where(np.isnan(x).any(1), NAN, np.nanmin(x, 1)),
             values([1.0, NAN, -3.0, 2.0, 4.0, -1.0]), grad=False, axes=(1,)),
        bad("axis", "f32[2,3]", "within rank", axes=(2,))],
}


def _first(better):
    """The index of the first element along axis 1 that no later one beats, by a loop."""
    def fn(x):
        out = np.zeros(x.shape[0], np.int64)
        for r in range(x.shape[0]):
            for k in range(x.shape[1]):
                if np.isnan(x[r, k]) or better(x[r, k], x[r, out[r]]) and not np.isnan(x[r, out[r]]):
                    out[r] = k
                    if np.isnan(x[r, k]):
                        break
        return out
    return fn


def _last(better):
    """The index of the last best element along axis 1 (no NaN), by a loop."""
    def fn(x):
        out = np.zeros(x.shape[0], np.int64)
        for r in range(x.shape[0]):
            for k in range(x.shape[1]):
                if not better(x[r, out[r]], x[r, k]):
                    out[r] = k
        return out
    return fn


def _arg_rows(better, ref, ties) -> list:
    first = _first(better)

    def along_axis0(x):
        hits = np.argwhere(x == ref(x, 0))
        return hits[:, 0][np.argsort(hits[:, 1])][None, :]

    return [
        case("f32_axis1", "f32[3,4]", first, distinct(), axis=1, keepdims=False),
        case("f64_keep_axis0", "f64[3,2]", along_axis0, distinct(), axis=0),
        case("ties_first", "f32[2,3]", first, values(ties), axis=1, keepdims=False),
        case("ties_last", "f32[2,3]", _last(better), values(ties), axis=-1, keepdims=False,
             select_last_index=True),
        case("nan", "f32[2,3]", first, values([1.0, NAN, NAN, 0.0, 2.0, -1.0]), axis=1,
             keepdims=False),
        case("i64", "i64[2,5]", lambda x: first(x.astype(np.float64)),
             values([3, -1, 7, 7, 2, 0, 5, -2, 5, 1]), axis=1, keepdims=False),
        bad("bool", "bool[3]", "numeric tensor"),
        bad("axis", "f32[3]", "out of range", axis=1)]


MOVEMENT["arg_max"] = _arg_rows(lambda a, b: a > b, np.max, [1.0, 1.0, 0.0, 0.0, 2.0, 2.0])
MOVEMENT["arg_min"] = _arg_rows(lambda a, b: a < b, np.min, [1.0, 1.0, 3.0, 0.0, 0.0, 2.0])



# --- convolution and pooling: expected values from direct loops (tests/conv_loops.py) --------
def _avg_loop(**attrs):
    return lambda x: pool_loop(x, kind="avg", **attrs)


def _pool_case(name, spec, kind, gen=None, grad=True, **attrs):
    """A pooling case (max, avg or index) checked against tests/conv_loops.pool_loop."""
    return case(name, spec, lambda x: pool_loop(x, kind=kind, **attrs),
                gen or (distinct() if kind != "avg" else None), grad, **attrs)


_P3D = {"kernel_shape": (2, 2, 3), "strides": (2, 1, 2), "pads": (1, 0, 1, 0, 1, 1),
        "dilations": (1, 2, 1)}


def _attrs_call(fn, *args, **attrs):
    """fn(*operands, *args, **attrs): an expected formula with the case's settings bound."""
    return lambda *xs: fn(*xs, *args, **attrs)


def _conv_case(name, spec, **attrs):
    return case(name, spec, _attrs_call(conv_loop, **attrs), **attrs)


_W1 = {"kernel": (2, 3), "strides": (1, 2), "pads": (1, 0, 0, 2), "dilations": (1, 1)}
_W2 = {"kernel": (2, 2), "strides": (2, 1), "pads": (0, 1, 2, 0), "dilations": (2, 2)}
_W1D = {"kernel": (3,), "strides": (2,), "pads": (1, 2), "dilations": (1,)}
_W3D_ADJ = {"strides": (2, 1, 1), "pads": (1, 0, 1, 0, 1, 0), "dilations": (1, 2, 1)}
_W3D = {"kernel": (2, 2, 2), **_W3D_ADJ}
CONV = {
    "windows": [
        case("f32_asym", "f32[1,2,4,5]", _attrs_call(windows_loop, **_W1), **_W1),
        case("f64_dilated", "f64[2,1,5,4]", _attrs_call(windows_loop, **_W2), **_W2),
        case("f32_value", "f32[1,1,3,3]", _attrs_call(windows_loop, (2, 2), (1, 1), (1, 1, 1, 1),
                                                      value=-1.5), kernel=(2, 2),
             pads=(1, 1, 1, 1), value=-1.5),
        case("f64_6d", "f64[1,2,4,5,2,3]", _attrs_call(windows_loop, **_W1), **_W1),
        case("f64_1d", "f64[2,1,6]", _attrs_call(windows_loop, **_W1D), **_W1D),
        case("f32_3d", "f32[1,2,3,4,3]", _attrs_call(windows_loop, **_W3D), **_W3D),
        bad("rank", "f32[2,4,5]", "must be", kernel=(2, 2)),
        bad("too_big", "f32[1,1,2,2]", "does not fit", kernel=(3, 3)),
        bad("pads", "f32[1,1,4,4]", "pads 2", kernel=(2, 2), pads=(1, 1))],
    "col2im": [
        case("f32_asym", "f32[1,2,4,3,2,3]", _attrs_call(col2im_loop, (4, 5), (1, 2), (1, 0, 0, 2)),
             size=(4, 5), strides=(1, 2), pads=(1, 0, 0, 2)),
        case("f64_dilated", "f64[2,1,3,3,2,2]", _attrs_call(col2im_loop, (5, 4), (2, 1),
                                                            (0, 1, 2, 0), (2, 2)),
             size=(5, 4), strides=(2, 1), pads=(0, 1, 2, 0), dilations=(2, 2)),
        case("f64_3d", "f64[1,2,2,3,3,2,2,2]", _attrs_call(col2im_loop, (3, 4, 3), **_W3D_ADJ),
             size=(3, 4, 3), **_W3D_ADJ),
        bad("windows", "f32[1,1,3,3,2,2]", "windows", size=(5, 5))],
    "conv2d": [
        _conv_case("f32_bias", "f32[2,3,5,5] f32[4,3,3,3] f32[4]"),
        _conv_case("f64_asym_pads_strides", "f64[1,2,5,6] f64[3,2,2,3] f64[3]",
                   strides=(2, 1), pads=(1, 0, 2, 1)),
        _conv_case("f64_dilated_nobias", "f64[2,2,6,5] f64[2,2,2,2]", dilations=(2, 1),
                   pads=(1, 1, 1, 1)),
        _conv_case("f32_groups", "f32[1,4,4,4] f32[6,2,3,3] f32[6]", group=2, pads=(1, 1, 1, 1)),
        _conv_case("f64_depthwise", "f64[2,3,5,4] f64[3,1,3,2] f64[3]", group=3, strides=(2, 2),
                   pads=(1, 0, 1, 1)),
        # the two GEMM layouts (ops/conv.py merged_layout): 1x1 outputs of 8 filters of 18
        # taps merge the images; the cases above, with more positions than taps, do not
        _conv_case("f32_batch_merged_layout", "f32[3,2,3,3] f32[8,2,3,3] f32[8]"),
        _conv_case("f64_grouped_batch_merged", "f64[2,4,4,4] f64[6,2,3,3]", group=2,
                   strides=(2, 2)),
        bad("channels", "f32[1,3,5,5] f32[4,2,3,3]", "do not fit"),
        bad("bias", "f32[1,3,5,5] f32[4,3,3,3] f32[3]", "bias must be"),
        bad("dtype", "f32[1,3,5,5] f64[4,3,3,3]", "one float dtype")],
    "max_pool": [
        case("f32_2x2", "f32[2,2,4,6]", _attrs_call(pool_loop, (2, 2), (2, 2)), distinct(),
             kernel_shape=(2, 2), strides=(2, 2)),
        case("f64_ceil_pads", "f64[1,2,5,5]", _attrs_call(pool_loop, (3, 2), (2, 2), (1, 0, 0, 1),
                                                          ceil_mode=True), distinct(),
             kernel_shape=(3, 2), strides=(2, 2), pads=(1, 0, 0, 1), ceil_mode=True),
        case("f32_dilated", "f32[1,1,5,6]", _attrs_call(pool_loop, (2, 2), (1, 2), (0, 0, 0, 0),
                                                        (2, 1)), distinct(),
             kernel_shape=(2, 2), strides=(1, 2), dilations=(2, 1)),
        _pool_case("f64_1d_ceil", "f64[2,2,7]", "max", kernel_shape=(3,), strides=(2,),
                   pads=(1, 0), ceil_mode=True),
        _pool_case("f64_3d", "f64[1,2,4,3,5]", "max", **_P3D),
        _pool_case("f32_3d_ties", "f32[1,1,3,3,3]", "max", values([1.0, 2.0, 2.0, 0.0]),
                   grad=False, kernel_shape=(2, 2, 2)),
        # windows that tile the input exactly lower to reshape + transpose (ops/pool.py)
        _pool_case("f64_1d_tiled", "f64[2,3,6]", "max", kernel_shape=(3,), strides=(3,)),
        _pool_case("f64_3d_tiled", "f64[1,2,4,2,6]", "max", kernel_shape=(2, 2, 3),
                   strides=(2, 2, 3)),
        bad("rank", "f32[2,4,4]", "rank 4", kernel_shape=(2, 2))],
    "max_pool_indices": [
        _pool_case("f32_2d", "f32[2,2,4,5]", "index", kernel_shape=(2, 3), strides=(2, 1),
                   pads=(1, 0, 0, 1)),
        _pool_case("f64_2d_column_major", "f64[1,2,5,4]", "index", kernel_shape=(2, 2),
                   strides=(2, 2), ceil_mode=True, storage_order=1),
        _pool_case("f32_ties", "f32[1,1,4,4]", "index", values([1.0, 1.0, 0.0]),
                   kernel_shape=(3, 3)),
        _pool_case("f64_1d", "f64[1,3,6]", "index", kernel_shape=(2,), dilations=(2,)),
        _pool_case("f64_3d", "f64[2,1,3,4,3]", "index", **_P3D),
        _pool_case("f64_tiled_column_major", "f64[2,2,4,6]", "index", kernel_shape=(2, 3),
                   strides=(2, 3), storage_order=1),
        bad("i64", "i64[1,1,4,4]", "float", kernel_shape=(2, 2))],
    "avg_pool": [
        case("f32_2x2", "f32[2,2,4,6]", _avg_loop(kernel_shape=(2, 2), strides=(2, 2)),
             kernel_shape=(2, 2), strides=(2, 2)),
        case("f64_pads_exclude", "f64[1,2,5,5]", _avg_loop(kernel_shape=(3, 3), strides=(2, 2),
                                                           pads=(1, 1, 1, 1)),
             kernel_shape=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1)),
        case("f64_pads_include", "f64[1,1,5,4]", _avg_loop(
            kernel_shape=(3, 2), strides=(2, 1), pads=(1, 0, 2, 1), count_include_pad=True),
             kernel_shape=(3, 2), strides=(2, 1), pads=(1, 0, 2, 1), count_include_pad=True),
        case("f32_ceil", "f32[1,2,5,5]", _avg_loop(kernel_shape=(2, 2), strides=(2, 2),
                                                   ceil_mode=True),
             kernel_shape=(2, 2), strides=(2, 2), ceil_mode=True),
        _pool_case("f64_1d_include", "f64[2,1,6]", "avg", kernel_shape=(3,), pads=(2, 1),
                   count_include_pad=True),
        _pool_case("f64_3d_tiled", "f64[1,2,2,4,6]", "avg", kernel_shape=(2, 2, 3),
                   strides=(2, 2, 3)),
        _pool_case("f64_3d_ceil_include", "f64[1,2,4,3,5]", "avg", ceil_mode=True,
                   count_include_pad=True, **_P3D),
        _pool_case("f32_3d_exclude", "f32[1,1,3,4,4]", "avg", **_P3D),
        bad("i64", "i64[1,1,4,4]", "float", kernel_shape=(2, 2))],
}



# --- normalisation, dropout, losses --------------------------------------------------------------
def _bn(x, scale, bias, mean, var, eps=1e-5):
    y = np.empty_like(x)
    for c in range(x.shape[1]):
        y[:, c] = (x[:, c] - mean[c]) / np.sqrt(var[c] + x.dtype.type(eps)) * scale[c] + bias[c]
    return y


def _bn_train(x, scale, bias):
    chans = [x[:, c].ravel() for c in range(x.shape[1])]
    mean = np.array([v.sum() / v.size for v in chans])
    var = np.array([((v - m) ** 2).sum() / v.size for v, m in zip(chans, mean)])
    return _bn(x, scale, bias, mean.astype(x.dtype), var.astype(x.dtype))


def _ln(axis):
    def fn(x, scale, bias):
        flat = x.reshape(x.shape[:axis] + (-1,))
        mean = flat.mean(-1)[..., None]
        std = np.sqrt(((flat - mean) ** 2).mean(-1)[..., None] + 1e-5)
        return ((flat - mean) / std).reshape(x.shape) * scale + bias
    return fn


def _lrn(size, alpha=1e-4, beta=0.75, bias=1.0):
    def fn(x):
        y = np.empty_like(x)
        for c in range(x.shape[1]):
            lo, hi = c - (size - 1) // 2, c + (size - 1) - (size - 1) // 2
            sq = sum(x[:, k] ** 2 for k in range(max(lo, 0), min(hi, x.shape[1] - 1) + 1))
            y[:, c] = x[:, c] / (bias + alpha / size * sq) ** beta
        return y
    return fn


def splitmix_keep(shape, step, ratio, seed):
    """The dropout keep-mask by Python integers (splitmix64's finaliser, mod 2**64)."""
    m = 2**64
    out = []
    for index in range(int(np.prod(shape))):
        z = (int(step) * 0x9E3779B97F4A7C15 + index + seed * 0xD1B54A32D192ED03) % m
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % m
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % m
        z ^= z >> 31
        out.append((z >> 11) / 2.0**53 >= ratio)
    return np.array(out).reshape(shape)


def _nll(reduction="mean", ignore=None):
    def fn(x, t, w):
        total, wsum, each = 0.0, 0.0, np.zeros(t.shape)
        for pos in np.ndindex(t.shape):
            if t[pos] == ignore:
                continue
            n, rest = pos[0], pos[1:]
            each[pos] = -x[(n, t[pos], *rest)] * w[t[pos]]
            total, wsum = total + each[pos], wsum + w[t[pos]]
        return each if reduction == "none" else total / (wsum if reduction == "mean" else 1)
    return fn


def _nll_gen(ignore=None):
    def gen(rng, types):
        x, t, w = types
        target = rng.integers(0, x.shape[1], t.shape)
        if ignore is not None:
            target[(0,) * t.rank] = ignore
        return [uniform(-3, 0)(rng, (x,))[0], target, uniform(0.5, 2)(rng, (w,))[0]]
    return gen


_BN_GEN = per_operand(uniform(), uniform(0.5, 1.5), uniform(), uniform(), positive(0.5, 2))
NORM = {
    "batch_norm": [
        case("f32_nchw", "f32[2,3,2,2] f32[3] f32[3] f32[3] f32[3]", _bn, _BN_GEN),
        case("f64_nc", "f64[4,2] f64[2] f64[2] f64[2] f64[2]", _bn, _BN_GEN),
        case("f64_eps", "f64[2,2,3] f64[2] f64[2] f64[2] f64[2]",
             lambda *a: _bn(*a, eps=0.1), _BN_GEN, epsilon=0.1),
        bad("channels", "f32[2,3,2] f32[2] f32[3] f32[3] f32[3]", "must be")],
    "batch_norm_training": [
        case("f32_nchw", "f32[3,2,2,2] f32[2] f32[2]", _bn_train),
        case("f64_nc", "f64[5,3] f64[3] f64[3]", _bn_train),
        bad("dtype", "f32[2,3] f64[3] f32[3]", "one float dtype")],
    "layer_norm": [
        case("f32_last", "f32[2,3,4] f32[4] f32[4]", _ln(2)),
        case("f64_axis1", "f64[2,3,2] f64[3,2] f64[3,2]", _ln(1), axis=1),
        case("f64_bcast_scale", "f64[3,4] f64[1] f64[4]", _ln(1), axis=-1),
        bad("scale", "f32[2,3] f32[2] f32[3]", "must broadcast"),
        bad("axis", "f32[2,3] f32[3] f32[3]", "out of range", axis=2)],
    "lrn": [
        case("f32_size3", "f32[2,5,2,2]", _lrn(3, alpha=0.5), alpha=0.5, size=3),
        case("f64_size2", "f64[1,4,3]", _lrn(2, 0.3, 0.6, 2.0), size=2, alpha=0.3, beta=0.6,
             bias=2.0),
        bad("rank", "f32[2,3]", "must be", size=3)],
    "dropout_mask": [
        case("half", "i64[]", lambda s: splitmix_keep((3, 4), s, 0.5, 7), values(5), shape=(3, 4),
             ratio=0.5, seed=7),
        case("zero_ratio", "i64[]", lambda s: np.ones((2, 3), bool), shape=(2, 3), ratio=0.0),
        case("big", "i64[]", lambda s: splitmix_keep((64,), s, 0.2, 0), values(2**40),
             shape=(64,), ratio=0.2),
        bad("ratio", "i64[]", "ratio", shape=(2,), ratio=1.0),
        bad("step", "f32[]", "step counter", shape=(2,), ratio=0.5)],
    "nll_loss": [
        case("f32_mean", "f32[4,3] i64[4] f32[3]", _nll(), _nll_gen()),
        case("f64_sum", "f64[3,4] i64[3] f64[4]", _nll("sum"), _nll_gen(), reduction="sum"),
        case("f64_none_spatial", "f64[2,3,2] i64[2,2] f64[3]", _nll("none"), _nll_gen(),
             reduction="none"),
        case("f64_ignore", "f64[4,3] i64[4] f64[3]", _nll("mean", -1), _nll_gen(-1),
             ignore_index=-1),
        bad("target", "f32[4,3] f32[4] f32[3]", "target must be"),
        bad("weight", "f32[4,3] i64[4] f32[4]", "weight"),
        bad("reduction", "f32[4,3] i64[4] f32[3]", "reduction", reduction="avg")],
}

RAW: dict[str, list] = {**ACTIVATIONS, **MOVEMENT, **CONV, **NORM}
BAD_DATA: dict = {
    "nll_loss": (_types("f32[2,3] i64[2] f32[3]"),
                 [np.zeros((2, 3), np.float32), np.array([1, 3]), np.ones(3, np.float32)],
                 r"target 3 at \[1\] is outside \[0, 3\)"),
    "gather": (_types("f32[3,2] i64[2]"), [np.zeros((3, 2), np.float32), np.array([1, 3])],
               r"index 3 at \[1\] is outside \[-3, 3\)"),
}
