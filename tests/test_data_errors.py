"""Invalid data the shape rules cannot see is an error in compiled code as in the interpreter,
never a silently clamped answer."""
import numpy as np
import pytest

import graphc as gc


def _gather_graph():
    b = gc.GraphBuilder("g")
    d, i = b.input("d", (5, 2)), b.input("i", (2,), "i64")
    return b.build({"y": gc.gather(d, i * 3)})  # the index is computed: no feed check sees it


def test_computed_gather_index_out_of_range_raises_and_recovers():
    g = _gather_graph()
    exe = gc.compile(g)
    data = np.arange(10, dtype=np.float32).reshape(5, 2)
    good = {"d": data, "i": np.array([0, 1])}
    bad = {"d": data, "i": np.array([0, 3])}
    np.testing.assert_array_equal(exe.run(good)["y"], gc.interpret(g, good)["y"])
    with pytest.raises(gc.GraphcError, match="index 9 at .1. is outside"):
        gc.interpret(g, bad)
    with pytest.raises(gc.GraphcError, match=r"test_data_errors.py:\d+: an index computed"):
        exe.run(bad)
    np.testing.assert_array_equal(exe.run(good)["y"], gc.interpret(g, good)["y"])  # cleared


def test_negative_indices_in_range_are_valid():
    g = _gather_graph()
    feeds = {"d": np.arange(10, dtype=np.float32).reshape(5, 2), "i": np.array([-1, 0])}
    np.testing.assert_array_equal(gc.compile(g).run(feeds)["y"], gc.interpret(g, feeds)["y"])
