"""Bitwise ops on integers (ONNX BitwiseAnd, BitwiseOr, BitwiseXor, BitwiseNot, BitShift).

Input: nothing (imported for its side effect). Output: registered elementwise OpDefs, none
differentiable:
  bitwise_and, bitwise_or, bitwise_xor (any integer dtype or bool, broadcasting),
  bitwise_not (any integer dtype or bool)
  bit_shift(x, y, direction="LEFT"|"RIGHT") (any integer dtype; ONNX requires the direction,
    graphc's default is LEFT)
A shift works in the operands' own type, as NumPy's: a right shift is arithmetic for signed
types (ONNX's rule) and logical for unsigned ones, a left shift drops what passes the top. A
shift by y outside [0, 64) gives what the sign extension alone gives: 0, or -1 shifting a
negative x right (ONNX, NumPy's int64).
"""
from __future__ import annotations

import numpy as np

from graphc.errors import ShapeError
from graphc.ops.elementwise import _broadcast, _check_dtypes, _ew
from graphc.ops.registry import NOT_DIFFERENTIABLE
from graphc.types import INT_DTYPES, TensorType

_INT_OR_BOOL = INT_DTYPES + ("bool",)

_ew("bitwise_and", "a & b, bit by bit", np.bitwise_and, lambda e, a, b: e.bit_and(a, b),
    NOT_DIFFERENTIABLE, _INT_OR_BOOL, arity=2, onnx="BitwiseAnd")
_ew("bitwise_or", "a | b, bit by bit", np.bitwise_or, lambda e, a, b: e.bit_or(a, b),
    NOT_DIFFERENTIABLE, _INT_OR_BOOL, arity=2, onnx="BitwiseOr")
_ew("bitwise_xor", "a ^ b, bit by bit", np.bitwise_xor, lambda e, a, b: e.xor(a, b),
    NOT_DIFFERENTIABLE, _INT_OR_BOOL, arity=2, onnx="BitwiseXor")
_ew("bitwise_not", "~x, every bit flipped", np.invert, lambda e, x: e.bit_not(x),
    NOT_DIFFERENTIABLE, _INT_OR_BOOL, onnx="BitwiseNot")

_DIRECTIONS = ("LEFT", "RIGHT")


def _bit_shift_rule(types, attrs):
    if attrs["direction"] not in _DIRECTIONS:
        raise ShapeError(f"bit_shift: direction must be 'LEFT' or 'RIGHT', got "
                         f"{attrs['direction']!r}")
    return [TensorType(_broadcast(types), _check_dtypes(types, INT_DTYPES))]


def _bit_shift(e, x, y, direction):
    return e.shift_left(x, y) if direction == "LEFT" else e.shift_right_arith(x, y)


def _np_bit_shift(x, y, direction):
    return np.left_shift(x, y) if direction == "LEFT" else np.right_shift(x, y)


_ew("bit_shift", "x shifted y bits LEFT or RIGHT (arithmetic: the sign bit fills)",
    _np_bit_shift, _bit_shift, NOT_DIFFERENTIABLE, arity=2, attrs={"direction": "LEFT"},
    infer=_bit_shift_rule, onnx="BitShift")
