"""Fusion: golden tests on the text IR (which ops share a kernel), fused == unfused results,
kernel counts of the MLP training step, bit-identical duplicated producers, and fused vs
unfused compiled results on every model in models/.
"""
from __future__ import annotations

import numpy as np
import pytest
from graphc.models import MODELS
from graphc.models.mlp import BENCH_SIZES, build_mlp
from graphc.passes.decompose import decompose
from graphc.passes.fusion import fuse, kernel_count
from graphc.runtime import compile_graph

import graphc as gc
from graphc.compile import Executable
from graphc.ir import Graph
from graphc.pipeline import passes_for, run_pipeline
from tests.golden import check_lines

RNG = np.random.default_rng(0)


def feeds_for(graph: Graph) -> dict[str, np.ndarray]:
    """Random feeds for every input (labels in range for i64 inputs of a classifier)."""
    out = {}
    for i in graph.inputs_with_role("input"):
        t = i.value.type
        if t.dtype == "i64":
            classes = graph.outputs["logits"].type.shape[-1] if "logits" in graph.outputs else 2
            out[i.name] = RNG.integers(0, classes, t.shape)
        else:
            out[i.name] = RNG.standard_normal(t.shape).astype(t.np_dtype)
    return out


def assert_interprets_alike(unfused: Graph, fused: Graph) -> None:
    """The fused graph runs the same NumPy references on the same arrays: equal to the bit."""
    feeds = feeds_for(unfused)
    params = {k: np.array(v) for k, v in unfused.initializers.items()}
    want = gc.interpret(unfused.replace(initializers=params), feeds, updates=True)
    got = gc.interpret(fused.replace(initializers=params), feeds, updates=True)
    assert set(got) == set(want)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def kernels(graph: Graph) -> list:
    return [n for n in graph.nodes if n.op == "fused"]


# --- golden tests --------------------------------------------------------------------------------
def test_matmul_bias_relu_is_one_matmul_kernel():
    g = gc.parse("""
graph dense
  input %x: f32[8,16]
  input %w: f32[16,32]
  input %b: f32[32]
  %mm: f32[8,32] = matmul(%x, %w)
  %h: f32[8,32] = add(%mm, %b)
  %r: f32[8,32] = relu(%h)
  output y = %r
""")
    out = fuse(g)
    check_lines(out.to_text(), """
        %r: f32[8,32] = fused[matmul, add, relu](%x, %w, %b) {kind='matmul'}
        output y = %r
    """)
    assert len(kernels(out)) == 1
    assert_interprets_alike(g, out)


def test_softmax_is_one_reduce_kernel():
    g = gc.parse("""
graph sm
  input %x: f32[4,10]
  %y: f32[4,10] = softmax(%x) {axis=1}
  output y = %y
""")
    out = fuse(decompose(g))
    check_lines(out.to_text(), """
        fused[max, sub, exp, sum, div](%x) {kind='reduce'}
            max(%x) {axes=(1,), keepdims=True}
            sum(%
    """)
    assert len(kernels(out)) == 1
    assert_interprets_alike(decompose(g), out)


def test_bias_gradient_sum_and_sgd_update_are_one_reduce_kernel():
    g = gc.parse("""
graph bias_step
  input %g: f32[8,32]
  param %b: f32[32]
  %s: f32[32] = sum(%g) {axes=(0,), keepdims=False}
  %lr: f32[] = constant() {dtype='f32', shape=(), value=(0.1,)}
  %st: f32[32] = mul(%s, %lr)
  %nb: f32[32] = sub(%b, %st)
  output s = %s
  update %b = %nb
""")
    out = fuse(g)
    check_lines(out.to_text(), """
        %s: f32[32], %nb: f32[32] = fused[constant, sum, mul, sub](%g, %b) {kind='reduce'}
        update %b = %nb
    """)
    assert len(kernels(out)) == 1
    assert_interprets_alike(g.replace(initializers={"b": RNG.standard_normal(32, np.float32)}),
                            out.replace(initializers={}))


def test_transpose_folds_into_matmul():
    g = gc.parse("""
graph dw
  input %a: f32[8,16]
  input %d: f32[8,32]
  %t: f32[16,8] = transpose(%a) {perm=(1, 0)}
  %m: f32[16,32] = matmul(%t, %d)
  output dw = %m
""")
    out = fuse(g)
    check_lines(out.to_text(), """
        %m: f32[16,32] = fused[transpose, matmul](%a, %d) {kind='matmul'}
        NOT: = fused[transpose](
    """)
    assert len(kernels(out)) == 1
    assert_interprets_alike(g, out)


