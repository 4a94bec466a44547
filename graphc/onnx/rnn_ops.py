"""ONNX's recurrent ops (LSTM, GRU, RNN) unrolled into static graphs at import time.

Input: a node's operands (Tensors for data and weights; `sequence_lens` as a NumPy array, since
`STATIC` in table.py asks for it at import time) and its attributes under their ONNX names.
Output: the ONNX outputs (Y, Y_h and for LSTM Y_c), built from op-API ops, so gradients,
kernels and export come from the ops themselves.

graphc's shapes are static, so the time loop is unrolled: one matmul projects the inputs of
every time step and every direction at once (`X @ W^T` plus the biases that can be added
there), then each step adds one small `H_{t-1} @ R^T` and applies the gate activations. Steps
past a batch entry's `sequence_lens` keep its state and write zeros to Y (ORT's semantics: a
reverse pass starts at the entry's last valid step). The activation parameters
(activation_alpha/_beta) are consumed in the order of the activations by the activations that
take them (as onnxruntime reads them); one missing takes the ONNX op's default. `clip` bounds
the inputs of the gate activations (onnxruntime does not clip the cell state before LSTM's h).
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np

from graphc.builder import Tensor
from graphc.errors import GraphcError
from graphc.onnx import ops as onnx_ops
from graphc.ops import api as F

_Activation = Callable[[Tensor], Tensor]
_NEEDED = object()  # an activation parameter without an ONNX default: the model must give it

# name (lower case) -> (function(x, alpha, beta), alpha's default, beta's default); a default of
# None: the activation takes no such parameter
_ACTIVATIONS = {
    "sigmoid": (lambda x, alpha, beta: F.sigmoid(x), None, None),
    "tanh": (lambda x, alpha, beta: F.tanh(x), None, None),
    "relu": (lambda x, alpha, beta: F.relu(x), None, None),
    "hardsigmoid": (lambda x, alpha, beta: F.hard_sigmoid(x, alpha, beta), 0.2, 0.5),
    "leakyrelu": (lambda x, alpha, beta: F.leaky_relu(x, alpha), 0.01, None),
    "thresholdedrelu": (lambda x, alpha, beta: onnx_ops.ThresholdedRelu(x, alpha), 1.0, None),
    "elu": (lambda x, alpha, beta: F.elu(x, alpha), 1.0, None),
    "softsign": (lambda x, alpha, beta: onnx_ops.Softsign(x), None, None),
    "softplus": (lambda x, alpha, beta: F.softplus(x), None, None),
    "affine": (lambda x, alpha, beta: x * alpha + beta, _NEEDED, _NEEDED),
    "scaledtanh": (lambda x, alpha, beta: alpha * F.tanh(beta * x), _NEEDED, _NEEDED),
}


def _parameter(values: list[float], default, op: str, name: str, attr: str) -> float | None:
    if default is None:
        return None
    if values:
        return float(values.pop(0))
    if default is _NEEDED:
        raise GraphcError(f"{op}: activation {name} has no default for its {attr} value; the "
                          f"node must give one in {attr}")
    return default


def _activations(op: str, names: Sequence[str] | None, alphas, betas, defaults: list[str],
                 directions: int) -> list[list[_Activation]]:
    """The activation functions of each direction (f, g, h for LSTM; f, g for GRU; f for RNN)."""
    per_direction = len(defaults)
    names = list(names) if names else defaults * directions
    if op == "RNN" and directions == 1 and len(names) == 2:
        names = names[:1]  # the schema's default lists (Tanh, Tanh): onnxruntime takes the first
    if len(names) != per_direction * directions:
        raise GraphcError(f"{op}: activations lists {len(names)} functions {names}; "
                          f"{per_direction} per direction x {directions} direction(s) are needed")
    alphas, betas = [float(a) for a in alphas or []], [float(b) for b in betas or []]
    functions = []
    for name in names:
        entry = _ACTIVATIONS.get(str(name).lower())
        if entry is None:
            raise GraphcError(f"{op}: graphc does not support the activation {name!r} "
                              f"(supported: {', '.join(sorted(_ACTIVATIONS))})")
        fn, alpha_default, beta_default = entry
        alpha = _parameter(alphas, alpha_default, op, name, "activation_alpha")
        beta = _parameter(betas, beta_default, op, name, "activation_beta")
        functions.append(functools.partial(fn, alpha=alpha, beta=beta))
    if alphas or betas:
        raise GraphcError(f"{op}: activation_alpha/activation_beta have {len(alphas)}/"
                          f"{len(betas)} value(s) more than the activations {names} take (each "
                          f"activation with a parameter consumes the next value in order)")
    return [functions[d * per_direction:(d + 1) * per_direction] for d in range(directions)]


# --- shapes and operands -------------------------------------------------------------------------
def _expect(op: str, name: str, x, shape: tuple[int, ...], meaning: str) -> None:
    if x is not None and tuple(x.shape) != shape:
        raise GraphcError(f"{op}: {name} must be {meaning} = {list(shape)}, got {list(x.shape)}")


def _lengths(op: str, sequence_lens, steps: int, batch: int) -> np.ndarray:
    if sequence_lens is None:
        return np.full(batch, steps, np.int64)
    lengths = np.asarray(sequence_lens).astype(np.int64).reshape(-1)
    if lengths.shape != (batch,) or lengths.min() < 1 or lengths.max() > steps:
        raise GraphcError(f"{op}: sequence_lens must hold {batch} lengths from 1 to the "
                          f"sequence length {steps}, got {np.asarray(sequence_lens).tolist()}")
    return lengths


def _clipper(op: str, clip) -> _Activation:
    if clip is None:
        return lambda x: x
    if not clip > 0:
        raise GraphcError(f"{op}: clip must be positive, got {clip}")
    return lambda x: F.clip(x, -float(clip), float(clip))


def _of_direction(x: Tensor, d: int, axis: int, directions: int) -> Tensor:
    """x without its num_directions axis, at direction d."""
    part = x if directions == 1 else F.slice(x, [d], [d + 1], [axis])
    return F.reshape(part, x.shape[:axis] + x.shape[axis + 1:])


def _chunk(x: Tensor, k: int, size: int, count: int = 1) -> Tensor:
    """Columns [k * size, (k + count) * size) of a [batch, gates * size] tensor."""
    return F.slice(x, [k * size], [(k + count) * size], [1])


# --- the unrolled loop -----------------------------------------------------------------------------
_Step = Callable[[Tensor, tuple], tuple]  # (projected input [N, G*H], state) -> new state


class _Recurrence:
    """What the three ops share: operand checks, the one input projection, the time loop over
    each direction and the assembly of Y and the final states."""

    def __init__(self, op: str, gates: int, X, W, R, B, sequence_lens, direction: str,
                 layout: int, hidden_size):
        self.op, self.gates = op, gates
        if direction not in ("forward", "reverse", "bidirectional"):
            raise GraphcError(f"{op}: direction must be forward, reverse or bidirectional, "
                              f"got {direction!r}")
        if layout not in (0, 1):
            raise GraphcError(f"{op}: layout must be 0 or 1, got {layout}")
        if X.ndim != 3 or not X.type.is_float:
            raise GraphcError(f"{op}: X must be a rank-3 float tensor, got {X.type}")
        self.direction, self.layout = direction, layout
        self.D = 2 if direction == "bidirectional" else 1
        steps, batch = (X.shape[1], X.shape[0]) if layout else (X.shape[0], X.shape[1])
        self.T, self.N, self.I = steps, batch, X.shape[2]
        self.H = R.shape[-1] if R.ndim == 3 else 0
        if hidden_size is not None and hidden_size != self.H:
            raise GraphcError(f"{op}: hidden_size={hidden_size}, but R is {list(R.shape)}")
        gh = gates * self.H
        _expect(op, "W", W, (self.D, gh, self.I), f"[num_directions, {gates}*hidden_size, "
                                                 f"input_size]")
        _expect(op, "R", R, (self.D, gh, self.H), f"[num_directions, {gates}*hidden_size, "
                                                 f"hidden_size]")
        _expect(op, "B", B, (self.D, 2 * gh), f"[num_directions, {2 * gates}*hidden_size]")
        self.X, self.W, self.R, self.B = X, W, R, B
        self.lengths = _lengths(op, sequence_lens, self.T, self.N)

    def check_state(self, name: str, x) -> None:
        shape = (self.N, self.D, self.H) if self.layout else (self.D, self.N, self.H)
        meaning = "[batch_size, num_directions, hidden_size]" if self.layout else \
            "[num_directions, batch_size, hidden_size]"
        _expect(self.op, name, x, shape, meaning)

    def initial(self, x, d: int) -> Tensor | None:
        return None if x is None else _of_direction(x, d, 1 if self.layout else 0, self.D)

    def weights(self, d: int) -> Tensor:
        """R^T of direction d: [hidden_size, gates * hidden_size]."""
        return _of_direction(self.R, d, 0, self.D).T

    def projection(self, recurrent_bias_mask: np.ndarray | None = None) -> Tensor:
        """X @ W^T + Wb + Rb (Rb times the mask, when part of it is added per step) for every
        step and direction: [T * N, D * gates * hidden_size], rows in X's order (time-major
        for layout 0, batch-major for layout 1)."""
        gh, X = self.gates * self.H, self.X
        y = F.reshape(X, (X.shape[0] * X.shape[1], self.I)) @ \
            F.reshape(self.W, (self.D * gh, self.I)).T
        if self.B is not None:
            wb = F.slice(self.B, [0], [gh], [1])
            rb = F.slice(self.B, [gh], [2 * gh], [1])
            if recurrent_bias_mask is not None:
                rb = rb * F.constant(X.builder, recurrent_bias_mask, X.dtype)
            y = y + F.reshape(wb + rb, (self.D * gh,))
        return y

    def run(self, projected: Tensor, d: int, step: _Step, state: tuple) -> tuple[list, tuple]:
        """Unroll direction d: the hidden state of every step (None: all zeros) and the final
        state."""
        gh, T, N = self.gates * self.H, self.T, self.N
        order = range(self.T - 1, -1, -1) if self.direction == "reverse" or d == 1 else \
            range(self.T)
        outputs: list = [None] * self.T
        for t in order:
            valid = self.lengths > t
            if not valid.any():
                continue
            rows = (t, T * N, T) if self.layout else (t * N, (t + 1) * N, 1)  # start, end, step
            x = F.slice(projected, [rows[0], d * gh], [rows[1], (d + 1) * gh], [0, 1],
                        [rows[2], 1])
            new = step(x, state)
            if valid.all():
                state, outputs[t] = new, new[0]
            else:
                keep = onnx_ops.const(self.X.builder, valid.reshape(self.N, 1))
                state = tuple(F.where(keep, n, 0.0 if o is None else o)
                              for n, o in zip(new, state))
                outputs[t] = F.where(keep, new[0], 0.0)
        return outputs, state

    def assemble(self, per_direction: list[list]) -> Tensor:
        """Y from the steps' hidden states: [T, D, N, H] (layout 0) or [N, T, D, H]."""
        zeros = F.constant(self.X.builder, np.zeros((self.N, self.H)), self.X.dtype)
        pieces = [zeros if h is None else h for t in range(self.T)
                  for h in (per_direction[d][t] for d in range(self.D))]
        return self.stack(pieces, (self.T, self.D))

    def stack(self, pieces: list[Tensor], outer: tuple[int, ...] | None = None) -> Tensor:
        """[N, H] pieces, in the row-major order of `outer` (default: one axis), stacked into
        [*outer, N, H] (layout 0) or [N, *outer, H] (layout 1): one concat and one reshape."""
        outer = outer or (len(pieces),)
        joined = pieces[0] if len(pieces) == 1 else F.concat(pieces, 1 if self.layout else 0)
        return F.reshape(joined, (self.N, *outer, self.H) if self.layout else
                         (*outer, self.N, self.H))


