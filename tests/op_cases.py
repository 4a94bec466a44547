"""The per-op test table that tests/test_ops.py expands for every registered op.

Input: nothing. Output: `CASES` (op name -> cases: operand types, attributes, an input
generator that keeps away from kinks and ties, and an independent NumPy formula), `BAD` (op name
-> operand types and attributes the shape rule must reject, with a fragment of the message) and
`BAD_DATA` (ops with a `check_inputs` fact -> feeds it must reject). A registered op without an
entry here fails the completeness test, so adding an op forces adding its cases.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import graphc as gc
from graphc.types import INT_DTYPES, TensorType

Gen = Callable[[np.random.Generator, tuple[TensorType, ...]], list[np.ndarray]]


# --- input generators: gen(rng, types) -> one array per operand --------------------------------
def _draw(rng, t: TensorType, lo: float, hi: float) -> np.ndarray:
    """Floats in [lo, hi); i64 in [-5, 5]; the narrower integers and u64 over their whole
    range, so that arithmetic on them wraps around."""
    if t.dtype == "bool":
        return rng.random(t.shape) < 0.5
    if t.dtype == "i64":
        return rng.integers(-5, 6, t.shape)
    if t.dtype in INT_DTYPES:
        info = np.iinfo(t.np_dtype)
        return rng.integers(info.min, info.max, t.shape, dtype=t.np_dtype, endpoint=True)
    return np.asarray(rng.uniform(lo, hi, t.shape)).astype(t.np_dtype)


def uniform(lo: float = -2.0, hi: float = 2.0) -> Gen:
    return lambda rng, types: [_draw(rng, t, lo, hi) for t in types]


def away(lo: float = 0.2, hi: float = 2.0) -> Gen:
    """|x| in [lo, hi] with a random sign: no operand near 0 (relu's kink, division by 0)."""
    def gen(rng, types):
        out = []
        for t in types:
            mag = _draw(rng, t, lo, hi) if t.is_float else rng.integers(1, 6, t.shape)
            sign = np.where(rng.random(t.shape) < 0.5, -1, 1).astype(mag.dtype)
            out.append(np.asarray(mag * sign).astype(t.np_dtype))
        return out
    return gen


def positive(lo: float = 0.5, hi: float = 2.0) -> Gen:
    return uniform(lo, hi)


def per_operand(*gens: Gen) -> Gen:
    """Operand i drawn by gens[i]."""
    return lambda rng, types: [g(rng, (t,))[0] for g, t in zip(gens, types)]


def apart() -> Gen:
    """Operands on interleaved lattices, so no two elements of different operands tie (|a-b| >=
    0.15 for floats, odd vs even for ints): maximum/minimum have no kink under broadcasting."""
    def gen(rng, types):
        out = []
        for i, t in enumerate(types):
            k = rng.integers(-4, 5, t.shape)
            if t.dtype in INT_DTYPES:
                out.append((2 * k + i).astype(t.np_dtype))
            else:
                noise = rng.uniform(-0.05, 0.05, t.shape)
                out.append(np.asarray(0.5 * k + 0.25 * i + noise).astype(t.np_dtype))
        return out
    return gen


def ties() -> Gen:
    """Few distinct values, so comparisons see equal elements."""
    def gen(rng, types):
        pick = [-1.0, 0.0, 0.5, 1.0]
        return [rng.random(t.shape) < 0.5 if t.dtype == "bool" else
                rng.choice(pick, t.shape).astype(t.np_dtype) for t in types]
    return gen


def distinct() -> Gen:
    """Every element distinct (gaps >= 0.2): max reductions have a unique argmax."""
    def gen(rng, types):
        out = []
        for t in types:
            order = rng.permutation(t.size).reshape(t.shape)
            out.append(np.asarray(0.3 * order - 1.0 + rng.uniform(0, 0.1, t.shape))
                       .astype(t.np_dtype))
        return out
    return gen


def values(*per_operand_values) -> Gen:
    """Fixed values, repeated to fill each operand (special cases: NaN, inf, 0, -1)."""
    return lambda rng, types: [np.resize(np.asarray(v), t.shape).astype(t.np_dtype)
                               for v, t in zip(per_operand_values, types)]


def labelled(classes_axis: int = 1) -> Gen:
    """Logits uniform, labels in range: the softmax_cross_entropy operands."""
    def gen(rng, types):
        logits, labels = types
        return [_draw(rng, logits, -2, 2),
                rng.integers(0, logits.shape[classes_axis], labels.shape)]
    return gen


# --- the table ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One application of an op: `expected(*arrays)` is written independently of the op."""

    op: str
    name: str
    types: tuple[TensorType, ...]
    expected: Callable[..., np.ndarray]
    gen: Gen
    grad: bool = True  # False: no central-difference check (special values, zero-by-definition)
    attrs: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.op}-{self.name}"


