"""How each graphc dtype lives in LLVM: its register type, its memory type, and the conversions.

Input: an llvmlite IRBuilder, a graphc dtype name and a scalar value. Output: loads and stores
that convert between memory and registers, `fit` (a register value brought back into its
dtype's range: integer wrap-around, f16/bf16 rounding) and typed constants.

Registers keep kernels' arithmetic to a few LLVM types:
- f16 and bf16 compute in f32 registers: loaded and extended exactly, rounded to nearest even
  whenever a value is made (`fit`) and on every store;
- the narrow integers (i8..i32, u8..u32) compute in i64 registers, sign- or zero-extended on
  load; `fit` truncates and re-extends each result, which is the type's wrap-around;
- u64 computes in i128 registers, zero-extended, so that signed comparisons, max/min and
  shifts on them are unsigned ones (division works on the low 64 bits, see the emitter).
The register type thus tells the emitter everything it needs: i1 bool, i64 any signed or
narrow integer, i128 u64, f32 or f64.
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir

from graphc.types import DTYPES, HALF_DTYPES

I1, I8, I16, I32, I64, I128 = (ir.IntType(n) for n in (1, 8, 16, 32, 64, 128))
F16, F32, F64 = ir.HalfType(), ir.FloatType(), ir.DoubleType()

REG_TYPES: dict[str, ir.Type] = {
    "f16": F32, "bf16": F32, "f32": F32, "f64": F64,
    "i8": I64, "i16": I64, "i32": I64, "i64": I64, "u8": I64, "u16": I64, "u32": I64,
    "u64": I128, "bool": I1}
MEM_TYPES: dict[str, ir.Type] = {
    "f16": F16, "bf16": I16, "f32": F32, "f64": F64,
    "i8": I8, "i16": I16, "i32": I32, "i64": I64, "u8": I8, "u16": I16, "u32": I32,
    "u64": I64, "bool": I8}
# what a register type means to the emitter (the dtype its arithmetic follows)
_REG_DTYPES = {F32: "f32", F64: "f64", I64: "i64", I128: "u64", I1: "bool"}
_NARROW_INTS = {"i8": (I8, True), "i16": (I16, True), "i32": (I32, True),
                "u8": (I8, False), "u16": (I16, False), "u32": (I32, False)}


def register_dtype(ty: ir.Type) -> str | None:
    """The dtype whose arithmetic a register type follows ("i64" for every narrow integer)."""
    return _REG_DTYPES.get(ty)


def _bf16_bits(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """f32 -> the i16 bits of the nearest bf16, ties to even; NaN stays a (quiet) NaN."""
    bits = b.bitcast(x, I32)
    lsb = b.and_(b.lshr(bits, ir.Constant(I32, 16)), ir.Constant(I32, 1))
    rounded = b.lshr(b.add(bits, b.add(lsb, ir.Constant(I32, 0x7FFF))), ir.Constant(I32, 16))
    quiet = b.or_(b.lshr(bits, ir.Constant(I32, 16)), ir.Constant(I32, 0x40))
    is_nan = b.fcmp_unordered("uno", x, x)
    return b.trunc(b.select(is_nan, quiet, rounded), I16)


def _from_bf16_bits(b: ir.IRBuilder, bits: ir.Value) -> ir.Value:
    return b.bitcast(b.shl(b.zext(bits, I32), ir.Constant(I32, 16)), F32)


def to_memory(b: ir.IRBuilder, value: ir.Value, dtype: str) -> ir.Value:
    """A register value as its dtype's memory type (rounding to nearest even for f16/bf16)."""
    if dtype == "bool":
        return b.zext(value, I8)
    if dtype == "f16":
        return b.fptrunc(value, F16)
    if dtype == "bf16":
        return _bf16_bits(b, value)
    if dtype in _NARROW_INTS or dtype == "u64":
        return b.trunc(value, MEM_TYPES[dtype])
    return value


def from_memory(b: ir.IRBuilder, value: ir.Value, dtype: str) -> ir.Value:
    """A value of the memory type as its register type (exact: extend or reinterpret)."""
    if dtype == "bool":
        return b.trunc(value, I1)
    if dtype == "f16":
        return b.fpext(value, F32)
    if dtype == "bf16":
        return _from_bf16_bits(b, value)
    if dtype in _NARROW_INTS:
        return (b.sext if _NARROW_INTS[dtype][1] else b.zext)(value, I64)
    if dtype == "u64":
        return b.zext(value, I128)
    return value


def fit(b: ir.IRBuilder, value: ir.Value, dtype: str) -> ir.Value:
    """A register result brought into `dtype`: wrapped for narrow ints and u64, rounded for
    f16/bf16 (what storing and loading it again would give), unchanged otherwise."""
    if dtype in _NARROW_INTS or dtype == "u64" or dtype in HALF_DTYPES:
        return from_memory(b, to_memory(b, value, dtype), dtype)
    return value


def element_ptr(b: ir.IRBuilder, base: ir.Value, index: ir.Value) -> ir.Value:
    return b.gep(base, [index], inbounds=True)


def load(b: ir.IRBuilder, base: ir.Value, index: ir.Value, dtype: str) -> ir.Value:
    return from_memory(b, b.load(element_ptr(b, base, index)), dtype)


def store(b: ir.IRBuilder, value: ir.Value, base: ir.Value, index: ir.Value, dtype: str) -> None:
    b.store(to_memory(b, value, dtype), element_ptr(b, base, index))


def constant(dtype: str, value) -> ir.Constant:
    """An LLVM register constant of a graphc dtype: floats rounded to the dtype (f16/bf16),
    infinities clamped to an integer type's range, integers wrapped into it."""
    reg = REG_TYPES[dtype]
    if dtype == "bool":
        return ir.Constant(I1, int(bool(value)))
    if isinstance(reg, (ir.FloatType, ir.DoubleType)):
        return ir.Constant(reg, float(np.asarray(value).astype(DTYPES[dtype])))
    info = np.iinfo(DTYPES[dtype])
    if isinstance(value, float) and math.isinf(value):
        value = info.max if value > 0 else info.min
    value = int(value) % 2 ** info.bits
    return ir.Constant(reg, value - 2 ** info.bits if value > info.max else value)
