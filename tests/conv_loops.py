"""Convolution and pooling by direct loops over output positions, written from the ONNX
operator text (Conv, MaxPool, AveragePool): the independent formulas the conv/pool tests use.
Windows and pools take any number d of spatial axes (d = len(kernel)).

Input: NumPy arrays and the ops' attributes. Output: NumPy arrays (no graphc involved).
"""
from __future__ import annotations

import itertools

import numpy as np


def _size(n, k, s, before, after, d, ceil_mode=False):
    span = n + before + after - d * (k - 1) - 1
    out = (-(-span // s) if ceil_mode else span // s) + 1
    return out - 1 if ceil_mode and (out - 1) * s >= n + before else out


def _fill(kernel, strides, pads, dilations):
    d = len(kernel)
    return (tuple(strides or (1,) * d), tuple(pads or (0,) * (2 * d)),
            tuple(dilations or (1,) * d))


def _taps(out_pos, kernel, strides, pads, dilations):
    """(tap, input position) for every kernel tap of the window at `out_pos`."""
    for tap in itertools.product(*map(range, kernel)):
        yield tap, tuple(o * s + k * dl - p for o, k, s, dl, p
                         in zip(out_pos, tap, strides, dilations, pads))


def windows_loop(x, kernel, strides=None, pads=None, dilations=None, value=0.0):
    d = len(kernel)
    strides, pads, dilations = _fill(kernel, strides, pads, dilations)
    size = x.shape[2:2 + d]
    outs = [_size(size[a], kernel[a], strides[a], pads[a], pads[d + a], dilations[a])
            for a in range(d)]
    y = np.full(x.shape[:2] + tuple(outs) + tuple(kernel), value, x.dtype)
    for o in itertools.product(*map(range, outs)):
        for tap, r in _taps(o, kernel, strides, pads, dilations):
            if all(0 <= r[a] < size[a] for a in range(d)):
                y[(..., *o, *tap)] = x[(..., *r, *tap)] if x.ndim == 2 + 2 * d else x[(..., *r)]
    return y


def col2im_loop(g, size, strides=None, pads=None, dilations=None):
    d = len(size)
    outs, kernel = g.shape[2:2 + d], g.shape[2 + d:]
    strides, pads, dilations = _fill(kernel, strides, pads, dilations)
    y = np.zeros(g.shape[:2] + tuple(size) + kernel, g.dtype)
    for o in itertools.product(*map(range, outs)):
        for tap, r in _taps(o, kernel, strides, pads, dilations):
            if all(0 <= r[a] < size[a] for a in range(d)):
                y[(..., *r, *tap)] = g[(..., *o, *tap)]
    return y


def conv_loop(x, w, b=None, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), group=1):
    """y[n, o, a, b] = sum_{c, i, j} xpad[n, c_o + c, a*s + i*d, b*s + j*d] * w[o, c, i, j]."""
    n, _, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    oh = _size(h, kh, strides[0], pads[0], pads[2], dilations[0])
    ow = _size(wd, kw, strides[1], pads[1], pads[3], dilations[1])
    y = np.zeros((n, o, oh, ow), np.float64)
    for f in range(o):
        c0 = f // (o // group) * cg
        for a in range(oh):
            for q in range(ow):
                r0, s0 = a * strides[0], q * strides[1]
                patch = xp[:, c0:c0 + cg, r0:r0 + dilations[0] * (kh - 1) + 1:dilations[0],
                           s0:s0 + dilations[1] * (kw - 1) + 1:dilations[1]]
                y[:, f, a, q] = np.sum(patch * w[f], axis=(1, 2, 3)) + (0 if b is None else b[f])
    return y.astype(x.dtype)


def pool_loop(x, kernel_shape, strides=None, pads=None, dilations=None, ceil_mode=False,
              kind="max", count_include_pad=False, storage_order=0):
    """kind "max", "avg", or "index": ONNX MaxPool's Indices, the flat index into x (row-major,
    or column-major spatial axes for storage_order=1) of the first maximum in scan order."""
    d = len(kernel_shape)
    strides, pads, dilations = _fill(kernel_shape, strides, pads, dilations)
    n, c, size = x.shape[0], x.shape[1], x.shape[2:]
    outs = [_size(size[a], kernel_shape[a], strides[a], pads[a], pads[d + a], dilations[a],
                  ceil_mode) for a in range(d)]
    y = np.zeros((n, c, *outs), np.int64 if kind == "index" else np.float64)
    order = list(range(d))[::-1] if storage_order else list(range(d))
    for b, ch in itertools.product(range(n), range(c)):
        for o in itertools.product(*map(range, outs)):
            best, where, total, count = -np.inf, -1, 0.0, 0
            for _, r in _taps(o, kernel_shape, strides, pads, dilations):
                inside = all(0 <= r[a] < size[a] for a in range(d))
                if inside:
                    v = x[(b, ch, *r)]
                    total += v
                    if v > best:
                        flat = 0
                        for a in order:
                            flat = flat * size[a] + r[a]
                        best, where = v, (b * c + ch) * int(np.prod(size)) + flat
                if inside or count_include_pad and all(
                        -pads[a] <= r[a] < size[a] + pads[d + a] for a in range(d)):
                    count += 1
            y[(b, ch, *o)] = {"max": best, "avg": total / max(count, 1), "index": where}[kind]
    return y if kind == "index" else y.astype(x.dtype)
