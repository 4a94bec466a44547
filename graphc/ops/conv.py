"""Convolution and N-d window gathers: im2col windows, its adjoint col2im, conv and conv2d.

Input: nothing (imported for its side effect). Output: registered OpDefs:
  windows(x; kernel, strides, pads, dilations, value=0.0)   im2col over the last d spatial axes
      (d = len(kernel)): x [N,C,*S] (or [N,C,*S,*K], read at its own kernel tap) ->
      [N,C,*O,*K], `value` where a window reads padding
  col2im(g; size, strides, pads, dilations)   windows' adjoint, [N,C,*O,*K] -> [N,C,*S,*K]
      (summing over the last d axes scatters back to the input)
  conv(x, w[, b]; strides, pads, dilations, group)   ONNX Conv over d = w.ndim - 2 spatial axes
      (x [N,C,*S], w [O, C/group, *K]); conv2d(...) is the same op held to d = 2 (NCHW)
pads are ONNX's (x1_begin, x2_begin, ..., x1_end, x2_end, ...); strides/dilations default to 1
and pads to 0 on every axis (None). conv and conv2d are composites: their bprop is written with
windows/col2im/matmul and they decompose into windows + matmul after autodiff. The pools
(ops/pool.py) are windows + max/sum. Each op has its op-API function here, which takes an int
for "the same on every axis" and None for the defaults.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from graphc.builder import Tensor
from graphc.errors import ShapeError
from graphc.ops import api as F
from graphc.ops.api import _apply
from graphc.ops.registry import REQUIRED, OpDef, register
from graphc.types import FLOAT_DTYPES, HALF_DTYPES, TensorType, dtype_name

_WINDOW_ATTRS = {"strides": None, "pads": None, "dilations": None}


def out_size(size: int, k: int, s: int, before: int, after: int, d: int) -> int:
    return (size + before + after - d * (k - 1) - 1) // s + 1


def geometry(kernel, strides, pads, dilations, op: str):
    """(strides, pads, dilations) with None filled in (1s, 0s, 1s), lengths checked."""
    d = len(kernel)
    strides = (1,) * d if strides is None else tuple(strides)
    pads = (0,) * (2 * d) if pads is None else tuple(pads)
    dilations = (1,) * d if dilations is None else tuple(dilations)
    if d < 1 or len(strides) != d or len(pads) != 2 * d or len(dilations) != d:
        raise ShapeError(f"{op}: kernel, strides and dilations need one entry per spatial axis "
                         f"and pads 2 (all begins, then all ends), got kernel {kernel}, strides "
                         f"{strides}, pads {pads}, dilations {dilations}")
    if min(*kernel, *strides, *dilations) < 1 or min(pads) < 0:
        raise ShapeError(f"{op}: kernel/strides/dilations must be >= 1 and pads >= 0")
    return strides, pads, dilations


def check_window(size, kernel, strides, pads, dilations, op: str) -> tuple[int, ...]:
    """The number of windows along each spatial axis (ShapeError when one does not fit)."""
    strides, pads, dilations = geometry(kernel, strides, pads, dilations, op)
    d = len(kernel)
    out = tuple(out_size(size[a], kernel[a], strides[a], pads[a], pads[d + a], dilations[a])
                for a in range(d))
    if min(out) < 1:
        raise ShapeError(f"{op}: a {tuple(kernel)} window (dilation {dilations}) does not fit "
                         f"the padded {'x'.join(map(str, size))} input")
    return out


def _positions(out, a, k, strides, pads, dilations):
    """Input positions along spatial axis a read by kernel tap k for each of `out` windows."""
    return np.arange(out) * strides[a] + k * dilations[a] - pads[a]


def _tap_slices(size, out, tap, strides, pads, dilations):
    """For kernel tap `tap`: per axis (window indices, input positions) that lie inside."""
    sel = []
    for a, k in enumerate(tap):
        pos = _positions(out[a], a, k, strides, pads, dilations)
        ok = (pos >= 0) & (pos < size[a])
        sel.append((np.flatnonzero(ok), pos[ok]))
    return sel


def spatial(v, d: int, name: str) -> tuple[int, ...]:
    """An int (the same on every spatial axis), one value per axis, or None (1s)."""
    v = (1 if v is None else v,) * d if v is None or isinstance(v, int) else tuple(v)
    if len(v) != d:
        raise ValueError(f"{name} needs 1 or {d} values, got {v}")
    return tuple(int(a) for a in v)


def pad_ends(pads, d: int) -> tuple[int, ...]:
    """An int, one pad per axis (both ends), ONNX's (begins..., ends...), or None (0s)."""
    pads = (pads or 0,) * (2 * d) if pads is None or isinstance(pads, int) else tuple(pads)
    return tuple(int(p) for p in (pads * 2 if len(pads) == d else pads))


