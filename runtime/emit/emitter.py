"""The LLVM scalar emitter and loop-nest helpers that kernels are built from.

Input: an llvmlite `IRBuilder` positioned inside a kernel, scalar llvmlite values in the
register types of runtime/emit/dtypes.py (f32/f64, i64 for every signed or narrow integer,
i128 for u64, i1 for bool) and loop bounds. Output: instructions with NumPy semantics for
every method of `graphc.ops.scalar.EMITTER_METHODS` (results of narrow dtypes are wrapped or
rounded by the caller, `dtypes.fit`), casts between every pair of dtypes, and counted loops
as context managers.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

from graphc.runtime.emit import vmath
from graphc.runtime.emit.dtypes import (  # noqa: F401 (the kernels' names for them)
    F32,
    F64,
    I1,
    I8,
    I64,
    I128,
    MEM_TYPES,
    REG_TYPES,
    constant,
    element_ptr,
    fit,
    load,
    register_dtype,
    store,
)
from llvmlite import ir

from graphc.errors import CompileError
from graphc.ops.scalar import TRIG_METHODS
from graphc.types import FLOAT_DTYPES

_FLOAT_BINOPS = {"add": "fadd", "sub": "fsub", "mul": "fmul", "div": "fdiv"}
_INT_BINOPS = {"add": "add", "sub": "sub", "mul": "mul"}
# NumPy compares floats with ordered predicates except `!=`, which is true for NaN.
_FCMP = {"lt": ("fcmp_ordered", "<"), "le": ("fcmp_ordered", "<="), "gt": ("fcmp_ordered", ">"),
         "ge": ("fcmp_ordered", ">="), "eq": ("fcmp_ordered", "=="), "ne": ("fcmp_unordered", "!=")}
_UNARY_INTRINSICS = {"exp": "llvm.exp", "log": "llvm.log", "sqrt": "llvm.sqrt"}
# tanh has no LLVM intrinsic: it is a libm call, resolved by the JIT (see jit.py).
LIBM_TANH = {"f32": "tanhf", "f64": "tanh"}
LIBM_ERF = {"f32": "erff", "f64": "erf"}
# The trigonometric and hyperbolic functions and their inverses are libm calls too (`sinf` in
# f32 kernels, `sin` in f64), right at inf, NaN, domain edges and huge arguments; the JIT
# resolves them in the process's C library.
LIBM_TRIG = {name: {"f32": f"{name}f", "f64": name} for name in TRIG_METHODS}


def dtype_of(ty: ir.Type) -> str:
    """The dtype whose arithmetic a register type follows."""
    name = register_dtype(ty)
    if name is None:
        raise CompileError(f"no graphc dtype for LLVM type {ty}")
    return name


def is_float(value: ir.Value) -> bool:
    return isinstance(value.type, (ir.FloatType, ir.DoubleType))


class LLVMEmitter:
    """Scalar bodies over llvmlite values; the LLVM twin of `graphc.ops.scalar.NumpyEmitter`."""

    def __init__(self, builder: ir.IRBuilder, error_code: int = 1):
        self.b = builder
        self.isolate = contextlib.nullcontext  # values made in a read_if branch stay there
        self.module: ir.Module = builder.module
        self.error_code = error_code  # what fail_unless records: the kernel's position + 1
        self.failed: ir.AllocaInstr | None = None  # this call's flag, see record_failure

    def fail_unless(self, cond, message: str) -> None:
        """Note a failure when `cond` is false; `record_failure` then puts this kernel's error
        code in the module's error cell, and the executor raises a GraphcError naming the
        kernel after the step (`message` is the interpreter's wording; the compiled path
        reports the kernel and its location). The flag is a local the loop vectoriser sees
        as an or-reduction: a store to the global cell in the loop (which LLVM cannot prove
        apart from the input pointers) kept the loop scalar, and every load in it."""
        if self.failed is None:
            with self.b.goto_entry_block():
                self.failed = self.b.alloca(I1, name="failed")
                self.b.store(ir.Constant(I1, 0), self.failed)
        self.b.store(self.b.or_(self.b.load(self.failed), self.b.not_(cond)), self.failed)

    def record_failure(self) -> None:
        """At the kernel's end: the error code into the error cell if fail_unless failed."""
        if self.failed is None:
            return
        with self.b.if_then(self.b.load(self.failed)):
            self.b.store(ir.Constant(I64, self.error_code), error_cell(self.module))

    # --- arithmetic --------------------------------------------------------------------------
    def _binop(self, name: str, a, b):
        table = _FLOAT_BINOPS if is_float(a) else _INT_BINOPS
        if name not in table:
            raise CompileError(f"scalar op {name!r} is not defined for {dtype_of(a.type)}")
        return getattr(self.b, table[name])(a, b)

    def add(self, a, b): return self._binop("add", a, b)
    def sub(self, a, b): return self._binop("sub", a, b)
    def mul(self, a, b): return self._binop("mul", a, b)
    def div(self, a, b): return self._binop("div", a, b)

    def neg(self, a):
        return self.b.fneg(a) if is_float(a) else self.b.neg(a)

    def _intrinsic(self, name: str, *args):
        fn = self.module.declare_intrinsic(name, [args[0].type])
        return self.b.call(fn, list(args))

    # f32 transcendentals are polynomial (runtime/emit/vmath.py) so loops over them vectorise;
    # f64 keeps libm's correctly rounded versions.
    def exp(self, a):
        return vmath.exp_f32(self.b, a) if a.type == F32 else self._intrinsic("llvm.exp", a)

    def log(self, a):
        return vmath.log_f32(self.b, a) if a.type == F32 else self._intrinsic("llvm.log", a)

    def sqrt(self, a): return self._intrinsic("llvm.sqrt", a)
    def pow(self, a, b): return self._intrinsic("llvm.pow", a, b)

    def tanh(self, a):
        return vmath.tanh_f32(self.b, a) if a.type == F32 else self._libm(LIBM_TANH["f64"], a)

    def floor(self, a): return self._intrinsic("llvm.floor", a)
    def ceil(self, a): return self._intrinsic("llvm.ceil", a)
    def round(self, a): return self._intrinsic("llvm.roundeven", a)  # half to even

    def erf(self, a):
        return vmath.erf_f32(self.b, a) if a.type == F32 else self._libm(LIBM_ERF["f64"], a)

    def _trig(self, name: str, a):
        return self._libm(LIBM_TRIG[name][dtype_of(a.type)], a)

    def sin(self, a): return self._trig("sin", a)
    def cos(self, a): return self._trig("cos", a)
    def tan(self, a): return self._trig("tan", a)
    def asin(self, a): return self._trig("asin", a)
    def acos(self, a): return self._trig("acos", a)
    def atan(self, a): return self._trig("atan", a)
    def sinh(self, a): return self._trig("sinh", a)
    def cosh(self, a): return self._trig("cosh", a)
    def asinh(self, a): return self._trig("asinh", a)
    def acosh(self, a): return self._trig("acosh", a)
    def atanh(self, a): return self._trig("atanh", a)

    def _libm(self, name: str, a):
        fn = self.module.globals.get(name)
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(a.type, [a.type]), name)
            fn.attributes.add("nounwind")
            fn.attributes.add("readnone")
        return self.b.call(fn, [a])

    # --- integers: floor division and modulo with NumPy's signs, xor, logical right shift ----
    def _unsigned(self, method: str, a, b):
        """u64 (i128 registers): the unsigned operation on the low 64 bits, 0 for x / 0."""
        lo_a, lo_b = self.b.trunc(a, I64), self.b.trunc(b, I64)
        zero = self.b.icmp_unsigned("==", lo_b, ir.Constant(I64, 0))
        safe = self.b.select(zero, ir.Constant(I64, 1), lo_b)
        out = getattr(self.b, method)(lo_a, safe)
        return self.b.zext(self.b.select(zero, ir.Constant(I64, 0), out), I128)

    def _floor_adjust(self, a, b):
        r = self.b.srem(a, b)
        signs_differ = self.b.icmp_signed("<", self.b.xor(r, b), ir.Constant(I64, 0))
        return r, self.b.and_(self.b.icmp_signed("!=", r, ir.Constant(I64, 0)), signs_differ)

    def floordiv(self, a, b):
        if a.type == I128:
            return self._unsigned("udiv", a, b)
        _, adjust = self._floor_adjust(a, b)
        return self.b.sub(self.b.sdiv(a, b), self.b.zext(adjust, I64))

    def mod(self, a, b):
        if a.type == I128:
            return self._unsigned("urem", a, b)
        r, adjust = self._floor_adjust(a, b)
        return self.b.select(adjust, self.b.add(r, b), r)

    def xor(self, a, b): return self.b.xor(a, b)

    # --- fmod: C's remainder, the dividend's sign (floats and i64) ----------------------------
    def fmod(self, a, b):
        """C fmod (`frem`, libm's fmod); for i64 the C remainder, where x % 0 and x % -1 are 0
        as in NumPy (srem would trap on both: by zero and on INT64_MIN % -1)."""
        if is_float(a):
            return self.b.frem(a, b)
        if a.type == I128:
            return self._unsigned("urem", a, b)
        one = ir.Constant(I64, 1)
        zero_or_minus_one = self.b.icmp_unsigned("<=", self.b.add(b, one), one)
        return self.b.srem(a, self.b.select(zero_or_minus_one, one, b))

    # --- bitwise logic (i64, and bool for and/or/not); shifts with NumPy's int64 results ------
    def bit_and(self, a, b): return self.b.and_(a, b)
    def bit_or(self, a, b): return self.b.or_(a, b)
    def bit_not(self, a): return self.b.not_(a)

    def _shift_in_range(self, k):
        """0 <= k < 64: a shift by anything else is poison in LLVM (or, in the wider registers
        of u64, not NumPy's 0), so the callers select."""
        return self.b.icmp_unsigned("<", k, ir.Constant(k.type, 64))

    def shift_left(self, a, k):
        return self.b.select(self._shift_in_range(k), self.b.shl(a, k), ir.Constant(a.type, 0))

    def shift_right(self, a, k):  # logical: zeros shift in
        return self.b.select(self._shift_in_range(k), self.b.lshr(a, k), ir.Constant(a.type, 0))

    def shift_right_arith(self, a, k):  # copies of the sign bit shift in: 63 places at most
        k = self.b.select(self._shift_in_range(k), k, ir.Constant(k.type, 63))
        return self.b.ashr(a, k)

    # --- max/min: exactly np.maximum / np.minimum (NaN in either operand propagates) ----------
    def max(self, a, b): return self._pick(a, b, ">=")
    def min(self, a, b): return self._pick(a, b, "<=")

    def _pick(self, a, b, op: str):
        if is_float(a):
            keep = self.b.or_(self.b.fcmp_ordered(op, a, b), self.b.fcmp_unordered("uno", a, a))
        else:
            keep = self.b.icmp_signed(op, a, b)
        return self.b.select(keep, a, b)

    # --- comparisons, select ------------------------------------------------------------------
    def _compare(self, name: str, a, b):
        if is_float(a):
            method, op = _FCMP[name]
            return getattr(self.b, method)(op, a, b)
        if a.type == I1:
            return self.b.icmp_unsigned(_FCMP[name][1], a, b)
        return self.b.icmp_signed(_FCMP[name][1], a, b)

    def lt(self, a, b): return self._compare("lt", a, b)
    def le(self, a, b): return self._compare("le", a, b)
    def gt(self, a, b): return self._compare("gt", a, b)
    def ge(self, a, b): return self._compare("ge", a, b)
    def eq(self, a, b): return self._compare("eq", a, b)
    def ne(self, a, b): return self._compare("ne", a, b)

    def select(self, c, a, b):
        return self.b.select(c, a, b)

    def read_if(self, cond, read, safe_read, default):
        """`read()` only where cond holds, else `default`: a branch around the read, which
        the loop vectoriser turns into a masked load when the address is affine (a window
        row reaching padding, col2im's edges), where a clamped read would be a gather.
        Values computed inside stay inside (`isolate`, set by the index evaluator)."""
        b = self.b
        before = b.block
        with self.isolate(), b.if_then(cond):
            value = read()
            inside = b.block
        merged = b.phi(value.type)
        merged.add_incoming(value, inside)
        merged.add_incoming(self.const(default, value), before)
        return merged

    # --- constants and conversions ------------------------------------------------------------
    def const(self, value, like):
        return constant(dtype_of(like.type), value)

    def cast(self, a, dtype: str):
        """Convert to `dtype` (NumPy's astype): float -> int truncates toward zero, int -> int
        wraps, f16/bf16 round to nearest even; the result is in `dtype`'s register form."""
        src, target = dtype_of(a.type), REG_TYPES[dtype]
        if dtype == "bool":
            return self.ne(a, ir.Constant(a.type, 0.0 if is_float(a) else 0))
        if src == "bool":
            out = self.b.uitofp(a, target) if dtype in FLOAT_DTYPES else self.b.zext(a, target)
        elif is_float(a) and dtype in FLOAT_DTYPES:
            out = a if a.type == target else \
                (self.b.fpext if target == F64 else self.b.fptrunc)(a, target)
        elif src == "u64":
            low = self.b.trunc(a, I64)
            out = self.b.uitofp(low, target) if dtype in FLOAT_DTYPES else \
                (low if target == I64 else a)
        elif src == "i64":
            out = self.b.sitofp(a, target) if dtype in FLOAT_DTYPES else \
                (a if target == I64 else self.b.zext(a, I128))
        elif dtype == "u64":  # float -> u64: unsigned from 2**63 up, else signed and wrapped
            big = self.b.fcmp_ordered(">=", a, ir.Constant(a.type, 2.0 ** 63))
            low = self.b.select(big, self.b.fptoui(a, I64), self.b.fptosi(a, I64))
            out = self.b.zext(low, I128)
        else:  # float -> int truncates toward zero, like C and NumPy
            out = self.b.fptosi(a, I64)
        return fit(self.b, out, dtype)


