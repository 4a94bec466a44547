"""ONNX's optimizer update ops (domain ai.onnx.preview.training) as graphc graph builders.

Input: a node's operands R (the learning rate, a scalar), T (the update count, an integer
scalar) and then the groups of tensors the op updates (X..., G..., and V... and/or H...), all
Tensors read at run time; its attributes under their ONNX names. Output: the tuple of new
tensors in ONNX's order (X_new..., then V_new... and/or H_new...).

Each update is the rule of ONNX's reference implementation, written with graph ops per tensor
(no gradients are taken through these: they are the optimizer step itself). T > 0 selects the
bias corrections at run time with a `where`, since T is a graph input.
"""
from __future__ import annotations

from graphc.builder import Tensor
from graphc.errors import GraphcError
from graphc.ops import api as F

DOMAIN = "ai.onnx.preview.training"  # the only domain these op types are imported from
OPS = ("Momentum", "Adagrad", "Adam")


def _groups(op: str, data: tuple, count: int) -> tuple[Tensor, Tensor, list[list[Tensor]]]:
    """R, T and `count` equal groups of the remaining operands, checked."""
    if len(data) < 2 + count or (len(data) - 2) % count:
        raise GraphcError(f"{op}: expected R, T and {count} groups of tensors of one length, "
                          f"got {len(data)} operands")
    r, t, rest = data[0], data[1], data[2:]
    if r.type.size != 1 or not r.type.is_float or t.type.size != 1 or t.dtype != "i64":
        raise GraphcError(f"{op}: R must be a float scalar and T an integer scalar, got "
                          f"{r.type} and {t.type}")
    n = len(rest) // count
    groups = [list(rest[k * n:(k + 1) * n]) for k in range(count)]
    for column in zip(*groups):
        if len({x.type for x in column}) != 1 or not column[0].type.is_float:
            raise GraphcError(f"{op}: each updated tensor and its gradient and accumulators "
                              f"must share one float type, got {[str(x.type) for x in column]}")
    return F.reshape(r, ()), F.reshape(t, ()), groups


def _like(value: Tensor, x: Tensor) -> Tensor:
    return value if value.dtype == x.dtype else F.cast(value, x.dtype)


def Momentum(*data, alpha, beta, mode, norm_coefficient):
    """v = alpha v + beta' (g + norm_coefficient x) with beta' = 1 at T = 0; x -= R v
    (standard) or x -= R (g_regularized + alpha v) (nesterov)."""
    if mode not in ("standard", "nesterov"):
        raise GraphcError(f"Momentum: mode {mode!r} is not standard or nesterov")
    r, t, (xs, gs, vs) = _groups("Momentum", data, 3)
    new_x, new_v = [], []
    for x, g, v in zip(xs, gs, vs):
        g_reg = x * norm_coefficient + g
        beta_now = F.where(t > 0, F.constant(x.builder, float(beta), x.dtype), 1.0)
        v_new = v * alpha + beta_now * g_reg
        step = v_new if mode == "standard" else g_reg + v_new * alpha
        new_x.append(x - _like(r, x) * step)
        new_v.append(v_new)
    return tuple(new_x + new_v)


def Adagrad(*data, decay_factor=0.0, epsilon=1e-6, norm_coefficient=0.0):
    """h += g_reg^2; x -= R / (1 + T decay_factor) * g_reg / (sqrt(h) + epsilon)."""
    r, t, (xs, gs, hs) = _groups("Adagrad", data, 3)
    new_x, new_h = [], []
    for x, g, h in zip(xs, gs, hs):
        rate = _like(r / (F.cast(t, r.dtype) * decay_factor + 1.0), x)
        g_reg = x * norm_coefficient + g
        h_new = h + g_reg * g_reg
        new_x.append(x - rate * g_reg / (F.sqrt(h_new) + epsilon))
        new_h.append(h_new)
    return tuple(new_x + new_h)


def Adam(*data, alpha=0.9, beta=0.999, epsilon=1e-6, norm_coefficient=0.0,
         norm_coefficient_post=0.0):
    """v, h: moving averages of g_reg and g_reg^2; x -= R' v / (sqrt(h) + epsilon) with
    R' = R sqrt(1 - beta^T) / (1 - alpha^T) for T > 0, then x *= 1 - norm_coefficient_post."""
    r, t, (xs, gs, vs, hs) = _groups("Adam", data, 4)
    steps = F.cast(F.maximum(t, 1), "f64")  # T = 0 takes R itself below
    correction = F.sqrt(1.0 - F.constant(r.builder, float(beta), "f64") ** steps) / \
        (1.0 - F.constant(r.builder, float(alpha), "f64") ** steps)
    rate64 = F.cast(r, "f64") * F.where(t > 0, correction, 1.0)
    new_x, new_v, new_h = [], [], []
    for x, g, v, h in zip(xs, gs, vs, hs):
        g_reg = x * norm_coefficient + g
        v_new = v * alpha + g_reg * (1.0 - alpha)
        h_new = h * beta + g_reg * g_reg * (1.0 - beta)
        x_new = x - _like(rate64, x) * (v_new / (F.sqrt(h_new) + epsilon))
        new_x.append(x_new * (1.0 - norm_coefficient_post))
        new_v.append(v_new)
        new_h.append(h_new)
    return tuple(new_x + new_v + new_h)
