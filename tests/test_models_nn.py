"""The CNN and transformer models against their hand-written NumPy baselines, a short training
run of each, and the stateful DSL layers (batch-norm running statistics, dropout's counter).
"""
from __future__ import annotations

import numpy as np
import pytest
from graphc.models import MODELS, cnn, transformer

import graphc as gc


@pytest.mark.parametrize("size", [8, 28])
def test_cnn_matches_numpy_baseline(size):
    graph = cnn.build_cnn(size, batch=4)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (4, size * size)).astype(np.float32)
    y = rng.integers(0, 10, 4)
    params = graph.initializers
    want = cnn.numpy_forward(params, x)
    for out in (gc.interpret(graph, {"x": x, "y": y}), gc.compile(graph).run({"x": x, "y": y})):
        np.testing.assert_allclose(out["logits"], want, rtol=1e-4, atol=1e-5)
        assert abs(float(out["loss"]) - cnn.numpy_loss(params, x, y)) < 1e-4


def test_transformer_matches_numpy_baseline():
    graph = transformer.build_transformer(batch=3)
    tokens, y = transformer.majority_task(3)
    params = graph.initializers
    want = transformer.numpy_forward(params, tokens)
    for out in (gc.interpret(graph, {"tokens": tokens, "y": y}),
                gc.compile(graph).run({"tokens": tokens, "y": y})):
        np.testing.assert_allclose(out["logits"], want, rtol=1e-4, atol=1e-5)
        assert abs(float(out["loss"]) - transformer.numpy_loss(params, tokens, y)) < 1e-4


def test_models_are_registered():
    assert {"cnn", "cnn-28", "transformer"} <= set(MODELS)


def test_transformer_learns_the_majority_task():
    graph = transformer.build_transformer(batch=32)
    step = gc.compile_train_step(graph, loss="loss", optimizer=gc.optim.Adam(lr=3e-3))
    tokens, y = transformer.majority_task(2048, seed=1)
    rng = np.random.default_rng(0)
    for _ in range(10):
        order = rng.permutation(len(y))
        for i in range(0, len(y) - 31, 32):
            idx = order[i:i + 32]
            step.run({"tokens": tokens[idx], "y": y[idx]})
    test_tokens, test_y = transformer.majority_task(512, seed=2)
    evaluation = transformer.build_transformer(batch=512, params=dict(step.params))
    logits = gc.compile(evaluation).run({"tokens": test_tokens, "y": test_y})["logits"]
    accuracy = float(np.mean(np.argmax(logits, 1) == test_y))
    assert accuracy >= 0.85, accuracy


def test_batch_norm_layer_updates_running_statistics_like_onnx():
    b = gc.GraphBuilder()
    x = b.input("x", (4, 2, 3, 3))
    graph = b.build({"y": gc.batch_norm_layer(x, "bn", momentum=0.9)})
    xv = np.random.default_rng(0).standard_normal((4, 2, 3, 3)).astype(np.float32)
    out = gc.interpret(graph, {"x": xv}, updates=True)
    mean, var = xv.mean(axis=(0, 2, 3)), xv.var(axis=(0, 2, 3))
    np.testing.assert_allclose(out["update:bn.running_mean"], 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(out["update:bn.running_var"], 0.9 + 0.1 * var, rtol=1e-5)
    want = (xv - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5)
    np.testing.assert_allclose(out["y"], want, rtol=1e-4, atol=1e-5)
    exe = gc.compile(graph)
    exe.run({"x": xv})
    np.testing.assert_allclose(exe.params["bn.running_mean"], 0.1 * mean, rtol=1e-5, atol=1e-7)


def test_dropout_mask_changes_every_run_and_keeps_the_rate():
    b = gc.GraphBuilder()
    x = b.input("x", (64, 64))
    y, mask = gc.dropout(x, 0.25, return_mask=True)
    exe = gc.compile(b.build({"y": y, "mask": mask}))
    ones = np.ones((64, 64), np.float32)
    first, second = exe.run({"x": ones}), exe.run({"x": ones})
    assert not np.array_equal(first["mask"], second["mask"])
    assert abs(first["mask"].mean() - 0.75) < 0.03
    np.testing.assert_allclose(first["y"], np.where(first["mask"], 1 / 0.75, 0), rtol=1e-6)
    interp = gc.interpret(b.build({"mask": mask}), {"x": ones})["mask"]
    np.testing.assert_array_equal(interp, first["mask"])  # the same hash on both sides


def test_dropout_in_inference_is_the_identity():
    b = gc.GraphBuilder()
    x = b.input("x", (3,))
    assert gc.dropout(x, 0.5, training=False) is x
