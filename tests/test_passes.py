"""Golden tests: each shows input IR, the pass, and the lines that matter."""
import re

import numpy as np
from graphc.passes.decompose import decompose
from graphc.passes.simplify import cse, dce, simplify

import graphc as gc
from graphc.pipeline import passes_for, run_pipeline, to_machine_code
from tests.golden import check_lines


def test_simplify_removes_identities_and_folds_constants():
    g = gc.parse("""
graph g
  input %x: f32[4]
  %one: f32[] = constant() {dtype='f32', shape=(), value=(1.0,)}
  %two: f32[] = constant() {dtype='f32', shape=(), value=(2.0,)}
  %three: f32[] = add(%one, %two)
  %a: f32[4] = mul(%x, %one)
  %b: f32[4] = mul(%a, %three)
  %c: f32[4] = neg(%b)
  %d: f32[4] = neg(%c)
  output y = %d
""")
    out = simplify(g).to_text()
    check_lines(out, """
        %v0: f32[] = constant() {dtype='f32', shape=(), value=(3.0,)}
        %b: f32[4] = mul(%x, %v0)
        output y = %b
        NOT: neg(
        NOT: add(
    """)


def test_cse_merges_identical_nodes_and_dce_drops_the_rest():
    g = gc.parse("""
graph g
  input %x: f32[4]
  %a: f32[4] = exp(%x)
  %b: f32[4] = exp(%x)
  %c: f32[4] = add(%a, %b)
  %unused: f32[4] = tanh(%x)
  output y = %c
""")
    out = dce(cse(g)).to_text()
    check_lines(out, """
        %a: f32[4] = exp(%x)
        %c: f32[4] = add(%a, %a)
        NOT: %b: f32[4]
        NOT: tanh(
    """)


def test_decompose_softmax_cross_entropy_into_primitives():
    g = gc.parse("""
graph g
  input %logits: f32[8,10]
  input %labels: i64[8]
  %loss: f32[] = softmax_cross_entropy(%logits, %labels)  # model.py:3
  output loss = %loss
""")
    out = decompose(g)
    check_lines(out.to_text(), """
        max(%logits) {axes=(1,), keepdims=True}
        iota() {axis=1, dtype='i64', shape=(1, 10)}
        NOT: softmax_cross_entropy(
        NOT: log_softmax(
    """)
    text = out.to_text()
    assert "exp(" in text and "log(" in text and "equal(" in text
    assert all(n.loc == "model.py:3" for n in out.nodes)
    feeds = {"logits": np.random.default_rng(0).standard_normal((8, 10)).astype(np.float32),
             "labels": np.arange(8) % 10}
    np.testing.assert_allclose(gc.interpret(out, feeds)["loss"], gc.interpret(g, feeds)["loss"],
                               rtol=1e-6)


def test_autodiff_on_text_ir_builds_the_bprop_graph():
    g = gc.parse("""
graph g
  input %x: f32[3]
  %y: f32[3] = tanh(%x)  # f.py:1
  %s: f32[] = sum(%y) {axes=(0,), keepdims=False}  # f.py:2
  output s = %s
""")
    out = simplify(gc.grad(g, "s", ["x"]))
    check_lines(out.to_text(), """
        %y: f32[3] = tanh(%x)
        mul(%y, %y)
        output x =
    """)
    assert {n.loc for n in out.nodes} <= {"f.py:1", "f.py:2"}


def test_autodiff_sums_fan_out_and_unbroadcasts():
    b = gc.GraphBuilder("fan")
    x = b.input("x", (2, 3))
    bias = b.param("bias", np.zeros(3, np.float32))
    h = x + bias
    loss = gc.sum(h * h + h)
    g = gc.grad(b.build(outputs={"loss": loss}), "loss", ["bias"])
    check_lines(g.to_text(), """
        sum(%v
        reshape(%v
        output bias =
    """)
    xv = np.arange(6, dtype=np.float32).reshape(2, 3)
    expected = (2 * xv + 1).sum(0)
    np.testing.assert_allclose(gc.interpret(g, {"x": xv})["bias"], expected)