# --- windows (im2col) and its adjoint ------------------------------------------------------
def _windows_rule(types, attrs):
    (x,), kernel = types, tuple(attrs["kernel"])
    d = len(kernel)
    if x.rank not in (2 + d, 2 + 2 * d) or (x.rank == 2 + 2 * d and x.shape[2 + d:] != kernel):
        raise ShapeError(f"windows: input must be [N,C,*S] or [N,C,*S,*{list(kernel)}] for a "
                         f"{d}-D kernel, got {x}")
    out = check_window(x.shape[2:2 + d], kernel, attrs["strides"], attrs["pads"],
                       attrs["dilations"], "windows")
    return [TensorType(x.shape[:2] + out + kernel, x.dtype)]


def _windows_reference(x, kernel, strides, pads, dilations, value):
    d = len(kernel)
    size = x.shape[2:2 + d]
    out = check_window(size, kernel, strides, pads, dilations, "windows")
    strides, pads, dilations = geometry(kernel, strides, pads, dilations, "windows")
    y = np.full(x.shape[:2] + out + tuple(kernel), value, x.dtype)
    for tap in np.ndindex(*kernel):
        sel = _tap_slices(size, out, tap, strides, pads, dilations)
        src = x[(..., *tap)] if x.ndim == 2 + 2 * d else x
        y[(slice(None), slice(None), *np.ix_(*[o for o, _ in sel]), *tap)] = \
            src[(slice(None), slice(None), *np.ix_(*[p for _, p in sel]))]
    return y


def _all(e, conds):
    ok = conds[0]
    for cond in conds[1:]:
        ok = e.select(cond, ok, e.const(False, ok))
    return ok


def _windows_index_map(at, e, idx, in_types, out_type, kernel, strides, pads, dilations, value):
    x, d = in_types[0], len(kernel)
    strides, pads, dilations = geometry(kernel, strides, pads, dilations, "windows")
    outs, taps = idx[2:2 + d], idx[2 + d:]
    raw, clamped, valid = [], [], []
    for a in range(d):
        o, k, size = outs[a], taps[a], x.shape[2 + a]
        pos = e.sub(e.add(e.mul(o, e.const(strides[a], o)), e.mul(k, e.const(dilations[a], k))),
                    e.const(pads[a], o))
        raw.append(pos)
        last = (out_type.shape[2 + a] - 1) * strides[a] + (kernel[a] - 1) * dilations[a]
        if pads[a] == 0 and last - pads[a] < size:  # every window inside: a plain strided read
            clamped.append(pos)
            continue
        valid += [e.ge(pos, e.const(0, pos)), e.lt(pos, e.const(size, pos))]
        clamped.append(e.min(e.max(pos, e.const(0, pos)), e.const(size - 1, pos)))
    tail = tuple(taps) if x.rank == 2 + 2 * d else ()
    if not valid:
        return at(0, (*idx[:2], *raw) + tail)
    return e.read_if(_all(e, valid), lambda: at(0, (*idx[:2], *raw) + tail),
                     lambda: at(0, (*idx[:2], *clamped) + tail), value)


