"""gc.save_onnx on convolutions and pools: forward graphs and training steps of the CNNs.

Input: the LeNet-style CNNs of models/cnn.py ("cnn", "cnn-28") and their training steps
(stopped after cse, where conv2d/max_pool are still ops, after decompose, where they are
windows + matmul/max, and after the whole pipeline, where nodes are fused), convs with
asymmetric pads, strides, dilations, groups and depthwise filters, 1-D/2-D/3-D max/average pools (ceil_mode, count_include_pad, MaxPool's Indices) and
the windows/col2im ops on their own. Output: checks that onnx.checker (full_check) passes, that
onnx's reference evaluator agrees with graphc's interpreter on every output and `update:NAME`
output, that import -> export -> import gives the same results, that an op without a rule
inside a decomposition is reported by the one up-front GraphcError, and that `graphc export`
writes the CNN and the transformer encoder.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from graphc.models import build_model
from onnx.reference import ReferenceEvaluator

import graphc as gc
from graphc import pipeline
from graphc.cli import main, make_optimizer

RTOL, ATOL = 1e-5, 1e-6


def _run_onnx(model: onnx.ModelProto, feeds) -> dict:
    values = ReferenceEvaluator(model).run(None, feeds)
    return {o.name: v for o, v in zip(model.graph.output, values)}


def _random_feeds(graph: gc.Graph, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    feeds = {}
    for i in graph.inputs_with_role("input"):
        t = i.value.type
        # i64 inputs are labels or tokens: 4 fits every model's classes and vocabulary
        feeds[i.name] = (rng.integers(0, 4, t.shape) if t.dtype == "i64"
                         else rng.standard_normal(t.shape).astype(t.np_dtype))
    return feeds


def _export_and_compare(graph: gc.Graph, tmp_path, updates: bool = False) -> onnx.ModelProto:
    """Export, check, and compare the reference evaluator and the re-imported graph with graphc,
    then export the re-imported graph again and compare the second import too."""
    path = tmp_path / f"{graph.name}.onnx"
    gc.save_onnx(graph, path)
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    feeds = _random_feeds(graph)
    want = gc.interpret(graph, feeds, updates=updates)
    by_reference = _run_onnx(model, feeds)
    imported = gc.load_onnx(path)
    again = gc.interpret(imported, feeds)
    path2 = tmp_path / f"{graph.name}.again.onnx"
    gc.save_onnx(imported, path2)
    twice = gc.interpret(gc.load_onnx(path2), feeds)
    assert list(by_reference) == list(want)
    for name in by_reference:
        np.testing.assert_allclose(by_reference[name], want[name], rtol=RTOL, atol=ATOL,
                                   err_msg=name)
        np.testing.assert_allclose(again[name], want[name], rtol=RTOL, atol=ATOL, err_msg=name)
        np.testing.assert_array_equal(twice[name], again[name], err_msg=name)
    return model


def _ops(model: onnx.ModelProto) -> set[str]:
    return {n.op_type for n in model.graph.node}


def _training_step(graph: gc.Graph, stop_after: str) -> gc.Graph:
    passes = pipeline.passes_for(train=("loss", gc.optim.SGD(lr=0.1)))
    return pipeline.run_pipeline(graph, passes, stop_after=stop_after)


# --- the CNNs of models/ ------------------------------------------------------------------
@pytest.mark.parametrize("name", ["cnn", "cnn-28"])
def test_cnn_forward_exports_as_conv_and_maxpool(tmp_path, name):
    model = _export_and_compare(build_model(name), tmp_path)
    assert {"Conv", "MaxPool"} <= _ops(model)


@pytest.mark.parametrize("stop_after", ["cse", "decompose", None])  # None: fused, scheduled
@pytest.mark.parametrize("name", ["cnn", "cnn-28"])
def test_cnn_training_step_exports_with_updates(tmp_path, name, stop_after):
    step = _training_step(build_model(name), stop_after)
    model = _export_and_compare(step, tmp_path, updates=True)
    outputs = {o.name for o in model.graph.output}
    assert {"loss", "update:conv1.weight", "update:conv2.bias"} <= outputs
    assert "Gather" in _ops(model)  # the gradients' windows/col2im
    assert ("Conv" in _ops(model)) == (stop_after == "cse")


# --- convolutions and pools with every attribute ----------------------------------------
CONVS = {
    "asymmetric-pads": {"x": (2, 3, 7, 6), "w": (4, 3, 3, 2), "strides": (2, 1),
                        "pads": (1, 0, 2, 1)},
    "dilated": {"x": (1, 2, 9, 8), "w": (3, 2, 3, 3), "dilations": (2, 3), "pads": (1, 2, 0, 1)},
    "groups": {"x": (2, 4, 6, 6), "w": (6, 2, 3, 3), "group": 2, "strides": (1, 2)},
    "depthwise": {"x": (2, 3, 5, 5), "w": (3, 1, 3, 3), "group": 3, "pads": 1, "bias": False},
}


def _conv_graph(name, x, w, bias=True, **attrs) -> gc.Graph:
    rng = np.random.default_rng(1)
    b = gc.GraphBuilder(f"conv_{name}")
    xs = b.input("x", x)
    ws = b.param("w", rng.standard_normal(w).astype(np.float32))
    bs = b.param("b", rng.standard_normal(w[0]).astype(np.float32)) if bias else None
    y = gc.conv2d(xs, ws, bs, **attrs)
    return b.build({"loss": gc.mean(y * y), "y": y})


@pytest.mark.parametrize("case", list(CONVS))
def test_conv_attributes_round_trip(tmp_path, case):
    graph = _conv_graph(case, **CONVS[case])
    assert "Conv" in _ops(_export_and_compare(graph, tmp_path))
    _export_and_compare(_training_step(graph, "cse"), tmp_path, updates=True)


POOLS = {
    "max-1d": (gc.max_pool, (2, 3, 11), {"kernel_shape": 3, "strides": 2, "pads": 1}),
    "max-2d-ceil-dilated": (gc.max_pool, (2, 2, 7, 8), {
        "kernel_shape": (2, 3), "strides": (2, 2), "pads": (1, 0, 0, 1), "dilations": (2, 1),
        "ceil_mode": True}),
    "max-3d": (gc.max_pool, (1, 2, 5, 6, 4), {"kernel_shape": 2, "strides": 2, "ceil_mode": True}),
    "avg-1d-include-pad": (gc.avg_pool, (2, 3, 10), {
        "kernel_shape": 4, "strides": 3, "pads": 2, "count_include_pad": True}),
    "avg-2d-ceil": (gc.avg_pool, (2, 2, 7, 7), {
        "kernel_shape": 3, "strides": 2, "pads": 1, "ceil_mode": True}),
    "avg-3d": (gc.avg_pool, (1, 2, 4, 5, 6), {
        "kernel_shape": (2, 3, 2), "strides": (1, 2, 2), "pads": (0, 1, 1, 1, 0, 1),
        "count_include_pad": True}),
}


def _pool_graph(name, pool, shape, attrs) -> gc.Graph:
    b = gc.GraphBuilder(f"pool_{name}")
    x = b.input("x", shape)
    scale = b.param("scale", np.linspace(0.5, 1.5, shape[1], dtype=np.float32))
    y = pool(x * gc.reshape(scale, (shape[1],) + (1,) * (len(shape) - 2)), **attrs)
    return b.build({"loss": gc.mean(y * y), "y": y})


@pytest.mark.parametrize("case", list(POOLS))
def test_pools_round_trip(tmp_path, case):
    graph = _pool_graph(case, *POOLS[case])
    want = "MaxPool" if case.startswith("max") else "AveragePool"
    assert want in _ops(_export_and_compare(graph, tmp_path))
    _export_and_compare(_training_step(graph, "cse"), tmp_path, updates=True)
    _export_and_compare(_training_step(graph, "decompose"), tmp_path, updates=True)


@pytest.mark.parametrize("storage_order", [0, 1])
def test_max_pool_and_its_indices_share_one_maxpool(tmp_path, storage_order):
    b = gc.GraphBuilder("indices")
    x = b.input("x", (2, 3, 6, 7))
    attrs = {"kernel_shape": (3, 2), "strides": (2, 2), "pads": (1, 0, 1, 1)}
    graph = b.build({"y": gc.max_pool(x, **attrs),
                     "i": gc.max_pool_indices(x, **attrs, storage_order=storage_order),
                     # not stride 1 everywhere: onnx 1.23's reference MaxPool then takes a
                     # path whose Indices are wrong (graphc's import agrees with graphc there)
                     "alone": gc.max_pool_indices(x, 2, (1, 2))})
    model = _export_and_compare(graph, tmp_path)
    pools = [n for n in model.graph.node if n.op_type == "MaxPool"]
    assert sorted(len(n.output) for n in pools) == [2, 2]


WINDOWS = [((2, 3, 9), (3,), (2,), (1, 2), (2,)),
           ((1, 2, 6, 7), (3, 2), (2, 3), (1, 0, 2, 1), (1, 2)),
           ((1, 1, 4, 5, 3), (2, 3, 2), (1, 2, 1), (0, 1, 1, 1, 0, 1), (2, 1, 1))]


@pytest.mark.parametrize("shape,kernel,strides,pads,dilations", WINDOWS)
def test_windows_and_col2im_as_gathers(tmp_path, shape, kernel, strides, pads, dilations):
    """windows (also on [N,C,*S,*K] input, as in second-order gradients) and col2im."""
    b = gc.GraphBuilder("windows")
    x = b.input("x", shape)
    cols = gc.windows(x, kernel, strides, pads, dilations, value=-7.0)
    back = gc.col2im(cols, shape[2:], strides, pads, dilations)
    again = gc.windows(back, kernel, strides, pads, dilations)
    graph = b.build({"cols": cols, "back": back, "again": again})
    assert _ops(_export_and_compare(graph, tmp_path)) >= {"Gather", "Pad"}


def test_every_registered_op_has_a_rule_or_a_decomposition():
    """The registry walk: every op is written by a rule or as its decomposition (dropout_mask,
    graphc's counter-based RNG, by a rule that spells the hash out in ONNX ops)."""
    from graphc.onnx.export import rule
    from graphc.ops.registry import all_ops

    missing = {name for name, op in all_ops().items() if rule(name) is None
               and not (op.kind == "composite" and op.decompose is not None)}
    assert missing == set()


# --- errors -------------------------------------------------------------------------------
def test_ops_without_rules_inside_decompositions_are_listed_up_front():
    from graphc.onnx.export import RULES

    saved = {op: RULES.pop(op) for op in ("conv2d", "max_pool", "windows")}
    try:
        with pytest.raises(gc.GraphcError) as err:
            gc.save_onnx(build_model("cnn"), "unused.onnx")
    finally:
        RULES.update(saved)
    message = str(err.value)
    # the two convs' windows (the 2x2 pools tile their inputs: reshape + transpose, no windows)
    assert "2 node(s) have no ONNX export rule" in message
    assert message.count("windows at models/cnn.py") == 2


# --- graphc export: the models of issue 4 item 7 -----------------------------------------
@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("name", ["cnn", "transformer"])
def test_graphc_export_writes_the_models(tmp_path, capsys, name, train):
    path = tmp_path / f"{name}.onnx"
    assert main(["export", name, str(path), *(["--train"] if train else [])]) == 0
    assert "wrote" in capsys.readouterr().out
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    graph = build_model(name)
    if train:  # what the CLI's defaults make: SGD lr 0.1 momentum 0.9, stopped after cse
        optimizer = make_optimizer("sgd", None, 0.9, 0.0)
        graph = pipeline.run_pipeline(graph, pipeline.passes_for(train=("loss", optimizer)),
                                      stop_after="cse")
    feeds = _random_feeds(graph)
    want = gc.interpret(graph, feeds, updates=train)
    by_reference = _run_onnx(model, feeds)
    again = gc.interpret(gc.load_onnx(path), feeds)
    assert set(by_reference) == set(want)
    for key in want:
        np.testing.assert_allclose(by_reference[key], want[key], rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(again[key], want[key], rtol=RTOL, atol=ATOL)


def test_graphc_export_reports_a_bad_pass(tmp_path, capsys):
    assert main(["export", "cnn", str(tmp_path / "x.onnx"), "--train",
                 "--stop-after", "nope"]) == 2
    assert "unknown pass 'nope'" in capsys.readouterr().err
