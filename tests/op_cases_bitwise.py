"""Op cases for the bitwise ops (graphc/ops/bitwise.py), merged into tests/op_cases.py's table.

Input: the row constructors of tests/op_cases.py. Output: `RAW` (op name -> case/bad rows).
Expected values are independent formulas in Python integers: a bit of a two's-complement i64
is floor division by a power of two modulo 2, a bitwise op is the sum of its bits' weights
(bit 63 weighs -2**63), ~x is -x - 1, a left shift is multiplication by 2**k wrapped to 64
bits, an arithmetic right shift is floor division by 2**k. Operands span the whole i64 range
(extremes included); shift amounts include negatives and amounts of 64 or more.
"""
from __future__ import annotations

import numpy as np

from tests.op_cases import bad, case, values

_EXTREMES = [0, -1, 1, -(2**63), 2**63 - 1, -(2**62) - 7, 0x5555_5555_5555_5555]
_AMOUNTS = [-3, -1, 0, 1, 5, 31, 62, 63, 64, 65, 127, 2**40]


def _wide():
    """Full-range i64 operands: random bits, with the extremes mixed in."""
    def gen(rng, types):
        out = []
        for t in types:
            x = rng.integers(-(2**63), 2**63 - 1, t.shape, dtype=np.int64, endpoint=True)
            flat = x.reshape(-1)
            flat[: len(_EXTREMES)] = _EXTREMES[: flat.size]
            out.append(x)
        return out
    return gen


def _shifted():
    """A full-range operand and shift amounts from _AMOUNTS."""
    def gen(rng, types):
        x, k = types
        return [_wide()(rng, (x,))[0], rng.choice(np.array(_AMOUNTS, np.int64), k.shape)]
    return gen


def _signed(v: int) -> int:
    """A Python integer wrapped to the i64 range (two's complement)."""
    v %= 2**64
    return v - 2**64 if v >= 2**63 else v


def _elementwise(fn):
    """fn on Python ints, broadcast over i64 arrays."""
    def apply(*arrays):
        arrays = np.broadcast_arrays(*arrays)
        out = [fn(*(int(a) for a in items)) for items in zip(*(a.reshape(-1) for a in arrays))]
        return np.array(out, np.int64).reshape(arrays[0].shape)
    return apply


def _bits(v: int) -> list[int]:
    return [(v // 2**k) % 2 for k in range(64)]


def _from_bits(bits: list[int]) -> int:
    return sum(b * 2**k for k, b in enumerate(bits[:63])) - bits[63] * 2**63


def _bitwise(combine):
    return _elementwise(lambda a, b: _from_bits([combine(x, y) for x, y in
                                                 zip(_bits(a), _bits(b))]))


def _shift_left(x: int, k: int) -> int:
    return _signed(x * 2**k) if 0 <= k < 64 else 0


def _shift_right(x: int, k: int) -> int:
    return x // 2**k if 0 <= k < 64 else (-1 if x < 0 else 0)


_AND, _OR, _XOR = (lambda x, y: x * y), (lambda x, y: max(x, y)), (lambda x, y: (x + y) % 2)
_TRUTH = values([True, True, False, False], [True, False, True, False])
_ERRORS = [bad("f32", "f32[2] f32[2]", "not supported"),
           bad("dtype_mix", "i64[2] bool[2]", "dtypes differ"),
           bad("bcast", "i64[2,3] i64[2]", "do not broadcast")]


def _binary(combine) -> list:
    fn = _bitwise(combine)
    return [case("i64_bcast", "i64[2,4] i64[4]", fn, _wide()),
            case("i64_scalar", "i64[] i64[3,3]", fn, _wide()),
            case("bool", "bool[4] bool[4]", lambda a, b: fn(a * 1, b * 1) == 1, _TRUTH),
            *_ERRORS]


def _shift(direction: str, fn) -> list:
    fn, name, n = _elementwise(fn), direction.lower(), len(_AMOUNTS)
    return [case(name, "i64[4,6] i64[4,6]", fn, _shifted(), direction=direction),
            case(f"{name}_bcast", "i64[3,4] i64[4]", fn, _shifted(), direction=direction),
            case(f"{name}_amounts_of_min", f"i64[{n}] i64[{n}]", fn,
                 values([-(2**63) + 5] * n, _AMOUNTS), direction=direction)]


RAW: dict[str, list] = {
    "bitwise_and": _binary(_AND),
    "bitwise_or": _binary(_OR),
    "bitwise_xor": _binary(_XOR),
    "bitwise_not": [case("i64", "i64[3,4]", _elementwise(lambda x: -x - 1), _wide()),
                    case("bool", "bool[2]", lambda a: a * 1 == 0, values([True, False])),
                    bad("f32", "f32[2]", "not supported")],
    "bit_shift": _shift("LEFT", _shift_left) + _shift("RIGHT", _shift_right) + [
        bad("direction", "i64[2] i64[2]", "direction must be", direction="UP"),
        bad("f32", "f32[2] f32[2]", "not supported", direction="LEFT"),
        bad("bool", "bool[2] bool[2]", "not supported", direction="RIGHT"),
        bad("dtype_mix", "i64[2] f32[2]", "dtypes differ", direction="LEFT")],
}