def _windows_bprop(x, y, g, kernel, strides, pads, dilations, value):
    d = len(kernel)
    back = col2im(g, x.shape[2:2 + d], strides, pads, dilations)
    return [back if x.ndim == 2 + 2 * d else F.sum(back, tuple(range(2 + d, 2 + 2 * d)))]


def windows(x: Tensor, kernel, strides=1, pads=0, dilations=1, value: float = 0.0) -> Tensor:
    """im2col: [N,C,*S] -> [N,C,*O,*K] (`value` where a window reads padding); an int kernel
    means a 2-D one."""
    d = 2 if isinstance(kernel, int) else len(kernel)
    return _apply("windows", x, kernel=spatial(kernel, d, "kernel"),
                  strides=spatial(strides, d, "strides"), pads=pad_ends(pads, d),
                  dilations=spatial(dilations, d, "dilations"), value=value)


register(OpDef(
    name="windows", doc="im2col: every kernel window of x, `value` where it reads padding",
    kind="movement", infer=_windows_rule, reference=_windows_reference, bprop=_windows_bprop,
    attrs={"kernel": REQUIRED, **_WINDOW_ATTRS, "value": 0.0}, index_map=_windows_index_map,
    dsl=windows))


def _col2im_rule(types, attrs):
    (g,), size = types, tuple(attrs["size"])
    d = len(size)
    if g.rank != 2 + 2 * d:
        raise ShapeError(f"col2im: expected [N,C,*O,*K] with {d} window and {d} kernel axes, "
                         f"got {g}")
    kernel = g.shape[2 + d:]
    out = check_window(size, kernel, attrs["strides"], attrs["pads"], attrs["dilations"],
                       "col2im")
    if out != g.shape[2:2 + d]:
        raise ShapeError(f"col2im: {g} has {g.shape[2:2 + d]} windows, but a "
                         f"{'x'.join(map(str, size))} input has {out}")
    return [TensorType(g.shape[:2] + size + kernel, g.dtype)]


def _col2im_reference(g, size, strides, pads, dilations):
    d = len(size)
    out, kernel = g.shape[2:2 + d], g.shape[2 + d:]
    strides, pads, dilations = geometry(kernel, strides, pads, dilations, "col2im")
    y = np.zeros(g.shape[:2] + tuple(size) + kernel, g.dtype)
    for tap in np.ndindex(*kernel):
        sel = _tap_slices(size, out, tap, strides, pads, dilations)
        y[(slice(None), slice(None), *np.ix_(*[p for _, p in sel]), *tap)] = \
            g[(slice(None), slice(None), *np.ix_(*[o for o, _ in sel]), *tap)]
    return y


def _col2im_index_map(at, e, idx, in_types, out_type, size, strides, pads, dilations):
    g, d = in_types[0], len(size)
    strides, pads, dilations = geometry(g.shape[2 + d:], strides, pads, dilations, "col2im")
    poss, taps = idx[2:2 + d], idx[2 + d:]
    raw, clamped, valid = [], [], []
    for a in range(d):
        pos, k, s, count = poss[a], taps[a], strides[a], g.shape[2 + a]
        t = e.sub(e.add(pos, e.const(pads[a], pos)), e.mul(k, e.const(dilations[a], k)))
        o = t if s == 1 else e.floordiv(t, e.const(s, t))
        valid += [e.ge(o, e.const(0, o)), e.lt(o, e.const(count, o))]
        if s != 1:
            valid.append(e.eq(e.mod(t, e.const(s, t)), e.const(0, t)))
        raw.append(o)
        clamped.append(e.min(e.max(o, e.const(0, o)), e.const(count - 1, o)))
    return e.read_if(_all(e, valid), lambda: at(0, (*idx[:2], *raw, *taps)),
                     lambda: at(0, (*idx[:2], *clamped, *taps)), 0)


