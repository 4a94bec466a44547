"""Compiled (runtime.compile_graph) against interpreted (gc.interpret), generated from the registry.

Input: small DSL graphs per op x dtype x broadcast shape, reductions, matmul, movement, sources,
training-style updates (in place and copied), bad feeds and NaN/Inf data. Output: pass/fail.
"""
from __future__ import annotations

import numpy as np
import pytest
from graphc.runtime import compile_graph

import graphc as gc
from graphc.ops.registry import all_ops, normalize_attrs

RNG = np.random.default_rng(0)
TOL = {"f32": {"rtol": 1e-5, "atol": 1e-6}, "f64": {"rtol": 1e-12, "atol": 1e-14},
       "i64": {"rtol": 0, "atol": 0}, "bool": {"rtol": 0, "atol": 0}}
ELEMENTWISE = sorted(n for n, op in all_ops().items() if op.kind == "elementwise")
SHAPES = {1: [[(3, 4)], [()], [(2, 3, 17)]],
          2: [[(3, 4), (3, 4)], [(3, 1), (1, 4)], [(), (2, 19)], [(4,), (2, 3, 4)]],
          3: [[(3, 4), (3, 4), (3, 4)], [(3, 1), (), (4,)]]}
REQUIRED_ATTRS = {"cast": [{"to": d} for d in ("f32", "f64", "i64", "bool")],
                  "broadcast_to": [{"shape": (2, 3, 4)}]}


def data(shape, dtype: str) -> np.ndarray:
    """Values on a coarse grid, so comparisons see ties and max/min see equal operands."""
    if dtype == "bool":
        return RNG.random(shape) < 0.5
    if dtype == "i64":
        return RNG.integers(-5, 6, shape).astype(np.int64)
    return (np.round(RNG.standard_normal(shape) * 4) / 2).astype(gc.TensorType((), dtype).np_dtype)


def check(graph, feeds, dtype_tol=None, **run_kw):
    """Compile `graph`, run it, compare every output with the interpreter."""
    exe = compile_graph(graph)
    got = exe.run(feeds)
    want = gc.interpret(graph, feeds)
    assert set(got) == set(want)
    for name, ref in want.items():
        tol = TOL[dtype_tol or graph.outputs[name].type.dtype]
        assert got[name].shape == ref.shape and got[name].dtype == ref.dtype, name
        np.testing.assert_allclose(got[name], ref, equal_nan=True, err_msg=name, **tol)
    return exe, got


def _try_apply(b, op, inputs, attrs):
    try:
        return b.apply(op, inputs, **attrs)
    except gc.ShapeError:
        return None


def _operand_dtypes(op: str, dtype: str, arity: int) -> list[str]:
    return ["bool"] + [dtype] * (arity - 1) if op == "where" else [dtype] * arity


def _accepts(op: str, dtype: str, shape_cases, attr_cases=({},)) -> bool:
    """Does the op's shape rule take `dtype` operands in at least one of the cases?"""
    opdef = all_ops()[op]
    for shapes in shape_cases:
        for attrs in attr_cases:
            dts = _operand_dtypes(op, dtype, len(shapes))
            try:
                opdef.infer([gc.TensorType(s, d) for s, d in zip(shapes, dts)],
                            normalize_attrs(opdef, attrs))
                return True
            except gc.ShapeError:
                pass
    return False


# only the op x dtype pairs the op's shape rule accepts (the others are shape-rule tests)
ELEMENTWISE_CASES = [(op, dtype) for dtype in ("f32", "f64", "i64", "bool") for op in ELEMENTWISE
                     if _accepts(op, dtype, SHAPES[all_ops()[op].arity],
                                 REQUIRED_ATTRS.get(op, [{}]))]


