"""Golden text-IR tests of decompose, fusion and schedule: input IR, pass, the lines that matter.

Input: graphs written as text IR (parsed; a scheduled graph's kernels with their bodies), one
pass each. Output: pass/fail of the expected lines (tests/golden.py's `check_pass`). Simplify's
patterns have theirs in tests/test_golden_simplify.py.
"""
import numpy as np
from graphc.passes.decompose import decompose
from graphc.passes.fusion import fuse
from graphc.passes.schedule import schedule

import graphc as gc
from tests.golden import check_pass

# --- decompose ---------------------------------------------------------------------------------

def test_decompose_softmax_is_max_sub_exp_sum_div():
    out = check_pass(decompose, """
graph g
  input %x: f32[4,8]
  %s: f32[4,8] = softmax(%x) {axis=1}  # m.py:1
  output y = %s
""", """
        %v0: f32[4,1] = max(%x) {axes=(1,), keepdims=True}
        NEXT: %v1: f32[4,8] = sub(%x, %v0)
        NEXT: %v2: f32[4,8] = exp(%v1)
        NEXT: %v3: f32[4,1] = sum(%v2) {axes=(1,), keepdims=True}
        NEXT: %v4: f32[4,8] = div(%v2, %v3)
        output y = %v4
    """)
    assert {n.loc for n in out.nodes} == {"m.py:1"}


def test_decompose_log_softmax_subtracts_the_log_of_the_sum():
    check_pass(decompose, """
graph g
  input %x: f32[4,8]
  %s: f32[4,8] = log_softmax(%x) {axis=1}
  output y = %s
""", """
        %v1: f32[4,8] = sub(%x, %v0)
        %v3: f32[4,1] = sum(%v2) {axes=(1,), keepdims=True}
        NEXT: %v4: f32[4,1] = log(%v3)
        NEXT: %v5: f32[4,8] = sub(%v1, %v4)
        NOT: div(
    """)


def test_decompose_mse_is_the_mean_of_the_squared_difference():
    check_pass(decompose, """
graph g
  input %x: f32[4,8]
  input %t: f32[4,8]
  %s: f32[] = mse(%x, %t)
  output y = %s
""", """
        sub(%x, %t)
        %v2: f32[4,8] = mul(%v0, %v1)
        NEXT: %v3: f32[] = mean(%v2) {axes=(0, 1), keepdims=False}
        NOT: mse(
    """)


def test_decompose_layer_norm_scales_by_the_reciprocal_deviation():
    check_pass(decompose, """
graph g
  input %x: f32[4,8]
  input %g: f32[8]
  input %b: f32[8]
  %s: f32[4,8] = layer_norm(%x, %g, %b) {axis=1, epsilon=1e-05}
  output y = %s
""", """
        %v0: f32[4,1] = mean(%x) {axes=(1,), keepdims=True}
        %v1: f32[4,8] = sub(%x, %v0)
        value=(1e-05,)
        sqrt(
        %v9: f32[4,8] = mul(%v1, %v8)
        NEXT: %v10: f32[4,8] = mul(%v9, %g)
        NEXT: %v11: f32[4,8] = add(%v10, %b)
        NOT: layer_norm(
    """)


def test_decompose_copies_primitives_unchanged():
    text = """graph g
  input %x: f32[4]
  %y: f32[4] = relu(%x)  # m.py:7
  output y = %y
"""
    assert decompose(gc.parse(text)).to_text() == text


# --- fusion ------------------------------------------------------------------------------------

def test_fusion_puts_bias_and_relu_in_the_matmul_epilogue():
    check_pass(fuse, """
graph g
  input %x: f32[4,8]
  input %w: f32[8,3]
  input %b: f32[3]
  %h: f32[4,3] = matmul(%x, %w)
  %a: f32[4,3] = add(%h, %b)
  %r: f32[4,3] = relu(%a)
  output y = %r
""", """
        %r: f32[4,3] = fused[matmul, add, relu](%x, %w, %b) {kind='matmul'}
        NEXT: %h: f32[4,3] = matmul(%x, %w)
        NEXT: %a: f32[4,3] = add(%h, %b)
        NEXT: %r: f32[4,3] = relu(%a)
        NEXT: output y = %r
    """)



