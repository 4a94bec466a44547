"""Per-op tests generated from the registry (graphc.ops.all_ops()) and tests/op_cases.py.

For every op: the record is complete and has cases; per case the shape rule agrees with the
reference, the reference agrees with an independent NumPy formula, the scalar body / reducer /
view / decomposition agree with the reference, the bprop agrees with central differences in
float64 (and can itself be differentiated), and compiled code agrees with the interpreter,
forward and backward. Per bad case the shape rule raises ShapeError at the user's line.
"""
from __future__ import annotations

import inspect
import re
import zlib

import numpy as np
import pytest
from graphc.passes.decompose import decompose

import graphc as gc
from graphc.ops.registry import KINDS, NOT_DIFFERENTIABLE, all_ops, get_op, normalize_attrs
from graphc.ops.scalar import NumpyEmitter
from graphc.types import FLOAT_DTYPES, HALF_DTYPES, TensorType, dtype_name
from tests.op_cases import BAD, BAD_DATA, CASES, NO_NUMERIC_GRAD, Case

OPS = sorted(all_ops())
ALL_CASES = [c for op in sorted(CASES) for c in CASES[op]]
ALL_BAD = [b for op in sorted(BAD) for b in BAD[op]]


HALF_RTOL = {"f16": 2e-3, "bf16": 1.6e-2}


def cases_where(pred) -> list:
    return [pytest.param(c, id=c.id) for c in ALL_CASES if c.op in all_ops() and pred(c)]


def attrs_of(case: Case) -> dict:
    """The case's attributes with the op's defaults filled in, as nodes carry them."""
    return normalize_attrs(get_op(case.op), case.attrs)


def out_type(case: Case) -> TensorType:
    return get_op(case.op).infer(list(case.types), attrs_of(case))[0]


def is_grad_case(case: Case) -> bool:
    """A differentiable op with a float operand and a float result."""
    return (get_op(case.op).differentiable and out_type(case).is_float
            and any(t.is_float for t in case.types))


def is_numeric_grad_case(case: Case) -> bool:
    """A gradient case central differences can check: they run in f64, which check_grads
    reaches from f32 (f16/bf16 graphs are checked against the interpreter instead)."""
    return case.grad and is_grad_case(case) and \
        not any(t.dtype in HALF_DTYPES for t in (*case.types, out_type(case)))


def feeds_for(case: Case) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(zlib.crc32(case.id.encode()))
    return {f"x{i}": a for i, a in enumerate(case.gen(rng, case.types))}


def weights_for(case: Case) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(case.id.encode()) + 1)
    return rng.uniform(0.5, 1.5, out_type(case).shape)


def op_graph(case: Case, weighted: bool = False) -> gc.Graph:
    """out = op(x0, x1, ...), or with `weighted` the scalar sum(op(...) * fixed weights)."""
    b = gc.GraphBuilder(case.op)
    xs = [b.input(f"x{i}", t.shape, t.dtype) for i, t in enumerate(case.types)]
    y = b.apply(case.op, xs, **case.attrs)
    if weighted:
        y = gc.sum(y * gc.constant(b, weights_for(case), y.dtype))
    return b.build({"out": y})


def float_operands(case: Case) -> list[str]:
    return [f"x{i}" for i, t in enumerate(case.types) if t.is_float]


def reference(case: Case) -> np.ndarray:
    """The op's reference on the case's feeds (the single result of a one-output op)."""
    result = get_op(case.op).reference(*feeds_for(case).values(), **attrs_of(case))
    if isinstance(result, tuple):
        assert len(result) == 1, "multi-output ops need their own test"
        (result,) = result
    return np.asarray(result)


