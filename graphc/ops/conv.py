"""2-D convolution and pooling (NCHW), as window gathers plus matmuls and reductions.

Input: nothing (imported for its side effect). Output: registered OpDefs:
  windows(x; kernel, strides=(1,1), pads=(top,left,bottom,right), dilations=(1,1), value=0.0)
      x [N,C,H,W] (or [N,C,H,W,KH,KW], read at its own kh,kw) -> [N,C,OH,OW,KH,KW]  (im2col)
  col2im(g; size=(H,W), strides, pads, dilations)   windows' adjoint, [N,C,OH,OW,KH,KW] ->
      [N,C,H,W,KH,KW] (summing over the last two axes scatters back to the input)
  conv2d(x, w[, b]; strides, pads, dilations, group)     ONNX Conv (w is [O, C/group, KH, KW])
  max_pool2d(x; kernel_shape, strides, pads, dilations, ceil_mode)              ONNX MaxPool
  avg_pool2d(x; kernel_shape, strides, pads, dilations, ceil_mode, count_include_pad)
                                                                             ONNX AveragePool
pads are ONNX's (x1_begin, x2_begin, x1_end, x2_end) = (top, left, bottom, right). conv2d and
the pools are composites: their bprops are written with windows/col2im/matmul and they decompose
into windows + matmul (conv) or windows + max/sum (pools) after autodiff.
"""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..frontend import dsl as F
from ..frontend import nn as N
from ..types import FLOAT_DTYPES, TensorType
from .registry import REQUIRED, OpDef, register

_WINDOW_ATTRS = {"strides": (1, 1), "pads": (0, 0, 0, 0), "dilations": (1, 1)}


def out_size(size: int, k: int, s: int, before: int, after: int, d: int) -> int:
    return (size + before + after - d * (k - 1) - 1) // s + 1


def _check_window(h, w, kernel, strides, pads, dilations, op: str) -> tuple[int, int]:
    if len(kernel) != 2 or len(strides) != 2 or len(pads) != 4 or len(dilations) != 2:
        raise ShapeError(f"{op}: kernel, strides and dilations need 2 entries and pads 4 "
                         f"(top, left, bottom, right)")
    if min(*kernel, *strides, *dilations) < 1 or min(pads) < 0:
        raise ShapeError(f"{op}: kernel/strides/dilations must be >= 1 and pads >= 0")
    oh = out_size(h, kernel[0], strides[0], pads[0], pads[2], dilations[0])
    ow = out_size(w, kernel[1], strides[1], pads[1], pads[3], dilations[1])
    if oh < 1 or ow < 1:
        raise ShapeError(f"{op}: a {kernel} window (dilation {dilations}) does not fit the "
                         f"padded {h}x{w} input")
    return oh, ow


def _positions(oh, ow, i, j, strides, pads, dilations):
    """Input rows and columns read by kernel tap (i, j) for each output row/column."""
    return (np.arange(oh) * strides[0] + i * dilations[0] - pads[0],
            np.arange(ow) * strides[1] + j * dilations[1] - pads[1])


# --- windows (im2col) and its adjoint ------------------------------------------------------
def _windows_rule(types, attrs):
    (x,), kernel = types, attrs["kernel"]
    if x.rank not in (4, 6) or (x.rank == 6 and x.shape[4:] != tuple(kernel)):
        raise ShapeError(f"windows: input must be [N,C,H,W] or [N,C,H,W,{kernel[0]},"
                         f"{kernel[1]}], got {x}")
    oh, ow = _check_window(*x.shape[2:4], kernel, attrs["strides"], attrs["pads"],
                           attrs["dilations"], "windows")
    return [TensorType(x.shape[:2] + (oh, ow) + tuple(kernel), x.dtype)]


