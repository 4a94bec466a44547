"""Trigonometric and hyperbolic functions and their inverses (ONNX Sin ... Atanh).

Input: nothing (imported for its side effect). Output: registered elementwise OpDefs on float
tensors: sin, cos, tan, asin, acos, atan, sinh, cosh, asinh, acosh, atanh. Each is a primitive
of both scalar emitters (NumPy's function in graphc/ops/scalar.py, a libm call in compiled
kernels, runtime/emit/emitter.py), with its bprop and its ONNX name. Outside their domains
(asin(1.5), acosh(0.5), atanh(2)) and at infinities where no limit exists (sin(inf)) they
give NaN, as NumPy and libm do; atanh(±1) is ±inf.
"""
from __future__ import annotations

import numpy as np

from graphc.ops import api as F
from graphc.ops.elementwise import _ew, _ignore


def _method(name: str):
    """The scalar body calling the emitters' primitive `name`."""
    return lambda e, x: getattr(e, name)(x)


# name, doc, NumPy reference, bprop (x the operand, y the result, g the result's gradient)
_TRIG = [
    ("sin", "sine", np.sin, lambda x, y, g: [g * F.cos(x)]),
    ("cos", "cosine", np.cos, lambda x, y, g: [-(g * F.sin(x))]),
    ("tan", "tangent", np.tan, lambda x, y, g: [g * (1 + y * y)]),
    ("asin", "arcsine (NaN outside [-1, 1])", np.arcsin,
     lambda x, y, g: [g / F.sqrt(1 - x * x)]),
    ("acos", "arccosine (NaN outside [-1, 1])", np.arccos,
     lambda x, y, g: [-(g / F.sqrt(1 - x * x))]),
    ("atan", "arctangent", np.arctan, lambda x, y, g: [g / (1 + x * x)]),
    ("sinh", "hyperbolic sine", np.sinh, lambda x, y, g: [g * F.cosh(x)]),
    ("cosh", "hyperbolic cosine", np.cosh, lambda x, y, g: [g * F.sinh(x)]),
    ("asinh", "inverse hyperbolic sine", np.arcsinh,
     lambda x, y, g: [g / F.sqrt(x * x + 1)]),
    # sqrt(x - 1) sqrt(x + 1), not sqrt(x² - 1): no cancellation near x = 1
    ("acosh", "inverse hyperbolic cosine (NaN below 1)", np.arccosh,
     lambda x, y, g: [g / (F.sqrt(x - 1) * F.sqrt(x + 1))]),
    ("atanh", "inverse hyperbolic tangent (NaN outside [-1, 1], ±inf at ±1)", np.arctanh,
     lambda x, y, g: [g / (1 - x * x)]),
]

for _name, _doc, _reference, _bprop in _TRIG:
    _ew(_name, _doc, _ignore(_reference), _method(_name), _bprop, onnx=_name.capitalize())
