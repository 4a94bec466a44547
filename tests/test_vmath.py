"""The vectorised f32 transcendentals (runtime/emit/vmath.py): measured maximum relative error
against float64 NumPy on dense grids, special values, and that loops over them vectorise."""
import math

import numpy as np
import pytest
from graphc.runtime.emit import vmath

import graphc as gc


def _erf(x):
    return np.vectorize(math.erf)(x.astype(np.float64))


CASES = {
    "exp": (gc.exp, np.exp, vmath.EXP_MAX_REL_ERROR, (-87.0, 88.0)),
    "log": (gc.log, np.log, vmath.LOG_MAX_REL_ERROR, (1e-30, 1e30)),
    "tanh": (gc.tanh, np.tanh, vmath.TANH_MAX_REL_ERROR, (-12.0, 12.0)),
    "erf": (gc.erf, _erf, vmath.ERF_MAX_REL_ERROR, (-6.0, 6.0)),
}


def _grid(lo, hi, n=200_003):
    if lo > 0:  # log: geometric grid over many binades, plus denormals
        return np.concatenate([np.geomspace(lo, hi, n), np.geomspace(1e-44, 1e-38, 999)])
    return np.concatenate([np.linspace(lo, hi, n), np.geomspace(1e-30, 1e-3, 999),
                           -np.geomspace(1e-30, 1e-3, 999)])


def compiled(fn, n):
    b = gc.GraphBuilder("vmath")
    x = b.input("x", (n,))
    return gc.compile(b.build({"y": fn(x)}))


@pytest.mark.parametrize("name", sorted(CASES))
def test_max_relative_error_is_the_documented_bound(name):
    fn, reference, bound, (lo, hi) = CASES[name]
    x = _grid(lo, hi).astype(np.float32)
    got = compiled(fn, len(x)).run({"x": x})["y"].astype(np.float64)
    want = reference(x.astype(np.float64))
    rel = np.abs(got - want) / np.maximum(np.abs(want), np.finfo(np.float32).tiny)
    assert rel.max() <= bound, (name, rel.max(), x[rel.argmax()])


@pytest.mark.parametrize("name", sorted(CASES))
def test_special_values(name):
    fn, reference, _, _ = CASES[name]
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 100.0, -100.0,
                  3.4e38, -3.4e38], np.float32)
    got = compiled(fn, len(x)).run({"x": x})["y"]
    with np.errstate(all="ignore"):
        want = reference(x.astype(np.float64)).astype(np.float32)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-45, equal_nan=True)


def test_loops_over_exp_vectorise():
    exe = compiled(gc.exp, 4096)
    assert "<16 x float>" in exe.llvm_ir or "<8 x float>" in exe.llvm_ir
    assert "expf" not in exe.llvm_ir


def test_erf_and_its_derivative_share_one_exp():
    """erf's e**(-x²) is exp_f32(-(x * x)), the instructions of its derivative's (and GELU's)
    graph, so once optimised a function computing both has one exp (one floor) in it."""
    import llvmlite.binding as llvm
    from graphc.runtime.jit import optimize
    from graphc.runtime.target import host_target_machine
    from llvmlite import ir

    def count_floors(with_derivative: bool) -> int:
        module = ir.Module("t")
        fn = ir.Function(module, ir.FunctionType(vmath.F32, [vmath.F32]), "f")
        b = ir.IRBuilder(fn.append_basic_block())
        x = fn.args[0]
        y = vmath.erf_f32(b, x)
        if with_derivative:
            y = b.fadd(y, vmath.exp_f32(b, b.fneg(b.fmul(x, x))))
        b.ret(y)
        mod = llvm.parse_assembly(str(module))
        optimize(mod, host_target_machine())
        return str(mod.get_function("f")).count("@llvm.floor")

    assert count_floors(False) == count_floors(True) == 1