def _windows_reference(x, kernel, strides, pads, dilations, value):
    n, c, h, w = x.shape[:4]
    oh, ow = _check_window(h, w, kernel, strides, pads, dilations, "windows")
    out = np.full((n, c, oh, ow, *kernel), value, x.dtype)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            hs, ws = _positions(oh, ow, i, j, strides, pads, dilations)
            vh, vw = (hs >= 0) & (hs < h), (ws >= 0) & (ws < w)
            src = x[..., i, j] if x.ndim == 6 else x
            out[:, :, np.flatnonzero(vh)[:, None], np.flatnonzero(vw)[None, :], i, j] = \
                src[:, :, hs[vh]][:, :, :, ws[vw]]
    return out


def _windows_index_map(at, e, idx, in_types, out_type, kernel, strides, pads, dilations, value):
    x = in_types[0]
    n, c, oh, ow, i, j = idx
    read, valid = [], []
    for o, k, s, p, d, size in zip((oh, ow), (i, j), strides, pads[:2], dilations, x.shape[2:4]):
        pos = e.sub(e.add(e.mul(o, e.const(s, o)), e.mul(k, e.const(d, k))), e.const(p, o))
        valid += [e.ge(pos, e.const(0, pos)), e.lt(pos, e.const(size, pos))]
        read.append(e.min(e.max(pos, e.const(0, pos)), e.const(size - 1, pos)))
    v = at(0, (n, c, *read) + ((i, j) if x.rank == 6 else ()))
    ok = e.select(valid[0], valid[1], e.const(False, valid[0]))
    ok = e.select(valid[2], ok, e.const(False, ok))
    ok = e.select(valid[3], ok, e.const(False, ok))
    return e.select(ok, v, e.const(value, v))


def _windows_bprop(x, y, g, kernel, strides, pads, dilations, value):
    back = N.col2im(g, x.shape[2:4], strides, pads, dilations)
    return [back if x.ndim == 6 else F.sum(back, (4, 5))]


register(OpDef(
    name="windows", doc="im2col: every kernel window of x, `value` where it reads padding",
    kind="movement", infer=_windows_rule, reference=_windows_reference, bprop=_windows_bprop,
    attrs={"kernel": REQUIRED, **_WINDOW_ATTRS, "value": 0.0}, index_map=_windows_index_map))


def _col2im_rule(types, attrs):
    (g,), (h, w) = types, attrs["size"]
    if g.rank != 6:
        raise ShapeError(f"col2im: expected [N,C,OH,OW,KH,KW], got {g}")
    kernel = g.shape[4:]
    oh, ow = _check_window(h, w, kernel, attrs["strides"], attrs["pads"], attrs["dilations"],
                           "col2im")
    if (oh, ow) != g.shape[2:4]:
        raise ShapeError(f"col2im: {g} has {g.shape[2:4]} windows, but a {h}x{w} input has "
                         f"{(oh, ow)}")
    return [TensorType(g.shape[:2] + (h, w) + kernel, g.dtype)]


def _col2im_reference(g, size, strides, pads, dilations):
    n, c, oh, ow, kh, kw = g.shape
    out = np.zeros((n, c, *size, kh, kw), g.dtype)
    for i in range(kh):
        for j in range(kw):
            hs, ws = _positions(oh, ow, i, j, strides, pads, dilations)
            vh, vw = (hs >= 0) & (hs < size[0]), (ws >= 0) & (ws < size[1])
            out[:, :, hs[vh][:, None], ws[vw][None, :], i, j] = \
                g[:, :, np.flatnonzero(vh)][:, :, :, np.flatnonzero(vw), i, j]
    return out


