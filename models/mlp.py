"""The multilayer perceptron: a graphc graph builder and a hand-written NumPy baseline.

Input: layer sizes (input features first), a batch size and a seed. Output: a graph with outputs
`loss` (mean softmax cross-entropy) and `logits`, params `fc1.weight`, `fc1.bias`, ...; and
`numpy_sgd_step`, the same training step written by hand in NumPy (the benchmark's baseline and
an independent check of graphc's gradients).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

import graphc as gc

DIGITS_SIZES = (64, 256, 10)
BENCH_SIZES = (784, 512, 512, 10)


def build_mlp(sizes: Sequence[int] = DIGITS_SIZES, batch: int = 64, seed: int = 0,
              dtype: str = "f32", params: Mapping[str, np.ndarray] | None = None,
              name: str = "mlp") -> gc.Graph:
    """MLP graph over `sizes` = (features, hidden..., classes) for a fixed batch size.

    Params are drawn from `seed` (fan-in uniform init) unless `params` gives their values,
    e.g. trained weights for an evaluation graph with another batch size."""
    if len(sizes) < 2:
        raise gc.GraphcError(f"an MLP needs at least input and output sizes, got {list(sizes)}")
    b = gc.GraphBuilder(name)
    x = b.input("x", (batch, sizes[0]), dtype)
    y = b.input("y", (batch,), "i64")
    logits = gc.layers.mlp(x, list(sizes[1:]), np.random.default_rng(seed))
    loss = gc.softmax_cross_entropy(logits, y)
    graph = b.build(outputs={"loss": loss, "logits": logits})
    if params is not None:
        graph = graph.replace(initializers={**graph.initializers, **params})
    return graph


def build_digits_mlp() -> gc.Graph:
    """The MLP `graphc train` trains: 64-256-10, batch 64."""
    return build_mlp(DIGITS_SIZES, batch=64)


def build_bench_mlp() -> gc.Graph:
    """The benchmark MLP: 784-512-512-10, batch 128, f32."""
    return build_mlp(BENCH_SIZES, batch=128)


# --- the hand-written NumPy baseline -------------------------------------------------------
def _layers(params: Mapping[str, np.ndarray]) -> int:
    return sum(1 for k in params if k.startswith("fc") and k.endswith(".weight"))


def numpy_forward(params: Mapping[str, np.ndarray], x: np.ndarray) -> tuple[np.ndarray, list]:
    """Logits and the activations each layer saw (inputs to every linear layer fc1, fc2, ...;
    other params, e.g. a CNN's convolutions, are ignored, so the CNN and encoder baselines use
    this for their fully connected layers)."""
    acts, h = [], x
    n = _layers(params)
    for i in range(1, n + 1):
        acts.append(h)
        h = h @ params[f"fc{i}.weight"] + params[f"fc{i}.bias"]
        if i < n:
            h = np.maximum(h, 0)
    return h, acts


def numpy_loss_and_grads(params: Mapping[str, np.ndarray], x: np.ndarray,
                         y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
    """Mean softmax cross-entropy and its gradient with respect to every param."""
    logits, acts = numpy_forward(params, x)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    batch = len(y)
    loss = -log_probs[np.arange(batch), y].mean()
    delta = np.exp(log_probs)
    delta[np.arange(batch), y] -= 1
    delta /= batch  # d loss / d logits
    grads = {}
    for i in range(_layers(params), 0, -1):
        grads[f"fc{i}.weight"] = acts[i - 1].T @ delta
        grads[f"fc{i}.bias"] = delta.sum(axis=0)
        if i > 1:
            delta = (delta @ params[f"fc{i}.weight"].T) * (acts[i - 1] > 0)
    return float(loss), grads


def numpy_sgd_step(params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, lr: float,
                   momentum: float = 0.0, weight_decay: float = 0.0,
                   velocity: dict[str, np.ndarray] | None = None) -> float:
    """One SGD step in place (PyTorch's rule: v = mu*v + g + wd*p; p -= lr*v); returns the
    loss before the update. Pass a `velocity` dict (filled on first use) when momentum > 0."""
    loss, grads = numpy_loss_and_grads(params, x, y)
    for name, g in grads.items():
        if weight_decay:
            g = g + weight_decay * params[name]
        if momentum:
            v = velocity.setdefault(name, np.zeros_like(g))
            v *= momentum
            v += g
            g = v
        params[name] -= (lr * g).astype(params[name].dtype)
    return loss
