"""DSL helpers of graphc/ops/api_nn.py whose behaviour is not an op's own: defaults and
argument handling."""
import numpy as np
import pytest

import graphc as gc


@pytest.mark.parametrize("dtype, lo, hi", [("i64", None, 2), ("i64", -1, None),
                                            ("f32", None, 0.5), ("f32", -0.5, None)])
def test_clip_with_a_missing_bound_uses_the_dtypes_range(dtype, lo, hi):
    b = gc.GraphBuilder("clip")
    x = b.input("x", (5,), dtype)
    g = b.build({"y": gc.clip(x, min=lo, max=hi)})
    values = np.array([-7, -1, 0, 1, 9]).astype(gc.TensorType((), dtype).np_dtype)
    want = np.clip(values, lo, hi)
    np.testing.assert_array_equal(gc.interpret(g, {"x": values})["y"], want)
    np.testing.assert_array_equal(gc.compile(g).run({"x": values})["y"], want)