def _col2im_index_map(at, e, idx, in_types, out_type, size, strides, pads, dilations):
    g = in_types[0]
    n, c, h, w, i, j = idx
    read, valid = [], []
    for pos, k, s, p, d, count in zip((h, w), (i, j), strides, pads[:2], dilations, g.shape[2:4]):
        t = e.sub(e.add(pos, e.const(p, pos)), e.mul(k, e.const(d, k)))
        o = t if s == 1 else e.floordiv(t, e.const(s, t))
        valid += [e.ge(o, e.const(0, o)), e.lt(o, e.const(count, o))]
        if s != 1:
            valid.append(e.eq(e.mod(t, e.const(s, t)), e.const(0, t)))
        read.append(e.min(e.max(o, e.const(0, o)), e.const(count - 1, o)))
    v = at(0, (n, c, *read, i, j))
    ok = valid[0]
    for cond in valid[1:]:
        ok = e.select(cond, ok, e.const(False, ok))
    return e.select(ok, v, e.const(0, v))


register(OpDef(
    name="col2im", doc="windows' adjoint: window element (oh,ow,kh,kw) back at its input pixel",
    kind="movement", infer=_col2im_rule, reference=_col2im_reference,
    bprop=lambda g, y, dy, size, strides, pads, dilations: [
        N.windows(dy, g.shape[4:], strides, pads, dilations)],
    attrs={"size": REQUIRED, **_WINDOW_ATTRS}, index_map=_col2im_index_map))


# --- conv2d -------------------------------------------------------------------------------
def _conv_rule(types, attrs):
    if len(types) not in (2, 3):
        raise ShapeError(f"conv2d takes x, w and an optional bias, got {len(types)} inputs")
    x, w = types[:2]
    group = attrs["group"]
    if x.rank != 4 or w.rank != 4 or x.dtype not in FLOAT_DTYPES or x.dtype != w.dtype:
        raise ShapeError(f"conv2d: x [N,C,H,W] and w [O,C/group,KH,KW] of one float dtype, got "
                         f"{x} and {w}")
    if group < 1 or x.shape[1] != w.shape[1] * group or w.shape[0] % group:
        raise ShapeError(f"conv2d: {x.shape[1]} input channels and {w.shape[0]} filters do not "
                         f"fit group={group} with w {w.shape}")
    if len(types) == 3 and types[2] != TensorType((w.shape[0],), x.dtype):
        raise ShapeError(f"conv2d: bias must be {x.dtype}[{w.shape[0]}], got {types[2]}")
    oh, ow = _check_window(*x.shape[2:], w.shape[2:], attrs["strides"], attrs["pads"],
                           attrs["dilations"], "conv2d")
    return [TensorType((x.shape[0], w.shape[0], oh, ow), x.dtype)]