@dataclass(frozen=True)
class Bad:
    """Operands/attributes the shape rule must reject, with a regex its message must match."""

    op: str
    name: str
    types: tuple[TensorType, ...]
    match: str
    attrs: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.op}-{self.name}"


def _types(spec: str) -> tuple[TensorType, ...]:
    return tuple(TensorType.parse(s) for s in spec.split())


def case(name, spec, expected, gen=None, grad=True, **attrs):
    return ("case", name, spec, expected, gen or uniform(), grad, attrs)


def bad(name, spec, match, **attrs):
    return ("bad", name, spec, match, attrs)


NAN, INF = float("nan"), float("inf")


def _body(spec: str, fn) -> gc.Graph:
    """A fused kernel body: inputs x0, x1, ... (the node's operands), output fn(inputs)."""
    b = gc.GraphBuilder("body")
    xs = [b.input(f"x{i}", t.shape, t.dtype) for i, t in enumerate(_types(spec))]
    return b.build({"y": fn(*xs)})


_FUSED_BODY = _body("f32[2,3] f32[2,3]", lambda a, b: gc.relu(a * b + 1.0))


def _softmax(x, axis):
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def _xent(logits, labels):
    p = _softmax(logits.astype(np.float64), 1)
    return -np.mean(np.log(p[np.arange(len(labels)), labels]))


_BCAST_ERRORS = [bad("bcast", "f32[2,3] f32[4]", "do not broadcast"),
                 bad("dtype_mix", "f32[2,3] f64[2,3]", "dtypes differ")]


# the narrower dtypes' variants of the helpers below (expected values are computed by NumPy in
# the operands' own type: integers wrap around, f16/bf16 round each operation)
HALF_SPECS = ("f16", "bf16")
NARROW_INT_SPECS = ("i8", "u8", "i16", "u16", "i32", "u32", "u64")


def _in_f32(fn, *arrays):
    """fn computed in f32 and rounded once to the operands' dtype (how f16/bf16 accumulate)."""
    return np.asarray(fn(*(a.astype(np.float32) for a in arrays))).astype(arrays[0].dtype)


def _arith(fn, int_ok=True, gen=None):
    rows = [case("f32_bcast", "f32[2,3] f32[3]", fn, gen),
            case("f64_rowcol", "f64[2,1] f64[1,3]", fn, gen),
            case("f32_scalar", "f32[] f32[2,3]", fn, gen)]
    rows += [case(f"{dt}_bcast", f"{dt}[2,3] {dt}[3]", fn, gen) for dt in HALF_SPECS]
    if int_ok:
        rows.append(case("i64", "i64[2,3] i64[3]", fn, gen))
        rows += [case(dt, f"{dt}[2,3] {dt}[3]", fn, gen) for dt in NARROW_INT_SPECS]
    return rows


