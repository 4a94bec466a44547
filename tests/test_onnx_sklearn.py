"""A scikit-learn MLPClassifier exported by skl2onnx imports, runs and trains in graphc.

Input: tests/data/sklearn_mlp.onnx and .npz (made by tests/data/make_sklearn_mlp.py; neither
scikit-learn nor skl2onnx is needed here). The model ends in ai.onnx.ml ops (a ZipMap of class
probabilities, an ArrayFeatureExtractor label lookup) that graphc does not have: the whole model
is refused with one error listing them, and `load_onnx(..., outputs=[...])` imports the
probability or logit subgraph. Output: probabilities equal to scikit-learn's predict_proba
(1e-5), and a few training steps that lower the cross-entropy.
"""
from __future__ import annotations

import itertools
import os

import numpy as np
import onnx
import pytest

import graphc as gc

DATA = os.path.join(os.path.dirname(__file__), "data")
PATH = os.path.join(DATA, "sklearn_mlp.onnx")
BATCH = {"X": (16, 64)}  # skl2onnx declares the batch dim symbolic


@pytest.fixture(scope="module")
def data():
    return dict(np.load(os.path.join(DATA, "sklearn_mlp.npz")))


def _softmax_node() -> onnx.NodeProto:
    """The logits are the Softmax's input, the probabilities its output (ZipMap's input)."""
    (node,) = [n for n in onnx.load(PATH).graph.node if n.op_type == "Softmax"]
    return node


def test_whole_model_is_refused_with_one_error_listing_everything():
    with pytest.raises(gc.GraphcError) as err:
        gc.load_onnx(PATH, BATCH)
    text = str(err.value)
    for wanted in ("ai.onnx.ml, ZipMap", "ai.onnx.ml, ArrayFeatureExtractor",
                   "output 'output_probability': an ONNX sequence value", "outputs=[...]"):
        assert wanted in text, text


def test_probabilities_match_sklearn(data):
    prob = _softmax_node().output[0]
    graph = gc.load_onnx(PATH, BATCH, outputs=[prob])
    assert list(graph.outputs) == [prob]
    got = gc.compile(graph).run({"X": data["x"]})[prob]
    np.testing.assert_allclose(got, data["proba"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(gc.interpret(graph, {"X": data["x"]})[prob], data["proba"],
                               rtol=0, atol=1e-5)


def test_trains_with_a_cross_entropy_loss(data):
    logits = _softmax_node().input[0]
    graph = gc.with_loss(gc.load_onnx(PATH, BATCH, outputs=[logits]), "cross_entropy",
                         output=logits)
    assert {i.name for i in graph.inputs_with_role("param")} == {
        "coefficient", "intercepts", "coefficient1", "intercepts1"}
    step = gc.compile_train_step(graph, loss="loss", optimizer=gc.optim.SGD(lr=0.1))
    feeds = {"X": data["x"], "labels": data["labels"]}
    losses = [float(step.run(feeds)) for _ in range(5)]
    assert all(b < a for a, b in itertools.pairwise(losses)), losses


def test_outputs_must_name_values_of_the_model():
    with pytest.raises(gc.GraphcError, match="no output 'probabilities'"):
        gc.load_onnx(PATH, BATCH, outputs=["probabilities"])


def test_graphc_train_names_the_logits_before_the_zipmap(capsys):
    from graphc.cli import main

    assert main(["train", PATH, "--logits", _softmax_node().input[0], "--epochs", "2"]) == 0
    accuracy = float(capsys.readouterr().out.split("held-out accuracy: ")[1].split("%")[0])
    assert accuracy > 85