def _conv_reference(x, w, b=None, *, strides, pads, dilations, group):
    cols = _windows_reference(x, w.shape[2:], strides, pads, dilations, 0.0)
    n, c, oh, ow, kh, kw = cols.shape
    cols = cols.reshape(n, group, c // group, oh, ow, kh, kw)
    wg = w.reshape(group, w.shape[0] // group, *w.shape[1:])
    y = np.einsum("ngchwij,gocij->ngohw", cols, wg).reshape(n, w.shape[0], oh, ow)
    return (y if b is None else y + b[None, :, None, None]).astype(x.dtype)


def _cols(x, w, strides, pads, dilations, group):
    """x's windows as [group, N*OH*OW, C/group*KH*KW] (the A operand of the conv matmul)."""
    c6 = N.windows(x, w.shape[2:], strides, pads, dilations)
    n, c, oh, ow, kh, kw = c6.shape
    c7 = F.reshape(c6, (n, group, c // group, oh, ow, kh, kw))
    return F.reshape(F.transpose(c7, (1, 0, 3, 4, 2, 5, 6)),
                     (group, n * oh * ow, c // group * kh * kw))


def _wmat(w, group):
    """w as [group, O/group, C/group*KH*KW]."""
    o = w.shape[0]
    return F.reshape(w, (group, o // group, w.type.size // o))


def _conv_decompose(x, w, b=None, *, strides, pads, dilations, group):
    cols = _cols(x, w, strides, pads, dilations, group)
    y = cols @ F.swapaxes(_wmat(w, group), 1, 2)  # [G, N*OH*OW, O/G]
    n, o = x.shape[0], w.shape[0]
    oh, ow = _check_window(*x.shape[2:], w.shape[2:], strides, pads, dilations, "conv2d")
    y = F.transpose(F.reshape(y, (group, n, oh, ow, o // group)), (1, 0, 4, 2, 3))
    y = F.reshape(y, (n, o, oh, ow))
    return y if b is None else y + F.reshape(b, (o, 1, 1))


def _conv_bprop(*args, strides, pads, dilations, group):
    x, w = args[:2]
    g = args[-1]
    n, o, oh, ow = g.shape
    c, kh, kw = x.shape[1], w.shape[2], w.shape[3]
    gm = F.reshape(F.transpose(F.reshape(g, (n, group, o // group, oh, ow)), (1, 0, 3, 4, 2)),
                   (group, n * oh * ow, o // group))
    dw = F.reshape(F.swapaxes(gm, 1, 2) @ _cols(x, w, strides, pads, dilations, group), w.shape)
    dcols = F.reshape(gm @ _wmat(w, group), (group, n, oh, ow, c // group, kh, kw))
    dcols = F.reshape(F.transpose(dcols, (1, 0, 4, 2, 3, 5, 6)), (n, c, oh, ow, kh, kw))
    dx = F.sum(N.col2im(dcols, x.shape[2:], strides, pads, dilations), (4, 5))
    return [dx, dw] + ([F.sum(g, (0, 2, 3))] if len(args) == 5 else [])


register(OpDef(
    name="conv2d", doc="ONNX Conv, 2-D NCHW: im2col windows @ filters (+ bias)",
    kind="composite", infer=_conv_rule, reference=_conv_reference, bprop=_conv_bprop,
    attrs={**_WINDOW_ATTRS, "group": 1}, arity=None, decompose=_conv_decompose))


# --- pooling ------------------------------------------------------------------------------
def pool_pads(size, kernel_shape, strides, pads, dilations, ceil_mode) -> tuple[int, ...]:
    """Pads with the bottom/right extended so floor division gives ONNX's ceil_mode size (a
    last window that would start inside the end padding is dropped, as in ONNX and PyTorch)."""
    if not ceil_mode:
        return tuple(pads)
    ends = list(pads[2:])
    for a in range(2):
        span = size[a] + pads[a] + pads[a + 2] - dilations[a] * (kernel_shape[a] - 1) - 1
        out = -(-span // strides[a]) + 1
        if (out - 1) * strides[a] >= size[a] + pads[a]:
            out -= 1
        ends[a] += max(0, (out - 1) * strides[a] - span)
    return (pads[0], pads[1], *ends)


def _pool_rule(types, attrs):
    (x,) = types
    if x.rank != 4 or x.dtype not in FLOAT_DTYPES:
        raise ShapeError(f"pooling needs a float [N,C,H,W] tensor, got {x}")
    pads = pool_pads(x.shape[2:], attrs["kernel_shape"], attrs["strides"], attrs["pads"],
                     attrs["dilations"], attrs["ceil_mode"])
    oh, ow = _check_window(*x.shape[2:], attrs["kernel_shape"], attrs["strides"], pads,
                           attrs["dilations"], "pool")
    return [TensorType(x.shape[:2] + (oh, ow), x.dtype)]


def _pool_windows(x, value, kernel_shape, strides, pads, dilations, ceil_mode, **_):
    pads = pool_pads(x.shape[2:], kernel_shape, strides, pads, dilations, ceil_mode)
    return N.windows(x, kernel_shape, strides, pads, dilations, value)


def _max_pool_reference(x, kernel_shape, strides, pads, dilations, ceil_mode):
    pads = pool_pads(x.shape[2:], kernel_shape, strides, pads, dilations, ceil_mode)
    return _windows_reference(x, kernel_shape, strides, pads, dilations, -np.inf).max(axis=(4, 5))


def _max_pool_bprop(x, y, g, **attrs):
    """Like max's: the gradient is shared equally by the elements that attain the maximum."""
    cols = _pool_windows(x, -np.inf, **attrs)
    mask = F.cast(F.equal(cols, F.reshape(y, y.shape + (1, 1))), x.dtype)
    share = mask * (F.reshape(g, g.shape + (1, 1)) / F.sum(mask, (4, 5), keepdims=True))
    pads = pool_pads(x.shape[2:], attrs["kernel_shape"], attrs["strides"], attrs["pads"],
                     attrs["dilations"], attrs["ceil_mode"])
    return [F.sum(N.col2im(share, x.shape[2:], attrs["strides"], pads, attrs["dilations"]),
                  (4, 5))]


_POOL_ATTRS = {"kernel_shape": REQUIRED, **_WINDOW_ATTRS, "ceil_mode": False}
register(OpDef(
    name="max_pool2d", doc="ONNX MaxPool, 2-D NCHW (padding never wins)", kind="composite",
    infer=_pool_rule, reference=_max_pool_reference, bprop=_max_pool_bprop, attrs=_POOL_ATTRS,
    decompose=lambda x, **attrs: F.max(_pool_windows(x, -np.inf, **attrs), (4, 5))))


def pool_divisor(size, kernel_shape, strides, pads, dilations, ceil_mode, count_include_pad):
    """[OH, OW] element counts of each window: inside the input, or inside the explicitly
    padded input when count_include_pad (the ceil_mode overhang never counts)."""
    full = pool_pads(size, kernel_shape, strides, pads, dilations, ceil_mode)
    counts = []
    for a in range(2):
        out = out_size(size[a], kernel_shape[a], strides[a], full[a], full[a + 2], dilations[a])
        pos = (np.arange(out)[:, None] * strides[a] + np.arange(kernel_shape[a])[None, :]
               * dilations[a] - pads[a])
        lo, hi = (-pads[a], size[a] + pads[a + 2]) if count_include_pad else (0, size[a])
        counts.append(((pos >= lo) & (pos < hi)).sum(axis=1))
    return np.outer(*counts)


def _avg_pool_reference(x, count_include_pad, **attrs):
    pads = pool_pads(x.shape[2:], **attrs)
    total = _windows_reference(x, attrs["kernel_shape"], attrs["strides"], pads,
                               attrs["dilations"], 0.0).sum(axis=(4, 5))
    return (total / pool_divisor(x.shape[2:], count_include_pad=count_include_pad, **attrs)
            ).astype(x.dtype)


def _divisor(x, count_include_pad, **attrs):
    div = pool_divisor(x.shape[2:], count_include_pad=count_include_pad, **attrs)
    return F.constant(x.builder, div, x.dtype)


def _avg_pool_bprop(x, y, g, count_include_pad, **attrs):
    share = F.reshape(g / _divisor(x, count_include_pad, **attrs), g.shape + (1, 1))
    kh, kw = attrs["kernel_shape"]
    cols = F.broadcast_to(share, g.shape + (kh, kw))
    pads = pool_pads(x.shape[2:], **attrs)
    return [F.sum(N.col2im(cols, x.shape[2:], attrs["strides"], pads, attrs["dilations"]),
                  (4, 5))]


register(OpDef(
    name="avg_pool2d", doc="ONNX AveragePool, 2-D NCHW (count_include_pad as in ONNX)",
    kind="composite", infer=_pool_rule, reference=_avg_pool_reference, bprop=_avg_pool_bprop,
    attrs={**_POOL_ATTRS, "count_include_pad": False},
    decompose=lambda x, count_include_pad, **attrs: F.sum(_pool_windows(x, 0.0, **attrs), (4, 5))
    / _divisor(x, count_include_pad, **attrs)))