# --- the cells ---------------------------------------------------------------------------------
def _matmul_added(x: Tensor, h: Tensor | None, weights: Tensor) -> Tensor:
    return x if h is None else x + h @ weights


def RNN(X, W, R, B=None, sequence_lens=None, initial_h=None, activation_alpha=None,
        activation_beta=None, activations=None, clip=None, direction="forward",
        hidden_size=None, layout=0):
    """H_t = f(X_t W^T + H_{t-1} R^T + Wb + Rb)."""
    rec = _Recurrence("RNN", 1, X, W, R, B, sequence_lens, direction, layout, hidden_size)
    rec.check_state("initial_h", initial_h)
    fns = _activations("RNN", activations, activation_alpha, activation_beta, ["Tanh"], rec.D)
    clipped = _clipper("RNN", clip)
    projected = rec.projection()
    ys, finals = [], []
    for d in range(rec.D):
        rt, (f,) = rec.weights(d), fns[d]

        def step(x, state, rt=rt, f=f):
            return (f(clipped(_matmul_added(x, state[0], rt))),)

        y, (h,) = rec.run(projected, d, step, (rec.initial(initial_h, d),))
        ys.append(y)
        finals.append(h)
    return rec.assemble(ys), rec.stack(finals)


def GRU(X, W, R, B=None, sequence_lens=None, initial_h=None, activation_alpha=None,
        activation_beta=None, activations=None, clip=None, direction="forward",
        hidden_size=None, layout=0, linear_before_reset=0):
    """z, r = f(...); h~ = g(X_t Wh^T + (r . H_{t-1}) Rh^T + Rbh + Wbh), or with
    linear_before_reset g(X_t Wh^T + r . (H_{t-1} Rh^T + Rbh) + Wbh) (torch's GRU);
    H_t = (1 - z) . h~ + z . H_{t-1}."""
    rec = _Recurrence("GRU", 3, X, W, R, B, sequence_lens, direction, layout, hidden_size)
    rec.check_state("initial_h", initial_h)
    fns = _activations("GRU", activations, activation_alpha, activation_beta,
                       ["Sigmoid", "Tanh"], rec.D)
    clipped, H = _clipper("GRU", clip), rec.H
    # with linear_before_reset, Rbh is added to H_{t-1} Rh^T inside the reset gate's product
    mask = np.repeat([1.0, 1.0, 0.0], H) if linear_before_reset else None
    projected = rec.projection(mask)
    ys, finals = [], []
    for d in range(rec.D):
        rt, (f, g) = rec.weights(d), fns[d]
        rt_zr, rt_h = (None, None) if linear_before_reset else (_chunk(rt, 0, H, 2),
                                                                 _chunk(rt, 2, H))
        rbh = None if B is None or not linear_before_reset else F.reshape(
            _of_direction(F.slice(B, [3 * H], [6 * H], [1]), d, 0, rec.D) *
            F.constant(X.builder, 1 - mask, X.dtype), (1, 3 * H))  # [0, 0, Rbh]

        def step(x, state, rt=rt, rt_zr=rt_zr, rt_h=rt_h, f=f, g=g, rbh=rbh):
            h = state[0]
            if linear_before_reset:  # one matmul: H_{t-1} R^T (+ [0, 0, Rbh])
                hr = None if h is None else h @ rt
                hr = rbh if hr is None else hr if rbh is None else hr + rbh
                zr = f(clipped(_chunk(x if hr is None else x + hr, 0, H, 2)))
                r = _chunk(zr, 1, H)
                candidate = _chunk(x, 2, H) if hr is None else _chunk(x, 2, H) + r * \
                    _chunk(hr, 2, H)
            else:
                zr = f(clipped(_matmul_added(_chunk(x, 0, H, 2), h, rt_zr)))
                r = _chunk(zr, 1, H)
                candidate = _matmul_added(_chunk(x, 2, H), None if h is None else r * h, rt_h)
            z, new = _chunk(zr, 0, H), g(clipped(candidate))
            return (new - z * new if h is None else new + z * (h - new),)

        y, (h,) = rec.run(projected, d, step, (rec.initial(initial_h, d),))
        ys.append(y)
        finals.append(h)
    return rec.assemble(ys), rec.stack(finals)