ERROR_CELL = "graphc_error"


def error_cell(module: ir.Module) -> ir.GlobalVariable:
    """The module's i64 error cell (0: no error), read and cleared by the executor."""
    cell = module.globals.get(ERROR_CELL)
    if cell is None:
        cell = ir.GlobalVariable(module, I64, ERROR_CELL)
        cell.initializer = ir.Constant(I64, 0)
    return cell


# --- loops -----------------------------------------------------------------------------------
@contextlib.contextmanager
def for_range(b: ir.IRBuilder, count: int, name: str = "i") -> Iterator[ir.Value]:
    """`for (i = 0; i < count; ++i)` with a static trip count; yields i (i64)."""
    with for_span(b, ir.Constant(I64, 0), ir.Constant(I64, count), name) as index:
        yield index


@contextlib.contextmanager
def for_span(b: ir.IRBuilder, lo: ir.Value, hi: ir.Value, name: str = "s") -> Iterator[ir.Value]:
    """`for (i = lo; i < hi; ++i)` with bounds known only at run time."""
    fn = b.function
    pre = b.block
    head = fn.append_basic_block(f"{name}.head")
    body = fn.append_basic_block(f"{name}.body")
    done = fn.append_basic_block(f"{name}.end")
    b.branch(head)
    b.position_at_end(head)
    index = b.phi(I64, name=name)
    index.add_incoming(lo, pre)
    b.cbranch(b.icmp_signed("<", index, hi), body, done)
    b.position_at_end(body)
    yield index
    step = b.add(index, ir.Constant(I64, 1), name=f"{name}.next", flags=("nuw", "nsw"))
    index.add_incoming(step, b.block)
    b.branch(head)
    b.position_at_end(done)