def test_fusion_joins_a_pointwise_consumer_to_the_matmul_and_merges_its_other_producer():
    check_pass(fuse, """
graph g
  input %x: f32[4,8]
  input %w: f32[8,3]
  input %z: f32[4,3]
  %h: f32[4,3] = matmul(%x, %w)
  %e: f32[4,3] = exp(%z)
  %a: f32[4,3] = add(%h, %e)
  output y = %a
""", """
        %a: f32[4,3] = fused[exp, matmul, add](%z, %x, %w) {kind='matmul'}
        NOT: %e: f32[4,3] = fused
    """)

SOFTMAX = """
graph g
  input %x: f32[4,8]
  %m: f32[4,1] = max(%x) {axes=(1,), keepdims=True}
  %d: f32[4,8] = sub(%x, %m)
  %e: f32[4,8] = exp(%d)
  %s: f32[4,1] = sum(%e) {axes=(1,), keepdims=True}
  %p: f32[4,8] = div(%e, %s)
  output y = %p
"""


def test_fusion_makes_softmax_one_reduce_kernel():
    check_pass(fuse, SOFTMAX, """
        %p: f32[4,8] = fused[max, sub, exp, sum, div](%x) {kind='reduce'}
        NEXT: max(%x)
        NOT: %m: f32[4,1] = fused
    """)


def test_unfused_baseline_is_one_kernel_per_node():
    check_pass(lambda g: fuse(g, enabled=False), SOFTMAX, """
        %m: f32[4,1] = fused[max](%x) {kind='reduce'}
        %d: f32[4,8] = fused[sub](%x, %m) {kind='loop'}
        %e: f32[4,8] = fused[exp](%d) {kind='loop'}
        %s: f32[4,1] = fused[sum](%e) {kind='reduce'}
        %p: f32[4,8] = fused[div](%e, %s) {kind='loop'}
    """)


def test_fusion_folds_a_transpose_of_an_input_into_the_matmul():
    check_pass(fuse, """
graph g
  input %x: f32[8,4]
  input %w: f32[8,3]
  %xt: f32[4,8] = transpose(%x) {perm=(1, 0)}
  %h: f32[4,3] = matmul(%xt, %w)
  output y = %h
""", """
        %h: f32[4,3] = fused[transpose, matmul](%x, %w) {kind='matmul'}
    """)


def test_fusion_keeps_a_transpose_of_a_matmul_result_out_of_its_kernel():
    check_pass(fuse, """
graph g
  input %x: f32[4,8]
  input %w: f32[8,3]
  %h: f32[4,3] = matmul(%x, %w)
  %t: f32[3,4] = transpose(%h) {perm=(1, 0)}
  output y = %t
""", """
        %h: f32[4,3] = fused[matmul](%x, %w) {kind='matmul'}
        %t: f32[3,4] = fused[transpose](%h) {kind='loop'}
    """)


def test_fusion_keeps_a_transpose_of_a_row_result_out_of_the_reduce_kernel():
    check_pass(fuse, """
graph g
  input %x: f32[4,8]
  %m: f32[4,1] = max(%x) {axes=(1,), keepdims=True}
  %d: f32[4,8] = sub(%x, %m)
  %t: f32[8,4] = transpose(%d) {perm=(1, 0)}
  %r: f32[8,4] = relu(%t)
  output y = %r
""", """
        %d: f32[4,8] = fused[max, sub](%x) {kind='reduce'}
        %r: f32[8,4] = fused[transpose, relu](%d) {kind='loop'}
    """)


def test_fusion_copies_a_scalar_constant_into_the_kernel_and_outputs_what_is_read_outside():
    check_pass(fuse, """
graph g
  input %x: f32[4,8]
  %two: f32[] = constant() {dtype='f32', shape=(), value=(2.0,)}
  %a: f32[4,8] = mul(%x, %two)
  %e: f32[4,8] = exp(%a)
  %s: f32[4] = sum(%e) {axes=(1,), keepdims=False}
  output y = %s
  output e = %e
""", """
        %e: f32[4,8], %s: f32[4] = fused[constant, mul, exp, sum](%x) {kind='reduce'}
        NEXT: %two: f32[] = constant()
        NOT: %a: f32[4,8] = fused
    """)


