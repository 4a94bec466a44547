"""A matmul with a one-hot left operand (runtime/kernels/scatter.py): the gather gradient's
one_hot(indices)ᵀ @ g is recognised and lowered as a scatter-add; results equal the
interpreter's one-hot matmul, indices outside the table add nothing and write nothing, and
an out-of-range token still raises where the forward gather reads it.
"""
from __future__ import annotations

import numpy as np
import pytest
from graphc.passes.autodiff import grad
from graphc.runtime.emit.index_eval import IndexEval
from graphc.runtime.kernels.abi import Kernel
from graphc.runtime.kernels.scatter import one_hot_rows
from llvmlite import ir

import graphc as gc
from graphc.ops.registry import get_op
from graphc.pipeline import passes_for, run_pipeline

RNG = np.random.default_rng(3)


def _embedding_graph(table=(50, 16), ids=(4, 8), axis=0, scale_ids=1):
    b = gc.GraphBuilder("emb")
    emb = b.param("emb", RNG.standard_normal(table).astype(np.float32))
    t = b.input("t", ids, "i64")
    w = b.input("w", tuple(table[:axis]) + ids + tuple(table[axis + 1:]))
    y = gc.gather(emb, t * scale_ids if scale_ids != 1 else t, axis=axis)
    return b.build({"loss": gc.sum(y * w)})


def _hot_matmuls(graph):
    """(kernel node, one_hot_rows of its left operand) for each matmul kernel."""
    sources = {v: get_op(n.op).reference(**n.attrs) for n in graph.nodes
               if get_op(n.op).kind == "source" for v in n.outputs}
    found = []
    for node in graph.nodes:
        if node.op != "fused" or node.attrs["kind"] != "matmul":
            continue
        kernel = Kernel(ir.Module("t"), node, "k", aliased=False)
        ev = IndexEval(kernel, node.attrs["body"], sources)
        (mm,) = [n for n in node.attrs["body"].nodes if n.op == "matmul"]
        found.append((node, one_hot_rows(ev, mm.inputs[0])))
    return found


def test_the_gather_gradient_is_a_one_hot_matmul_lowered_as_a_scatter():
    g = run_pipeline(grad(_embedding_graph(), "loss", ["emb"]), passes_for())
    (_node, hot), = _hot_matmuls(g)
    assert hot is not None and hot.index.type.dtype == "i64"


def test_an_ordinary_matmul_is_not_one_hot():
    b = gc.GraphBuilder("mm")
    x, w = b.input("x", (6, 5)), b.input("w", (5, 3))
    g = run_pipeline(b.build({"y": gc.cast(x > 0.5, "f32") @ w}), passes_for())
    assert [hot for _, hot in _hot_matmuls(g)] == [None]


@pytest.mark.parametrize("table,ids,axis", [((50, 16), (4, 8), 0), ((7, 3), (20,), 0),
                                            ((3, 9, 5), (6, 2), 1), ((40, 600), (2, 3), 0)])
def test_gather_gradient_matches_the_interpreter(table, ids, axis):
    """Batched (axis 1) and several column blocks (600 columns) included."""
    g = _embedding_graph(table, ids, axis)
    pipeline = run_pipeline(grad(g, "loss", ["emb"]), passes_for())
    assert [hot is not None for _, hot in _hot_matmuls(pipeline)] == [True]
    size = table[axis]
    t = RNG.integers(-size, size, ids)
    t.reshape(-1)[:2] = [1, 1]  # repeated ids accumulate
    w_shape = tuple(table[:axis]) + ids + tuple(table[axis + 1:])
    feeds = {"t": t, "w": RNG.standard_normal(w_shape).astype(np.float32)}
    _value, grads = gc.compile_value_and_grad(g, "loss", ["emb"]).run(feeds)
    want = gc.interpret(grad(g, "loss", ["emb"]), feeds)
    (ref,) = want.values()
    np.testing.assert_allclose(grads["emb"], ref, rtol=1e-6, atol=1e-6)


def test_split_across_threads_each_part_owns_its_rows():
    g = _embedding_graph((300, 128), (8, 40))
    feeds = {"t": RNG.integers(0, 300, (8, 40)),
             "w": RNG.standard_normal((8, 40, 128)).astype(np.float32)}
    want = next(iter(gc.interpret(grad(g, "loss", ["emb"]), feeds).values()))
    gc.set_num_threads(3)
    try:
        _, grads = gc.compile_value_and_grad(g, "loss", ["emb"]).run(feeds)
    finally:
        gc.set_num_threads(None)
    np.testing.assert_allclose(grads["emb"], want, rtol=1e-6, atol=1e-6)


def test_indices_outside_the_table_add_nothing_in_a_gradient_graph():
    """Without the forward gather nothing reads the table at a bad index; its one-hot column is
    zero, so the compiled scatter skips it (and writes nothing outside the gradient)."""
    g = grad(_embedding_graph((6, 4), (5,), scale_ids=3), "loss", ["emb"])
    feeds = {"t": np.array([0, 1, 2, 5, -1]), "w": RNG.standard_normal((5, 4)).astype(np.float32)}
    (want,) = gc.interpret(g, feeds).values()
    (got,) = gc.compile(g).run(feeds).values()
    np.testing.assert_array_equal(got, want)  # ids 0, 3, 6, 15, -3: rows 0 and 3 (twice)
    assert want[[0, 3]].all() and not want[[1, 2, 4, 5]].any()


def test_an_out_of_range_token_still_raises_in_the_training_step():
    g = _embedding_graph((6, 4), (5,))
    step = gc.compile_train_step(g, "loss", gc.optim.SGD(lr=0.1))
    w = RNG.standard_normal((5, 4)).astype(np.float32)
    with pytest.raises(gc.GraphcError, match="index 6 at .2. is outside"):
        step.run({"t": np.array([0, 1, 6, 2, 3]), "w": w})
    computed = gc.compile_train_step(_embedding_graph((6, 4), (5,), scale_ids=3), "loss",
                                     gc.optim.SGD(lr=0.1))
    with pytest.raises(gc.GraphcError, match=r"test_scatter.py:\d+: an index computed"):
        computed.run({"t": np.array([0, 1, 2, 1, 0]), "w": w})
