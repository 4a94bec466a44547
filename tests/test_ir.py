"""IR: types, builder errors with locations, printer/parser round trip, verifier."""
import numpy as np
import pytest

import graphc as gc
from graphc.ir import Graph, Node, Value
from graphc.types import TensorType


def small_mlp(batch=4, features=3, seed=0):
    rng = np.random.default_rng(seed)
    b = gc.GraphBuilder("mlp")
    x = b.input("x", (batch, features))
    y = b.input("y", (batch,), "i64")
    logits = gc.layers.mlp(x, [5, 2], rng)
    loss = gc.softmax_cross_entropy(logits, y) + 0.1 * gc.sum(gc.tanh(logits) ** 2)
    return b.build(outputs={"loss": loss, "logits": logits})


def test_tensor_type_prints_and_parses():
    t = TensorType((128, 784), "f32")
    assert str(t) == "f32[128,784]"
    assert TensorType.parse(str(t)) == t
    assert TensorType.parse("i64[]") == TensorType((), "i64")
    with pytest.raises(gc.GraphcError):
        TensorType.parse("f33[1,2]")


def test_round_trip_is_identical():
    text = small_mlp().to_text()
    assert gc.parse(text).to_text() == text


def test_round_trip_of_training_graph_with_updates_and_names_with_dots():
    from graphc.pipeline import passes_for, run_pipeline

    g = small_mlp()
    t = run_pipeline(g, passes_for(train=("loss", gc.optim.Adam(lr=0.01))))
    text = t.to_text()
    assert "update %fc1.weight = " in text and "state %fc1.weight.adam_m: f32[3,5]" in text
    assert gc.parse(text).to_text() == text


def test_every_node_has_the_users_location():
    g = small_mlp()
    assert all(n.loc.startswith("tests/test_ir.py:") or "test_ir.py:" in n.loc for n in g.nodes)


def test_shape_error_names_file_line_and_shows_node():
    b = gc.GraphBuilder("bad")
    x = b.input("x", (4, 3))
    w = b.param("w", np.zeros((5, 2), np.float32))
    with pytest.raises(gc.ShapeError) as err:
        x @ w  # the line reported
    msg = str(err.value)
    assert "test_ir.py:" in msg and "inner dimensions" in msg
    assert "matmul(%x: f32[4,3], %w: f32[5,2])" in msg


def test_broadcast_error_and_dtype_mismatch():
    b = gc.GraphBuilder("bad")
    x, z = b.input("x", (4, 3)), b.input("z", (4, 2))
    with pytest.raises(gc.ShapeError, match="do not broadcast"):
        x + z
    i = b.input("i", (4, 3), "i64")
    with pytest.raises(gc.ShapeError, match="dtypes differ"):
        x + i


def test_python_scalars_take_the_tensor_dtype():
    b = gc.GraphBuilder("s")
    x = b.input("x", (2,), "f64")
    y = 2 * x + 1.5
    assert y.dtype == "f64"
    out = gc.interpret(b.build(outputs={"y": y}), {"x": np.array([1.0, 2.0])})["y"]
    np.testing.assert_array_equal(out, [3.5, 5.5])


def test_duplicate_names_are_rejected():
    b = gc.GraphBuilder("dup")
    b.input("x", (1,))
    with pytest.raises(gc.GraphcError, match="already used"):
        b.input("x", (1,))


