"""ONNX export rules for convolution, pooling and the window ops (ops/conv.py, ops/pool.py).

Input: a node of op conv2d, max_pool, max_pool_indices, avg_pool, windows or col2im, with the
writer of graphc/onnx/export.py, which collects the `write_<op>` rules. Output: standard ONNX
nodes:
  conv2d -> Conv; max_pool -> MaxPool (Y); max_pool_indices -> MaxPool's Indices output (one
  MaxPool serves both when a graph pools the same input both ways); avg_pool -> AveragePool;
  windows (im2col) and col2im (its adjoint), which training graphs use for conv and pool
  gradients -> Reshape to [N, C, flat] + Pad with one extra element (the padding value, or 0)
  + Gather of a constant int64 index tensor. Each output element of windows or col2im reads at
  most one input element (col2im keeps the kernel axes, so no two windows land on one output),
  hence a gather is exact and needs no scatter-add; positions outside the input read the
  appended element.
"""
from __future__ import annotations

import numpy as np
from onnx import helper

from graphc.ops.conv import check_window, geometry


def _ints(xs) -> list[int]:
    return [int(v) for v in xs]


def _window_attrs(kernel, strides, pads, dilations) -> dict:
    strides, pads, dilations = geometry(kernel, strides, pads, dilations, "export")
    return {"kernel_shape": _ints(kernel), "strides": _ints(strides), "pads": _ints(pads),
            "dilations": _ints(dilations)}


def _gather_flat(w, x: str, shape, index: np.ndarray, fill, dtype, out: str) -> None:
    """out[n, c, *i] = x.reshape(N, C, -1)[n, c, index[*i]], where index == size reads `fill`."""
    flat = w.emit("Reshape", [x, w.const(np.asarray([shape[0], shape[1], -1], np.int64))])
    padded = w.emit("Pad", [flat, w.const(np.asarray([0, 0, 0, 0, 0, 1], np.int64)),
                            w.const(np.asarray(fill, dtype))], mode="constant")
    w.emit("Gather", [padded, w.const(index.astype(np.int64))], [out], axis=2)


def windows_index(in_shape, kernel, strides, pads, dilations) -> np.ndarray:
    """[*O, *K] flat positions in x's [*S] (or [*S, *K]) axes; prod of them where padding."""
    d, kernel = len(kernel), tuple(kernel)
    size = tuple(in_shape[2:2 + d])
    out = check_window(size, kernel, strides, pads, dilations, "windows")
    strides, pads, dilations = geometry(kernel, strides, pads, dilations, "windows")
    grid = np.indices(out + kernel)
    pos = [grid[a] * strides[a] + grid[d + a] * dilations[a] - pads[a] for a in range(d)]
    inside = np.all([(p >= 0) & (p < n) for p, n in zip(pos, size)], axis=0)
    read = [np.clip(p, 0, n - 1) for p, n in zip(pos, size)]
    dims = size
    if len(in_shape) == 2 + 2 * d:  # [N,C,*S,*K]: each tap reads its own kernel slot
        read, dims = read + list(grid[d:]), size + kernel
    return np.where(inside, np.ravel_multi_index(read, dims), int(np.prod(dims)))


def col2im_index(g_shape, size, strides, pads, dilations) -> np.ndarray:
    """[*S, *K] flat positions in g's [*O, *K] axes; prod of them where no window reads."""
    d, size = len(size), tuple(size)
    out, kernel = tuple(g_shape[2:2 + d]), tuple(g_shape[2 + d:])
    strides, pads, dilations = geometry(kernel, strides, pads, dilations, "col2im")
    grid = np.indices(size + kernel)
    ts = [grid[a] + pads[a] - grid[d + a] * dilations[a] for a in range(d)]
    os_ = [t // s for t, s in zip(ts, strides)]
    hit = np.all([(t % s == 0) & (o >= 0) & (o < n)
                  for t, s, o, n in zip(ts, strides, os_, out)], axis=0)
    read = [np.clip(o, 0, n - 1) for o, n in zip(os_, out)] + list(grid[d:])
    return np.where(hit, np.ravel_multi_index(read, out + kernel), int(np.prod(out + kernel)))


def write_windows(w, node, ins, outs):
    a, x = node.attrs, node.inputs[0].type
    index = windows_index(x.shape, a["kernel"], a["strides"], a["pads"], a["dilations"])
    _gather_flat(w, ins[0], x.shape, index, a["value"], x.np_dtype, outs[0])


def write_col2im(w, node, ins, outs):
    a, g = node.attrs, node.inputs[0].type
    index = col2im_index(g.shape, a["size"], a["strides"], a["pads"], a["dilations"])
    _gather_flat(w, ins[0], g.shape, index, 0, g.np_dtype, outs[0])


def write_conv2d(w, node, ins, outs):
    a = node.attrs
    kernel = node.inputs[1].type.shape[2:]
    w.emit("Conv", ins, outs, group=int(a["group"]),
           **_window_attrs(kernel, a["strides"], a["pads"], a["dilations"]))


def _pool_attrs(a) -> dict:
    return {**_window_attrs(a["kernel_shape"], a["strides"], a["pads"], a["dilations"]),
            "ceil_mode": int(a["ceil_mode"])}


def _shared_max_pool(w, x: str, attrs: dict):
    """The MaxPool node already written for input x with these attrs, or None."""
    return w.memo.get(("MaxPool", x, repr(sorted(attrs.items()))))


def write_max_pool(w, node, ins, outs):
    attrs = _pool_attrs(node.attrs)
    shared = _shared_max_pool(w, ins[0], attrs)
    if shared is not None:
        w.emit("Identity", [shared.output[0]], outs)
        return
    w.emit("MaxPool", ins, outs, **attrs)
    w.memo[("MaxPool", ins[0], repr(sorted(attrs.items())))] = w.nodes[-1]


def write_max_pool_indices(w, node, ins, outs):
    """MaxPool's second output; added to the MaxPool of the same pooling when there is one."""
    attrs = _pool_attrs(node.attrs)
    order = int(node.attrs["storage_order"])
    shared = _shared_max_pool(w, ins[0], attrs)
    if shared is not None and len(shared.output) == 1:
        shared.output.append(outs[0])
        shared.attribute.append(helper.make_attribute("storage_order", order))
        return
    w.emit("MaxPool", ins, [w.fresh("maxpool_y"), outs[0]], storage_order=order, **attrs)
    w.memo.setdefault(("MaxPool", ins[0], repr(sorted(attrs.items()))), w.nodes[-1])


def write_avg_pool(w, node, ins, outs):
    w.emit("AveragePool", ins, outs, count_include_pad=int(node.attrs["count_include_pad"]),
           **_pool_attrs(node.attrs))
