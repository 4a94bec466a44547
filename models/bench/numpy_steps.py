"""Hand-written NumPy training steps of the bench models: the NumPy competitor of `graphc bench`.

Input: the model's settings (models/bench/frameworks.py), its params under graphc's names, one
batch and a learning rate. Output: `NUMPY_STEPS[family](settings, params, feeds, lr)`, a
zero-argument step doing forward, mean softmax cross-entropy, backward by hand and `p -= lr*g`
in place, returning the loss before the update. The MLP's is models/mlp.py's baseline; the
CNN's and the encoder's forward passes compute what models/cnn.py's and models/transformer.py's
`numpy_forward` compute (a test checks the losses), with the caches their backward passes need.
All arithmetic stays in float32, as in the other frameworks.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from graphc.models.mlp import numpy_forward as fc_forward

Grads = dict[str, np.ndarray]


def softmax_xent(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy and its gradient with respect to the logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(len(y))
    delta = np.exp(log_probs)
    delta[rows, y] -= 1
    return float(-log_probs[rows, y].mean()), delta / len(y)


def sgd(params: dict[str, np.ndarray], grads: Grads, lr: float) -> None:
    for name, g in grads.items():
        params[name] -= lr * g


def fc_backward(p, delta: np.ndarray, inputs: list[np.ndarray], grads: Grads) -> np.ndarray:
    """Gradients of the fc layers into `grads`; returns the gradient of the first input."""
    for i in range(len(inputs), 0, -1):
        grads[f"fc{i}.weight"] = inputs[i - 1].T @ delta
        grads[f"fc{i}.bias"] = delta.sum(axis=0)
        delta = delta @ p[f"fc{i}.weight"].T
        if i > 1:
            delta *= inputs[i - 1] > 0
    return delta


# --- the LeNet-style CNN -------------------------------------------------------------------
def im2col(x: np.ndarray, k: int, pad: int) -> np.ndarray:
    """Windows of x [N,C,H,W] as rows [N*OH*OW, C*k*k]."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))) if pad else x
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))  # N,C,OH,OW,k,k
    n, c, oh, ow = win.shape[:4]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * k * k)


def col2im(dcols: np.ndarray, shape: tuple, k: int, pad: int) -> np.ndarray:
    """The adjoint of im2col: window gradients summed back onto x's pixels."""
    n, c, h, w = shape
    oh, ow = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    d = dcols.reshape(n, oh, ow, c, k, k)
    dxp = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dcols.dtype)
    for i in range(k):
        for j in range(k):
            dxp[:, :, i:i + oh, j:j + ow] += d[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return dxp[:, :, pad:pad + h, pad:pad + w]


def lenet_loss_and_grads(settings, p, x, y) -> tuple[float, Grads]:
    from graphc.models.cnn import LAYOUTS

    size = settings["size"]
    h, n, caches = x.reshape(len(x), 1, size, size), len(x), []
    for layer, (_, k, pad) in enumerate(LAYOUTS[size][:2], 1):
        w = p[f"conv{layer}.weight"]
        cols = im2col(h, k, pad)
        z = cols @ w.reshape(len(w), -1).T + p[f"conv{layer}.bias"]  # [N*OH*OW, O]
        oh = h.shape[2] + 2 * pad - k + 1
        a = np.maximum(z, 0).reshape(n, oh, oh, len(w)).transpose(0, 3, 1, 2)
        r = a.reshape(n, len(w), oh // 2, 2, oh // 2, 2)
        pooled = r.max(axis=(3, 5))
        caches.append((h.shape, cols, z, r == pooled[:, :, :, None, :, None], k, pad))
        h = pooled
    logits, inputs = fc_forward(p, h.reshape(n, -1))
    loss, delta = softmax_xent(logits, y)
    grads: Grads = {}
    dh = fc_backward(p, delta, inputs, grads).reshape(h.shape)
    for layer in (2, 1):
        shape, cols, z, mask, k, pad = caches[layer - 1]
        w = p[f"conv{layer}.weight"]
        oh = 2 * mask.shape[2]
        da = (mask * dh[:, :, :, None, :, None]).reshape(n, len(w), oh, oh)
        dz = da.transpose(0, 2, 3, 1).reshape(-1, len(w)) * (z > 0)
        grads[f"conv{layer}.weight"] = (dz.T @ cols).reshape(w.shape)
        grads[f"conv{layer}.bias"] = dz.sum(axis=0)
        if layer > 1:
            dh = col2im(dz @ w.reshape(len(w), -1), shape, k, pad)
    return loss, grads


# --- the transformer encoder block ---------------------------------------------------------
def erf(x: np.ndarray) -> np.ndarray:
    """Abramowitz & Stegun 7.1.26 (max abs error 1.5e-7, below float32's resolution near 1)."""
    s, a = np.sign(x), np.abs(x)
    t = 1 / (1 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027
                                                                          + t * 1.061405429))))
    return s * (1 - poly * np.exp(-a * a))


def layer_norm(x, g, b, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    rstd = 1 / np.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + eps)
    xhat = (x - mean) * rstd
    return xhat * g + b, (xhat, rstd, g)