def assert_close(got, want, dtype, rtol=None, what=""):
    """Exact for integers and bools; for floats rtol (with an absolute floor of rtol times the
    largest magnitude, for values that cancel to ~0); NaN matches NaN, inf matches inf."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    name = dtype_name(dtype)
    if name not in FLOAT_DTYPES:
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    # f16/bf16: one unit in the last place (kernels compute them in f32 and round)
    rtol = max(rtol or 0.0, HALF_RTOL[name]) if name in HALF_RTOL else \
        rtol if rtol is not None else (1e-5 if name == "f32" else 1e-12)
    finite = np.abs(want[np.isfinite(want)])
    atol = rtol * (finite.max() if finite.size else 0.0)
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol,
                               atol=atol, err_msg=what)


# --- 1. completeness -----------------------------------------------------------------------
@pytest.mark.parametrize("name", OPS)
def test_registry_record_is_complete(name):
    op = get_op(name)
    assert op.name == name and op.doc.strip(), "every op needs a one-line doc"
    assert op.kind in KINDS and callable(op.infer) and callable(op.reference)
    assert op.bprop is NOT_DIFFERENTIABLE or callable(op.bprop), \
        "bprop must be a rule or NOT_DIFFERENTIABLE (None means 'forgotten')"
    needs = {"elementwise": "scalar", "reduction": "reducer", "movement": "view",
             "composite": "decompose"}.get(op.kind)
    if needs == "view":  # a movement op is a strided view or an index map
        assert op.view is not None or op.index_map is not None, "movement op needs a view or " \
            "an index_map"
    elif needs:
        assert getattr(op, needs) is not None, f"{op.kind} op needs `{needs}`"
    assert CASES.get(name), f"add cases for {name!r} to tests/op_cases.py"
    assert BAD.get(name), f"add at least one shape-rule error case for {name!r}"
    if op.check_inputs is not None:
        assert name in BAD_DATA, f"add a BAD_DATA entry for {name!r}'s check_inputs"
    if op.differentiable and name not in NO_NUMERIC_GRAD:
        assert any(c.grad and is_grad_case(c) for c in CASES[name]), \
            f"{name!r} needs a float case checked against central differences"


def test_case_table_names_only_registered_ops():
    unknown = (set(CASES) | set(BAD) | set(BAD_DATA) | set(NO_NUMERIC_GRAD)) - set(OPS)
    assert not unknown, f"tests/op_cases.py names unregistered ops {sorted(unknown)}"


# --- 2a-c. shape rule, its errors, reference ------------------------------------------------
@pytest.mark.parametrize("case", cases_where(lambda c: True))
def test_shape_rule_matches_reference(case):
    ref = reference(case)
    assert out_type(case) == TensorType(ref.shape, dtype_name(ref.dtype))


@pytest.mark.parametrize("bad", [pytest.param(b, id=b.id) for b in ALL_BAD])
def test_shape_rule_rejects(bad):
    b = gc.GraphBuilder()
    xs = [b.input(f"x{i}", t.shape, t.dtype) for i, t in enumerate(bad.types)]
    line = inspect.currentframe().f_lineno + 2
    with pytest.raises(gc.ShapeError) as info:
        b.apply(bad.op, xs, **bad.attrs)
    message = str(info.value)
    assert f"test_ops.py:{line}:" in message, f"no user file:line in {message!r}"
    assert re.search(bad.match, message), message
    assert f"{bad.op}(" in message, f"the node is not shown in {message!r}"


@pytest.mark.parametrize("case", cases_where(lambda c: True))
def test_reference_matches_numpy(case):
    with np.errstate(all="ignore"):  # the special cases overflow and divide by zero on purpose
        want = case.expected(*feeds_for(case).values())
    assert_close(reference(case), want, out_type(case).np_dtype, what=case.id)


@pytest.mark.parametrize("op_name", sorted(BAD_DATA))
def test_check_inputs_rejects_bad_data(op_name):
    types, arrays, match = BAD_DATA[op_name]
    b = gc.GraphBuilder()
    xs = [b.input(f"x{i}", t.shape, t.dtype) for i, t in enumerate(types)]
    graph = b.build({"out": b.apply(op_name, xs)})
    feeds = {f"x{i}": a for i, a in enumerate(arrays)}
    with pytest.raises(gc.GraphcError, match=match):
        gc.interpret(graph, feeds)
    with pytest.raises(gc.GraphcError, match=match):
        gc.compile(graph).run(feeds)


# --- 2d. the facts the kernel emitter uses -------------------------------------------------
@pytest.mark.parametrize("case", cases_where(lambda c: get_op(c.op).kind == "elementwise"))
def test_scalar_body_matches_reference(case):
    """The body sees operands broadcast to the output shape, as a kernel loads them."""
    shape = out_type(case).shape
    args = [np.broadcast_to(a, shape) for a in feeds_for(case).values()]
    got = NumpyEmitter().run(get_op(case.op).scalar, *args, **attrs_of(case))
    want = reference(case)
    assert got.dtype == want.dtype
    assert_close(np.broadcast_to(got, shape), want, want.dtype, rtol=1e-6, what=case.id)


def _reduce_with_facts(op, x: np.ndarray, axes, keepdims) -> np.ndarray:
    """A generic reduction driven only by `reducer` and `finalize`, like the kernel emitter."""
    e, (combine, identity) = NumpyEmitter(), op.reducer
    moved = np.moveaxis(x, axes, list(range(x.ndim - len(axes), x.ndim)))
    flat = moved.reshape(moved.shape[:x.ndim - len(axes)] + (-1,))
    acc = np.full(flat.shape[:-1], e.const(identity, x))
    for k in range(flat.shape[-1]):
        acc = e.run(lambda e, a, b: getattr(e, combine)(a, b), acc, flat[..., k])
    if op.finalize is not None:
        acc = e.run(op.finalize, acc, count=flat.shape[-1])
    keep = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    return acc.reshape(keep) if keepdims else acc


@pytest.mark.parametrize("case", cases_where(lambda c: get_op(c.op).kind == "reduction"))
def test_reducer_matches_reference(case):
    (x,) = feeds_for(case).values()
    attrs = attrs_of(case)
    got = _reduce_with_facts(get_op(case.op), x, attrs["axes"], attrs["keepdims"])
    assert_close(got, reference(case), x.dtype, rtol=1e-6, what=case.id)


@pytest.mark.parametrize("case", cases_where(lambda c: get_op(c.op).view is not None))
def test_view_matches_reference(case):
    """A strided read of the input with the op's `view` strides is the op."""
    (x,) = feeds_for(case).values()
    op, y = get_op(case.op), out_type(case)
    strides = op.view(case.types[0], y, **attrs_of(case))
    got = np.lib.stride_tricks.as_strided(np.ascontiguousarray(x), y.shape,
                                          [s * x.itemsize for s in strides])
    np.testing.assert_array_equal(got, reference(case))


