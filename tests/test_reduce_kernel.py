"""Reduce kernels (runtime/kernels/reduce.py): the row scheme's vectorisable combines keep NaN
propagation and accuracy, values read by a later pass come from a row buffer, and kernels that
read another row of a value they compute fall back to the whole-domain scheme.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
from graphc.runtime import compile_graph
from graphc.runtime.kernels.reduce_layout import ROW_BUFFER_BYTES, row_outputs, row_plan

import graphc as gc
from graphc.pipeline import passes_for, run_pipeline

RNG = np.random.default_rng(7)


def _kernels(graph):
    return [n for n in graph.nodes if n.op == "fused"]


@pytest.mark.parametrize("n", [1, 15, 16, 25, 32, 33, 100, 257])
def test_row_max_and_min_propagate_nan_wherever_it_is(n):
    x = RNG.standard_normal((6, n)).astype(np.float32)
    x[1, 0] = np.nan
    x[2, n - 1] = np.nan
    x[3, n // 2] = np.inf
    x[4, :] = -np.inf
    x[5, n // 3] = -np.inf
    b = gc.GraphBuilder("mm")
    xi = b.input("x", x.shape)
    got = gc.compile(b.build({"max": gc.max(xi, axis=1), "min": gc.reduce_min(xi, axis=1)})) \
        .run({"x": x})
    np.testing.assert_array_equal(got["max"], np.max(x, axis=1))
    np.testing.assert_array_equal(got["min"], np.min(x, axis=1))


def test_integer_row_max_and_sum():
    x = RNG.integers(-10**12, 10**12, (5, 77))
    b = gc.GraphBuilder("im")
    xi = b.input("x", x.shape, "i64")
    got = gc.compile(b.build({"max": gc.max(xi, axis=1), "sum": gc.sum(xi, axis=1)})) \
        .run({"x": x})
    np.testing.assert_array_equal(got["max"], x.max(axis=1))
    np.testing.assert_array_equal(got["sum"], x.sum(axis=1))


def test_reassociated_row_sum_is_as_accurate_as_a_pairwise_one():
    x = (RNG.standard_normal((4, 100_000)) * 1e3 + 1e4).astype(np.float32)
    b = gc.GraphBuilder("s")
    xi = b.input("x", x.shape)
    got = gc.compile(b.build({"s": gc.sum(xi, axis=1), "m": gc.mean(xi, axis=1)})).run({"x": x})
    exact = x.astype(np.float64).sum(axis=1)
    np.testing.assert_allclose(got["s"], exact, rtol=2e-6)
    np.testing.assert_allclose(got["m"], exact / x.shape[1], rtol=2e-6)


def test_mean_over_an_empty_row_is_nan():
    b = gc.GraphBuilder("e")
    xi = b.input("x", (3, 0))
    got = gc.compile(b.build({"m": gc.mean(xi, axis=1)})).run({"x": np.zeros((3, 0), np.float32)})
    assert np.isnan(got["m"]).all()


def _softmax_step(transpose: bool):
    b = gc.GraphBuilder("sm")
    x, v = b.input("x", (2, 3, 40, 40)), b.input("v", (2, 3, 40, 8))
    p = gc.softmax(x, -1)
    out = (gc.swapaxes(p, -1, -2) if transpose else p) @ v
    return b.build({"y": out, "p": p})


def test_softmax_keeps_exp_in_a_row_buffer_and_computes_it_once():
    g = run_pipeline(_softmax_step(False), passes_for())
    (softmax,) = [k for k in _kernels(g) if k.attrs["kind"] == "reduce"]
    body = softmax.attrs["body"]
    kept = row_plan(body)
    assert [(body.producers[v].op, k) for v, k in kept.items()] == [("exp", 1)]
    feeds = {"x": RNG.standard_normal((2, 3, 40, 40)).astype(np.float32) * 4,
             "v": RNG.standard_normal((2, 3, 40, 8)).astype(np.float32)}
    got, want = gc.compile(_softmax_step(False)).run(feeds), gc.interpret(_softmax_step(False),
                                                                         feeds)
    np.testing.assert_allclose(got["p"], want["p"], rtol=2e-6, atol=1e-7)


def test_a_transposed_softmax_is_read_by_its_consumer_not_written_by_the_reduce_kernel():
    g = _softmax_step(True)
    fused = run_pipeline(g, passes_for())
    (softmax,) = [k for k in _kernels(fused) if k.attrs["kind"] == "reduce"]
    assert "transpose" not in [n.op for n in softmax.attrs["body"].nodes]
    assert row_plan(softmax.attrs["body"]) is not None
    feeds = {"x": RNG.standard_normal((2, 3, 40, 40)).astype(np.float32),
             "v": RNG.standard_normal((2, 3, 40, 8)).astype(np.float32)}
    got, want = gc.compile(g).run(feeds), gc.interpret(g, feeds)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=2e-6, atol=1e-6, err_msg=name)


READS_ANOTHER_ROW = """
graph t
  input %x: f32[6,6]
  %e: f32[6,6], %r: f32[6] = fused[max, sub, exp, transpose, sum](%x) {kind='reduce'}
      %m: f32[6,1] = max(%x) {axes=(1,), keepdims=True}
      %d: f32[6,6] = sub(%x, %m)
      %e: f32[6,6] = exp(%d)
      %t: f32[6,6] = transpose(%e) {perm=(1, 0)}
      %r: f32[6] = sum(%t) {axes=(1,), keepdims=False}
  output e = %e
  output r = %r
