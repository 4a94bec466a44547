"""Elementwise activations and math ops with ONNX semantics (one OpDef each, scalar bodies).

Input: nothing (imported for its side effect). Output: registered elementwise OpDefs:
  abs, sign, floor, ceil, round (half to even), reciprocal, erf, is_nan, is_inf
  leaky_relu(alpha=0.01), elu(alpha=1.0), selu(alpha, gamma), softplus,
  hard_sigmoid(alpha=0.2, beta=0.5), hard_swish, gelu(approximate="none"|"tanh")
  clip(x, min, max) (bounds are inputs), prelu(x, slope) (slope broadcasts to x)
  logical_and, logical_or, logical_xor, logical_not (bool)
Each body runs on both scalar emitters (ops/scalar.py, runtime/emit/emitter.py), so the
interpreter's check and the compiled kernel share one definition. Records name their ONNX op;
clip has its op-API function here (a missing bound is the dtype's range).
"""
from __future__ import annotations

import math

import numpy as np

from graphc.errors import ShapeError
from graphc.ops import api as F
from graphc.ops.api import _apply
from graphc.ops.elementwise import NUMERIC, _broadcast, _check_dtypes, _ew, _ignore
from graphc.ops.registry import NOT_DIFFERENTIABLE
from graphc.ops.scalar import NumpyEmitter, erf_array
from graphc.types import FLOAT_DTYPES, TensorType

SQRT1_2 = 1 / math.sqrt(2)
SQRT_2_PI = math.sqrt(2 / math.pi)  # gelu's tanh form
GELU_CUBIC = 0.044715
SELU_ALPHA = 1.67326319217681884765625  # ONNX's defaults (float32-exact)
SELU_GAMMA = 1.05070102214813232421875


def _c(e, value, like):
    return e.const(value, like)


# --- simple math ---------------------------------------------------------------------------
def _abs(e, x):
    return e.select(e.lt(x, _c(e, 0, x)), e.neg(x), x)


def _sign(e, x):
    return e.select(e.gt(x, _c(e, 0, x)), _c(e, 1, x),
                    e.select(e.lt(x, _c(e, 0, x)), _c(e, -1, x), x))


_ew("abs", "|x|; the gradient at 0 is 0", np.abs, _abs, lambda x, y, g: [g * F.sign(x)],
    NUMERIC, onnx="Abs")
_ew("sign", "-1, 0 or 1 (NaN stays NaN); gradient 0", np.sign, _sign,
    lambda x, y, g: [None], NUMERIC, onnx="Sign")
_ew("floor", "round toward -inf; gradient 0", np.floor, lambda e, x: e.floor(x),
    lambda x, y, g: [None], onnx="Floor")
_ew("ceil", "round toward +inf; gradient 0", np.ceil, lambda e, x: e.ceil(x),
    lambda x, y, g: [None], onnx="Ceil")
_ew("round", "round half to even (ONNX Round); gradient 0", np.round, lambda e, x: e.round(x),
    lambda x, y, g: [None], onnx="Round")
_ew("reciprocal", "1 / x", _ignore(lambda x: np.divide(1, x, dtype=x.dtype)),
    lambda e, x: e.div(_c(e, 1, x), x), lambda x, y, g: [-(g * y * y)], onnx="Reciprocal")


_ew("erf", "the error function (runtime/emit/vmath.py in f32 kernels, libm erf in f64)",
    erf_array, lambda e, x: e.erf(x),
    lambda x, y, g: [g * (2 / math.sqrt(math.pi)) * F.exp(-(x * x))], onnx="Erf")
_ew("is_nan", "x != x, giving bool", np.isnan, lambda e, x: e.ne(x, x), NOT_DIFFERENTIABLE,
    result="bool", onnx="IsNaN")
_ew("is_inf", "|x| == inf, giving bool", np.isinf,
    lambda e, x: e.eq(e.max(x, e.neg(x)), _c(e, math.inf, x)), NOT_DIFFERENTIABLE,
    result="bool", onnx="IsInf")


# --- activations ---------------------------------------------------------------------------
def _leaky_relu(e, x, alpha):
    return e.select(e.lt(x, _c(e, 0, x)), e.mul(x, _c(e, alpha, x)), x)


_ew("leaky_relu", "x if x >= 0 else alpha * x",
    lambda x, alpha: np.where(x < 0, x * x.dtype.type(alpha), x), _leaky_relu,
    lambda x, y, g, alpha: [F.where(x < 0, g * alpha, g)], attrs={"alpha": 0.01},
    onnx="LeakyRelu")


