"""DSL functions for the CNN/transformer ops: `gc.gelu(x)`, `gc.conv2d(x, w, b)`, `gc.slice(...)`.

Input: Tensors from a GraphBuilder (and Python scalars). Output: new Tensors; each call adds
nodes through the op registry (ops/activations.py, shape.py, conv.py, norm.py). Shape helpers
with no op of their own (squeeze, unsqueeze, flatten, expand, split) are reshapes or slices;
reductions such as reduce_l2 or log_sum_exp are compositions. Layer helpers that own state
(batch_norm's running statistics, dropout's step counter) register their updates with the builder.
"""
from __future__ import annotations

import math

from .dsl import _apply


# --- elementwise -----------------------------------------------------------------------------
def abs(x): return _apply("abs", x)
def sign(x): return _apply("sign", x)
def floor(x): return _apply("floor", x)
def ceil(x): return _apply("ceil", x)
def round(x): return _apply("round", x)
def reciprocal(x): return _apply("reciprocal", x)
def erf(x): return _apply("erf", x)
def is_nan(x): return _apply("is_nan", x)
def is_inf(x): return _apply("is_inf", x)
def leaky_relu(x, alpha: float = 0.01): return _apply("leaky_relu", x, alpha=float(alpha))
def elu(x, alpha: float = 1.0): return _apply("elu", x, alpha=float(alpha))
def softplus(x): return _apply("softplus", x)
def hard_swish(x): return _apply("hard_swish", x)
def logical_and(a, b): return _apply("logical_and", a, b)
def logical_or(a, b): return _apply("logical_or", a, b)
def logical_xor(a, b): return _apply("logical_xor", a, b)
def logical_not(x): return _apply("logical_not", x)


def selu(x, alpha: float = 1.67326319217681884765625, gamma: float = 1.05070102214813232421875):
    return _apply("selu", x, alpha=float(alpha), gamma=float(gamma))


def hard_sigmoid(x, alpha: float = 0.2, beta: float = 0.5):
    return _apply("hard_sigmoid", x, alpha=float(alpha), beta=float(beta))


def gelu(x, approximate: str = "none"):
    """0.5 x (1 + erf(x / sqrt 2)); approximate="tanh" for the tanh form."""
    return _apply("gelu", x, approximate=approximate)


def clip(x, min=None, max=None):
    """ONNX Clip: bounds are scalars or tensors; a missing bound is +-inf (int range for i64)."""
    lo = -math.inf if min is None else min
    hi = math.inf if max is None else max
    return _apply("clip", x, lo, hi)


def prelu(x, slope):
    """x if x >= 0 else slope * x; slope broadcasts to x (ONNX PRelu)."""
    return _apply("prelu", x, slope)