"""


def test_a_kernel_reading_another_row_of_its_own_value_uses_the_whole_domain_scheme():
    """r sums e's columns: row i needs the max of every row, so rows cannot go one by one."""
    g = gc.parse(READS_ANOTHER_ROW)
    (kernel,) = _kernels(g)
    assert row_plan(kernel.attrs["body"]) is None
    feeds = {"x": RNG.standard_normal((6, 6)).astype(np.float32)}
    got, want = compile_graph(g).run(feeds), gc.interpret(g, feeds)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-6, err_msg=name)


@pytest.mark.parametrize("case", ["broadcast", "full_output", "reshaped"])
def test_a_row_result_broadcast_along_the_row_uses_the_whole_domain_scheme(case):
    """NumPy broadcasting puts a [6] row result m along the rows of a [6,6] domain: x - m reads
    m[j] in row i, another row's result, which a row-by-row kernel has not computed yet."""
    b = gc.GraphBuilder("rows")
    x = b.input("x", (6, 6))
    m = gc.max(x, axis=1)
    outputs = {"broadcast": lambda: {"s": gc.sum(x * m, axis=1)},
               "full_output": lambda: {"y": x - m},
               "reshaped": lambda: {"s": gc.sum(x + gc.reshape(m, (1, 6)), axis=1)}}[case]()
    g = b.build(outputs)
    (kernel,) = _kernels(run_pipeline(g, passes_for()))
    assert row_plan(kernel.attrs["body"]) is None
    feeds = {"x": RNG.standard_normal((6, 6)).astype(np.float32)}
    got, want = gc.compile(g).run(feeds), gc.interpret(g, feeds)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_rows_too_long_for_row_buffers_recompute():
    n = ROW_BUFFER_BYTES // 4 + 16
    b = gc.GraphBuilder("long")
    xi = b.input("x", (2, n))
    g = b.build({"p": gc.softmax(xi, -1)})
    (kernel,) = _kernels(run_pipeline(g, passes_for()))
    assert row_plan(kernel.attrs["body"]) == {}
    feeds = {"x": RNG.standard_normal((2, n)).astype(np.float32)}
    np.testing.assert_allclose(gc.compile(g).run(feeds)["p"], gc.interpret(g, feeds)["p"],
                               rtol=2e-6, atol=1e-12)


def _kernel_ir(exe) -> str:
    """The optimised IR of the step's kernels (graphc_main excluded)."""
    text = exe.llvm_ir
    return "\n".join(f for f in text.split("\ndefine ") if "graphc_main" not in f.split("(")[0])


