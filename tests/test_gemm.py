"""The packed GEMM (runtime/kernels/gemm.py, runtime/kernels/pack.py) against NumPy on shapes that exercise every
packing path: B read in place, whole and partial NR panels, K blocks and their tail, L x L transposed squares of
a B contiguous along K and their row/column remainders, both dtypes, all four transpositions."""
from __future__ import annotations

import numpy as np
import pytest
from graphc.runtime.kernels.pack import transpose_square
from llvmlite import ir

import graphc as gc

# (9, 40, 64): whole panels read in place; (4, 300, 1024): rows a page apart, packed
SHAPES = [(5, 7, 3), (9, 37, 41), (17, 300, 70), (8, 513, 33), (33, 16, 16), (3, 48, 100),
          (9, 40, 64), (4, 300, 1024)]


def _product(m, k, n, ta, tb, dtype):
    b = gc.GraphBuilder("gemm")
    a = b.input("a", (k, m) if ta else (m, k), dtype)
    w = b.input("w", (n, k) if tb else (k, n), dtype)
    return b.build({"c": (gc.transpose(a) if ta else a) @ (gc.transpose(w) if tb else w)})


@pytest.mark.parametrize("dtype", ["f32", "f64"])
@pytest.mark.parametrize("ta, tb", [(False, False), (False, True), (True, False), (True, True)])
@pytest.mark.parametrize("m, k, n", SHAPES)
def test_gemm_matches_numpy(m, k, n, ta, tb, dtype):
    rng = np.random.default_rng(m * k + n)
    np_dtype = np.float32 if dtype == "f32" else np.float64
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np_dtype)
    w = rng.standard_normal((n, k) if tb else (k, n)).astype(np_dtype)
    got = gc.compile(_product(m, k, n, ta, tb, dtype)).run({"a": a, "w": w})["c"]
    want = (a.T if ta else a).astype(np.float64) @ (w.T if tb else w).astype(np.float64)
    tol = 1e-4 if dtype == "f32" else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.sqrt(k))


@pytest.mark.parametrize("lanes", [4, 8, 16])
def test_transpose_square_in_registers(lanes):
    """The shuffle network, interpreted: every lane of every output row is the right input."""
    vec = ir.VectorType(ir.IntType(32), lanes)
    fn = ir.Function(ir.Module(), ir.FunctionType(ir.VoidType(), []), "t")
    b = ir.IRBuilder(fn.append_basic_block())
    rows = [ir.Constant(vec, [r * lanes + c for c in range(lanes)]) for r in range(lanes)]

    def value(v):  # constant-fold the shuffles
        if isinstance(v, ir.Constant):
            return [int(c.constant) for c in v.constant]
        left, right = value(v.operands[0]), value(v.operands[1])
        return [(left + right)[int(i.constant)] for i in v.operands[2].constant]

    got = np.array([value(r) for r in transpose_square(b, rows)])
    np.testing.assert_array_equal(got, np.arange(lanes * lanes).reshape(lanes, lanes).T)


def test_fewer_rows_than_a_tile_get_a_shorter_tile():
    """M < MR (a conv's few filters): MR = M, so no FMA works on a clamped duplicate row."""
    from graphc.runtime.kernels.gemm import tiles

    m = tiles("f32")[1] - 2
    text = gc.compile(_product(m, 40, 64, False, False, "f32")).llvm_ir
    assert f"gemm_tiles.f32.mr{m}(" in text
    assert "gemm_tiles.f32(" not in text
