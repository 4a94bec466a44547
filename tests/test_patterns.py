"""The pattern helper and the rewrite drivers, on small built graphs.

Input: patterns (graphc.passes.patterns) matched against nodes a GraphBuilder made, and rules run
by graphc.passes.rewrite. Output: pass/fail of what binds, what matches in which operand order,
which replacement a PatternTable applies, and when the fixed-point driver stops.
"""
import numpy as np
import pytest
from graphc.passes.patterns import COMMUTATIVE, Pat, PatternTable, match_op
from graphc.passes.rewrite import rewrite, rewrite_to_fixed_point

import graphc as gc
from graphc.builder import GraphBuilder, Tensor
from graphc.errors import GraphcError
from graphc.ops.registry import get_op

x, y = Pat.var("x"), Pat.var("y")


def _bindings(pat: Pat, b: GraphBuilder) -> list[dict[str, str]]:
    """Every match of `pat` on the last node `b` built, as {variable: value name}."""
    node = b.nodes[-1]
    inputs = [Tensor(b, v) for v in node.inputs]
    return [{k: t.name for k, t in bound.items()}
            for bound in match_op(pat, node, inputs, b.producer, {})]


def _builder() -> tuple[GraphBuilder, Tensor, Tensor]:
    b = GraphBuilder("g")
    return b, b.input("a", (4,)), b.input("c", (4,))


def test_operators_build_op_patterns_and_numbers_become_constants():
    assert repr(x * 1) == "Pat('mul', Pat.var('x'), Pat.const(1))"
    assert repr(1 - x) == "Pat('sub', Pat.const(1), Pat.var('x'))"
    assert repr(-(x / y)) == "Pat('neg', Pat('div', Pat.var('x'), Pat.var('y')))"
    assert repr(Pat("exp", x + 0)) == "Pat('exp', Pat('add', Pat.var('x'), Pat.const(0)))"


def test_a_constant_pattern_matches_only_a_constant_whose_elements_all_equal_the_value():
    b, a, _ = _builder()
    a * b.lift(np.full(4, 2.0, np.float32))
    assert _bindings(x * 2, b) == [{"x": "a"}]
    assert _bindings(x * 3, b) == []
    a * b.lift(np.array([2.0, 2.0, 1.0, 2.0], np.float32))
    assert _bindings(x * 2, b) == []


def test_a_constant_pattern_does_not_match_a_computed_tensor():
    b, a, c = _builder()
    a * c
    assert _bindings(x * 1, b) == []
    assert _bindings(x * y, b) == [{"x": "a", "y": "c"}, {"x": "c", "y": "a"}]


def test_a_commutative_op_matches_its_operands_in_either_order():
    b, a, _ = _builder()
    2.0 * a
    assert _bindings(x * 2, b) == [{"x": "a"}]
    assert _bindings(2 * x, b) == [{"x": "a"}]


def test_a_non_commutative_op_matches_its_operands_in_their_order_only():
    b, a, _ = _builder()
    b.apply("sub", [b.lift(np.float32(2)), a])
    assert _bindings(2 - x, b) == [{"x": "a"}]
    assert _bindings(x - 2, b) == []


def test_a_variable_used_twice_binds_one_value():
    b, a, c = _builder()
    a + a
    assert _bindings(x + x, b) == [{"x": "a"}]
    a + c
    assert _bindings(x + x, b) == []


def test_nested_patterns_match_through_producers():
    b, a, c = _builder()
    inner = -(a + c)
    gc.neg(inner)
    assert _bindings(Pat("neg", -(x + y)), b) == [{"x": "a", "y": "c"}, {"x": "c", "y": "a"}]
    assert _bindings(Pat("neg", -(x * y)), b) == []


def test_an_attribute_test_decides_an_op_pattern():
    b, _, _ = _builder()
    m = b.input("m", (2, 3))
    b.apply("transpose", [m], perm=(1, 0))
    assert _bindings(Pat("transpose", x, attrs=lambda at: at["perm"] == (1, 0)), b) == [{"x": "m"}]
    assert _bindings(Pat("transpose", x, attrs=lambda at: at["perm"] == (0, 1)), b) == []


def test_commutative_ops_are_registered_binary_ops_with_symmetric_values():
    rng = np.random.default_rng(0)
    p, q = rng.standard_normal(8).astype(np.float32), rng.standard_normal(8).astype(np.float32)
    p[0] = q[0]  # a tie
    for name in COMMUTATIVE:
        op = get_op(name)
        assert op.arity == 2, name
        np.testing.assert_array_equal(op.reference(p, q), op.reference(q, p), err_msg=name)


def _rewrite_last(table: PatternTable, b: GraphBuilder):
    node = b.nodes[-1]
    return table(b, node, [Tensor(b, v) for v in node.inputs])


def test_a_table_applies_the_first_rule_that_answers_with_the_node_type():
    b, a, _ = _builder()
    s = b.input("s", ())
    s * b.lift(np.ones(4, np.float32))  # f32[4]: replacing it by s (f32[]) would change its type
    table = PatternTable([(x * 1, lambda x: x),
                          (x * y, lambda x, y: None),
                          (x * y, lambda x, y: y if x.name == "s" else None)])
    assert _rewrite_last(table, b).name == b.nodes[-2].output.name
    a * b.lift(np.float32(1))
    assert _rewrite_last(table, b).name == "a"


def test_a_table_answers_none_when_no_rule_matches():
    b, a, c = _builder()
    a - c
    assert _rewrite_last(PatternTable([(x + 0, lambda x: x), (x - 0, lambda x: x)]), b) is None


def test_a_table_rule_must_be_an_op_pattern():
    with pytest.raises(ValueError, match="op pattern"):
        PatternTable([(Pat.var("x"), lambda x: x)])
    with pytest.raises(ValueError, match="op pattern"):
        PatternTable([(Pat.const(0), lambda: None)])


def _graph_of(build) -> gc.Graph:
    b = GraphBuilder("g")
    return b.build(outputs={"y": build(b.input("a", (4,)))})


def test_the_fixed_point_driver_sweeps_until_no_rule_answers():
    # the nodes a replacement builds are matched only in the next sweep: exp(a) becomes
    # neg(neg(a)) in the first, which becomes a in the second; the third answers for nothing
    table = PatternTable([(Pat("exp", x), lambda x: gc.neg(-x)), (Pat("neg", -x), lambda x: x)])
    graph = _graph_of(gc.exp)
    assert rewrite(graph, table).outputs["y"].name != "a"
    out = rewrite_to_fixed_point(graph, table)
    assert out.outputs["y"].name == "a"
    assert [n.op for n in out.nodes] == ["neg"]  # left unread for dce


def test_the_fixed_point_driver_reports_rules_that_rewrite_in_a_cycle():
    table = PatternTable([(Pat("exp", x), lambda x: gc.tanh(x)),
                          (Pat("tanh", x), lambda x: gc.exp(x))])
    with pytest.raises(GraphcError, match="fixed point"):
        rewrite_to_fixed_point(_graph_of(gc.exp), table)
