"""The LLVM scalar emitter and loop-nest helpers that kernels are built from.

Input: an llvmlite `IRBuilder` positioned inside a kernel, scalar llvmlite values (f32/f64/i64 or
i1 for bool) and loop bounds. Output: instructions with NumPy semantics for
every method of `graphc.ops.scalar.EMITTER_METHODS`, typed loads/stores (bool is i8 in memory,
i1 in registers) and counted loops as context managers.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

from graphc.runtime.emit import vmath
from llvmlite import ir

from graphc.errors import CompileError
from graphc.ops.scalar import TRIG_METHODS

I1, I8, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(64)
F32, F64 = ir.FloatType(), ir.DoubleType()

# Register type and memory type of each graphc dtype.
REG_TYPES: dict[str, ir.Type] = {"f32": F32, "f64": F64, "i64": I64, "bool": I1}
MEM_TYPES: dict[str, ir.Type] = {"f32": F32, "f64": F64, "i64": I64, "bool": I8}

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
    """The graphc dtype of a register type."""
    for name, reg in REG_TYPES.items():
        if ty == reg:
            return name
    raise CompileError(f"no graphc dtype for LLVM type {ty}")


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

    # --- i64 only: floor division and modulo with NumPy's signs, xor, logical right shift -----
    def _floor_adjust(self, a, b):
        r = self.b.srem(a, b)
        signs_differ = self.b.icmp_signed("<", self.b.xor(r, b), ir.Constant(I64, 0))
        return r, self.b.and_(self.b.icmp_signed("!=", r, ir.Constant(I64, 0)), signs_differ)

    def floordiv(self, a, b):
        _, adjust = self._floor_adjust(a, b)
        return self.b.sub(self.b.sdiv(a, b), self.b.zext(adjust, I64))

    def mod(self, a, b):
        r, adjust = self._floor_adjust(a, b)
        return self.b.select(adjust, self.b.add(r, b), r)

    def xor(self, a, b): return self.b.xor(a, b)

    # --- fmod: C's remainder, the dividend's sign (floats and i64) ----------------------------
    def fmod(self, a, b):
        """C fmod (`frem`, libm's fmod); for i64 the C remainder, where x % 0 and x % -1 are 0
        as in NumPy (srem would trap on both: by zero and on INT64_MIN % -1)."""
        if is_float(a):
            return self.b.frem(a, b)
        one = ir.Constant(I64, 1)
        zero_or_minus_one = self.b.icmp_unsigned("<=", self.b.add(b, one), one)
        return self.b.srem(a, self.b.select(zero_or_minus_one, one, b))

    # --- bitwise logic (i64, and bool for and/or/not); shifts with NumPy's int64 results ------
    def bit_and(self, a, b): return self.b.and_(a, b)
    def bit_or(self, a, b): return self.b.or_(a, b)
    def bit_not(self, a): return self.b.not_(a)

    def _shift_in_range(self, k):
        """0 <= k < 64: a shift by anything else is poison in LLVM, so the callers select."""
        return self.b.icmp_unsigned("<", k, ir.Constant(I64, 64))

    def shift_left(self, a, k):
        return self.b.select(self._shift_in_range(k), self.b.shl(a, k), ir.Constant(I64, 0))

    def shift_right(self, a, k):  # logical: zeros shift in
        return self.b.select(self._shift_in_range(k), self.b.lshr(a, k), ir.Constant(I64, 0))

    def shift_right_arith(self, a, k):  # copies of the sign bit shift in: 63 places at most
        k = self.b.select(self._shift_in_range(k), k, ir.Constant(I64, 63))
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
        src, dst = dtype_of(a.type), dtype
        if src == dst:
            return a
        target = REG_TYPES[dst]
        if dst == "bool":
            return self.ne(a, ir.Constant(a.type, 0.0 if is_float(a) else 0))
        if src == "bool":
            return self.b.uitofp(a, target) if dst in ("f32", "f64") else self.b.zext(a, target)
        if src in ("f32", "f64") and dst in ("f32", "f64"):
            return self.b.fpext(a, target) if dst == "f64" else self.b.fptrunc(a, target)
        if src == "i64":
            return self.b.sitofp(a, target)
        return self.b.fptosi(a, target)  # float -> int truncates toward zero, like C and NumPy


ERROR_CELL = "graphc_error"


def error_cell(module: ir.Module) -> ir.GlobalVariable:
    """The module's i64 error cell (0: no error), read and cleared by the executor."""
    cell = module.globals.get(ERROR_CELL)
    if cell is None:
        cell = ir.GlobalVariable(module, I64, ERROR_CELL)
        cell.initializer = ir.Constant(I64, 0)
    return cell


def constant(dtype: str, value) -> ir.Constant:
    """An LLVM constant of a graphc dtype; infinities clamp to the integer range for i64."""
    if dtype in ("f32", "f64"):
        return ir.Constant(REG_TYPES[dtype], float(value))
    if dtype == "bool":
        return ir.Constant(I1, int(bool(value)))
    if isinstance(value, float) and math.isinf(value):
        value = 2**63 - 1 if value > 0 else -(2**63)
    return ir.Constant(I64, int(value))


# --- memory ----------------------------------------------------------------------------------
def element_ptr(b: ir.IRBuilder, base: ir.Value, index: ir.Value) -> ir.Value:
    return b.gep(base, [index], inbounds=True)


def load(b: ir.IRBuilder, base: ir.Value, index: ir.Value, dtype: str) -> ir.Value:
    value = b.load(element_ptr(b, base, index))
    return b.trunc(value, I1) if dtype == "bool" else value


def store(b: ir.IRBuilder, value: ir.Value, base: ir.Value, index: ir.Value, dtype: str) -> None:
    if dtype == "bool":
        value = b.zext(value, I8)
    b.store(value, element_ptr(b, base, index))


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