def _unary(fn, gen=None, special=None, int_ok=False):
    rows = [case("f32", "f32[2,3]", fn, gen), case("f64_scalar", "f64[]", fn, gen),
            case("f64_3d", "f64[2,1,2]", fn, gen)]
    rows += [case(dt, f"{dt}[2,3]", fn, gen) for dt in HALF_SPECS]
    if special is not None:
        rows.append(case("special", f"f32[{len(special)}]", fn, values(special), grad=False))
    if int_ok:
        rows.append(case("i64", "i64[5]", fn, away() if gen is not None else None))
        rows += [case(dt, f"{dt}[5]", fn, away() if gen is not None else None)
                 for dt in NARROW_INT_SPECS]
    return rows


_RAW: dict[str, list] = {
    "add": _arith(lambda a, b: a + b) + [bad("bool", "bool[2] bool[2]", "not supported"),
                                         *_BCAST_ERRORS],
    "sub": _arith(lambda a, b: a - b) + _BCAST_ERRORS,
    "mul": _arith(lambda a, b: a * b) + _BCAST_ERRORS,
    "div": _arith(lambda a, b: a / b, int_ok=False, gen=per_operand(uniform(), away(0.5)))
    + [bad("i64", "i64[2] i64[2]", "not supported"), *_BCAST_ERRORS],
    "pow": _arith(lambda a, b: np.exp(b * np.log(a)), int_ok=False, gen=per_operand(positive(), uniform()))
    + [bad("i64", "i64[2] i64[2]", "not supported"), *_BCAST_ERRORS],
    "maximum": _arith(np.fmax, gen=apart()) + [
        case("nan", "f32[4] f32[4]", lambda a, b: np.where(np.isnan(a) | np.isnan(b), NAN,
                                                           np.fmax(a, b)),
             values([NAN, 1.0, NAN, -2.0], [0.5, NAN, NAN, 3.0]), grad=False),
        *_BCAST_ERRORS],
    "minimum": _arith(np.fmin, gen=apart()) + [
        case("nan", "f32[4] f32[4]", lambda a, b: np.where(np.isnan(a) | np.isnan(b), NAN,
                                                           np.fmin(a, b)),
             values([NAN, 1.0, NAN, -2.0], [0.5, NAN, NAN, 3.0]), grad=False),
        *_BCAST_ERRORS],
    "neg": _unary(lambda x: 0 - x, int_ok=True) + [bad("bool", "bool[2]", "not supported")],
    "exp": _unary(lambda x: np.e ** x, special=[INF, -INF, NAN, 100.0, -200.0])
    + [bad("i64", "i64[2]", "not supported")],
    "log": _unary(lambda x: np.log2(x) / np.log2(np.e), positive(),
                  special=[0.0, -1.0, INF, NAN]) + [bad("i64", "i64[2]", "not supported")],
    "tanh": _unary(lambda x: 1 - 2 / (np.exp(2 * x.astype(np.float64)) + 1),
                   special=[INF, -INF, NAN, 0.0]) + [bad("i64", "i64[2]", "not supported")],
    "sqrt": _unary(lambda x: x ** 0.5, positive(), special=[-1.0, 0.0, INF, NAN])
    + [bad("i64", "i64[2]", "not supported")],
    "relu": _unary(lambda x: x * (x > 0), away(0.1), special=[NAN, -1.0, 0.0, 2.0], int_ok=True)
    + [bad("bool", "bool[2]", "not supported")],
    "sigmoid": _unary(lambda x: np.exp(x) / (np.exp(x) + 1), uniform(-4, 4),
                      special=[-80.0, 80.0, NAN, 0.0]) + [bad("i64", "i64[2]", "not supported")],
    "stop_gradient": [  # its gradient is zero by definition, so no central differences
        case("f32", "f32[2,3]", lambda x: x, grad=False), case("i64", "i64[4]", lambda x: x),
        case("bool", "bool[2,2]", lambda x: x), bad("arity", "f32[2] f32[2]", "takes 1 input")],
    "where": [
        case("f32_bcast", "bool[2,3] f32[2,3] f32[3]", lambda c, a, b: np.select([c], [a], b)),
        case("f64_scalar", "bool[2,1] f64[] f64[1,3]", lambda c, a, b: np.select([c], [a], b)),
        case("i64", "bool[3] i64[3] i64[]", lambda c, a, b: np.select([c], [a], b)),
        case("bool", "bool[3] bool[3] bool[3]", lambda c, a, b: (c & a) | (~c & b)),
        bad("cond_f32", "f32[3] f32[3] f32[3]", "condition must be bool"),
        bad("dtype_mix", "bool[3] f32[3] f64[3]", "dtypes differ"),
        bad("bcast", "bool[2,3] f32[4] f32[3]", "do not broadcast")],
    "cast": [
        case("f32_f64", "f32[2,3]", lambda x: np.float64(1) * x, to="f64"),
        case("f64_f32", "f64[2,3]", lambda x: np.float32(x), to="f32"),
        case("f32_i64", "f32[2,3]", lambda x: np.trunc(x).astype(np.int64), uniform(-4, 4),
             to="i64"),
        case("i64_f32", "i64[4]", lambda x: x.astype(np.float32), to="f32"),
        case("bool_f64", "bool[4]", lambda x: np.where(x, 1.0, 0.0), to="f64"),
        case("f32_bool", "f32[5]", lambda x: x != 0, ties(), to="bool"),
        case("i64_bool", "i64[5]", lambda x: x != 0, to="bool"),
        case("f32_f16", "f32[2,3]", lambda x: np.float16(x), to="f16"),
        case("f64_bf16", "f64[2,3]", lambda x: x.astype(np.float32).astype(x.dtype).astype(
            "bfloat16"), to="bf16"),
        case("bf16_f16", "bf16[4]", lambda x: np.float16(x.astype(np.float32)), to="f16"),
        case("f16_u8", "f16[5]", lambda x: np.trunc(x.astype(np.float64)).astype(np.uint8),
             positive(0.0, 200.0), to="u8"),
        case("i32_i8", "i32[6]", lambda x: x.astype(np.int8), to="i8"),
        case("u64_f32", "u64[4]", lambda x: np.float32(x), to="f32"),
        bad("float8", "f32[2]", "unsupported dtype", to="float8"),
        bad("no_to", "f32[2]", "missing attribute")],
    "broadcast_to": [
        case("f32_row", "f32[3]", lambda x: np.tile(x, (2, 1)), shape=(2, 3)),
        case("f64_col_3d", "f64[2,1]", lambda x: np.tile(x, (2, 1, 3)), shape=(2, 2, 3)),
        case("i64_scalar", "i64[]", lambda x: np.full((2, 2), x), shape=(2, 2)),
        case("bool", "bool[1]", lambda x: np.repeat(x, 3), shape=(3,)),
        bad("mismatch", "f32[3]", "broadcast", shape=(2, 4)),
        bad("shrink", "f32[2,3]", "cannot broadcast", shape=(3,))],
    "sum": [
        case("f32_axis1", "f32[2,3]", lambda x: x @ np.ones(3, x.dtype), axes=(1,)),
        case("f64_all_keep", "f64[2,3]", lambda x: np.full((1, 1), x.ravel().sum()),
             axes=(0, 1), keepdims=True),
        case("f32_3d_keep", "f32[2,3,2]", lambda x: np.einsum("ijk->j", x)[None, :, None],
             axes=(0, 2), keepdims=True),
        case("f64_none", "f64[2,3]", lambda x: x, axes=()),
        case("f32_scalar", "f32[]", lambda x: x, axes=()),
        case("i64_axis0", "i64[3,2]", lambda x: x[0] + x[1] + x[2], axes=(0,)),
        case("i8_axis0_wraps", "i8[3,2]", lambda x: x[0] + x[1] + x[2], axes=(0,)),
        case("u32_all_wraps", "u32[2,3]", lambda x: np.uint32(x.astype(np.uint64).sum() % 2**32),
             axes=(0, 1)),
        case("f16_axis1", "f16[4,5]", lambda x: _in_f32(lambda a: a @ np.ones(5, a.dtype), x),
             axes=(1,)),
        case("bf16_axis0", "bf16[5,2]", lambda x: _in_f32(lambda a: np.ones(5, a.dtype) @ a, x),
             axes=(0,)),
        bad("axis", "f32[2,3]", "within rank", axes=(2,)),
        bad("unsorted", "f32[2,3]", "sorted", axes=(1, 0)),
        bad("scalar_axis", "f32[]", "scalar", axes=(0,))],
    "mean": [
        case("f32_axis1", "f32[2,3]", lambda x: (x[:, 0] + x[:, 1] + x[:, 2]) / 3, axes=(1,)),
        case("f64_all_keep", "f64[2,3]", lambda x: np.full((1, 1), x.ravel().sum() / 6),
             axes=(0, 1), keepdims=True),
        case("f32_3d", "f32[2,3,2]", lambda x: np.einsum("ijk->j", x) / 4, axes=(0, 2)),
        bad("i64", "i64[2,3]", "not supported", axes=(1,)),
        bad("axis", "f32[2,3]", "within rank", axes=(3,))],
    "max": [
        case("f32_axis1", "f32[2,3]", lambda x: np.sort(x, 1)[:, -1], distinct(), axes=(1,)),
        case("f64_all_keep", "f64[2,3]", lambda x: np.full((1, 1), np.sort(x.ravel())[-1]),
             distinct(), axes=(0, 1), keepdims=True),
        case("f32_3d", "f32[2,3,2]", lambda x: np.sort(x.transpose(1, 0, 2).reshape(3, 4))[:, -1],
             distinct(), axes=(0, 2)),
        case("i64_axis0", "i64[3,2]", lambda x: np.sort(x, 0)[-1], axes=(0,)),
        case("u8_axis0", "u8[3,2]", lambda x: np.sort(x, 0)[-1], axes=(0,)),
        case("f16_axis1", "f16[2,3]", lambda x: np.sort(x, 1)[:, -1], distinct(), axes=(1,)),
        case("bf16_all", "bf16[2,3]", lambda x: np.sort(x.ravel())[-1], distinct(), axes=(0, 1)),
        case("nan", "f32[2,3]", lambda x: np.where(np.isnan(x).any(1), NAN, np.nanmax(x, 1)),
             values([1.0, NAN, -3.0, 2.0, 4.0, -1.0]), grad=False, axes=(1,)),
        bad("axis", "f32[2,3]", "within rank", axes=(2,))],
    "matmul": [
        case("f32_2d", "f32[2,3] f32[3,4]", lambda a, b: np.einsum("ik,kj->ij", a, b)),
        case("f64_batch_bcast", "f64[2,2,3] f64[3,2]",
             lambda a, b: np.einsum("bik,kj->bij", a, b)),
        case("f32_batch_both", "f32[1,2,3] f32[2,3,2]",
             lambda a, b: np.einsum("ik,bkj->bij", a[0], b)),
        case("f16_2d", "f16[2,3] f16[3,4]",
             lambda a, b: _in_f32(lambda x, y: np.einsum("ik,kj->ij", x, y), a, b)),
        case("bf16_batch_bcast", "bf16[2,2,3] bf16[3,2]",
             lambda a, b: _in_f32(lambda x, y: np.einsum("bik,kj->bij", x, y), a, b)),
        bad("inner", "f32[2,3] f32[4,2]", "inner dimensions differ"),
        bad("rank1", "f32[3] f32[3,2]", "rank >= 2"),
        bad("i64", "i64[2,2] i64[2,2]", "float dtype"),
        bad("batch", "f32[2,2,3] f32[3,3,2]", "batch dimensions")],
    "transpose": [
        case("f32_2d", "f32[2,3]", lambda x: np.einsum("ij->ji", x), perm=(1, 0)),
        case("f64_3d", "f64[2,3,2]", lambda x: np.einsum("ijk->kij", x), perm=(2, 0, 1)),
        case("i64", "i64[2,3]", lambda x: np.einsum("ij->ji", x), perm=(1, 0)),
        case("bool", "bool[2,1,3]", lambda x: np.moveaxis(x, 2, 0), perm=(2, 0, 1)),
        bad("repeat", "f32[2,3]", "not a permutation", perm=(0, 0)),
        bad("length", "f32[2,3]", "not a permutation", perm=(0,))],
    "reshape": [
        case("f32_2d", "f32[2,3]", lambda x: np.array(x.ravel().tolist(), x.dtype).reshape(3, 2),
             shape=(3, 2)),
        case("f64_flat", "f64[2,3]", lambda x: x.ravel(), shape=(6,)),
        case("i64_3d", "i64[6]", lambda x: x[None, :].reshape(2, 1, 3), shape=(2, 1, 3)),
        case("f32_scalar", "f32[]", lambda x: np.full((1, 1), x), shape=(1, 1)),
        bad("size", "f32[2,3]", "cannot reshape", shape=(4, 2))],
    "softmax": [
        case("f32_axis1", "f32[2,3]", lambda x: _softmax(x, 1), axis=1),
        case("f64_axis0", "f64[2,3]", lambda x: _softmax(x, 0), axis=0),
        case("f32_3d", "f32[2,3,2]", lambda x: _softmax(x, 1), axis=1),
        bad("axis", "f32[2,3]", "out of range", axis=2),
        bad("i64", "i64[2,3]", "float tensor", axis=1)],
    "log_softmax": [
        case("f32_axis1", "f32[2,3]", lambda x: np.log(_softmax(x, 1)), axis=1),
        case("f64_axis0", "f64[2,3]", lambda x: np.log(_softmax(x, 0)), axis=0),
        case("f32_3d", "f32[2,3,2]", lambda x: np.log(_softmax(x, 1)), axis=1),
        bad("axis", "f32[2,3]", "out of range", axis=2),
        bad("i64", "i64[2,3]", "float tensor", axis=1)],
    "softmax_cross_entropy": [
        case("f32", "f32[4,3] i64[4]", _xent, labelled()),
        case("f64", "f64[2,5] i64[2]", _xent, labelled()),
        bad("labels_f32", "f32[4,3] f32[4]", "labels must be i64"),
        bad("labels_len", "f32[4,3] i64[3]", "labels must be"),
        bad("logits_rank", "f32[4] i64[4]", "logits must be")],
    "mse": [
        case("f32", "f32[2,3] f32[2,3]", lambda p, t: np.square(p - t).sum() / 6),
        case("f64", "f64[4] f64[4]", lambda p, t: np.dot(p - t, p - t) / 4),
        bad("shape", "f32[2,3] f32[3]", "same float type"),
        bad("i64", "i64[3] i64[3]", "same float type")],
    "constant": [
        case("f32", "", lambda: np.float32([[1.5, -2, 0], [3, 4, 5]]),
             value=(1.5, -2.0, 0.0, 3.0, 4.0, 5.0), shape=(2, 3), dtype="f32"),
        case("i64_scalar", "", lambda: np.int64(7), value=(7,), shape=(), dtype="i64"),
        case("bool", "", lambda: np.array([True, False]), value=(True, False), shape=(2,),
             dtype="bool"),
        bad("count", "", "3 values for shape", value=(1.0, 2.0, 3.0), shape=(2, 2))],
    "iota": [
        case("i64_axis1", "", lambda: np.array([[0, 1, 2], [0, 1, 2]]), shape=(2, 3), axis=1),
        case("f32_axis0", "", lambda: np.float32([[0, 0], [1, 1], [2, 2]]), shape=(3, 2),
             axis=0, dtype="f32"),
        bad("axis", "", "out of range", shape=(2, 3), axis=2)],
    "fused": [
        case("mul_add_relu", "f32[2,3] f32[2,3]", lambda a, b: np.fmax(a * b + 1, 0),
             body=_FUSED_BODY, kind="loop"),
        bad("operands", "f32[2,3] f32[3]", "differ from the body's inputs", body=_FUSED_BODY)],
}

