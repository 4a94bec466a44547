"""Training steps: compiled step == interpreted step; SGD/Adam match hand-written NumPy;
parameters update in place; save/load round-trips atomically."""
import numpy as np
import pytest

import graphc as gc
from graphc.pipeline import passes_for, run_pipeline


def mlp_graph(batch=8, sizes=(6, 16, 4), seed=0):
    rng = np.random.default_rng(seed)
    b = gc.GraphBuilder("mlp")
    x = b.input("x", (batch, sizes[0]))
    y = b.input("y", (batch,), "i64")
    logits = gc.layers.mlp(x, sizes[1:], rng)
    return b.build(outputs={"loss": gc.softmax_cross_entropy(logits, y), "logits": logits})


def batch(seed=1, n=8, features=6, classes=4):
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((n, features)).astype(np.float32),
            "y": rng.integers(0, classes, n)}


OPTIMIZERS = [gc.optim.SGD(lr=0.1), gc.optim.SGD(lr=0.05, momentum=0.9, weight_decay=1e-3),
              gc.optim.Adam(lr=0.01), gc.optim.Adam(lr=0.01, weight_decay=1e-2)]


@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=repr)
def test_compiled_step_equals_interpreted_step(optimizer):
    g = mlp_graph()
    step = gc.compile_train_step(g, loss="loss", optimizer=optimizer)
    reference = run_pipeline(g, passes_for(train=("loss", optimizer)))
    state = {k: v.copy() for k, v in reference.initializers.items()}
    for i in range(3):
        feeds = batch(seed=i)
        expected = gc.interpret(reference.replace(initializers=state), feeds, updates=True)
        loss = step.run(feeds)
        np.testing.assert_allclose(loss, expected["loss"], rtol=1e-5)
        state = {**state, **{k[len("update:"):]: v for k, v in expected.items()
                             if k.startswith("update:")}}
        for name, value in step.state.items():
            np.testing.assert_allclose(value, state[name], rtol=1e-5, atol=1e-6, err_msg=name)