@pytest.mark.parametrize("text, message", [
    ("input %x: f32[2]\n", "g.txt: missing `graph NAME`"),
    ("graph g\n  input %x: f32[2]\n  %y: f32[2] = exp(%z)\n", "g.txt:3: unknown value '%z'"),
    ("graph g\n  input %x: f32[2]\n  %y: f32[2] = frobnicate(%x)\n", "g.txt:3: unknown op"),
    ("graph g\n  input %x: f32[2]\n  what is this\n", "g.txt:3: cannot parse line"),
    ("graph g\n  input %x: f33[2]\n", "g.txt:2: unsupported dtype 'f33'"),
    ("graph g\n\n  // a comment\n  input %x: f32[2]\n  %y: f32[] = sum(%x) {axes=(0,), bogus=1}\n",
     "g.txt:5: sum: unknown attribute"),
    ("graph g\n  input %x: f32[2]\n  %y: f32[2] = exp(%x)\n  input %z: f32[2]\n",
     "g.txt:4: inputs must come before the nodes"),
    ("graph g\n  input %x: f32[2]\n  output y = %y\n", "g.txt:3: unknown value '%y'"),
])
def test_parse_errors_name_the_line(text, message):
    with pytest.raises(gc.ParseError) as err:
        gc.parse(text, source="g.txt")
    assert str(err.value).startswith(message)


@pytest.mark.parametrize("text, message", [
    ("graph g\n  input %x: f32[2]\n  %y: f32[3] = exp(%x)  # model.py:7\n",
     "g.txt:3: model.py:7: exp: output types ['f32[3]'] differ from the shape rule's"),
    ("graph g\n  input %x: f32[2]\n  %y: f32[2] = exp(%x)\n  %z: f32[2] = add(%y)\n",
     "g.txt:4: add takes 2 inputs, has 1"),
    ("graph g\n  input %x: f32[2]\n  input %x: f32[2]\n", "g.txt:3: input %x is defined twice"),
    (("graph g\n  input %x: f32[2]\n  param %w: f32[3]\n  %y: f32[2] = exp(%x)\n"
      "  output y = %y\n  update %w = %y\n"), "g.txt:6: update of %w: %y must be defined"),
    ("graph g\n  input %x: f32[2]\n  output y = %x\n  update %x = %x\n",
     "g.txt:4: update of %x: not a param or state"),
])
def test_verifier_errors_of_parsed_text_name_the_line(text, message):
    with pytest.raises(gc.VerifyError) as err:
        gc.parse(text, source="g.txt")
    assert str(err.value).startswith(message)


def test_verifier_errors_say_which_part_of_the_graph():
    x = Value("x", TensorType((2,), "f32"))
    bad = Node("exp", (x,), (Value("y", TensorType((3,), "f32")),), {}, "a.py:1")
    with pytest.raises(gc.VerifyError) as err:
        gc.verify(Graph("g", (gc.GraphInput(x, "input"),), (bad,), {}))
    assert err.value.subject is bad
    with pytest.raises(gc.VerifyError) as err:
        gc.verify(Graph("g", (gc.GraphInput(x, "input"),), (), {}, {"x": x}))
    assert err.value.subject == ("update", "x")


def test_printing_reads_no_graphc_module_at_run_time():
    """ir imports the printer (Graph.to_text); the printer imports nothing of graphc back."""
    import ast
    import pathlib

    from graphc.text import printer

    tree = ast.parse(pathlib.Path(printer.__file__).read_text())
    runtime_imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert all("graphc" not in ast.unparse(n) for n in runtime_imports)
    assert str(small_mlp()) == small_mlp().to_text() == printer.print_graph(small_mlp())


def test_verifier_rejects_use_before_definition():
    x = Value("x", TensorType((2,), "f32"))
    y = Value("y", TensorType((2,), "f32"))
    z = Value("z", TensorType((2,), "f32"))
    nodes = (Node("exp", (y,), (z,), {}, "a.py:1"), Node("exp", (x,), (y,), {}, "a.py:2"))
    g = Graph("g", (gc.GraphInput(x, "input"),), nodes, {"z": z})
    with pytest.raises(gc.VerifyError, match="a.py:1: exp reads %y before it is defined"):
        gc.verify(g)


def test_verifier_rejects_bad_update():
    b = gc.GraphBuilder("u")
    x = b.input("x", (2,))
    with pytest.raises(gc.VerifyError, match="not a param or state"):
        b.build(outputs={"y": x * 2}, updates={"x": x * 2})