def test_fusion_joins_independent_loops_over_one_domain():
    check_pass(fuse, """
graph g
  input %x: f32[4,8]
  %a: f32[4,8] = exp(%x)
  %b: f32[4,8] = tanh(%x)
  %c: f32[4,8] = add(%a, %b)
  output y = %c
""", """
        %c: f32[4,8] = fused[tanh, exp, add](%x) {kind='loop'}
    """)


def test_fusion_sinks_a_one_hot_into_the_reduce_kernel_that_reads_it():
    check_pass(fuse, """
graph g
  input %x: f32[4,8]
  input %labels: i64[4]
  %i: i64[1,8] = iota() {axis=1, dtype='i64', shape=(1, 8)}
  %l: i64[4,1] = reshape(%labels) {shape=(4, 1)}
  %eq: bool[4,8] = equal(%l, %i)
  %oh: f32[4,8] = cast(%eq) {to='f32'}
  %p: f32[4,8] = mul(%x, %oh)
  %s: f32[4] = sum(%p) {axes=(1,), keepdims=False}
  output y = %s
""", """
        %i: i64[1,8] = iota()
        NEXT: %s: f32[4] = fused[reshape, equal, cast, mul, sum](%labels, %i, %x) {kind='reduce'}
        NOT: %oh: f32[4,8] = fused
    """)


def test_fusion_evaluates_the_log_of_a_sum_in_the_reduce_kernel():
    check_pass(fuse, """
graph g
  input %x: f32[4,8]
  %e: f32[4,8] = exp(%x)
  %s: f32[4,1] = sum(%e) {axes=(1,), keepdims=True}
  %l: f32[4,1] = log(%s)
  output y = %l
""", """
        %l: f32[4,1] = fused[exp, sum, log](%x) {kind='reduce'}
    """)


# --- schedule ----------------------------------------------------------------------------------

def test_schedule_puts_an_update_after_every_other_reader_of_its_target():
    check_pass(schedule, """
graph step
  input %x: f32[4]
  param %w: f32[4]
  %u: f32[4] = fused[sub](%w, %x) {kind='loop'}
      %u: f32[4] = sub(%w, %x)
  %r: f32[4] = fused[mul](%w, %x) {kind='loop'}
      %r: f32[4] = mul(%w, %x)
  output y = %r
  update %w = %u
""", """
        %r: f32[4] = fused[mul](%w, %x)
        %u: f32[4] = fused[sub](%w, %x)
    """)


def test_schedule_consumes_a_large_value_before_making_the_next():
    out = check_pass(schedule, """
graph g
  input %x: f32[256]
  %a: f32[256] = fused[exp](%x) {kind='loop'}
      %a: f32[256] = exp(%x)
  %b: f32[256] = fused[tanh](%x) {kind='loop'}
      %b: f32[256] = tanh(%x)
  %sa: f32[] = fused[sum](%a) {kind='reduce'}
      %sa: f32[] = sum(%a) {axes=(0,), keepdims=False}
  %sb: f32[] = fused[sum](%b) {kind='reduce'}
      %sb: f32[] = sum(%b) {axes=(0,), keepdims=False}
  %t: f32[] = fused[add](%sa, %sb) {kind='loop'}
      %t: f32[] = add(%sa, %sb)
  output y = %t
""", """
        %a: f32[256] = fused[exp](%x)
        %sa: f32[] = fused[sum](%a)
        %b: f32[256] = fused[tanh](%x)
        %sb: f32[] = fused[sum](%b)
        %t: f32[] = fused[add](%sa, %sb)
    """)
    feeds = {"x": np.linspace(-1, 1, 256, dtype=np.float32)}
    np.testing.assert_allclose(gc.interpret(out, feeds)["y"],
                               np.exp(feeds["x"]).sum() + np.tanh(feeds["x"]).sum(), rtol=1e-5)


def test_schedule_keeps_an_order_that_is_already_best():
    text = """graph g
  input %x: f32[4]
  %a: f32[4] = fused[exp](%x) {kind='loop'}
      %a: f32[4] = exp(%x)
  %b: f32[4] = fused[tanh](%a) {kind='loop'}
      %b: f32[4] = tanh(%a)
  output y = %b
"""
    assert schedule(gc.parse(text)).to_text() == text