@pytest.mark.parametrize("op,dtype", ELEMENTWISE_CASES)
def test_elementwise(op, dtype):
    """Every elementwise op, each dtype it accepts, broadcasting and rank-0 operands."""
    arity = all_ops()[op].arity
    b = gc.GraphBuilder(f"{op}_{dtype}")
    feeds, outs = {}, {}
    for case, shapes in enumerate(SHAPES[arity]):
        for a, attrs in enumerate(REQUIRED_ATTRS.get(op, [{}])):
            names = [f"x{case}_{a}_{k}" for k in range(arity)]
            dts = _operand_dtypes(op, dtype, arity)
            ins = [b.input(n, s, d) for n, s, d in zip(names, shapes, dts)]
            feeds.update((n, data(s, d)) for n, s, d in zip(names, shapes, dts))
            out = _try_apply(b, op, ins, attrs)
            if out is not None:
                outs[f"y{case}_{a}"] = out
    assert outs, f"{op} accepts {dtype} by its shape rule but no case built"
    graph = b.build(outs)
    check(graph, feeds, dtype_tol=dtype if op != "cast" else "f32")


def test_scalar_constants_are_folded_into_kernels():
    b = gc.GraphBuilder("consts")
    x = b.input("x", (5, 33))
    g = b.build({"y": gc.relu(x * 2.0 - 0.5) / 3.0})
    exe, _ = check(g, {"x": data((5, 33), "f32")})
    assert exe.stats["kernels"] == 4


REDUCE_AXES = [(), (0,), (1,), (2,), (0, 2), (1, 2), (0, 1, 2)]


REDUCTION_CASES = [(op, dtype) for dtype in ("f32", "f64", "i64") for op in ("sum", "mean", "max")
                   if _accepts(op, dtype, [[(3, 4, 17)]], [{"axes": (0,)}])]


@pytest.mark.parametrize("op,dtype", REDUCTION_CASES)
def test_reductions(op, dtype):
    b = gc.GraphBuilder("reduce")
    x = b.input("x", (3, 4, 17), dtype)
    s = b.input("s", (), dtype)
    outs = {f"r{i}_{k}": b.apply(op, [x], axes=axes, keepdims=k)
            for i, axes in enumerate(REDUCE_AXES) for k in (False, True)}
    outs["scalar"] = b.apply(op, [s], axes=())
    check(b.build(outs), {"x": data((3, 4, 17), dtype), "s": data((), dtype)})


MATMULS = [((5, 7), (7, 3)), ((33, 17), (17, 65)), ((2, 5, 7), (7, 3)),
           ((2, 1, 5, 7), (3, 7, 4)), ((1, 4, 6), (3, 6, 2))]


@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_matmul(dtype):
    b = gc.GraphBuilder("mm")
    feeds, outs = {}, {}
    for k, (sa, sb) in enumerate(MATMULS):
        a, c = b.input(f"a{k}", sa, dtype), b.input(f"b{k}", sb, dtype)
        outs[f"c{k}"] = a @ c
        feeds[f"a{k}"], feeds[f"b{k}"] = data(sa, dtype), data(sb, dtype)
    check(b.build(outs), feeds)


def test_movement():
    b = gc.GraphBuilder("move")
    x = b.input("x", (2, 3, 4))
    b1 = b.input("b1", (2, 3, 4), "bool")
    outs = {f"t{i}": gc.transpose(x, p) for i, p in
            enumerate([(0, 1, 2), (2, 1, 0), (1, 0, 2), (0, 2, 1), (2, 0, 1)])}
    outs["r1"] = gc.reshape(x, (6, 4))
    outs["r2"] = gc.reshape(gc.transpose(x, (2, 0, 1)), (4, 6))
    outs["r3"] = gc.reshape(x, (24,))
    outs["tb"] = gc.transpose(b1, (2, 1, 0))
    check(b.build(outs), {"x": data((2, 3, 4), "f32"), "b1": data((2, 3, 4), "bool")},
          dtype_tol="f32")


def test_sources_inputs_and_aliases_as_outputs():
    b = gc.GraphBuilder("src")
    x = b.input("x", (3, 4))
    w = b.param("w", data((3, 4), "f32"))
    idx = b.apply("iota", [], shape=(3, 4), axis=1, dtype="i64")
    c = gc.constant(b, np.arange(12, dtype=np.float32).reshape(3, 4))
    y = x * c + w
    g = b.build({"iota": idx, "c": c, "x": x, "w": w, "y": y, "y_again": y,
                 "f": gc.cast(idx, "f32") + x})
    exe, got = check(g, {"x": data((3, 4), "f32")}, dtype_tol="f32")
    got["c"][...] = -1  # outputs are fresh arrays: the next run is unaffected
    np.testing.assert_array_equal(exe.run({"x": data((3, 4), "f32")})["c"],
                                  np.arange(12).reshape(3, 4))


