"""Convolution and pooling by direct loops over output positions, written from the ONNX
operator text (Conv, MaxPool, AveragePool): the independent formulas the conv/pool tests use.

Input: NumPy arrays and the ops' attributes. Output: NumPy arrays (no graphc involved).
"""
from __future__ import annotations

import numpy as np


def _size(n, k, s, before, after, d, ceil_mode=False):
    span = n + before + after - d * (k - 1) - 1
    out = (-(-span // s) if ceil_mode else span // s) + 1
    return out - 1 if ceil_mode and (out - 1) * s >= n + before else out


def windows_loop(x, kernel, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), value=0.0):
    n, c, h, w = x.shape[:4]
    oh = _size(h, kernel[0], strides[0], pads[0], pads[2], dilations[0])
    ow = _size(w, kernel[1], strides[1], pads[1], pads[3], dilations[1])
    out = np.full((n, c, oh, ow, *kernel), value, x.dtype)
    for a in range(oh):
        for b in range(ow):
            for i in range(kernel[0]):
                for j in range(kernel[1]):
                    r = a * strides[0] + i * dilations[0] - pads[0]
                    q = b * strides[1] + j * dilations[1] - pads[1]
                    if 0 <= r < h and 0 <= q < w:
                        out[:, :, a, b, i, j] = x[:, :, r, q, i, j] if x.ndim == 6 else x[:, :, r, q]
    return out


def col2im_loop(g, size, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1)):
    n, c, oh, ow, kh, kw = g.shape
    out = np.zeros((n, c, *size, kh, kw), g.dtype)
    for a in range(oh):
        for b in range(ow):
            for i in range(kh):
                for j in range(kw):
                    r = a * strides[0] + i * dilations[0] - pads[0]
                    q = b * strides[1] + j * dilations[1] - pads[1]
                    if 0 <= r < size[0] and 0 <= q < size[1]:
                        out[:, :, r, q, i, j] = g[:, :, a, b, i, j]
    return out


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


def pool_loop(x, kernel_shape, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1),
              ceil_mode=False, kind="max", count_include_pad=False):
    n, c, h, w = x.shape
    oh = _size(h, kernel_shape[0], strides[0], pads[0], pads[2], dilations[0], ceil_mode)
    ow = _size(w, kernel_shape[1], strides[1], pads[1], pads[3], dilations[1], ceil_mode)
    y = np.zeros((n, c, oh, ow), np.float64)
    for a in range(oh):
        for b in range(ow):
            vals, count = [], 0
            for i in range(kernel_shape[0]):
                for j in range(kernel_shape[1]):
                    r = a * strides[0] + i * dilations[0] - pads[0]
                    q = b * strides[1] + j * dilations[1] - pads[1]
                    if 0 <= r < h and 0 <= q < w:
                        vals.append(x[:, :, r, q])
                    if count_include_pad and -pads[0] <= r < h + pads[2] and \
                            -pads[1] <= q < w + pads[3] or (0 <= r < h and 0 <= q < w):
                        count += 1
            stack = np.stack(vals)
            y[:, :, a, b] = stack.max(0) if kind == "max" else stack.sum(0) / count
    return y.astype(x.dtype)