@pytest.mark.parametrize("case", cases_where(lambda c: get_op(c.op).index_map is not None))
def test_index_map_matches_reference(case):
    """The op's `index_map` evaluated at every output index at once (NumPy index arrays), with
    every read checked to be in bounds, is the op."""
    arrays, y = list(feeds_for(case).values()), out_type(case)
    reads = []

    def at(k, index):
        index = tuple(np.asarray(i) for i in index)
        assert len(index) == arrays[k].ndim, f"{case.id}: read of operand {k} at rank {len(index)}"
        for i, n in zip(index, arrays[k].shape):
            assert np.all((i >= 0) & (i < n)), f"{case.id}: read of operand {k} out of bounds"
        reads.append(k)
        return arrays[k][index]

    idx = tuple(np.indices(y.shape)) if y.shape else ()
    with np.errstate(all="ignore"):
        got = get_op(case.op).index_map(at, NumpyEmitter(), idx, list(case.types), y,
                                        **attrs_of(case))
    got = np.broadcast_to(np.asarray(got), y.shape)
    assert got.dtype == y.np_dtype and reads, case.id
    assert_close(got, reference(case), y.np_dtype, rtol=1e-6, what=case.id)


@pytest.mark.parametrize("case", cases_where(lambda c: get_op(c.op).kind == "composite"))
def test_decomposition_matches_composite(case):
    """Forward and gradient of the decomposed graph equal the composite's reference and bprop."""
    feeds, dtype = feeds_for(case), out_type(case).np_dtype
    graph = op_graph(case, weighted=True)
    assert_close(gc.interpret(decompose(graph), feeds)["out"],
                 gc.interpret(graph, feeds)["out"], dtype, what=case.id)
    if not is_grad_case(case):
        return
    wrt = float_operands(case)
    want = gc.interpret(gc.grad(graph, "out", wrt), feeds)
    got = gc.interpret(gc.grad(decompose(graph), "out", wrt), feeds)
    for name in wrt:
        assert_close(got[name], want[name], dtype, what=f"{case.id} d/d{name}")


# --- 2e. gradients -------------------------------------------------------------------------
@pytest.mark.parametrize("case", cases_where(is_numeric_grad_case))
def test_bprop_matches_central_differences(case):
    gc.check_grads(op_graph(case, weighted=True), "out", float_operands(case), feeds_for(case),
                   tol=1e-6)


@pytest.mark.parametrize("case", cases_where(is_numeric_grad_case))
def test_bprop_is_differentiable_again(case):
    """Bprops are written with graph ops, so sum(grad * v) has a gradient too."""
    wrt = float_operands(case)
    first = gc.grad(op_graph(case, weighted=True), "out", wrt)
    b, t = gc.GraphBuilder.extend(first)
    rng = np.random.default_rng(7)
    terms = [gc.sum(t[first.outputs[w].name] *
                    gc.constant(b, rng.uniform(0.5, 1.5, first.outputs[w].type.shape),
                                first.outputs[w].type.dtype)) for w in wrt]
    second = b.build({"h": sum(terms[1:], terms[0])})
    gc.check_grads(second, "h", wrt, feeds_for(case), tol=1e-5)