def _sgd_graph(updated_is_output: bool = False, late_reader: bool = False):
    """w <- w - 0.1 * d/dw mean((x @ w - t)^2), written out by hand."""
    b = gc.GraphBuilder("sgd")
    x, t = b.input("x", (8, 3)), b.input("t", (8, 2))
    w = b.param("w", data((3, 2), "f32"))
    step = b.state("step", np.zeros(1, np.float32))
    err = x @ w - t
    grad = gc.transpose(x) @ err * (2.0 / 16)
    new_w = w - grad * 0.1
    outs = {"loss": gc.mean(err * err)}
    if updated_is_output:
        outs["new_w"] = new_w
    if late_reader:
        outs["late"] = gc.sum(w * new_w)  # reads w after the update value is computed
    return b.build(outs, updates={"w": new_w, "step": step + 1.0})


@pytest.mark.parametrize("variant,inplace", [({}, 2), ({"updated_is_output": True}, 1),
                                             ({"late_reader": True}, 1)])
def test_updates(variant, inplace):
    """Updates land in exe.params in place (or by an end-of-step copy) and match the oracle."""
    g = _sgd_graph(**variant)
    exe = compile_graph(g)
    assert exe.stats["inplace_updates"] == inplace
    assert len(exe.plan.end_copies) == len(g.updates) - inplace  # the rest are end copies
    w_buffer = exe.params["w"]
    params = {k: np.array(v) for k, v in g.initializers.items()}
    for _ in range(3):
        feeds = {"x": data((8, 3), "f32"), "t": data((8, 2), "f32")}
        got = exe.run(feeds)
        want = gc.interpret(g.replace(initializers=params), feeds, updates=True)
        for name in g.outputs:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)
        params = {k: want[f"update:{k}"] for k in g.updates}
        for k in g.updates:
            np.testing.assert_allclose(exe.params[k], params[k], rtol=1e-5, atol=1e-6)
    assert exe.params["w"] is w_buffer and float(exe.params["step"][0]) == 3.0


def test_update_swap_and_old_value_output():
    """Updates that read other updated params see the old values; outputs too."""
    b = gc.GraphBuilder("swap")
    a = b.state("a", np.array([1.0, 2.0], np.float32))
    c = b.state("c", np.array([3.0, 4.0], np.float32))
    g = b.build({"a_old": a, "sum": a + c}, updates={"a": c, "c": a})
    exe = compile_graph(g)
    out = exe.run({})
    np.testing.assert_array_equal(out["a_old"], [1, 2])
    np.testing.assert_array_equal(exe.params["a"], [3, 4])
    np.testing.assert_array_equal(exe.params["c"], [1, 2])
    exe.run({})
    np.testing.assert_array_equal(exe.params["a"], [1, 2])


def test_fed_params_override_persistent_buffers():
    g = _sgd_graph()
    exe = compile_graph(g)
    w0 = np.array(exe.params["w"])
    feeds = {"x": data((8, 3), "f32"), "t": data((8, 2), "f32")}
    fed_w = data((3, 2), "f32")
    got = exe.run({**feeds, "w": fed_w, "step": np.full(1, 5, np.float32)})
    want = gc.interpret(g, {**feeds, "w": fed_w, "step": np.full(1, 5, np.float32)}, updates=True)
    np.testing.assert_allclose(got["loss"], want["loss"], rtol=1e-5)
    np.testing.assert_allclose(exe.params["w"], want["update:w"], rtol=1e-5, atol=1e-6)
    assert float(exe.params["step"][0]) == 6.0
    assert not np.array_equal(w0, exe.params["w"])


def test_param_without_initializer_must_be_fed():
    b = gc.GraphBuilder("noinit")
    x = b.input("x", (2,))
    w = b.param("w", np.ones(2, np.float32))
    g = b.build({"y": x * w})
    exe = compile_graph(g.replace(initializers={}))
    with pytest.raises(gc.FeedError, match="'w'.*f32\\[2\\]"):
        exe.run({"x": np.ones(2, np.float32)})
    y = exe.run({"x": np.ones(2, np.float32), "w": np.full(2, 3, np.float32)})["y"]
    np.testing.assert_array_equal(y, [3, 3])
    updated = b.build({"y": x * w}, updates={"w": w * 2.0}).replace(initializers={})
    with pytest.raises(gc.CompileError, match="'w'.*no initializer"):
        compile_graph(updated)