TINY_STEP = """
graph tiny
  input %x: f32[4,3]
  param %w: f32[3,2]
  %h: f32[4,2] = matmul(%x, %w)
  %t: f32[4,2] = tanh(%h)
  %loss: f32[] = mean(%t) {axes=(0, 1), keepdims=False}
  output loss = %loss
"""


def _tiny_step():
    g = gc.parse(TINY_STEP)
    return g.replace(initializers={"w": np.ones((3, 2), np.float32)})


def test_memory_plan_places_every_buffer_and_reports_its_bytes():
    """The plan as `--print-after plan` shows it, for the SGD step of a tanh layer, scheduled as
    k1 = matmul, tanh and tanh's gradient; k2 = mean; k3 = the weight's gradient and update
    (in place). Offsets after a GEMM's scratch depend on the host's tiles, so are not shown."""
    train = ("loss", gc.optim.SGD(lr=0.1))
    planned = run_pipeline(_tiny_step(), passes_for(train=train, through="plan"))
    text = planned.to_text()
    check_lines(text, """
        plan tiny: 3 kernels
        naive_bytes 284  planned_bytes
        %x: f32[4,3]  io[0]  live in..3
        %w: f32[3,2]  param[0]  live in..3
        const @0 32 B  constant
        %t: f32[4,2]  arena @
        scratch of k1  arena @
        %loss: f32[]  io[1] (output loss)  live 2..end
        %v16: f32[3,2]  param[0] (in place of w)  live 3..end
        NOT: copy at end
    """)
    assert re.search(r"%t: f32\[4,2\]  arena @\d+ 32 B  live 1\.\.2$", text, re.MULTILINE)
    stats = planned.plan.stats
    assert (f"naive_bytes {stats['naive_bytes']:,}  planned_bytes {stats['planned_bytes']:,}  "
            f"lower_bound_bytes {stats['lower_bound_bytes']:,}") in text


def test_pipeline_runs_every_stage_to_machine_code_and_verifies_between_graph_passes():
    stages = passes_for(through="jit")
    assert [n for n, _ in stages][-4:] == ["schedule", "plan", "lower", "jit"]
    assert to_machine_code(passes_for()) == stages
    g = _tiny_step()
    exe = run_pipeline(g, stages, verify_each=True)
    x = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    np.testing.assert_allclose(exe.run({"x": x})["loss"], gc.interpret(g, {"x": x})["loss"],
                               rtol=1e-5)
    lowered = run_pipeline(g, stages, stop_after="lower")
    assert lowered.to_text().count("; ModuleID") == len(lowered.build()) >= 2


def test_simplify_keeps_every_value_while_removing_the_identities():
    g = gc.parse("""
graph g
  input %x: f32[2,3]
  %zero: f32[] = constant() {dtype='f32', shape=(), value=(0.0,)}
  %one: f32[] = constant() {dtype='f32', shape=(), value=(1.0,)}
  %a: f32[2,3] = mul(%one, %x)
  %b: f32[2,3] = add(%zero, %a)
  %c: f32[2,3] = div(%b, %one)
  %d: f32[2,3] = sub(%c, %zero)
  %t: f32[2,3] = transpose(%d) {perm=(0, 1)}
  %r: f32[2,3] = reshape(%t) {shape=(2, 3)}
  %e: f32[2,3] = exp(%r)
  %n: f32[2,3] = neg(%e)
  %nn: f32[2,3] = neg(%n)
  %s: f32[3] = sum(%nn) {axes=(0,), keepdims=False}
  output y = %s
""")
    out = simplify(g)
    assert [n.op for n in out.nodes] == ["exp", "sum"]
    xv = np.random.default_rng(1).standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_array_equal(gc.interpret(out, {"x": xv})["y"],
                                  gc.interpret(g, {"x": xv})["y"])
