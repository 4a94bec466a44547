"""models/: every registered model builds, and the hand-written NumPy MLP baseline agrees with
graphc's interpreter on the loss, the gradients and the SGD update."""
from __future__ import annotations

import numpy as np
import pytest
from graphc.models import MODELS, build_model
from graphc.models.mlp import build_mlp, numpy_loss_and_grads, numpy_sgd_step

import graphc as gc
from graphc import pipeline


def batch_for(graph: gc.Graph, seed: int = 0) -> dict[str, np.ndarray]:
    (n, features), classes = graph.input_map["x"].value.type.shape, graph.outputs["logits"].type
    rng = np.random.default_rng(seed)
    return {"x": rng.random((n, features), dtype=np.float32),
            "y": rng.integers(0, classes.shape[1], n)}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_registered_models_build(name):
    graph = build_model(name)
    gc.verify(graph)
    assert set(graph.outputs) == {"loss", "logits"}
    params = [i.name for i in graph.inputs_with_role("param")]
    first = {"cnn": "conv1", "transformer": "embed"}.get(name.split("-")[0], "fc1")
    assert params[0] == f"{first}.weight"
    assert set(params) == set(graph.initializers)
    assert gc.parse(graph.to_text()).to_text() == graph.to_text()


def test_unknown_model_lists_known_names():
    with pytest.raises(gc.GraphcError, match="known models: .*mlp"):
        build_model("resnet")


def test_build_mlp_takes_given_params():
    trained = {k: v + 1 for k, v in build_mlp().initializers.items()}
    graph = build_mlp(batch=7, params=trained)
    assert graph.input_map["x"].value.type.shape == (7, 64)
    for k, v in trained.items():
        np.testing.assert_array_equal(graph.initializers[k], v)


def test_build_mlp_rejects_too_few_sizes():
    with pytest.raises(gc.GraphcError, match="at least input and output"):
        build_mlp((64,))


@pytest.mark.parametrize("sizes,batch", [((64, 256, 10), 64), ((784, 512, 512, 10), 128),
                                          ((5, 4, 3, 3, 2), 6)])
def test_numpy_baseline_matches_interpreter(sizes, batch):
    graph = build_mlp(sizes, batch=batch, seed=3)
    feeds = batch_for(graph)
    params = dict(graph.initializers)
    loss, grads = numpy_loss_and_grads(params, feeds["x"], feeds["y"])
    assert loss == pytest.approx(float(gc.interpret(graph, feeds)["loss"]), rel=1e-5)
    expected = gc.interpret(gc.grad(graph, "loss", list(grads)), feeds)
    for name, g in grads.items():
        np.testing.assert_allclose(g, expected[name], rtol=1e-4, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("momentum,weight_decay", [(0.0, 0.0), (0.9, 1e-3)])
def test_numpy_sgd_steps_match_the_interpreted_training_step(momentum, weight_decay):
    graph = build_mlp((6, 5, 3), batch=4, seed=1)
    opt = gc.optim.SGD(lr=0.1, momentum=momentum, weight_decay=weight_decay)
    step = pipeline.run_pipeline(graph, pipeline.passes_for(train=("loss", opt)))
    state = {k: np.array(v) for k, v in step.initializers.items()}
    params = {k: np.array(v) for k, v in graph.initializers.items()}
    velocity: dict = {}
    for i in range(3):
        feeds = batch_for(graph, seed=i)
        out = gc.interpret(step.replace(initializers=state), feeds, updates=True)
        loss = numpy_sgd_step(params, feeds["x"], feeds["y"], lr=0.1, momentum=momentum,
                              weight_decay=weight_decay, velocity=velocity)
        assert loss == pytest.approx(float(out["loss"]), rel=1e-5)
        state.update({k[len("update:"):]: v for k, v in out.items() if k.startswith("update:")})
        for name, p in params.items():
            np.testing.assert_allclose(p, state[name], rtol=1e-5, atol=1e-6, err_msg=name)
