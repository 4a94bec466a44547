"""A compiled graph is several LLVM modules (the entry and kernel modules) compiled side by side:
the result does not depend on how many threads compiled it, identical kernels are compiled once,
and the error cell shared by the modules still reports a kernel's invalid data."""
import re

import numpy as np
import pytest
from graphc.runtime import stages

import graphc as gc


@pytest.fixture
def workers(monkeypatch):
    def set_workers(n):
        monkeypatch.setattr(stages, "compile_workers", lambda: n)
    return set_workers


@pytest.fixture(autouse=True)
def no_cache(monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE", "0")


def twin_branches():
    """Two branches with the same shapes and ops: their kernels print the same."""
    rng = np.random.default_rng(0)
    b = gc.GraphBuilder("twins")
    x = b.input("x", (16, 32))
    w1 = b.param("w1", rng.standard_normal((32, 24)).astype(np.float32))
    w2 = b.param("w2", rng.standard_normal((32, 24)).astype(np.float32))
    return b.build({"y": gc.tanh(x @ w1) * 2.0, "z": gc.tanh(x @ w2) * 2.0})


FEEDS = {"x": np.linspace(-1, 1, 16 * 32, dtype=np.float32).reshape(16, 32)}


@pytest.mark.parametrize("n", [1, 2, 4])
def test_result_does_not_depend_on_compile_threads(workers, n):
    workers(1)
    expected = gc.compile(twin_branches()).run(FEEDS)
    workers(n)
    exe = gc.compile(twin_branches())
    assert exe.stats["llvm_modules"] >= 2  # the entry and at least one kernel module
    for name, value in exe.run(FEEDS).items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)


def test_llvmlite_still_exposes_the_unlocked_entry_points():
    """runtime/jit.py calls two llvmlite functions around its global lock through the private
    `_cfn` ctypes handle (llvmlite is pinned to 0.46.x). If a release drops it, compiling still
    works (the locked call) but modules stop compiling in parallel: this test says so."""
    from llvmlite.binding import ffi

    for name in ("LLVMPY_RunNewModulePassManager", "LLVMPY_TargetMachineEmitToMemory"):
        assert hasattr(getattr(ffi.lib, name), "_cfn"), name


def test_the_locked_llvmlite_calls_compile_the_same_code(workers, monkeypatch):
    """The fallback when `_cfn` is missing: llvmlite's own (locked) calls, same results."""
    from graphc.runtime import jit
    from llvmlite.binding import ffi

    workers(2)
    expected = gc.compile(twin_branches()).run(FEEDS)
    monkeypatch.setattr(jit, "_unlocked", lambda name: getattr(ffi.lib, name))
    for name, value in gc.compile(twin_branches()).run(FEEDS).items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)


def test_identical_kernels_are_compiled_once(workers):
    workers(2)
    g = twin_branches()
    exe = gc.compile(g)
    # kernels are external; the other name is an internal forwarder in the entry module
    defined = re.findall(r"^define void @\"?(k\d+_\w+)\"?\(", exe.llvm_ir, re.MULTILINE)
    assert exe.stats["kernels"] == 2 and len(defined) == 1, defined
    out = exe.run(FEEDS)
    ref = gc.interpret(g, FEEDS)
    np.testing.assert_allclose(out["y"], ref["y"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["z"], ref["z"], rtol=1e-5, atol=1e-5)


def test_error_cell_is_shared_by_every_module(workers):
    workers(3)
    b = gc.GraphBuilder("g")
    d, i = b.input("d", (5, 2)), b.input("i", (2,), "i64")
    y = gc.gather(gc.exp(d), i * 3) + 1.0  # the index is computed: no feed check sees it
    g = b.build({"y": y, "s": gc.sum(gc.tanh(d), axis=0)})
    exe = gc.compile(g)
    assert exe.stats["kernels"] >= 2 and exe.stats["llvm_modules"] >= 3
    data = np.arange(10, dtype=np.float32).reshape(5, 2) / 10
    good, bad = {"d": data, "i": np.array([0, 1])}, {"d": data, "i": np.array([0, 3])}
    with pytest.raises(gc.GraphcError, match=r"test_modules.py:\d+: an index computed"):
        exe.run(bad)
    out, ref = exe.run(good), gc.interpret(g, good)
    np.testing.assert_allclose(out["y"], ref["y"], rtol=1e-6)
    np.testing.assert_allclose(out["s"], ref["s"], rtol=1e-6)


def test_ir_and_assembly_cover_every_module(workers):
    workers(2)
    exe = gc.compile(twin_branches())
    assert "define void @graphc_main" in exe.llvm_ir
    assert re.search(r"^define .*@\"?k\d+_fused", exe.llvm_ir, re.MULTILINE)
    assert "graphc_main" in exe.asm and re.search(r"k\d+_fused", exe.asm)


def test_an_in_place_update_reads_through_its_output_pointer(workers):
    """The updated param is one pointer argument, read and written: LLVM knows both are the
    same memory and every output stays noalias (as it knew when kernels were inlined)."""
    from graphc.models.mlp import build_mlp

    workers(2)
    step = gc.compile_train_step(build_mlp((20, 16, 4), batch=8), "loss", gc.optim.SGD(lr=0.1))
    assert step.stats["inplace_updates"] > 0
    firsts = re.findall(r"^define void @k\d+_\w+\(ptr ([\w ]*)%", step.exe.llvm_ir, re.MULTILINE)
    assert firsts and all("noalias" in attrs for attrs in firsts), firsts
