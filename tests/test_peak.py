"""runtime/peak.py: the FMA loop runs every iteration on every accumulator (its checksum is
exact), compiles to vector FMAs, and its timing gives a GFLOP/s figure."""
import re

import llvmlite.binding as llvm
import pytest
from graphc.runtime import peak
from graphc.runtime.target import host_target_machine, host_vector_lanes


@pytest.mark.parametrize("n", [0, 1, 7, 1000])
def test_the_loop_runs_n_times_on_every_accumulator(n):
    lanes = host_vector_lanes()
    # acc_k starts at k and gains c = 1 each iteration (b = 1): integers, exact in f32
    want = lanes * sum(k + n for k in range(peak.ACCUMULATORS))
    assert peak.fma_loop(n, 1.0, 1.0) == want


def test_the_loop_multiplies_too():
    lanes = host_vector_lanes()
    want = lanes * sum(k * 2.0**3 for k in range(peak.ACCUMULATORS))  # b = 2, c = 0
    assert peak.fma_loop(3, 2.0, 0.0) == want


def test_the_loop_is_one_fused_multiply_add_per_accumulator():
    if "+fma" not in llvm.get_host_cpu_features().flatten():
        pytest.skip("host has no FMA instructions")
    lanes = host_vector_lanes()
    asm = host_target_machine().emit_assembly(llvm.parse_assembly(peak._module(lanes)))
    assert len(re.findall(r"\bvfmadd\w*", asm)) == peak.ACCUMULATORS


def test_a_peak_figure():
    assert peak.fma_peak_gflops(seconds=0.005, repeats=1) > 0
