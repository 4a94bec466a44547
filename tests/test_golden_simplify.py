"""Golden text-IR tests of simplify: every pattern, both operand orders of the commutative ones.

Input: graphs written as text IR (parsed) and the simplify pass. Output: pass/fail of the
expected lines (tests/golden.py's `check_pass`): the identities go, and the cases a pattern must
leave alone (another constant, another operand order of a non-commutative op, a replacement of
another type) stay.
"""
import pytest
from graphc.passes.simplify import simplify

from tests.golden import check_pass

SIMPLIFY_INPUTS = """
graph g
  input %x: f32[4]
  input %s: f32[]
  input %m: f32[2,3]
  %zero: f32[] = constant() {dtype='f32', shape=(), value=(0.0,)}
  %one: f32[] = constant() {dtype='f32', shape=(), value=(1.0,)}
  %two: f32[] = constant() {dtype='f32', shape=(), value=(2.0,)}
  %ones: f32[4] = constant() {dtype='f32', shape=(4,), value=(1.0, 1.0, 1.0, 1.0)}
  %zeros: f32[4] = constant() {dtype='f32', shape=(4,), value=(0.0, 0.0, 0.0, 0.0)}
  %mixed: f32[4] = constant() {dtype='f32', shape=(4,), value=(1.0, 2.0, 1.0, 1.0)}
"""

# (the nodes after SIMPLIFY_INPUTS, computing %y) -> simplify gives `output y = %x`
REMOVED = {
    "x*1": "%y: f32[4] = mul(%x, %one)",
    "1*x": "%y: f32[4] = mul(%one, %x)",
    "x*ones": "%y: f32[4] = mul(%x, %ones)",
    "ones*x": "%y: f32[4] = mul(%ones, %x)",
    "x/1": "%y: f32[4] = div(%x, %one)",
    "x+0": "%y: f32[4] = add(%x, %zero)",
    "0+x": "%y: f32[4] = add(%zero, %x)",
    "x+zeros": "%y: f32[4] = add(%x, %zeros)",
    "zeros+x": "%y: f32[4] = add(%zeros, %x)",
    "x-0": "%y: f32[4] = sub(%x, %zero)",
    "neg(neg(x))": "%n: f32[4] = neg(%x)\n  %y: f32[4] = neg(%n)",
    "broadcast_to(x) to its own shape": "%y: f32[4] = broadcast_to(%x) {shape=(4,)}",
    "reshape(x) to its own shape": "%y: f32[4] = reshape(%x) {shape=(4,)}",
    "(x+0)*1, nested": "%a: f32[4] = add(%zero, %x)\n  %y: f32[4] = mul(%a, %one)",
    "x*(2-1), folded then matched": "%c: f32[] = sub(%two, %one)\n  %y: f32[4] = mul(%c, %x)",
}


@pytest.mark.parametrize("nodes", REMOVED.values(), ids=REMOVED.keys())
def test_simplify_pattern_removes_the_identity(nodes):
    out = check_pass(simplify, f"{SIMPLIFY_INPUTS}  {nodes}\n  output y = %y\n", """
        output y = %x
    """)
    assert out.nodes == ()