# --- 2f. compiled vs interpreted -----------------------------------------------------------
@pytest.mark.parametrize("case", cases_where(lambda c: True))
def test_compiled_matches_interpreter(case):
    graph, feeds = op_graph(case), feeds_for(case)
    got, want = gc.compile(graph).run(feeds)["out"], gc.interpret(graph, feeds)["out"]
    assert got.dtype == want.dtype
    assert_close(got, want, want.dtype, what=case.id)


@pytest.mark.parametrize("case", cases_where(is_grad_case))
def test_compiled_gradient_matches_interpreter(case):
    graph = gc.grad(op_graph(case, weighted=True), "out", float_operands(case))
    feeds = feeds_for(case)
    got, want = gc.compile(graph).run(feeds), gc.interpret(graph, feeds)
    for name, value in want.items():
        assert got[name].dtype == value.dtype
        assert_close(got[name], value, value.dtype, what=f"{case.id} d/d{name}")


def test_numpy_emitter_can_run_more_than_once():
    e = NumpyEmitter()
    for _ in range(2):
        assert e.run(lambda e, a: e.exp(a), 0.0) == 1.0


# --- the DSL surface: operators, Python scalars, and errors at the user's line --------------
def test_operators_take_python_scalars_and_arrays_on_either_side():
    b = gc.GraphBuilder()
    x = b.input("x", (2, 3), "f32")
    m = np.arange(8, dtype=np.float32).reshape(4, 2)
    outs = {"radd": 1 + x, "rsub": 1 - x, "rmul": 2 * x, "rdiv": 1 / x, "div": x / 4,
            "pow": x ** 2, "rpow": 2 ** x, "neg": -x, "gt": x > 0.5, "le": x <= 1,
            "array": x + np.arange(3.0), "rmatmul": m @ x, "matmul_T": x @ x.T}
    xv = np.array([[0.5, 1.0, 1.5], [2.0, -1.0, 0.25]], np.float32)
    want = {"radd": 1 + xv, "rsub": 1 - xv, "rmul": 2 * xv, "rdiv": 1 / xv, "div": xv / 4,
            "pow": xv ** 2, "rpow": 2 ** xv, "neg": -xv, "gt": xv > 0.5, "le": xv <= 1,
            "array": xv + np.arange(3, dtype=np.float32), "rmatmul": m @ xv,
            "matmul_T": xv @ xv.T}
    got = gc.interpret(b.build(outs), {"x": xv})
    for name, value in want.items():
        assert got[name].dtype == value.dtype, name
        assert_close(got[name], value, value.dtype, what=name)


def test_float_scalar_with_int_tensor_is_not_truncated():
    """Either an error (graphc does not promote) or NumPy's value; never n + 1."""
    b = gc.GraphBuilder()
    n = b.input("n", (3,), "i64")
    try:
        y = n + 1.5
    except gc.ShapeError:
        return
    got = gc.interpret(b.build({"y": y}), {"n": np.arange(3)})["y"]
    np.testing.assert_allclose(got, np.arange(3) + 1.5)


# Each builds one bad node from x: f32[2,3], v: f32[4], n: i64[2,3]; one per line.
DSL_ERRORS = {
    "operator_broadcast": lambda x, v, n: x + v,
    "operator_matmul": lambda x, v, n: x @ x,
    "operator_dtypes": lambda x, v, n: x * n,
    "sum_axis": lambda x, v, n: gc.sum(x, axis=2),
    "mean_negative_axis": lambda x, v, n: gc.mean(x, axis=-3),
    "softmax_axis": lambda x, v, n: gc.softmax(x, axis=2),
    "log_softmax_axis": lambda x, v, n: gc.log_softmax(x, axis=-3),
    "transpose_perm": lambda x, v, n: gc.transpose(x, (1, 2)),
    "reshape_minus_one": lambda x, v, n: gc.reshape(x, (-1, 4)),
    "cast_dtype": lambda x, v, n: gc.cast(x, "float8"),
    "where_condition": lambda x, v, n: gc.where(x, x, x),
    "broadcast_to": lambda x, v, n: gc.broadcast_to(x, (3,)),
    "cross_entropy_labels": lambda x, v, n: gc.softmax_cross_entropy(x, n),
}


@pytest.mark.parametrize("name", sorted(DSL_ERRORS))
def test_dsl_errors_are_shape_errors_at_the_users_line(name):
    b = gc.GraphBuilder()
    x, v, n = b.input("x", (2, 3)), b.input("v", (4,)), b.input("n", (2, 3), "i64")
    fn = DSL_ERRORS[name]
    with pytest.raises(gc.ShapeError) as info:
        fn(x, v, n)
    assert f"test_ops.py:{fn.__code__.co_firstlineno}:" in str(info.value), str(info.value)
