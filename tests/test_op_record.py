"""Adding an op touches one file: a record registered from a temporary module reaches every driver.

Input: an ONNX unary activation that graphc has no op for (`softsign`, or `mish` should softsign
become one; ONNX "Softsign"/"Mish", which graphc/onnx/ops.py imports as compositions of other
ops), an elementwise op built from existing scalar emitter methods, registered by one module
written to tmp_path; while it is registered the ONNX composition is set aside, so the record is
what imports the ONNX op. Output: pass/fail that the op API (`gc.<op>`, `F.<op>`), the
interpreter, the compiled code, autodiff, ONNX export and ONNX import all see it, and that the
registry-driven completeness test asks for its cases. The op is unregistered afterwards, so no
other test sees it.
"""
from __future__ import annotations

import importlib.util
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import graphc as gc
from graphc.onnx.export import to_onnx
from graphc.onnx.table import FUNCTIONS, supported
from graphc.ops import api as F
from graphc.ops.registry import all_ops, get_op, unregister

# (op name, ONNX name, NumPy reference, and the record's reference, scalar body and bprop as the
# temporary module spells them: expressions in x (and e, the scalar emitter; y and g, the
# result and its gradient))
CANDIDATES = [
    ("softsign", "Softsign", lambda x: x / (1 + np.abs(x)),
     "x / (1 + np.abs(x))", "e.div(x, e.add(e.const(1, x), e.max(x, e.neg(x))))",
     "[g / ((1 + F.abs(x)) * (1 + F.abs(x)))]"),
    ("mish", "Mish", lambda x: x * np.tanh(np.log1p(np.exp(x))),
     "x * np.tanh(np.log1p(np.exp(x)))",
     "e.mul(x, e.tanh(e.log(e.add(e.const(1, x), e.exp(x)))))",
     "[g * (F.tanh(F.softplus(x)) + x * (1 - F.tanh(F.softplus(x)) ** 2) * F.sigmoid(x))]"),
]


def _claimed(onnx_op: str) -> bool:
    """A graphc op's record names the ONNX op (an ONNX composition in FUNCTIONS does not)."""
    return any(op.onnx == onnx_op for op in all_ops().values())


NEW = next((c for c in CANDIDATES if c[0] not in all_ops() and not _claimed(c[1])), None)
assert NEW is not None, "graphc has softsign and mish: pick another op not yet in graphc"
OP, ONNX_OP, REFERENCE, REFERENCE_SRC, SCALAR_SRC, BPROP_SRC = NEW

MODULE = f'''
"""A temporary op family: {OP}."""
import numpy as np
from graphc.ops import api as F
from graphc.ops.elementwise import _ew


def _reference(x):
    return {REFERENCE_SRC}


def _scalar(e, x):
    return {SCALAR_SRC}


def _bprop(x, y, g):
    return {BPROP_SRC}


_ew("{OP}", "the {ONNX_OP} activation", _reference, _scalar, _bprop, onnx="{ONNX_OP}")
'''


@pytest.fixture
def new_op(tmp_path, monkeypatch):
    # the record, not graphc/onnx/ops.py's composition, imports the ONNX op meanwhile
    monkeypatch.delitem(FUNCTIONS, ONNX_OP, raising=False)
    path = tmp_path / "new_family.py"
    path.write_text(MODULE)
    spec = importlib.util.spec_from_file_location("new_family", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        yield path
    finally:
        unregister(OP)
        sys.modules.pop("new_family", None)


def _graph():
    b = gc.GraphBuilder(OP)
    x = b.input("x", (3, 5))
    fn = getattr(gc, OP)
    return b.build({"y": fn(x), "loss": gc.sum(fn(x) * x)})


def test_one_file_adds_the_op(new_op):
    modules = {get_op(OP).scalar.__module__, get_op(OP).bprop.__module__}
    assert modules == {"new_family"}  # the record, its scalar body and its bprop: one file
    assert OP in all_ops()
    assert getattr(gc, OP) is getattr(F, OP) and OP in dir(gc) and OP in dir(F)


def test_interpreter_compiled_and_gradient_see_it(new_op):
    x = np.random.default_rng(0).uniform(-3, 3, (3, 5)).astype(np.float32)
    graph = _graph()
    want = REFERENCE(x)
    np.testing.assert_allclose(gc.interpret(graph, {"x": x})["y"], want, rtol=1e-6)
    np.testing.assert_allclose(gc.compile(graph).run({"x": x})["y"], want, rtol=1e-6)
    b = gc.GraphBuilder("param")
    w = b.param("w", x.astype(np.float64))
    g = b.build({"loss": gc.sum(getattr(gc, OP)(w))})
    assert gc.check_grads(g, "loss", ["w"], {}, tol=1e-6) < 1e-6


def test_onnx_export_and_import_see_it(new_op):
    model = to_onnx(_graph())
    assert ONNX_OP in {n.op_type for n in model.graph.node}
    assert supported(ONNX_OP)
    node = helper.make_node(ONNX_OP, ["x"], ["y"])
    proto = helper.make_model(helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])]),
        opset_imports=[helper.make_opsetid("", 18)])  # Mish: opset 18
    path = new_op.parent / "new.onnx"
    onnx.save(proto, path)
    imported = gc.load_onnx(str(path))
    assert [n.op for n in imported.nodes] == [OP]


def test_generated_tests_ask_for_its_cases(new_op):
    from tests.op_cases import CASES
    from tests.test_ops import test_registry_record_is_complete

    assert OP not in CASES
    with pytest.raises(AssertionError, match=f"add cases for '{OP}'"):
        test_registry_record_is_complete(OP)


def test_unregistered_op_is_gone(new_op):
    unregister(OP)
    try:
        assert not hasattr(gc, OP) and not supported(ONNX_OP)
    finally:  # the fixture unregisters again; put it back so that succeeds
        from graphc.ops.elementwise import _ew  # noqa: F401  (the module re-registers)
        spec = importlib.util.spec_from_file_location("new_family", new_op)
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
