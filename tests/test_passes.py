"""Golden tests: each shows input IR, the pass, and the lines that matter."""
import numpy as np
from graphc.passes.decompose import decompose
from graphc.passes.simplify import cse, dce, simplify

import graphc as gc
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