def _numpy_grads(params, feeds):
    x, y = feeds["x"].astype(np.float64), feeds["y"]
    w1, b1, w2, b2 = (params[k].astype(np.float64) for k in
                      ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"))
    h_pre = x @ w1 + b1
    h = np.maximum(h_pre, 0)
    logits = h @ w2 + b2
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    n = len(y)
    loss = -np.log(p[np.arange(n), y]).mean()
    d = p.copy()
    d[np.arange(n), y] -= 1
    d /= n
    dh = (d @ w2.T) * (h_pre > 0)
    return loss, {"fc1.weight": x.T @ dh, "fc1.bias": dh.sum(0), "fc2.weight": h.T @ d,
                  "fc2.bias": d.sum(0)}


def test_sgd_momentum_matches_hand_written_numpy():
    g = mlp_graph()
    opt = gc.optim.SGD(lr=0.1, momentum=0.9, weight_decay=0.01)
    step = gc.compile_train_step(g, "loss", opt)
    params = {k: v.astype(np.float64) for k, v in g.initializers.items()}
    velocity = {k: np.zeros_like(v) for k, v in params.items()}
    for i in range(4):
        feeds = batch(seed=10 + i)
        loss, grads = _numpy_grads(params, feeds)
        assert step.run(feeds) == pytest.approx(loss, rel=1e-5)
        for k, p in list(params.items()):
            velocity[k] = 0.9 * velocity[k] + grads[k] + 0.01 * p
            params[k] = p - 0.1 * velocity[k]
    for k, v in step.params.items():
        np.testing.assert_allclose(v, params[k], rtol=1e-4, atol=1e-6)


def test_adam_matches_hand_written_numpy():
    g = mlp_graph()
    step = gc.compile_train_step(g, "loss", gc.optim.Adam(lr=0.01))
    params = {k: v.astype(np.float64) for k, v in g.initializers.items()}
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v2 = {k: np.zeros_like(v) for k, v in params.items()}
    for t in range(1, 5):
        feeds = batch(seed=20 + t)
        loss, grads = _numpy_grads(params, feeds)
        assert step.run(feeds) == pytest.approx(loss, rel=1e-5)
        for k, p in list(params.items()):
            m[k] = 0.9 * m[k] + 0.1 * grads[k]
            v2[k] = 0.999 * v2[k] + 0.001 * grads[k] ** 2
            m_hat, v_hat = m[k] / (1 - 0.9 ** t), v2[k] / (1 - 0.999 ** t)
            params[k] = p - 0.01 * m_hat / (np.sqrt(v_hat) + 1e-8)
    for k, v in step.params.items():
        np.testing.assert_allclose(v, params[k], rtol=1e-4, atol=1e-5)


def test_params_are_updated_in_place_and_loss_decreases():
    g = mlp_graph()
    step = gc.compile_train_step(g, "loss", gc.optim.SGD(lr=0.5))
    buffers = {k: v for k, v in step.params.items()}
    feeds = batch(seed=3)
    losses = [step.run(feeds) for _ in range(30)]
    assert losses[-1] < 0.5 * losses[0]
    for k, v in step.params.items():
        assert v is buffers[k]  # same ndarray object, mutated by the native step
    assert not np.array_equal(step.params["fc1.weight"], g.initializers["fc1.weight"])


def test_save_and_load_round_trip(tmp_path):
    g = mlp_graph()
    step = gc.compile_train_step(g, "loss", gc.optim.Adam(lr=0.01))
    feeds = batch(seed=4)
    step.run(feeds)
    path = tmp_path / "ckpt.npz"
    step.save(str(path))
    saved = {k: v.copy() for k, v in step.state.items()}
    after_one = step.run(feeds)
    step.load(str(path))
    for k, v in step.state.items():
        np.testing.assert_array_equal(v, saved[k])
    assert step.run(feeds) == after_one  # same state, same batch, same loss
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.npz"]  # no temp files left


def test_load_rejects_mismatched_checkpoint(tmp_path):
    step = gc.compile_train_step(mlp_graph(), "loss", gc.optim.SGD(lr=0.1))
    other = gc.compile_train_step(mlp_graph(sizes=(6, 8, 4)), "loss", gc.optim.SGD(lr=0.1))
    path = str(tmp_path / "other.npz")
    other.save(path)
    with pytest.raises(gc.GraphcError, match="was saved from graph 'mlp'.*not from this step"):
        step.load(path)
    (tmp_path / "junk.npz").write_bytes(b"not a checkpoint")
    with pytest.raises(gc.GraphcError, match="damaged|not a graphc checkpoint"):
        step.load(str(tmp_path / "junk.npz"))


def test_value_and_grad_matches_numpy():
    g = mlp_graph()
    f = gc.compile_value_and_grad(g, "loss", ["fc1.weight", "fc2.bias"])
    feeds = batch(seed=5)
    value, grads = f.run(feeds)
    loss, expected = _numpy_grads(dict(g.initializers), feeds)
    assert value == pytest.approx(loss, rel=1e-5)
    for k in ("fc1.weight", "fc2.bias"):
        np.testing.assert_allclose(grads[k], expected[k], rtol=1e-4, atol=1e-6)


def test_train_step_errors():
    g = mlp_graph()
    with pytest.raises(gc.GraphcError, match="must be a scalar"):
        gc.compile_train_step(g, "logits")
    with pytest.raises(gc.GraphcError, match="not an output"):
        gc.compile_train_step(g, "nope")
    step = gc.compile_train_step(g, "loss")
    with pytest.raises(gc.FeedError, match="'x'.*f32\\[8,6\\]"):
        step.run({"x": np.zeros((8, 5), np.float32), "y": np.zeros(8, np.int64)})
    with pytest.raises(gc.FeedError, match="'y'.*i64"):
        step.run({"x": np.zeros((8, 6), np.float32), "y": np.zeros(8, np.float32)})
    with pytest.raises(gc.GraphcError, match="label 7"):
        step.run({"x": np.zeros((8, 6), np.float32), "y": np.full(8, 7)})