def _elu(e, x, alpha):
    neg = e.mul(_c(e, alpha, x), e.sub(e.exp(x), _c(e, 1, x)))
    return e.select(e.lt(x, _c(e, 0, x)), neg, x)


_ew("elu", "x if x >= 0 else alpha * (exp(x) - 1)",
    _ignore(lambda x, alpha: np.where(x < 0, x.dtype.type(alpha) * (np.exp(x) - 1), x)), _elu,
    lambda x, y, g, alpha: [F.where(x < 0, g * (y + alpha), g)], attrs={"alpha": 1.0},
    onnx="Elu")


def _selu(e, x, alpha, gamma):
    neg = e.sub(e.mul(_c(e, alpha, x), e.exp(x)), _c(e, alpha, x))
    return e.mul(_c(e, gamma, x), e.select(e.gt(x, _c(e, 0, x)), x, neg))


def _np_selu(x, alpha, gamma):
    a, gm = x.dtype.type(alpha), x.dtype.type(gamma)
    return gm * np.where(x > 0, x, a * np.exp(x) - a)


_ew("selu", "gamma * (x if x > 0 else alpha * exp(x) - alpha)", _ignore(_np_selu), _selu,
    lambda x, y, g, alpha, gamma: [F.where(x > 0, g * gamma, g * (y + alpha * gamma))],
    attrs={"alpha": SELU_ALPHA, "gamma": SELU_GAMMA}, onnx="Selu")


def _log1p(e, z):
    """log(1 + z) accurate for tiny z (Goldberg: log(u) * z / (u - 1) with u = 1 + z)."""
    u = e.add(_c(e, 1, z), z)
    d = e.sub(u, _c(e, 1, z))
    return e.select(e.eq(d, _c(e, 0, z)), z, e.mul(e.log(u), e.div(z, d)))


def _softplus(e, x):
    """max(x, 0) + log1p(exp(-|x|)): no overflow for large |x|."""
    return e.add(e.max(x, _c(e, 0, x)), _log1p(e, e.exp(e.neg(_abs(e, x)))))


_ew("softplus", "log(exp(x) + 1), computed stably", _ignore(lambda x: np.logaddexp(x, 0)),
    _softplus, lambda x, y, g: [g * F.sigmoid(x)], onnx="Softplus")


def _hard_sigmoid(e, x, alpha, beta):
    lin = e.add(e.mul(_c(e, alpha, x), x), _c(e, beta, x))
    return e.max(_c(e, 0, x), e.min(_c(e, 1, x), lin))


def _np_hard_sigmoid(x, alpha, beta):
    return np.clip(x * x.dtype.type(alpha) + x.dtype.type(beta), 0, 1).astype(x.dtype)


def _hard_sigmoid_grad(x, g, alpha, beta):
    """g * d hard_sigmoid / dx: g * alpha on the linear part, 0 where it is clamped."""
    lin = x * alpha + beta
    return F.where(lin > 0, F.where(lin < 1, g * alpha, 0), 0)


_ew("hard_sigmoid", "max(0, min(1, alpha * x + beta))", _np_hard_sigmoid, _hard_sigmoid,
    lambda x, y, g, alpha, beta: [_hard_sigmoid_grad(x, g, alpha, beta)],
    attrs={"alpha": 0.2, "beta": 0.5}, onnx="HardSigmoid")
_ew("hard_swish", "x * hard_sigmoid(x, 1/6, 1/2)",
    lambda x: x * _np_hard_sigmoid(x, 1 / 6, 0.5),
    lambda e, x: e.mul(x, _hard_sigmoid(e, x, 1 / 6, 0.5)),
    lambda x, y, g: [g * F.hard_sigmoid(x, 1 / 6, 0.5) + _hard_sigmoid_grad(x, g * x, 1 / 6, 0.5)],
    onnx="HardSwish")


def _gelu(e, x, approximate):
    half = _c(e, 0.5, x)
    if approximate == "tanh":
        inner = e.mul(_c(e, SQRT_2_PI, x),
                      e.add(x, e.mul(_c(e, GELU_CUBIC, x), e.mul(x, e.mul(x, x)))))
        return e.mul(e.mul(half, x), e.add(_c(e, 1, x), e.tanh(inner)))
    return e.mul(e.mul(half, x), e.add(_c(e, 1, x), e.erf(e.mul(x, _c(e, SQRT1_2, x)))))