_COMPARISONS = {
    "equal": lambda a, b: ~((a < b) | (a > b)) & ~(np.isnan(a) | np.isnan(b)),
    "not_equal": lambda a, b: (a < b) | (a > b) | np.isnan(a) | np.isnan(b),
    "less": lambda a, b: b - a > 0,
    "less_equal": lambda a, b: ~(a > b) & ~(np.isnan(a) | np.isnan(b)),
    "greater": lambda a, b: a - b > 0,
    "greater_equal": lambda a, b: ~(a < b) & ~(np.isnan(a) | np.isnan(b)),
}


def _on_floats(fn):
    """The float formula applied to int/bool operands."""
    return lambda a, b: fn(a * 1.0, b * 1.0)


for _name, _fn in _COMPARISONS.items():
    _RAW[_name] = [
        case("f32_ties_bcast", "f32[2,3] f32[3]", _fn, ties()),
        case("f64_scalar", "f64[] f64[2,2]", _fn, ties()),
        case("i64", "i64[2,3] i64[2,1]", _on_floats(_fn)),
        case("bool", "bool[4] bool[4]", _on_floats(_fn),
             values([True, True, False, False], [True, False, True, False])),
        case("nan", "f32[4] f32[4]", _fn, values([NAN, 1.0, NAN, 2.0], [1.0, NAN, NAN, 2.0])),
        bad("dtype_mix", "f32[3] i64[3]", "dtypes differ"),
        bad("bcast", "f32[2,3] f32[2]", "do not broadcast")]