@pytest.fixture(scope="module")
def small_exe():
    b = gc.GraphBuilder("small")
    x = b.input("x", (4, 5))
    return compile_graph(b.build({"y": gc.exp(x)}))


@pytest.mark.parametrize("feeds,pattern", [
    ({"z": np.ones((4, 5), np.float32)}, r"unknown feed.*'z'.*\['x'\]"),
    ({}, r"missing feed.*'x'.*f32\[4,5\]"),
    ({"x": np.ones((5, 4), np.float32)}, r"'x'.*expected f32\[4,5\]"),
    ({"x": np.ones((4, 5), np.float64)}, r"'x'.*expected f32\[4,5\]"),
])
def test_feed_errors(small_exe, feeds, pattern):
    with pytest.raises(gc.FeedError, match=pattern):
        small_exe.run(feeds)


def test_non_contiguous_feed(small_exe):
    x = data((5, 4), "f32").T
    np.testing.assert_allclose(small_exe.run({"x": x})["y"], np.exp(x), rtol=1e-6)


def test_nan_and_inf_do_not_crash():
    b = gc.GraphBuilder("nan")
    x = b.input("x", (2, 4))
    outs = {"max": gc.max(x, axis=1), "sum": gc.sum(x, axis=0), "relu": gc.relu(x),
            "maximum": gc.maximum(x, 0.0), "minimum": gc.minimum(0.0, x),
            "log": gc.log(x), "ne": gc.not_equal(x, x), "lt": gc.less(x, 1.0),
            "bool": gc.cast(x, "bool"), "tanh": gc.tanh(x)}
    feeds = {"x": np.array([[np.nan, 1, -np.inf, np.inf], [0, -0.0, np.nan, 2]], np.float32)}
    check(b.build(outs), feeds, dtype_tol="f32")
    # NaN -> i64 is unspecified in C; it must only not crash
    compile_graph(b.build({"i": gc.cast(x, "i64")})).run(feeds)


def test_composite_ops_are_rejected_with_location():
    b = gc.GraphBuilder("comp")
    x = b.input("x", (2, 3))
    g = b.build({"y": gc.softmax(x), "z": gc.log_softmax(x)})
    with pytest.raises(gc.CompileError, match=r"(?s)softmax.*test_runtime.py:\d+.*log_softmax"):
        compile_graph(g)


def test_stats_ir_and_asm():
    g = _sgd_graph()
    exe = compile_graph(g)
    for key in ("kernels", "naive_bytes", "planned_bytes", "lower_bound_bytes",
                "lower_seconds", "optimize_seconds", "jit_seconds"):
        assert key in exe.stats
    assert 0 < exe.stats["lower_bound_bytes"] <= exe.stats["planned_bytes"]
    assert exe.stats["kernels"] == sum(1 for n in g.nodes if n.op not in ("constant", "iota"))
    assert "define void @graphc_main" in exe.llvm_ir
    assert "graphc_main" in exe.asm


def test_avx512_when_host_has_it():
    import llvmlite.binding as llvm
    from graphc.runtime.target import host_target_machine  # noqa: F401

    if "+avx512f" not in llvm.get_host_cpu_features().flatten():
        pytest.skip("host has no AVX-512")
    b = gc.GraphBuilder("vec")
    x, y = b.input("x", (256,)), b.input("y", (256,))
    assert "zmm" in compile_graph(b.build({"z": x * y + 1.0})).asm


