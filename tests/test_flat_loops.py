"""Loop kernels that read every value where it is stored run as one loop over the elements.

Input: small graphs whose loop kernels are elementwise over a 4-D shape, with and without a
partial broadcast and a flat-order reshape of an operand. Output: pass/fail that the flat loop
(named f0 in the LLVM IR) is used exactly when it is valid, and that results equal NumPy's.
"""
from __future__ import annotations

import numpy as np

import graphc as gc
from graphc.pipeline import passes_for, run_pipeline


def _loops(graph) -> str:
    """The lowered (not yet optimised) LLVM IR, where the loops keep their names."""
    return run_pipeline(graph, passes_for(through="lower")).to_text()


def _graph(build):
    b = gc.GraphBuilder("flat")
    x = b.input("x", (4, 5, 3, 3))
    y = b.input("y", (4, 45))
    return b.build({"out": build(x, y)})


def test_same_shape_and_reshaped_operands_take_one_flat_loop():
    graph = _graph(lambda x, y: x * 2.0 - gc.reshape(y, (4, 5, 3, 3)))
    text = _loops(graph)
    assert "f0.head:" in text and "i3.head:" not in text
    exe = gc.compile(graph)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 5, 3, 3), np.float32), rng.standard_normal((4, 45), np.float32)
    np.testing.assert_allclose(exe.run({"x": x, "y": y})["out"], x * 2 - y.reshape(x.shape),
                               rtol=1e-6)


def test_a_partial_broadcast_keeps_the_loop_nest():
    b = gc.GraphBuilder("nest")
    x = b.input("x", (4, 5, 3, 3))
    c = b.input("c", (5, 1, 1))
    graph = b.build({"out": x * c})
    assert "f0.head:" not in _loops(graph) and "i3.head:" in _loops(graph)
    exe = gc.compile(graph)
    rng = np.random.default_rng(1)
    xv, cv = rng.standard_normal((4, 5, 3, 3), np.float32), rng.standard_normal((5, 1, 1),
                                                                                   np.float32)
    np.testing.assert_allclose(exe.run({"x": xv, "c": cv})["out"], xv * cv, rtol=1e-6)