def test_short_rows_are_unrolled_and_the_row_loop_vectorised():
    """A 2x2 window max (rows up to UNROLLED_ROW elements): no row buffer, straight-line
    rows, vector code across rows; the pooled value and its count are stored as each row
    finishes (no second pass)."""
    x = RNG.standard_normal((8, 3, 6, 8)).astype(np.float32)
    x[0, 0, 0, 0] = np.nan
    b = gc.GraphBuilder("pool")
    xi = b.input("x", x.shape)
    windows = gc.transpose(gc.reshape(xi, (8, 3, 3, 2, 4, 2)), (0, 1, 2, 4, 3, 5))
    top = gc.max(windows, axis=(4, 5), keepdims=True)
    ties = gc.cast(gc.equal(windows, top), "f32")
    graph = b.build({"top": top, "ties": ties, "count": gc.sum(ties, axis=(4, 5))})
    lowered = run_pipeline(graph, passes_for())
    (kernel,) = _kernels(lowered)
    assert row_plan(kernel.attrs["body"]) == {}
    stored_in_row = {kernel.outputs[j] for j, _ in row_outputs(kernel.attrs["body"])}
    assert stored_in_row == {lowered.outputs["top"], lowered.outputs["count"]}
    exe = gc.compile(graph)
    assert re.search(r"<\d+ x float>", _kernel_ir(exe))
    got = exe.run({"x": x})
    w = x.reshape(8, 3, 3, 2, 4, 2).transpose(0, 1, 2, 4, 3, 5)
    want = np.max(w, axis=(4, 5), keepdims=True)
    np.testing.assert_array_equal(got["top"], want)
    np.testing.assert_array_equal(got["ties"], (w == want).astype(np.float32))
    np.testing.assert_array_equal(got["count"], (w == want).sum(axis=(4, 5)))


@pytest.mark.parametrize("axes", [(0, 2, 3), (1, 3), (0, 3)])
def test_reductions_over_axes_before_and_after_a_kept_one(axes):
    """A bias gradient's shape of reduction: trailing runs combined in registers, then into
    their kept slot; the full-shape gradient is stored in the same pass. NaN still wins a max,
    and a mean divides by the whole count."""
    x = RNG.standard_normal((3, 4, 5, 6)).astype(np.float32)
    x[1, 2, 3, 4] = np.nan
    b = gc.GraphBuilder("bias")
    xi = b.input("x", x.shape)
    grad = gc.where(xi > 0.0, xi * 2.0, 0.0)
    graph = b.build({"grad": grad, "sum": gc.sum(grad, axis=axes), "mean": gc.mean(xi, axis=axes),
                     "max": gc.max(xi, axis=axes)})
    got = gc.compile(graph).run({"x": x})
    want = gc.interpret(graph, {"x": x})
    for name in ("grad", "sum", "mean", "max"):
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_a_checked_gather_records_its_failure_once_after_its_loops():
    """The gather's range check (fail_unless) is a local or-reduction, stored to the error
    cell once at the kernel's end: no store to a global in the row loops, which kept them
    scalar (LLVM could not tell the cell from the inputs). A bad index still raises."""
    from graphc.runtime.emit.emitter import ERROR_CELL, I64, LLVMEmitter, for_range
    from llvmlite import ir

    fn = ir.Function(ir.Module(), ir.FunctionType(ir.VoidType(), [I64]), "k")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    e = LLVMEmitter(b, error_code=7)
    with for_range(b, 100, "i") as i:
        e.fail_unless(b.icmp_signed("<", i, fn.args[0]), "i < n")
    e.record_failure()
    b.ret_void()
    stores = [(block.name, inst) for block in fn.blocks for inst in block.instructions
              if isinstance(inst, ir.StoreInstr) and inst.operands[1].name == ERROR_CELL]
    assert len(stores) == 1 and stores[0][0] not in ("i.head", "i.body")
    assert str(stores[0][1].operands[0]) == "i64 7"

    table = RNG.standard_normal((50, 64)).astype(np.float32)
    b = gc.GraphBuilder("embed")
    ids = b.input("ids", (4, 8), "i64")
    rows = gc.gather(b.input("table", table.shape), ids + 1, axis=0)  # checked in the kernel
    exe = gc.compile(b.build({"s": rows - gc.mean(rows, axis=2, keepdims=True)}))
    assert exe.stats["kernels"] == 1
    good = RNG.integers(-1, 49, (4, 8))
    want = table[good + 1] - table[good + 1].mean(axis=2, keepdims=True)
    np.testing.assert_allclose(exe.run({"ids": good, "table": table})["s"], want, atol=1e-5)
    for index in (49, -52):  # computed indices 50 and -51: outside [-50, 50)
        bad = good.copy()
        bad[2, 3] = index
        with pytest.raises(gc.GraphcError, match="out of range"):
            exe.run({"ids": bad, "table": table})
    good[1, 1] = -51  # -50: the first row, counted from the end
    np.testing.assert_allclose(exe.run({"ids": good, "table": table})["s"][1, 1],
                               table[0] - table[0].mean(), atol=1e-5)
