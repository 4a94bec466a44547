"""ONNX Resize's arithmetic in NumPy: output sizes, and for one axis which input positions each
output position reads and with what weights (its taps).

Input: the input shape, Resize's static operands (scales or sizes, roi) and attributes. Output:
`output_geometry` -> {axis: (input size, output size, scale)} for the resized axes;
`roi_windows` -> {axis: (start, end)} of tf_crop_and_resize's region;
`axis_taps` -> (index [out, taps] i64, weight [out, taps] f64 or None for nearest, outside
[out] bool or None), where y[j] = sum_t weight[j, t] * x[index[j, t]] along the axis and
`outside` marks tf_crop_and_resize positions that take extrapolation_value. The coordinates,
neighbours and coefficients follow ONNX's reference implementation (onnx.reference, op_resize):
a source coordinate per output position from coordinate_transformation_mode, then n neighbours
around it (edge-clamped) weighted by the mode's kernel. Taps that read the same position are
merged and zero weights dropped, so an identity axis and integer nearest upsampling are plain
gathers.
"""
from __future__ import annotations

import math

import numpy as np

from graphc.errors import GraphcError

NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil", "")
TRANSFORMS = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
              "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize")


def _fail(message: str):
    raise GraphcError(f"Resize: {message}")


def _given(v) -> np.ndarray | None:
    return None if v is None or np.asarray(v).size == 0 else np.asarray(v).reshape(-1)


def output_geometry(shape, scales, sizes, axes, keep_aspect_ratio_policy):
    """{axis: (input size, output size, scale)} for every axis Resize touches."""
    rank = len(shape)
    axes = list(range(rank)) if axes is None else [int(a) % rank for a in axes]
    scales, sizes = _given(scales), _given(sizes)
    if (scales is None) == (sizes is None):
        _fail("give exactly one of scales and sizes (as constants)")
    given = scales if sizes is None else sizes
    if len(given) != len(axes) or len(set(axes)) != len(axes):
        _fail(f"{'scales' if sizes is None else 'sizes'} {given.tolist()} needs one value per "
              f"axis of {axes}")
    if sizes is None:
        if min(scales) <= 0:
            _fail(f"scales must be positive, got {scales.tolist()}")
        geometry = {a: (shape[a], math.floor(float(s) * shape[a]), float(s))
                    for a, s in zip(axes, scales)}
        empty = [a for a, (_, out, _) in geometry.items() if out < 1]
        if empty:
            _fail(f"scales {scales.tolist()} leave no output along axes {empty} of {list(shape)} "
                  f"(graphc tensors are not empty)")
        return geometry
    if min(sizes) < 1 or min(shape[a] for a in axes) < 1:
        _fail(f"sizes must be positive, got {sizes.tolist()}")
    if keep_aspect_ratio_policy == "stretch":
        return {a: (shape[a], int(o), int(o) / shape[a]) for a, o in zip(axes, sizes)}
    if keep_aspect_ratio_policy not in ("not_larger", "not_smaller"):
        _fail(f"keep_aspect_ratio_policy {keep_aspect_ratio_policy!r} is not one of stretch, "
              f"not_larger, not_smaller")
    ratios = [int(o) / shape[a] for a, o in zip(axes, sizes)]
    scale = min(ratios) if keep_aspect_ratio_policy == "not_larger" else max(ratios)
    return {a: (shape[a], int(scale * shape[a] + 0.5), scale) for a in axes}


def roi_windows(roi, rank: int, axes) -> dict[int, tuple[float, float]] | None:
    """{axis: (start, end)} from roi (starts, then ends, for every axis or for `axes`)."""
    roi = _given(roi)
    if roi is None:
        return None
    axes = list(range(rank)) if axes is None else [int(a) % rank for a in axes]
    if roi.size != 2 * len(axes):
        _fail(f"roi {roi.tolist()} needs a start and an end for each axis of {axes}")
    return {a: (float(roi[i]), float(roi[len(axes) + i])) for i, a in enumerate(axes)}


def source_coordinates(transform, n_in, n_out, scale, roi):
    """(x_original [n_out] f64, outside [n_out] bool or None) for each output position."""
    y = np.arange(n_out, dtype=np.float64)
    width = scale * n_in  # ONNX's output length: the unrounded one
    if transform == "half_pixel":
        return (y + 0.5) / scale - 0.5, None
    if transform == "half_pixel_symmetric":
        offset = n_in / 2 * (1 - n_out / width)
        return offset + (y + 0.5) / scale - 0.5, None
    if transform == "pytorch_half_pixel":
        return (np.full(n_out, -0.5) if width == 1 else (y + 0.5) / scale - 0.5), None
    if transform == "align_corners":
        return (np.zeros(n_out) if width == 1 else y * (n_in - 1) / (width - 1)), None
    if transform == "asymmetric":
        return y / scale, None
    if transform == "tf_half_pixel_for_nn":
        return (y + 0.5) / scale, None
    if transform == "tf_crop_and_resize":
        if roi is None:
            _fail("tf_crop_and_resize needs a roi input (a constant)")
        start, end = roi
        x = (np.full(n_out, (end - start) * (n_in - 1) / 2) if width == 1
             else y * (end - start) * (n_in - 1) / (width - 1)) + start * (n_in - 1)
        return x, (x < 0) | (x > n_in - 1)
    _fail(f"coordinate_transformation_mode {transform!r} is not one of {', '.join(TRANSFORMS)}")