# (the nodes computing %y, the line simplify must keep)
KEPT = {
    "x*2": ("%y: f32[4] = mul(%x, %two)", "%y: f32[4] = mul(%x, %two)"),
    "2*x": ("%y: f32[4] = mul(%two, %x)", "%y: f32[4] = mul(%two, %x)"),
    "x*mixed (not all ones)": ("%y: f32[4] = mul(%x, %mixed)", "mul(%x, %mixed)"),
    "1/x (div does not commute)": ("%y: f32[4] = div(%one, %x)", "div(%one, %x)"),
    "0-x (sub does not commute)": ("%y: f32[4] = sub(%zero, %x)", "sub(%zero, %x)"),
    "x+1": ("%y: f32[4] = add(%x, %one)", "add(%x, %one)"),
    "s*ones broadcasts s": ("%y: f32[4] = mul(%s, %ones)", "%y: f32[4] = mul(%s, %ones)"),
    "ones*s broadcasts s": ("%y: f32[4] = mul(%ones, %s)", "%y: f32[4] = mul(%ones, %s)"),
    "s+zeros broadcasts s": ("%y: f32[4] = add(%s, %zeros)", "add(%s, %zeros)"),
    "zeros+s broadcasts s": ("%y: f32[4] = add(%zeros, %s)", "add(%zeros, %s)"),
    "s/ones broadcasts s": ("%y: f32[4] = div(%s, %ones)", "div(%s, %ones)"),
    "s-zeros broadcasts s": ("%y: f32[4] = sub(%s, %zeros)", "sub(%s, %zeros)"),
    "a single neg": ("%y: f32[4] = neg(%x)", "%y: f32[4] = neg(%x)"),
    "broadcast_to a new shape": ("%y: f32[4] = broadcast_to(%s) {shape=(4,)}",
                                 "broadcast_to(%s) {shape=(4,)}"),
    "reshape to a new shape": ("%y: f32[6] = reshape(%m) {shape=(6,)}",
                               "reshape(%m) {shape=(6,)}"),
    "transpose that permutes": ("%y: f32[3,2] = transpose(%m) {perm=(1, 0)}",
                                "transpose(%m) {perm=(1, 0)}"),
}


@pytest.mark.parametrize(("nodes", "kept"), KEPT.values(), ids=KEPT.keys())
def test_simplify_pattern_leaves_a_non_identity_alone(nodes, kept):
    check_pass(simplify, f"{SIMPLIFY_INPUTS}  {nodes}\n  output y = %y\n", f"""
        {kept}
        output y = %y
    """)


def test_simplify_drops_an_identity_transpose():
    check_pass(simplify, """
graph g
  input %m: f32[2,3]
  %t: f32[2,3] = transpose(%m) {perm=(0, 1)}
  %y: f32[2,3] = relu(%t)
  output y = %y
""", """
        %y: f32[2,3] = relu(%m)
        NOT: transpose(
    """)


def test_simplify_keeps_a_large_constant_expression_computed():
    ones = ", ".join(["1.0"] * 17)
    check_pass(simplify, f"""
graph g
  %a: f32[17] = constant() {{dtype='f32', shape=(17,), value=({ones})}}
  %y: f32[17] = exp(%a)
  output y = %y
""", """
        %y: f32[17] = exp(%a)
    """)


def test_simplify_turns_a_transposed_product_around():
    """(A @ B)^T read by nothing else becomes B^T @ A^T; an operand that is itself a swap of
    the last two axes is used as it is (the optimizer reads a gradient in its own layout)."""
    out = check_pass(simplify, """
graph g
  input %x: f32[8,5]
  input %dy: f32[8,3]
  input %w: f32[3,5]
  %xt: f32[5,8] = transpose(%x) {perm=(1, 0)}
  %gt: f32[5,3] = matmul(%xt, %dy)
  %g: f32[3,5] = transpose(%gt) {perm=(1, 0)}
  %y: f32[3,5] = sub(%w, %g)
  output y = %y
""", """
        %v0: f32[3,8] = transpose(%dy) {perm=(1, 0)}
        NEXT: %v1: f32[3,5] = matmul(%v0, %x)
        NEXT: %y: f32[3,5] = sub(%w, %v1)
    """)
    assert [n.op for n in out.nodes] == ["transpose", "matmul", "sub"]


def test_simplify_keeps_a_transposed_product_that_is_read_twice():
    check_pass(simplify, """
graph g
  input %a: f32[2,4]
  input %b: f32[4,3]
  %p: f32[2,3] = matmul(%a, %b)
  %t: f32[3,2] = transpose(%p) {perm=(1, 0)}
  %y: f32[3,2] = relu(%t)
  output y = %y
  output p = %p
""", """
        %p: f32[2,3] = matmul(%a, %b)
        NEXT: %t: f32[3,2] = transpose(%p) {perm=(1, 0)}
    """)