def col2im(g: Tensor, size, strides=1, pads=0, dilations=1) -> Tensor:
    """windows' adjoint: [N,C,*O,*K] -> [N,C,*S,*K] (an int size means a 2-D one)."""
    d = 2 if isinstance(size, int) else len(size)
    return _apply("col2im", g, size=spatial(size, d, "size"),
                  strides=spatial(strides, d, "strides"), pads=pad_ends(pads, d),
                  dilations=spatial(dilations, d, "dilations"))


register(OpDef(
    name="col2im", doc="windows' adjoint: window element (*o, *k) back at its input position",
    kind="movement", infer=_col2im_rule, reference=_col2im_reference,
    bprop=lambda g, y, dy, size, strides, pads, dilations: [
        windows(dy, g.shape[2 + len(size):], strides, pads, dilations)],
    attrs={"size": REQUIRED, **_WINDOW_ATTRS}, index_map=_col2im_index_map, dsl=col2im))


# --- convolution: conv (any number d of spatial axes) and conv2d (d = 2) -------------------------
def _conv_rule(types, attrs, op: str, d: int | None = None):
    if len(types) not in (2, 3):
        raise ShapeError(f"{op} takes x, w and an optional bias, got {len(types)} inputs")
    x, w = types[:2]
    group = attrs["group"]
    rank = w.rank if d is None else 2 + d
    if x.rank != rank or w.rank != rank or rank < 3 or x.dtype not in FLOAT_DTYPES \
            or x.dtype != w.dtype:
        shown = "[N,C,H,W] and w [O,C/group,KH,KW]" if d == 2 else \
            "[N,C,*S] and w [O,C/group,*K] (one kernel axis per spatial axis)"
        raise ShapeError(f"{op}: x {shown} of one float dtype, got {x} and {w}")
    if group < 1 or x.shape[1] != w.shape[1] * group or w.shape[0] % group:
        raise ShapeError(f"{op}: {x.shape[1]} input channels and {w.shape[0]} filters do not "
                         f"fit group={group} with w {w.shape}")
    if len(types) == 3 and types[2] != TensorType((w.shape[0],), x.dtype):
        raise ShapeError(f"{op}: bias must be {x.dtype}[{w.shape[0]}], got {types[2]}")
    out = check_window(x.shape[2:], w.shape[2:], attrs["strides"], attrs["pads"],
                       attrs["dilations"], op)
    return [TensorType((x.shape[0], w.shape[0]) + out, x.dtype)]