def _np_gelu(x, approximate):
    return NumpyEmitter().run(_gelu, x, approximate=approximate)


def _gelu_bprop(x, y, g, approximate):
    if approximate == "tanh":
        t = F.tanh(SQRT_2_PI * (x + GELU_CUBIC * x * x * x))
        du = SQRT_2_PI * (1 + 3 * GELU_CUBIC * x * x)
        return [g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du)]
    u = x * SQRT1_2  # as the forward body computes it: erf(u) and e**(-u²) = e**(-x²/2)
    cdf = 0.5 * (1 + F.erf(u))  # are then shared with it and with erf's own e**(-u²)
    return [g * (cdf + x * F.exp(-(u * u)) * (1 / math.sqrt(2 * math.pi)))]


def _gelu_rule(types, attrs):
    if attrs["approximate"] not in ("none", "tanh"):
        raise ShapeError(f"gelu: approximate must be 'none' or 'tanh', got "
                         f"{attrs['approximate']!r}")
    return [TensorType(types[0].shape, _check_dtypes(types, FLOAT_DTYPES))]


_ew("gelu", "0.5 * x * (1 + erf(x / sqrt 2)), or its tanh approximation", _np_gelu, _gelu,
    _gelu_bprop, attrs={"approximate": "none"}, infer=_gelu_rule, onnx="Gelu")


# --- clip and prelu: bounds and slopes are inputs ------------------------------------------
def _clip_bprop(x, lo, hi, y, g):
    """x gets the gradient strictly inside (lo, hi), as torch's ReLU6/hardtanh give it; at a
    bound the bound gets it (so the two always add up to g)."""
    m = F.maximum(x, lo)
    inside = F.where(m < hi, g, 0)
    return [F.where(x > lo, inside, 0), F.where(x > lo, 0, inside), F.where(m < hi, 0, g)]


def clip(x, min=None, max=None):
    """ONNX Clip: bounds are scalars or tensors; a missing bound is +-inf (int range for i64)."""
    if x.type.is_float:
        lo, hi = -math.inf, math.inf
    else:
        info = np.iinfo(x.type.np_dtype) if x.dtype != "bool" else None
        lo, hi = (info.min, info.max) if info is not None else (False, True)
    return _apply("clip", x, lo if min is None else min, hi if max is None else max)


_ew("clip", "min(max(x, min), max) (ONNX Clip with both bounds as inputs)",
    lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi),
    lambda e, x, lo, hi: e.min(e.max(x, lo), hi), _clip_bprop, NUMERIC, arity=3, dsl=clip)


def _prelu_rule(types, attrs):
    x, slope = types
    dtype = _check_dtypes(types, FLOAT_DTYPES)
    if _broadcast(types) != x.shape:
        raise ShapeError(f"prelu: slope {slope.shape} must broadcast to x {x.shape}")
    return [TensorType(x.shape, dtype)]


_ew("prelu", "x if x >= 0 else slope * x (slope broadcasts to x)",
    lambda x, s: np.where(x < 0, x * s, x),
    lambda e, x, s: e.select(e.lt(x, _c(e, 0, x)), e.mul(x, s), x),
    lambda x, slope, y, g: [F.where(x < 0, g * slope, g), F.where(x < 0, g * x, 0)], arity=2,
    infer=_prelu_rule, onnx="PRelu")

# --- logical ops on bool -------------------------------------------------------------------
_BOOL = ("bool",)
_ew("logical_and", "a and b", np.logical_and,
    lambda e, a, b: e.select(a, b, _c(e, False, a)), NOT_DIFFERENTIABLE, _BOOL, arity=2,
    onnx="And")
_ew("logical_or", "a or b", np.logical_or,
    lambda e, a, b: e.select(a, _c(e, True, a), b), NOT_DIFFERENTIABLE, _BOOL, arity=2,
    onnx="Or")
_ew("logical_xor", "a xor b", np.logical_xor, lambda e, a, b: e.ne(a, b), NOT_DIFFERENTIABLE,
    _BOOL, arity=2, onnx="Xor")
_ew("logical_not", "not a", np.logical_not, lambda e, a: e.eq(a, _c(e, False, a)),
    NOT_DIFFERENTIABLE, _BOOL, onnx="Not")
