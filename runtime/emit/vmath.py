"""Vectorisable f32 transcendentals: exp, log, tanh and erf as plain LLVM arithmetic.

Input: an llvmlite IRBuilder and an f32 scalar value inside a kernel loop. Output: the function's
value built from adds, multiplies, floor, selects and bit operations only, so LLVM's loop
vectoriser turns a loop over them into AVX-512 code instead of one libm call per element.
Special values follow IEEE/NumPy: NaN propagates, exp(-inf) = 0, exp(inf) = inf, log(0) = -inf,
log(x < 0) = NaN, tanh(±inf) = ±1, erf(±inf) = ±1. Maximum relative error against float64
NumPy over dense grids, asserted by tests/test_vmath.py: exp and log 1.2e-7, tanh and erf
2.4e-7 (measured: exp 8.1e-8, log 7.5e-8, tanh 1.3e-7, erf 1.7e-7, i.e. about 1-2 ulp).
The exp, log and tanh polynomials are Cephes' (S. L. Moshier); erf's are fitted (see below).
Polynomials are evaluated with llvm.fmuladd, one FMA per step where the host has FMA.
"""
from __future__ import annotations

from llvmlite import ir

F32 = ir.FloatType()
I32 = ir.IntType(32)

EXP_MAX_REL_ERROR = 1.2e-7
LOG_MAX_REL_ERROR = 1.2e-7
TANH_MAX_REL_ERROR = 2.4e-7
ERF_MAX_REL_ERROR = 2.4e-7


def _c(v: float) -> ir.Constant:
    return ir.Constant(F32, v)


def _fma(b: ir.IRBuilder, x: ir.Value, y: ir.Value, z: ir.Value) -> ir.Value:
    """x * y + z, one fused instruction where the host has FMA (llvm.fmuladd)."""
    fn = b.module.declare_intrinsic("llvm.fmuladd", [F32], ir.FunctionType(F32, [F32] * 3))
    return b.call(fn, [x, y, z])


def _poly(b: ir.IRBuilder, x: ir.Value, coefficients: list[float]) -> ir.Value:
    """Horner: c0*x^n + c1*x^(n-1) + ... + cn."""
    acc = _c(coefficients[0])
    for c in coefficients[1:]:
        acc = _fma(b, acc, x, _c(c))
    return acc