def test_relu_mask_times_upstream_gradient_is_one_loop_kernel():
    g = gc.parse("""
graph relu_bwd
  input %z: f32[8,16]
  input %g: f32[8,16]
  %zero: f32[] = constant() {dtype='f32', shape=(), value=(0.0,)}
  %h: f32[8,16] = relu(%z)
  %m: bool[8,16] = greater(%h, %zero)
  %d: f32[8,16] = where(%m, %g, %zero)
  output h = %h
  output dz = %d
""")
    out = fuse(g)
    check_lines(out.to_text(), """
        %h: f32[8,16], %d: f32[8,16] = fused[constant, relu, greater, where](%z, %g) {kind='loop'}
    """)
    assert len(kernels(out)) == 1
    assert_interprets_alike(g, out)


def test_relu_mask_joins_the_backward_matmul():
    """dX = (dY @ W^T) * relu'(h): the mask is applied in the matmul's output loop."""
    g = gc.parse("""
graph dx
  input %dy: f32[8,10]
  input %w: f32[16,10]
  input %h: f32[8,16]
  %zero: f32[] = constant() {dtype='f32', shape=(), value=(0.0,)}
  %wt: f32[10,16] = transpose(%w) {perm=(1, 0)}
  %mm: f32[8,16] = matmul(%dy, %wt)
  %m: bool[8,16] = greater(%h, %zero)
  %d: f32[8,16] = where(%m, %mm, %zero)
  output dx = %d
""")
    out = fuse(g)
    check_lines(out.to_text(), """
        %d: f32[8,16] = fused[constant, transpose, greater, matmul, where](%w, %h, %dy) {kind='matmul'}
    """)
    assert len(kernels(out)) == 1
    assert_interprets_alike(g, out)


def _linear_model(batch=8, features=16, outputs=4) -> Graph:
    b = gc.GraphBuilder("linear")
    x, t = b.input("x", (batch, features)), b.input("t", (batch, outputs))
    w = b.param("w", RNG.standard_normal((features, outputs)).astype(np.float32) * 0.1)
    h = gc.relu(x @ w)
    return b.build({"loss": gc.mean((h - t) * (h - t))})


def test_adam_update_is_the_dw_matmul_epilogue():
    g = _linear_model()
    passes = passes_for(train=("loss", gc.optim.Adam(lr=1e-2)))
    out = run_pipeline(g, passes)
    (dw,) = [k for k in kernels(out) if k.attrs["kind"] == "matmul"
             and any(n.op == "sqrt" for n in k.attrs["body"].nodes)]
    body_ops = [n.op for n in dw.attrs["body"].nodes]
    assert body_ops.count("matmul") == 1 and "transpose" in body_ops
    # m, v and the weight itself are all written by the dW kernel
    assert set(dw.outputs) == {out.updates[k] for k in ("w", "w.adam_m", "w.adam_v")}
    check_lines(out.to_text(), """
        transpose, mul, mul, matmul, mul, add, mul, mul, add, div, div, mul, sqrt, add, div, sub
        update %w.adam_m =
    """)
    unfused = run_pipeline(g, passes[:-2])  # everything before fuse/schedule
    assert_interprets_alike(unfused.replace(initializers=out.initializers), out)


# --- kernel counts ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mlp_step_graph() -> Graph:
    return run_pipeline(build_mlp(BENCH_SIZES, batch=128),
                        passes_for(train=("loss", gc.optim.SGD(lr=0.1))))


def test_mlp_training_step_has_at_most_16_kernels(mlp_step_graph):
    """784-512-512-10, batch 128, SGD: 8 matmuls (3 forward, 3 dW, 2 dX), 13 kernels today."""
    ks = kernels(mlp_step_graph)
    assert kernel_count(mlp_step_graph) == len(ks) <= 16
    matmuls = [sum(n.op == "matmul" for n in k.attrs["body"].nodes) for k in ks]
    assert sum(matmuls) == 8 and max(matmuls) == 1
    unfused = run_pipeline(build_mlp(BENCH_SIZES, batch=128),
                           passes_for(train=("loss", gc.optim.SGD(lr=0.1)), fusion=False))
    assert kernel_count(unfused) > 3 * len(ks)


