"""Op cases for the N-d convolution `conv` (1-D, 2-D and 3-D), merged into tests/op_cases.py.

Input: the row constructors of tests/op_cases.py. Output: `RAW` (op name -> case/bad rows). The
expected values come from a direct loop over output positions, kernel taps and channels written
from the ONNX Conv text (not from graphc's windows/matmul reference).
"""
from __future__ import annotations

import itertools

import numpy as np

from tests.op_cases import bad, case


def conv_nd_loop(x, w, b=None, strides=None, pads=None, dilations=None, group=1):
    """y[n, o, *p] = b[o] + sum_{c, *k} x[n, g(o)*C/group + c, *(p*s + k*dl - pad_begin)] *
    w[o, c, *k], reading zero outside x; d = w.ndim - 2 spatial axes."""
    d = w.ndim - 2
    strides = strides or (1,) * d
    pads = pads or (0,) * (2 * d)
    dilations = dilations or (1,) * d
    size, kernel = x.shape[2:], w.shape[2:]
    out = [(size[a] + pads[a] + pads[d + a] - dilations[a] * (kernel[a] - 1) - 1) // strides[a]
           + 1 for a in range(d)]
    filters, per_group = w.shape[0], w.shape[1]
    y = np.zeros((x.shape[0], filters, *out), np.float64)
    for o in range(filters):
        first = o // (filters // group) * per_group
        for p in itertools.product(*map(range, out)):
            total = np.zeros(x.shape[0]) + (0.0 if b is None else b[o])
            for k in itertools.product(*map(range, kernel)):
                r = [p[a] * strides[a] + k[a] * dilations[a] - pads[a] for a in range(d)]
                if all(0 <= r[a] < size[a] for a in range(d)):
                    for c in range(per_group):
                        total = total + x[(slice(None), first + c, *r)] * w[(o, c, *k)]
            y[(slice(None), o, *p)] = total
    return y.astype(x.dtype)


def _conv_case(name, spec, **attrs):
    return case(name, spec, lambda *xs: conv_nd_loop(*xs, **attrs), **attrs)


RAW = {
    "conv": [
        _conv_case("f64_1d", "f64[2,3,7] f64[4,3,3] f64[4]", strides=(2,), pads=(1, 2)),
        _conv_case("f32_1d_dilated_groups", "f32[1,4,8] f32[6,2,2]", dilations=(3,), group=2),
        _conv_case("f64_2d", "f64[1,2,5,6] f64[3,2,2,3] f64[3]", strides=(2, 1),
                   pads=(1, 0, 2, 1)),
        _conv_case("f32_3d_bias", "f32[2,2,4,3,4] f32[3,2,2,2,3] f32[3]", pads=(1, 0, 1, 0, 1, 1)),
        _conv_case("f64_3d_strides_dilations", "f64[1,2,5,4,5] f64[2,2,2,2,2]",
                   strides=(2, 1, 2), dilations=(1, 2, 2), pads=(0, 1, 1, 1, 0, 0)),
        _conv_case("f64_3d_depthwise", "f64[1,3,3,4,3] f64[3,1,2,2,2] f64[3]", group=3,
                   pads=(1, 1, 0, 0, 1, 1)),
        bad("ranks", "f32[1,2,4,4,4] f32[3,2,2,2]", "one kernel axis per spatial axis"),
        bad("no_spatial", "f32[2,3] f32[4,3]", "one kernel axis per spatial axis"),
        bad("channels", "f32[1,3,4,4,4] f32[4,2,2,2,2]", "do not fit"),
        bad("bias", "f32[1,2,4,4,4] f32[3,2,2,2,2] f32[2]", "bias must be"),
        bad("dtype", "f32[1,2,5] f64[3,2,2]", "one float dtype"),
        bad("too_big", "f32[1,1,2,5,5] f32[1,1,3,3,3]", "does not fit"),
        bad("strides", "f32[1,1,4,4,4] f32[1,1,2,2,2]", "one entry per spatial axis",
            strides=(1, 1))],
}
