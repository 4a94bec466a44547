"""A LeNet-style CNN: a graphc graph builder and a hand-written NumPy baseline.

Input: an image shape (1x8x8 digits or 1x28x28), a class count, a batch size and a seed.
Output: a graph with input `x` (f32 [batch, H*W], flat pixels as the digits data gives them)
and `y` (i64 labels), outputs `loss` (mean softmax cross-entropy) and `logits`; params
`conv1.weight` [C1,1,K,K], `conv1.bias`, `conv2.*`, `fc1.*`(, `fc2.*`). Layers: conv-relu-maxpool
twice, then fully connected. `numpy_forward`/`numpy_loss` compute the same forward pass by hand
(im2col with NumPy's sliding windows), an independent check of graphc's conv and pooling.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

import graphc as gc

# (channels, kernel, pad) of the two conv layers and the hidden fc sizes, per input size
LAYOUTS = {8: ((8, 3, 1), (16, 3, 1), ()), 28: ((6, 5, 0), (16, 5, 0), (120,))}


def _conv_params(b, name, out_c, in_c, k, rng, dtype):
    bound = 1.0 / np.sqrt(in_c * k * k)  # PyTorch's default (kaiming uniform, a=sqrt 5)
    w = b.param(f"{name}.weight", rng.uniform(-bound, bound, (out_c, in_c, k, k)).astype(dtype))
    return w, b.param(f"{name}.bias", rng.uniform(-bound, bound, out_c).astype(dtype))


def build_cnn(size: int = 8, classes: int = 10, batch: int = 64, seed: int = 0,
              params: Mapping[str, np.ndarray] | None = None, name: str = "cnn") -> gc.Graph:
    """conv(k, pad)-relu-maxpool2 x2, flatten, fc (hidden layers for 28x28), for 1xSxS images."""
    (c1, k1, p1), (c2, k2, p2), hidden = LAYOUTS[size]
    rng, dtype = np.random.default_rng(seed), np.float32
    b = gc.GraphBuilder(name)
    x = b.input("x", (batch, size * size))
    y = b.input("y", (batch,), "i64")
    h = gc.reshape(x, (batch, 1, size, size))
    for layer, (c_in, c_out, k, p) in enumerate([(1, c1, k1, p1), (c1, c2, k2, p2)], 1):
        w, bias = _conv_params(b, f"conv{layer}", c_out, c_in, k, rng, dtype)
        h = gc.max_pool2d(gc.relu(gc.conv2d(h, w, bias, pads=p)), 2, 2)
    h = gc.flatten(h)
    logits = gc.layers.mlp(h, [*hidden, classes], rng)
    graph = b.build({"loss": gc.softmax_cross_entropy(logits, y), "logits": logits})
    if params is not None:
        graph = graph.replace(initializers={**graph.initializers, **params})
    return graph


def build_digits_cnn() -> gc.Graph:
    """The CNN `graphc train --model cnn` trains: 1x8x8 digits, batch 64."""
    return build_cnn(8, batch=64)


def build_mnist_cnn() -> gc.Graph:
    """LeNet-5-like for 1x28x28 images, batch 64."""
    return build_cnn(28, batch=64)


# --- the hand-written NumPy baseline -------------------------------------------------------
def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, pad: int) -> np.ndarray:
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    k = w.shape[2]
    cols = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))  # N,C,OH,OW,k,k
    return np.einsum("nchwij,ocij->nohw", cols, w) + b[None, :, None, None]


def _pool2(x: np.ndarray) -> np.ndarray:
    n, c, h, w = x.shape
    return x[:, :, :h // 2 * 2, :w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def numpy_forward(params: Mapping[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Logits of the CNN for flat images x [N, S*S]."""
    size = math.isqrt(x.shape[1])
    (_, _, p1), (_, _, p2), hidden = LAYOUTS[size]
    h = x.reshape(len(x), 1, size, size)
    for layer, pad in ((1, p1), (2, p2)):
        h = _pool2(np.maximum(_conv(h, params[f"conv{layer}.weight"],
                                    params[f"conv{layer}.bias"], pad), 0))
    h = h.reshape(len(x), -1)
    for i in range(1, len(hidden) + 2):
        h = h @ params[f"fc{i}.weight"] + params[f"fc{i}.bias"]
        if i <= len(hidden):
            h = np.maximum(h, 0)
    return h


def numpy_loss(params: Mapping[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    """Mean softmax cross-entropy of the logits."""
    logits = numpy_forward(params, x).astype(np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(y)), y].mean())