# --- duplicated producers -----------------------------------------------------------------------
def test_a_producer_duplicated_into_several_kernels_gives_identical_bits():
    """e = exp(tanh(x)) evaluated in a loop, two reduce kernels (different axes) and a matmul
    epilogue: every copy must equal the others bit for bit."""
    g = gc.parse("""
graph dup
  input %x: f32[37,45]
  input %a: f32[37,8]
  input %b: f32[8,45]
  %e1: f32[37,45] = fused[tanh, exp](%x) {kind='loop'}
      %t1: f32[37,45] = tanh(%x)
      %e1: f32[37,45] = exp(%t1)
  %e2: f32[37,45], %r: f32[37] = fused[tanh, exp, sum](%x) {kind='reduce'}
      %t2: f32[37,45] = tanh(%x)
      %e2: f32[37,45] = exp(%t2)
      %r: f32[37] = sum(%e2) {axes=(1,), keepdims=False}
  %e3: f32[37,45], %c: f32[45] = fused[tanh, exp, max](%x) {kind='reduce'}
      %t3: f32[37,45] = tanh(%x)
      %e3: f32[37,45] = exp(%t3)
      %c: f32[45] = max(%e3) {axes=(0,), keepdims=False}
  %e4: f32[37,45], %m: f32[37,45] = fused[tanh, exp, matmul](%x, %a, %b) {kind='matmul'}
      %t4: f32[37,45] = tanh(%x)
      %e4: f32[37,45] = exp(%t4)
      %m: f32[37,45] = matmul(%a, %b)
  output e1 = %e1
  output e2 = %e2
  output e3 = %e3
  output e4 = %e4
  output r = %r
  output c = %c
  output m = %m
""")
    feeds = feeds_for(g)
    feeds["x"] *= 3
    got = compile_graph(g).run(feeds)
    for name in ("e2", "e3", "e4"):
        np.testing.assert_array_equal(got[name], got["e1"], err_msg=name)
    np.testing.assert_allclose(got["e1"], gc.interpret(g, feeds)["e1"], rtol=1e-6)


def test_a_value_read_by_two_reduce_kernels_is_the_same_in_both():
    """e feeds a row-max and a column-max kernel; the max of either is the max of e, exactly
    (max is exact and order-free), and so are the row/column argmax masks' totals."""
    b = gc.GraphBuilder("two_reduce")
    x, w = b.input("x", (33, 47)), b.input("w", (33, 47))
    e = gc.exp(gc.tanh(x)) * w + gc.sigmoid(x * w)
    rows, cols = gc.max(e, axis=1), gc.max(e, axis=0)
    g = b.build({"via_rows": gc.max(rows), "via_cols": gc.max(cols),
                 "row_sums": gc.sum(gc.softmax(e, axis=1), axis=1),
                 "col_sums": gc.sum(gc.softmax(e, axis=0), axis=0)})
    fused = run_pipeline(g, passes_for())
    assert sum(k.attrs["kind"] == "reduce" for k in kernels(fused)) >= 2
    got = gc.compile(g).run(feeds_for(g))
    assert got["via_rows"].tobytes() == got["via_cols"].tobytes()
    np.testing.assert_allclose(got["row_sums"], 1, rtol=1e-6)
    np.testing.assert_allclose(got["col_sums"], 1, rtol=1e-6)


# --- fused == unfused, compiled -----------------------------------------------------------------
def assert_close_relative(got: dict, want: dict, rtol: float = 1e-6) -> None:
    """Each array to rtol of its largest element. An array wholly below rtol of the largest
    array in `want` is zero at this precision (the attention key bias's gradient is zero in
    exact arithmetic: softmax ignores a shift of a row) and is compared to rtol of that largest
    one, since its bits are roundoff that changes with summation order."""
    largest = max(float(np.max(np.abs(ref), initial=0)) for ref in want.values())
    for name, ref in want.items():
        scale = max(float(np.max(np.abs(ref), initial=0)), 1e-30)
        scale = largest if scale < rtol * largest else scale
        np.testing.assert_allclose(got[name], ref, rtol=rtol, atol=rtol * scale, err_msg=name)


@pytest.mark.parametrize("model", sorted(MODELS))
def test_fused_matches_unfused_forward(model):
    g = MODELS[model]()
    feeds = feeds_for(g)
    fused = Executable(g, passes_for()).run(feeds)
    unfused = Executable(g, passes_for(fusion=False)).run(feeds)
    assert_close_relative(fused, unfused)


@pytest.mark.parametrize("model", sorted(MODELS))
def test_fused_matches_unfused_training_step(model):
    g = MODELS[model]()
    feeds = feeds_for(g)
    train = ("loss", gc.optim.SGD(lr=0.1, momentum=0.9))
    fused, unfused = (Executable(g, passes_for(train=train, fusion=f)) for f in (True, False))
    assert fused.stats["kernels"] < unfused.stats["kernels"]
    for _ in range(2):
        assert_close_relative(fused.run(feeds), unfused.run(feeds))
        assert_close_relative(fused.params, unfused.params)


# --- known bugs (each a minimal failing test) ---------------------------------------------------
def test_transpose_of_a_matmul_result_reads_the_transposed_element():
    """A transpose of the matmul's own result must not be evaluated in its epilogue, where only
    the current element of C exists (passes/fusion.py lets it join the matmul kernel)."""
    b = gc.GraphBuilder("mm_t")
    a, c = b.input("a", (2, 2)), b.input("c", (2, 2))
    g = b.build({"y": gc.transpose(a @ c)})
    feeds = {"a": np.array([[1, 2], [3, 4]], np.float32), "c": np.eye(2, dtype=np.float32)}
    np.testing.assert_array_equal(gc.compile(g).run(feeds)["y"], [[1, 3], [2, 4]])
