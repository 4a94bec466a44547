"""A small transformer encoder classifier: a graphc graph builder, a NumPy baseline and a task.

Input: vocabulary, sequence length, model width, heads, MLP width, classes, batch, seed.
Output: a graph with inputs `tokens` (i64 [batch, seq]) and `y` (i64 [batch]), outputs `loss`
and `logits`. Layers: token embedding (gather) + learned positions, one pre-norm encoder block
(multi-head self-attention, layer norm, GELU MLP, residuals), final layer norm, mean over the
sequence, linear head. `numpy_forward`/`numpy_loss` are the same forward pass by hand;
`majority_task` makes the synthetic sequences (label = the most frequent token).
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

import graphc as gc

CONFIG = {"vocab": 4, "seq": 8, "dim": 32, "heads": 4, "hidden": 64, "classes": 4}


def _ln_params(b, name, dim, dtype):
    return (b.param(f"{name}.weight", np.ones(dim, dtype)),
            b.param(f"{name}.bias", np.zeros(dim, dtype)))


def attention(x, name: str, heads: int, rng) -> gc.Tensor:
    """Multi-head self-attention over x [B, T, D] (scaled dot products, softmax over keys)."""
    bsz, t, d = x.shape
    dh = d // heads

    def split(h):  # [B, T, D] -> [B, H, T, Dh]
        return gc.transpose(gc.reshape(h, (bsz, t, heads, dh)), (0, 2, 1, 3))

    q, k, v = (split(gc.layers.linear(x, d, f"{name}.{p}", rng)) for p in "qkv")
    scores = gc.softmax((q @ gc.swapaxes(k, -1, -2)) * (1.0 / math.sqrt(dh)), -1)
    ctx = gc.reshape(gc.transpose(scores @ v, (0, 2, 1, 3)), (bsz, t, d))
    return gc.layers.linear(ctx, d, f"{name}.out", rng)


def build_transformer(vocab=4, seq=8, dim=32, heads=4, hidden=64, classes=4, batch=32, seed=0,
                      params: Mapping[str, np.ndarray] | None = None,
                      name: str = "encoder") -> gc.Graph:
    rng, dtype = np.random.default_rng(seed), np.float32
    b = gc.GraphBuilder(name)
    tokens = b.input("tokens", (batch, seq), "i64")
    y = b.input("y", (batch,), "i64")
    emb = b.param("embed.weight", rng.normal(0, 0.5, (vocab, dim)).astype(dtype))
    pos = b.param("pos.weight", rng.normal(0, 0.1, (seq, dim)).astype(dtype))
    x = gc.gather(emb, tokens) + pos
    x = x + attention(gc.layer_norm(x, *_ln_params(b, "ln1", dim, dtype)), "attn", heads, rng)
    h = gc.layer_norm(x, *_ln_params(b, "ln2", dim, dtype))
    h = gc.layers.linear(gc.gelu(gc.layers.linear(h, hidden, "mlp.fc1", rng)), dim, "mlp.fc2", rng)
    x = gc.layer_norm(x + h, *_ln_params(b, "ln3", dim, dtype))
    logits = gc.layers.linear(gc.mean(x, 1), classes, "head", rng)
    graph = b.build({"loss": gc.softmax_cross_entropy(logits, y), "logits": logits})
    if params is not None:
        graph = graph.replace(initializers={**graph.initializers, **params})
    return graph


def build_default_transformer() -> gc.Graph:
    return build_transformer(**CONFIG, batch=32)


def majority_task(n: int, vocab=4, seq=8, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """Random token sequences whose label is their most frequent token (ties: the smallest)."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, vocab, (n, seq))
    counts = np.stack([(tokens == v).sum(1) for v in range(vocab)], 1)
    return tokens, np.argmax(counts, axis=1).astype(np.int64)


# --- the hand-written NumPy baseline -------------------------------------------------------
def _ln(x, p, name, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * p[f"{name}.weight"] + p[f"{name}.bias"]


def _lin(x, p, name):
    return x @ p[f"{name}.weight"] + p[f"{name}.bias"]


def _erf(x):
    return np.vectorize(math.erf)(x)


def numpy_forward(p: Mapping[str, np.ndarray], tokens: np.ndarray, heads: int = 4) -> np.ndarray:
    x = p["embed.weight"][tokens] + p["pos.weight"]
    bsz, t, d = x.shape
    h = _ln(x, p, "ln1")
    q, k, v = (_lin(h, p, f"attn.{n}").reshape(bsz, t, heads, -1).transpose(0, 2, 1, 3)
               for n in "qkv")
    s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d // heads)
    s = np.exp(s - s.max(-1, keepdims=True))
    s /= s.sum(-1, keepdims=True)
    x = x + _lin((s @ v).transpose(0, 2, 1, 3).reshape(bsz, t, d), p, "attn.out")
    h = _lin(_ln(x, p, "ln2"), p, "mlp.fc1")
    h = _lin(0.5 * h * (1 + _erf(h / math.sqrt(2))), p, "mlp.fc2")
    x = _ln(x + h, p, "ln3")
    return _lin(x.mean(1), p, "head")


def numpy_loss(p: Mapping[str, np.ndarray], tokens: np.ndarray, y: np.ndarray) -> float:
    logits = numpy_forward(p, tokens).astype(np.float64)
    z = logits - logits.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean())