def _conv_reference(x, w, b=None, *, strides, pads, dilations, group):
    cols = _windows_reference(x, w.shape[2:], strides, pads, dilations, 0.0)
    n, c, d = x.shape[0], x.shape[1], w.ndim - 2
    out = cols.shape[2:2 + d]
    cols = cols.reshape(n, group, c // group, math.prod(out), math.prod(w.shape[2:]))
    wg = w.reshape(group, w.shape[0] // group, c // group, -1)
    acc = np.float32 if dtype_name(x.dtype) in HALF_DTYPES else x.dtype  # as kernels do
    y = np.einsum("ngcpk,gock->ngop", cols.astype(acc), wg.astype(acc)).reshape(
        (n, w.shape[0]) + out)
    return (y if b is None else y + b.reshape((-1,) + (1,) * d)).astype(x.dtype)


# Two layouts of the conv GEMMs. Per image (the images are the matmul's batch): each image's
# GEMM re-reads the filters, N times a step in all. Batch-merged (the images side by side in one
# GEMM per group): the filters are read once, but the windows and the output are transposed
# between image-major and position-major order, which costs about their size. Merged wins when
# the filters outweigh what one image's GEMM reads and writes besides them: P (O + CK) < O CK
# with P output positions, O filters and CK = C*prod(K) filter taps per group. A ResNet's deep
# layers (4x4 down to 1x1 positions, 128-512 filters of 9*C taps) merge; LeNet's 24x24 and 8x8
# layers with 6 and 16 filters stay per image. Measured on one core: ResNet-18's training step
# (batch 8, 3x32x32) went from 313 ms to 110 ms; merging LeNet's second conv too was slower.
def merged_layout(positions: int, filters: int, taps: int) -> bool:
    return positions * (filters + taps) < filters * taps


def _cols_per_image(x, w, strides, pads, dilations, group):
    """x's windows as [N, group, C/group*prod(K), prod(O)]: per image, the B operand of the
    conv matmul. Images are the batch of the matmul, so its output is NC* as it stands, the
    few filters (LeNet's 6) sit on the GEMM's short M side, and each column row reads x along
    a row of the image (contiguous in the last output axis)."""
    d = w.ndim - 2
    cols = windows(x, w.shape[2:], strides, pads, dilations)  # [N, C, *O, *K]
    n, c, out, kernel = x.shape[0], x.shape[1], cols.shape[2:2 + d], cols.shape[2 + d:]
    grouped = F.reshape(cols, (n, group, c // group) + out + kernel)
    kernel_first = (0, 1, 2, *range(3 + d, 3 + 2 * d), *range(3, 3 + d))
    return F.reshape(F.transpose(grouped, kernel_first),
                     (n, group, c // group * math.prod(kernel), math.prod(out)))


def _cols(x, w, strides, pads, dilations, group):
    """x's windows as [group, C/group*prod(K), N*prod(O)]: the B operand of the conv matmul,
    with the images side by side along its columns. One GEMM per group then covers the whole
    batch, so each filter is read once per step rather than once per image (the deep layers
    of a ResNet have few output positions: per image their GEMMs were matrix-vector
    products), and the weight gradient contracts over N*prod(O) in the GEMM itself instead of
    summing N per-image gradients afterwards."""
    d = w.ndim - 2
    cols = windows(x, w.shape[2:], strides, pads, dilations)  # [N, C, *O, *K]
    n, c, out, kernel = x.shape[0], x.shape[1], cols.shape[2:2 + d], cols.shape[2 + d:]
    grouped = F.reshape(cols, (n, group, c // group) + out + kernel)
    kernel_first = (1, 2, *range(3 + d, 3 + 2 * d), 0, *range(3, 3 + d))  # [G, C/G, *K, N, *O]
    return F.reshape(F.transpose(grouped, kernel_first),
                     (group, c // group * math.prod(kernel), n * math.prod(out)))


def _wmat(w, group):
    """w as [group, O/group, C/group*prod(K)]."""
    o = w.shape[0]
    return F.reshape(w, (group, o // group, w.type.size // o))


def _images_first(y, n, out):
    """[G, O/G, N*prod(O)] (a conv matmul's result) as [N, O, *O]."""
    group, per = y.shape[0], y.shape[1]
    y = F.transpose(F.reshape(y, (group, per, n, math.prod(out))), (2, 0, 1, 3))
    return F.reshape(y, (n, group * per) + tuple(out))


def _images_last(g, group):
    """[N, O, *O] (an output gradient) as [G, O/G, N*prod(O)]."""
    n, o = g.shape[0], g.shape[1]
    p = g.type.size // (n * o)
    gm = F.transpose(F.reshape(g, (n, group, o // group, p)), (1, 2, 0, 3))
    return F.reshape(gm, (group, o // group, n * p))


def _conv_decompose(x, w, b=None, *, strides, pads, dilations, group):
    out = check_window(x.shape[2:], w.shape[2:], strides, pads, dilations, "conv")
    if merged_layout(math.prod(out), w.shape[0] // group, w.type.size // w.shape[0]):
        y = _images_first(_wmat(w, group) @ _cols(x, w, strides, pads, dilations, group),
                          x.shape[0], out)
    else:  # [N, G, O/G, prod(O)]
        y = F.reshape(_wmat(w, group) @ _cols_per_image(x, w, strides, pads, dilations, group),
                      (x.shape[0], w.shape[0]) + out)
    return y if b is None else y + F.reshape(b, (w.shape[0],) + (1,) * (w.ndim - 2))


def _conv_bprop(*args, strides, pads, dilations, group):
    x, w = args[:2]
    g = args[-1]
    d = w.ndim - 2
    n, out = g.shape[0], g.shape[2:]
    c, kernel = x.shape[1], w.shape[2:]
    if merged_layout(math.prod(out), w.shape[0] // group, w.type.size // w.shape[0]):
        gm = _images_last(g, group)                                   # [G, O/G, N*P]
        cols = _cols(x, w, strides, pads, dilations, group)           # [G, C/G*K, N*P]
        dw = F.reshape(gm @ F.swapaxes(cols, -1, -2), w.shape)
        dcols = F.reshape(F.swapaxes(_wmat(w, group), 1, 2) @ gm,     # [G, C/G*K, N*P]
                          (group, c // group) + kernel + (n,) + out)
        images_first = (2 + d, 0, 1, *range(3 + d, 3 + 2 * d), *range(2, 2 + d))
    else:
        gm = F.reshape(g, (n, group, g.shape[1] // group, math.prod(out)))
        cols = _cols_per_image(x, w, strides, pads, dilations, group)  # [N, G, C/G*K, P]
        dw = F.reshape(F.sum(gm @ F.swapaxes(cols, -1, -2), 0), w.shape)
        dcols = F.reshape(F.swapaxes(_wmat(w, group), 1, 2) @ gm,
                          (n, group, c // group) + kernel + out)
        images_first = (0, 1, 2, *range(3 + d, 3 + 2 * d), *range(3, 3 + d))
    dcols = F.reshape(F.transpose(dcols, images_first), (n, c) + out + kernel)
    dx = F.sum(col2im(dcols, x.shape[2:], strides, pads, dilations),
               tuple(range(2 + d, 2 + 2 * d)))
    return [dx, dw] + ([F.sum(g, (0, *range(2, 2 + d)))] if len(args) == 5 else [])


def _conv_apply(op: str, d: int, x, w, b, strides, pads, dilations, group) -> Tensor:
    args = (x, w) if b is None else (x, w, b)
    return _apply(op, *args, strides=spatial(strides, d, "strides"), pads=pad_ends(pads, d),
                  dilations=spatial(dilations, d, "dilations"), group=int(group))


def conv(x: Tensor, w: Tensor, b: Tensor | None = None, strides=1, pads=0, dilations=1,
         group: int = 1) -> Tensor:
    """ONNX Conv over any number d of spatial axes: x [N,C,*S], w [O,C/group,*K] (d = len(K)),
    optional bias [O]."""
    return _conv_apply("conv", w.ndim - 2, x, w, b, strides, pads, dilations, group)


def conv2d(x: Tensor, w: Tensor, b: Tensor | None = None, strides=1, pads=0, dilations=1,
           group: int = 1) -> Tensor:
    """ONNX Conv: x [N,C,H,W], w [O,C/group,KH,KW], optional bias [O]."""
    return _conv_apply("conv2d", 2, x, w, b, strides, pads, dilations, group)


register(OpDef(
    name="conv", doc="ONNX Conv over d spatial axes: im2col windows @ filters (+ bias)",
    kind="composite", infer=functools.partial(_conv_rule, op="conv"),
    reference=_conv_reference, bprop=_conv_bprop,
    attrs={**_WINDOW_ATTRS, "group": 1}, arity=None, decompose=_conv_decompose, dsl=conv,
    onnx="Conv"))

register(OpDef(
    name="conv2d", doc="ONNX Conv, 2-D NCHW: im2col windows @ filters (+ bias)",
    kind="composite", infer=functools.partial(_conv_rule, op="conv2d", d=2),
    reference=_conv_reference, bprop=_conv_bprop,
    attrs={"strides": (1, 1), "pads": (0, 0, 0, 0), "dilations": (1, 1), "group": 1},
    arity=None, decompose=_conv_decompose, dsl=conv2d))
