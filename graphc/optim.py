"""Optimizers as graph ops: SGD (momentum, weight decay) and Adam, PyTorch semantics.

Input: a builder, the param tensors and their gradient tensors. Output: {param or state name:
new value}, the in-place updates of a training step; optimizer state is added to the builder as
`state` inputs (zero-initialised) named after the param (`fc1.weight.momentum`, ...).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graphc.builder import GraphBuilder, Tensor
from graphc.ops import api as F


def _zeros_state(b: GraphBuilder, name: str, like: Tensor) -> Tensor:
    return b.state(name, np.zeros(like.shape, like.type.np_dtype))


@dataclass(frozen=True)
class SGD:
    """w -= lr * v, v = momentum * v + (g + weight_decay * w) (v = g without momentum)."""

    lr: float = 0.1
    momentum: float = 0.0
    weight_decay: float = 0.0

    def updates(self, b: GraphBuilder, params: dict[str, Tensor], grads: dict[str, Tensor]):
        out = {}
        for name, w in params.items():
            g = grads[name]
            if self.weight_decay:
                g = g + self.weight_decay * w
            if self.momentum:
                v = self.momentum * _zeros_state(b, f"{name}.momentum", w) + g
                out[f"{name}.momentum"] = g = v
            out[name] = w - self.lr * g
        return out


@dataclass(frozen=True)
class Adam:
    """Adam (Kingma & Ba) with bias correction; weight decay is added to the gradient."""

    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0

    def updates(self, b: GraphBuilder, params: dict[str, Tensor], grads: dict[str, Tensor]):
        step = b.state("adam.step", np.zeros((), np.int64))
        t = step + 1
        out = {"adam.step": t}
        for name, w in params.items():
            g = grads[name]
            if self.weight_decay:
                g = g + self.weight_decay * w
            tf = F.cast(t, w.dtype)
            m = self.beta1 * _zeros_state(b, f"{name}.adam_m", w) + (1 - self.beta1) * g
            v = self.beta2 * _zeros_state(b, f"{name}.adam_v", w) + (1 - self.beta2) * g * g
            m_hat = m / (1 - F.constant(b, self.beta1, w.dtype) ** tf)
            v_hat = v / (1 - F.constant(b, self.beta2, w.dtype) ** tf)
            out[f"{name}.adam_m"], out[f"{name}.adam_v"] = m, v
            out[name] = w - self.lr * m_hat / (F.sqrt(v_hat) + self.eps)
        return out