def test_no_vector_scatters_on_x86():
    """Strided stores (a 2x2 pool's tie mask, in window order) are not vectorised into
    AVX-512 scatters, which are microcoded on AMD cores (runtime/target.py's tuning)."""
    import llvmlite.binding as llvm

    if "+avx512f" not in llvm.get_host_cpu_features().flatten():
        pytest.skip("vector scatters are AVX-512 instructions")
    shape, tiled = (4, 6, 24, 24), (4, 6, 12, 2, 12, 2)
    b = gc.GraphBuilder("pool")
    windows = gc.transpose(gc.reshape(b.input("x", shape), tiled), (0, 1, 2, 4, 3, 5))
    top = gc.max(windows, axis=(4, 5))
    ties = gc.cast(gc.equal(windows, gc.reshape(top, tiled[:3] + (12, 1, 1))), "f32")
    exe = gc.compile(b.build({"top": top, "ties": ties,
                              "count": gc.sum(ties, axis=(4, 5), keepdims=True)}))
    assert exe.stats["kernels"] == 1
    assert "llvm.masked.scatter" not in exe.llvm_ir
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    w = x.reshape(tiled).transpose(0, 1, 2, 4, 3, 5)
    want = (w == w.max(axis=(4, 5), keepdims=True)).astype(np.float32)
    np.testing.assert_array_equal(exe.run({"x": x})["ties"], want)


def test_a_loop_kernel_of_reshaped_outputs_loops_over_the_source_axes():
    """im2col's pattern: a kernel whose output is a reshape of a transposed view loops over
    the view's axes (no division of a flattened index) and stores at the same flat offsets."""
    from graphc.runtime.emit.index_eval import IndexEval
    from graphc.runtime.kernels.loop import _reshaped_from

    from graphc.pipeline import passes_for, run_pipeline

    b = gc.GraphBuilder("r")
    x = b.input("x", (6, 4, 5))
    graph = b.build({"y": gc.reshape(gc.transpose(x * 2.0, (2, 0, 1)), (5, 24))})
    (kernel,) = [n for n in run_pipeline(graph, passes_for()).nodes if n.op == "fused"]
    body = kernel.attrs["body"]
    ev = IndexEval.__new__(IndexEval)  # only the producer map is consulted
    ev.producer = {v: n for n in body.nodes for v in n.outputs}
    assert [u.type.shape for u in _reshaped_from(ev, list(body.outputs.values()))] == [(5, 6, 4)]
    xv = np.arange(120, dtype=np.float32).reshape(6, 4, 5)
    np.testing.assert_array_equal(gc.compile(graph).run({"x": xv})["y"],
                                  (xv * 2).transpose(2, 0, 1).reshape(5, 24))


def test_a_loop_kernel_whose_outputs_differ_in_shape_is_a_compile_error():
    """Loop kernels evaluate every output over one loop nest: outputs of two shapes (which the
    fuser never makes) are refused instead of stored at the wrong offsets."""
    from graphc.errors import CompileError
    from graphc.ir import Graph, GraphInput, Node

    b = gc.GraphBuilder("two")
    x = b.input("x", (2, 3))
    inner = b.build({"t": gc.transpose(x), "y": x * 2.0})
    body = Graph("fused", inner.inputs, inner.nodes, dict(inner.outputs))
    outs = tuple(body.outputs.values())
    node = Node("fused", (inner.inputs[0].value,), outs, {"body": body, "kind": "loop"}, None)
    graph = Graph("g", (GraphInput(inner.inputs[0].value, "input"),), (node,),
                  {"t": outs[0], "y": outs[1]})
    with pytest.raises(CompileError, match="different shapes"):
        compile_graph(graph)


def test_fast_feeds_follow_the_array_fed_each_call():
    """The fast path remembers the last array's data pointer per feed: a different array, a
    new array at a recycled id, and new contents of the same array are all seen."""
    b = gc.GraphBuilder("f")
    x = b.input("x", (3, 4))
    exe = gc.compile(b.build({"y": gc.sum(x * 2.0, axis=1)}))
    first = np.ones((3, 4), np.float32)
    np.testing.assert_array_equal(exe.run({"x": first})["y"], [8, 8, 8])
    np.testing.assert_array_equal(exe.run({"x": np.full((3, 4), 2, np.float32)})["y"], [16] * 3)
    first[1] = 3.0
    np.testing.assert_array_equal(exe.run({"x": first})["y"], [8, 24, 8])
    for k in range(5):  # fresh arrays, ids likely reused
        np.testing.assert_array_equal(exe.run({"x": np.full((3, 4), k, np.float32)})["y"],
                                      [8 * k] * 3)