def _floor(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    return b.call(b.module.declare_intrinsic("llvm.floor", [F32]), [x])


def _fabs(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    return b.call(b.module.declare_intrinsic("llvm.fabs", [F32]), [x])


def _copysign(b: ir.IRBuilder, mag: ir.Value, sign: ir.Value) -> ir.Value:
    fn = b.module.globals.get("llvm.copysign.f32")  # declare_intrinsic mangles one operand
    if fn is None:
        fn = ir.Function(b.module, ir.FunctionType(F32, [F32, F32]), "llvm.copysign.f32")
    return b.call(fn, [mag, sign])


def _is_nan(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    return b.fcmp_unordered("uno", x, x)


def _pow2(b: ir.IRBuilder, n: ir.Value) -> ir.Value:
    """2**n as an f32 for an i32 n in [-126, 127] (built from the exponent bits)."""
    return b.bitcast(b.shl(b.add(n, ir.Constant(I32, 127)), ir.Constant(I32, 23)), F32)


def exp_f32(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """e**x: x = n ln2 + r with |r| <= ln2/2, a degree-6 polynomial for e**r, times 2**n."""
    xc = b.select(b.fcmp_ordered("<", x, _c(-104.0)), _c(-104.0),
                  b.select(b.fcmp_ordered(">", x, _c(88.8)), _c(88.8), x))
    fx = _floor(b, b.fadd(b.fmul(xc, _c(1.44269504088896341)), _c(0.5)))
    r = _fma(b, fx, _c(2.12194440e-4), _fma(b, fx, _c(-0.693359375), xc))
    p = _poly(b, r, [1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
                     1.6666665459e-1, 5.0000001201e-1])
    y = b.fadd(_fma(b, p, b.fmul(r, r), r), _c(1.0))
    n = b.fptosi(b.select(_is_nan(b, fx), _c(0.0), fx), I32)
    half = b.ashr(n, ir.Constant(I32, 1))  # 2**n = 2**half * 2**(n - half), both normal
    return b.fmul(b.fmul(y, _pow2(b, half)), _pow2(b, b.sub(n, half)))


def log_f32(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """ln x: x = m 2**e with m in [sqrt(1/2), sqrt(2)), a degree-8 polynomial in m - 1."""
    tiny = b.fcmp_ordered("<", x, _c(1.17549435e-38))
    xs = b.select(tiny, b.fmul(x, _c(8388608.0)), x)  # scale denormals up by 2**23
    bits = b.bitcast(xs, I32)
    e = b.sub(b.lshr(bits, ir.Constant(I32, 23)), ir.Constant(I32, 126))
    e = b.sub(e, b.select(tiny, ir.Constant(I32, 23), ir.Constant(I32, 0)))
    m = b.bitcast(b.or_(b.and_(bits, ir.Constant(I32, 0x807FFFFF)),
                        ir.Constant(I32, 0x3F000000)), F32)  # in [0.5, 1)
    low = b.fcmp_ordered("<", m, _c(0.707106781186547524))
    e = b.sub(e, b.select(low, ir.Constant(I32, 1), ir.Constant(I32, 0)))
    m = b.fsub(b.select(low, b.fadd(m, m), m), _c(1.0))
    fe = b.sitofp(e, F32)
    z = b.fmul(m, m)
    p = _poly(b, m, [7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1,
                     1.4249322787e-1, -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1,
                     3.3333331174e-1])
    y = b.fmul(b.fmul(p, m), z)
    y = b.fadd(y, b.fmul(fe, _c(-2.12194440e-4)))
    y = b.fsub(y, b.fmul(z, _c(0.5)))
    result = b.fadd(b.fadd(m, y), b.fmul(fe, _c(0.693359375)))
    result = b.select(b.fcmp_ordered("==", x, _c(0.0)), _c(float("-inf")), result)
    result = b.select(b.fcmp_ordered("==", x, _c(float("inf"))), x, result)
    return b.select(b.fcmp_unordered("<", x, _c(0.0)), _c(float("nan")), result)


def tanh_f32(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """tanh x: an odd polynomial for |x| < 0.625, else 1 - 2 / (e**(2|x|) + 1) with x's sign."""
    a = _fabs(b, x)
    z = b.fmul(x, x)
    small = b.fadd(b.fmul(b.fmul(_poly(b, z, [-5.70498872745e-3, 2.06390887954e-2,
                                              -5.37397155531e-2, 1.33314422036e-1,
                                              -3.33332819422e-1]), z), x), x)
    big = b.fsub(_c(1.0), b.fdiv(_c(2.0), b.fadd(exp_f32(b, b.fmul(a, _c(2.0))), _c(1.0))))
    return b.select(b.fcmp_ordered("<", a, _c(0.625)), small, _copysign(b, big, x))


# erf's two polynomials, highest power first: Lawson-reweighted least-squares fits (close to
# minimax) in float64 to erf(x) / x over |x| < 1 as a polynomial in x² (relative error 1.2e-9),
# and to erfcx(x) = e**(x²) erfc(x) over 1 <= x <= 4 as a polynomial in x - 2.5, weighted by
# the error it causes in erf = 1 - e**(-x²) erfcx(x) (2.5e-9); f32 rounding dominates both.
ERF_SMALL = [7.889242260716856e-05, -0.000802088063210249, 0.005189540330320597,
             -0.02685444802045822, 0.11283600330352783, -0.3761262595653534,
             1.1283791065216064]
ERFCX_BIG = [0.00010819517774507403, 0.00023225543554872274, 0.0005573084345087409,
             -0.0006505636847577989, 0.002301723463460803, -0.0081375977024436,
             0.024912279099225998, -0.07434232532978058, 0.2108076512813568]
ERF_TOP = 4.0  # beyond, erf rounds to ±1 in f32 (erfcx is evaluated at 4)


def erf_f32(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """erf x: x P(x²) for |x| < 1, else 1 - e**(-x²) Q(|x|) with x's sign, Q ≈ erfcx. The
    factor e**(-x²) is exp_f32(-(x * x)), the very instructions of erf's derivative
    2/√π e**(-x²) (and GELU's), so a kernel computing erf and its derivative shares one exp."""
    a = _fabs(b, x)
    z = b.fmul(x, x)
    small = b.fmul(_poly(b, z, ERF_SMALL), x)
    top = b.select(b.fcmp_ordered("<", a, _c(ERF_TOP)), a, _c(ERF_TOP))
    erfc = b.fmul(exp_f32(b, b.fneg(z)), _poly(b, b.fsub(top, _c(2.5)), ERFCX_BIG))
    big = _copysign(b, b.fsub(_c(1.0), erfc), x)
    return b.select(b.fcmp_ordered("<", a, _c(1.0)), small, big)