def layer_norm_backward(dy, cache, name: str, grads: Grads) -> np.ndarray:
    xhat, rstd, g = cache
    grads[f"{name}.weight"] = (dy * xhat).sum(axis=(0, 1))
    grads[f"{name}.bias"] = dy.sum(axis=(0, 1))
    dx = dy * g
    return rstd * (dx - dx.mean(-1, keepdims=True) - xhat * (dx * xhat).mean(-1, keepdims=True))


def linear_backward(dy, x, p, name: str, grads: Grads) -> np.ndarray:
    w = p[f"{name}.weight"]
    dy2 = dy.reshape(-1, dy.shape[-1])
    grads[f"{name}.weight"] = x.reshape(-1, x.shape[-1]).T @ dy2
    grads[f"{name}.bias"] = dy2.sum(axis=0)
    return (dy2 @ w.T).reshape(*dy.shape[:-1], -1)


def encoder_loss_and_grads(settings, p, tokens, y) -> tuple[float, Grads]:
    (bsz, t), d, heads = tokens.shape, settings["dim"], settings["heads"]
    scale = 1 / math.sqrt(d // heads)

    # NumPy's stacked matmul only calls BLAS for contiguous operands, hence the copies
    def lin(x, name):
        w = p[f"{name}.weight"]
        return (x.reshape(-1, x.shape[-1]) @ w + p[f"{name}.bias"]).reshape(*x.shape[:-1], -1)

    def split(h):  # [B,T,D] -> [B,H,T,Dh]
        return np.ascontiguousarray(h.reshape(bsz, t, heads, -1).transpose(0, 2, 1, 3))

    def merge(h):  # [B,H,T,Dh] -> [B,T,D]
        return h.transpose(0, 2, 1, 3).reshape(bsz, t, d)

    def tr(h):  # swap the last two axes, contiguously
        return np.ascontiguousarray(h.transpose(0, 1, 3, 2))

    x0 = p["embed.weight"][tokens] + p["pos.weight"]
    h1, c1 = layer_norm(x0, p["ln1.weight"], p["ln1.bias"])
    q, k, v = (split(lin(h1, f"attn.{n}")) for n in "qkv")
    s = q @ tr(k) * scale
    a = np.exp(s - s.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    ctx = merge(a @ v)
    x1 = x0 + lin(ctx, "attn.out")
    h2, c2 = layer_norm(x1, p["ln2.weight"], p["ln2.bias"])
    u = lin(h2, "mlp.fc1")
    cdf = 0.5 * (1 + erf(u * (1 / math.sqrt(2))))
    x2 = x1 + lin(u * cdf, "mlp.fc2")
    h3, c3 = layer_norm(x2, p["ln3.weight"], p["ln3.bias"])
    pooled = h3.mean(axis=1)
    loss, dlogits = softmax_xent(lin(pooled, "head"), y)

    grads: Grads = {}
    dpooled = linear_backward(dlogits, pooled, p, "head", grads)
    dx2 = layer_norm_backward(np.broadcast_to(dpooled[:, None, :] / t, h3.shape), c3, "ln3",
                              grads)
    dg = linear_backward(dx2, u * cdf, p, "mlp.fc2", grads)
    du = dg * (cdf + u * np.exp(-0.5 * u * u) * (1 / math.sqrt(2 * math.pi)))
    dh2 = linear_backward(du, h2, p, "mlp.fc1", grads)
    dx1 = dx2 + layer_norm_backward(dh2, c2, "ln2", grads)
    dctx = split(linear_backward(dx1, ctx, p, "attn.out", grads))
    da = dctx @ tr(v)
    dv = tr(a) @ dctx
    ds = a * (da - (da * a).sum(-1, keepdims=True)) * scale
    dq, dk = ds @ k, tr(ds) @ q
    dh1 = sum(linear_backward(merge(dz), h1, p, f"attn.{n}", grads)
              for n, dz in zip("qkv", (dq, dk, dv), strict=True))
    dx0 = dx1 + layer_norm_backward(dh1, c1, "ln1", grads)
    grads["pos.weight"] = dx0.sum(axis=0)
    grads["embed.weight"] = np.zeros_like(p["embed.weight"])
    np.add.at(grads["embed.weight"], tokens.reshape(-1), dx0.reshape(-1, d))
    return loss, grads


# --- the steps -----------------------------------------------------------------------------
def _mlp_step(settings, params, feeds, lr: float):
    from graphc.models.mlp import numpy_sgd_step

    x, y = feeds["x"], feeds["y"]
    return lambda: numpy_sgd_step(params, x, y, lr)


def _step_of(loss_and_grads, first_input: str):
    def make(settings, params, feeds, lr: float):
        def step() -> float:
            loss, grads = loss_and_grads(settings, params, feeds[first_input], feeds["y"])
            sgd(params, grads, lr)
            return loss
        return step
    return make


NUMPY_STEPS: dict[str, Callable] = {
    "mlp": _mlp_step,
    "lenet": _step_of(lenet_loss_and_grads, "x"),
    "encoder": _step_of(encoder_loss_and_grads, "tokens"),
}