def _nearest(x, scale, n_in, nearest_mode):
    base = np.floor(x)
    frac = x - base
    if nearest_mode == "":  # opsets 7-10 (onnxruntime): truncate up, ceil down
        pick = np.ceil(x) if scale < 1 else np.trunc(x)
    else:
        up = {"round_prefer_floor": frac > 0.5, "round_prefer_ceil": frac >= 0.5,
              "floor": np.zeros_like(frac, bool), "ceil": frac > 0}[nearest_mode]
        pick = base + up
    return np.clip(pick, 0, n_in - 1).astype(np.int64)[:, None]


def _cubic_kernel(t, a):
    t = np.abs(t)
    inner = ((a + 2) * t - (a + 3)) * t * t + 1
    outer = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return np.where(t <= 1, inner, np.where(t < 2, outer, 0.0))


def _coefficients(mode, ratio, scale, cubic_a, antialias):
    """(offsets [n] from the neighbour just below x, coefficients [out, n]): x = base + ratio,
    ratio in (0, 1]; antialias widens the kernel by 1/scale when downsampling."""
    s = min(scale, 1.0) if antialias else 1.0
    reach = 1 if mode == "linear" else 2
    start = math.floor(-reach / s) + 1
    offsets = np.arange(start, 2 - start)
    t = (offsets[None, :] - ratio[:, None]) * s
    coeffs = np.clip(1 - np.abs(t), 0, 1) if mode == "linear" else _cubic_kernel(t, cubic_a)
    return offsets, (coeffs / coeffs.sum(axis=1, keepdims=True) if antialias else coeffs)


def _merged(index, weight):
    """Per row, the taps reading one position summed and zero weights dropped (rows padded
    with index 0, weight 0)."""
    rows = []
    for idx, w in zip(index, weight):
        acc: dict[int, float] = {}
        for i, c in zip(idx.tolist(), w.tolist()):
            if c != 0:
                acc[i] = acc.get(i, 0.0) + c
        rows.append([(i, c) for i, c in acc.items() if c != 0])
    width = max(1, max(len(r) for r in rows))
    merged_index = np.zeros((len(rows), width), np.int64)
    merged_weight = np.zeros((len(rows), width), np.float64)
    for j, row in enumerate(rows):
        for t, (i, c) in enumerate(row):
            merged_index[j, t], merged_weight[j, t] = i, c
    return merged_index, merged_weight


def axis_taps(n_in, n_out, scale, mode, transform, nearest_mode, cubic_a, exclude_outside,
              antialias, roi):
    """(index, weight or None, outside or None) of one resized axis (module docstring)."""
    if mode not in ("nearest", "linear", "cubic"):
        _fail(f"mode {mode!r} is not one of nearest, linear, cubic")
    x, outside = source_coordinates(transform, n_in, n_out, scale, roi)
    if mode == "nearest":
        if antialias:
            _fail("antialias applies to linear and cubic, not nearest")
        if nearest_mode not in NEAREST_MODES:
            _fail(f"nearest_mode {nearest_mode!r} is not one of {', '.join(NEAREST_MODES[:4])}")
        return _nearest(x, scale, n_in, nearest_mode), None, outside
    whole = x == np.floor(x)
    base = np.where(whole, x - 1, np.floor(x)).astype(np.int64)  # ratio in (0, 1]
    offsets, coeffs = _coefficients(mode, np.where(whole, 1.0, x - np.floor(x)), scale,
                                    cubic_a, antialias)
    index = base[:, None] + offsets[None, :]
    if exclude_outside:
        coeffs = np.where((index < 0) | (index >= n_in), 0.0, coeffs)
        total = coeffs.sum(axis=1, keepdims=True)
        coeffs = coeffs / np.where(total == 0, 1.0, total)
    if outside is not None:
        coeffs = np.where(outside[:, None], 0.0, coeffs)
    index, weight = _merged(np.clip(index, 0, n_in - 1), coeffs)
    if weight.shape[1] == 1 and np.all(weight == 1):
        return index, None, outside  # every position reads one input: a plain gather
    return index, weight, outside