# More families' rows live in their own modules, tests/op_cases_<family>.py, each with `RAW`
# (and, if it has ops with a data check, `BAD_DATA`); they import the helpers above.
_MORE = [importlib.import_module(f"tests.{path.stem}")
         for path in sorted(Path(__file__).parent.glob("op_cases_*.py"))]
for _module in _MORE:
    _clash = _RAW.keys() & _module.RAW.keys()
    assert not _clash, f"{_module.__name__} repeats the cases of {sorted(_clash)}"
    _RAW.update(_module.RAW)


def _expand(raw: dict[str, list]) -> tuple[dict[str, list[Case]], dict[str, list[Bad]]]:
    cases: dict[str, list[Case]] = {op: [] for op in raw}
    bads: dict[str, list[Bad]] = {op: [] for op in raw}
    for op, rows in raw.items():
        for row in rows:
            if row[0] == "case":
                _, name, spec, expected, gen, grad, attrs = row
                cases[op].append(Case(op, name, _types(spec), expected, gen, grad, attrs))
            else:
                _, name, spec, match, attrs = row
                bads[op].append(Bad(op, name, _types(spec), match, attrs))
    return cases, bads


CASES, BAD = _expand(_RAW)

# Ops with a `check_inputs` fact: (operand types, feeds the data check must reject, match).
BAD_DATA: dict[str, tuple[tuple[TensorType, ...], list[np.ndarray], str]] = {
    "softmax_cross_entropy": (_types("f32[2,3] i64[2]"),
                              [np.zeros((2, 3), np.float32), np.array([1, 3])],
                              r"label 3 at index 1 is outside \[0, 3\)"),
    **{op: rows for module in _MORE for op, rows in getattr(module, "BAD_DATA", {}).items()},
}

# Differentiable ops whose gradient deliberately differs from central differences.
NO_NUMERIC_GRAD = {"stop_gradient": "its gradient is zero by definition"}