def LSTM(X, W, R, B=None, sequence_lens=None, initial_h=None, initial_c=None, P=None,
         activation_alpha=None, activation_beta=None, activations=None, clip=None,
         direction="forward", hidden_size=None, input_forget=0, layout=0):
    """Gates i, o, f, c (that order in W, R, B); peepholes P in the order i, o, f:
    i = f(... + Pi . C_{t-1}), f = f(... + Pf . C_{t-1}) (or 1 - i with input_forget),
    C_t = f . C_{t-1} + i . g(...), o = f(... + Po . C_t), H_t = o . h(C_t)."""
    rec = _Recurrence("LSTM", 4, X, W, R, B, sequence_lens, direction, layout, hidden_size)
    rec.check_state("initial_h", initial_h)
    rec.check_state("initial_c", initial_c)
    _expect("LSTM", "P", P, (rec.D, 3 * rec.H), "[num_directions, 3*hidden_size]")
    fns = _activations("LSTM", activations, activation_alpha, activation_beta,
                       ["Sigmoid", "Tanh", "Tanh"], rec.D)
    clipped, H = _clipper("LSTM", clip), rec.H
    projected = rec.projection()
    ys, final_h, final_c = [], [], []
    for d in range(rec.D):
        rt, (f, g, h_act) = rec.weights(d), fns[d]
        peep = None if P is None else _of_direction(P, d, 0, rec.D)
        pi, po, pf = (None, None, None) if peep is None else \
            (F.slice(peep, [k * H], [(k + 1) * H], [0]) for k in range(3))

        def step(x, state, rt=rt, f=f, g=g, h_act=h_act, pi=pi, po=po, pf=pf):
            h, c = state
            gates = _matmul_added(x, h, rt)
            i_in, o_in, f_in, c_in = (_chunk(gates, k, H) for k in range(4))
            if pi is not None and c is not None:
                i_in, f_in = i_in + pi * c, f_in + pf * c
            i = f(clipped(i_in))
            cell = i * g(clipped(c_in))
            if c is not None:
                cell = cell + (1 - i if input_forget else f(clipped(f_in))) * c
            if po is not None:
                o_in = o_in + po * cell
            return f(clipped(o_in)) * h_act(cell), cell

        start = (rec.initial(initial_h, d), rec.initial(initial_c, d))
        y, (h, c) = rec.run(projected, d, step, start)
        ys.append(y)
        final_h.append(h)
        final_c.append(c)
    return rec.assemble(ys), rec.stack(final_h), rec.stack(final_c)
