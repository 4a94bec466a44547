"""ONNX ConvTranspose and Resize as graphc graph builders (one function per ONNX op, named like it).

Input: Tensors for data, NumPy arrays for Resize's roi, scales and sizes (`STATIC` in table.py:
graphc shapes are static), attributes under their ONNX names in the newest opset's form.
Output: Tensors built with the op API, so gradients, kernels and export come from the ops used:
  ConvTranspose, any number of spatial axes: the adjoint of Conv. Per group, W^T @ X gives every
      (output channel, kernel tap, input position) product; col2im (Conv's data-gradient op)
      puts each at its output position and a sum over the kernel taps adds the overlaps
      (+ bias). Crops that are negative or leave positions no window reaches are a pad.
  Resize (nearest, linear, cubic; antialias; every coordinate transformation): separable, one
      axis at a time. Along an axis, each output position reads a few input positions with
      constant weights (graphc/onnx/resize_taps.py): a gather of the constant [out, taps] index
      table, times the weights, summed over the taps. Nearest is a bare gather (exact for
      every dtype).
  Upsample (opsets 7-9): Resize with asymmetric coordinates and the legacy nearest rounding.
Models older than opset 13 reach graphc through onnx's version converter, whose Resize for an
Upsample or Resize-10 drops their asymmetric coordinates (onnx/onnx#8480): `keep_legacy_resize`
puts them back, and Resize refuses what looks like such a node where the two would differ.
"""
from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper

from graphc.errors import GraphcError
from graphc.onnx.ops import const, ints
from graphc.onnx.resize_taps import axis_taps, output_geometry, roi_windows
from graphc.ops import api as F
from graphc.ops.conv import check_window, col2im
from graphc.types import FLOAT_DTYPES


# --- ConvTranspose -------------------------------------------------------------------------------
def _per_axis(values, d: int, name: str, default: int) -> tuple[int, ...]:
    values = (default,) * d if values is None else tuple(int(v) for v in values)
    if len(values) != d:
        raise GraphcError(f"ConvTranspose: {name} needs {d} values (one per spatial axis), got "
                          f"{list(values)}")
    return values


def _auto_crops(full, target, auto_pad):
    """SAME_UPPER / SAME_LOWER: the full result cropped to `target` (by default input size x
    stride), an odd element off the end (SAME_UPPER) or the start (SAME_LOWER), as ONNX's
    reference does."""
    total = [f - t for f, t in zip(full, target)]
    if min(total) < 0:
        raise GraphcError(f"ConvTranspose: auto_pad={auto_pad} asks for an output {target} "
                          f"larger than the full result {full} (stride above the kernel's "
                          f"extent); ONNX implementations disagree on where the zeros go")
    begins = [t // 2 if auto_pad == "SAME_UPPER" else t - t // 2 for t in total]
    return begins, [t - b for t, b in zip(total, begins)]


def _shape_crops(full, target, pads):
    """output_shape given: the crops that give it. With explicit pads they must agree; without,
    a larger output appends zeros and a smaller one is cropped evenly (an odd difference is
    ambiguous: the ONNX text, its reference and onnxruntime put it in different places)."""
    d = len(full)
    if pads is not None:
        natural = [f - b - e for f, b, e in zip(full, pads[:d], pads[d:])]
        if natural != list(target):
            raise GraphcError(f"ConvTranspose: output_shape {list(target)} contradicts pads "
                              f"{list(pads)}, which give {natural}")
        return list(pads[:d]), list(pads[d:])
    begins, ends = [], []
    for f, t in zip(full, target):
        total = f - t
        if total > 0 and total % 2:
            raise GraphcError(f"ConvTranspose: output_shape {list(target)} crops an odd {total} "
                              f"element(s) off the full result {full}; ONNX implementations "
                              f"disagree on which end loses the odd one: give pads instead")
        begins.append(max(total, 0) // 2)
        ends.append(total - max(total, 0) // 2)
    return begins, ends


def _check_transpose_operands(X, W, B, group, kernel_shape):
    d = X.ndim - 2
    if d < 1 or W.ndim != X.ndim or X.dtype not in FLOAT_DTYPES or W.dtype != X.dtype:
        raise GraphcError(f"ConvTranspose: X [N,C,*S] and W [C,M/group,*K] of one float dtype "
                          f"and rank, got {X.type} and {W.type}")
    if group < 1 or X.shape[1] != W.shape[0] or W.shape[0] % group:
        raise GraphcError(f"ConvTranspose: {X.shape[1]} input channels do not fit W "
                          f"{list(W.shape)} (its axis 0 is the input channels) with group={group}")
    if kernel_shape is not None and tuple(kernel_shape) != tuple(W.shape[2:]):
        raise GraphcError(f"ConvTranspose: kernel_shape {list(kernel_shape)} differs from W's "
                          f"spatial shape {list(W.shape[2:])}")
    if B is not None and tuple(B.shape) != (W.shape[1] * group,):
        raise GraphcError(f"ConvTranspose: B must have {W.shape[1] * group} elements (one per "
                          f"output channel), got {list(B.shape)}")


def _crops(full, size, strides, pads, target, auto_pad):
    """(begins, ends) cropped off the full result per axis (a negative end appends zeros)."""
    d = len(full)
    if auto_pad not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER", ""):
        raise GraphcError(f"ConvTranspose: unknown auto_pad {auto_pad!r}")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER") and pads is None:
        return _auto_crops(full, target or [n * s for n, s in zip(size, strides)], auto_pad)
    if target is not None:
        return _shape_crops(full, target, pads)
    pads = pads or (0,) * (2 * d)
    return list(pads[:d]), list(pads[d:])


def ConvTranspose(X, W, B=None, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None,
                  output_padding=None, output_shape=None, pads=None, strides=None):
    _check_transpose_operands(X, W, B, group, kernel_shape)
    d, size, kernel = X.ndim - 2, X.shape[2:], W.shape[2:]
    strides = _per_axis(strides, d, "strides", 1)
    dilations = _per_axis(dilations, d, "dilations", 1)
    extra = _per_axis(output_padding, d, "output_padding", 0)
    # every product lands in the reach, [s*(n-1) + (k-1)*dl + 1] per axis; output_padding
    # extends the full result past it
    reach = [s * (n - 1) + (k - 1) * dl + 1
             for n, k, s, dl in zip(size, kernel, strides, dilations)]
    full = [r + e for r, e in zip(reach, extra)]
    begins, ends = _crops(full, size, strides,
                          None if pads is None else _per_axis(pads, 2 * d, "pads", 0),
                          None if output_shape is None else ints(output_shape)[-d:], auto_pad)
    out = tuple(f - b - e for f, b, e in zip(full, begins, ends))
    if min(out) < 1:
        raise GraphcError(f"ConvTranspose: pads {begins + ends} leave no output of the full "
                          f"{full} result")
    n, c, m = X.shape[0], X.shape[1], W.shape[1] * group
    xg = F.reshape(X, (n, group, c // group, math.prod(size)))
    wg = F.reshape(W, (group, c // group, W.type.size // c))  # [G, C/G, M/G * prod(K)]
    products = F.reshape(F.swapaxes(wg, 1, 2) @ xg, (n, m) + kernel + size)
    products = F.transpose(products, (0, 1, *range(2 + d, 2 + 2 * d), *range(2, 2 + d)))
    y = _place(products, out, begins, ends, reach, strides, dilations)
    return y if B is None else y + F.reshape(B, (m,) + (1,) * d)


def _place(products, out, begins, ends, reach, strides, dilations):
    """Sum each [N, M, *S, *K] product into its output position: col2im onto the output itself
    when the (cropping) pads give exactly one window per input position, else onto the full
    result, which a pad then crops or extends with zeros."""
    d = len(out)
    kernel = products.shape[2 + d:]
    taps = tuple(range(2 + d, 2 + 2 * d))
    pads = (*begins, *ends)
    fits = min(pads) >= 0 and check_window(out, kernel, strides, pads, dilations,
                                           "ConvTranspose") == products.shape[2:2 + d]
    if fits:
        return F.sum(col2im(products, out, strides, pads, dilations), taps)
    full = F.sum(col2im(products, tuple(reach), strides, 0, dilations), taps)
    return F.pad(full, (0, 0, *(-b for b in begins), 0, 0,
                        *(o - r + b for o, r, b in zip(out, reach, begins))))


# --- Resize --------------------------------------------------------------------------------------
def _along(x, axis: int, index: np.ndarray, weight: np.ndarray | None):
    """y[..., j, ...] = sum_t weight[j, t] * x[..., index[j, t], ...] along `axis`."""
    b = x.builder
    if weight is None:
        if np.array_equal(index[:, 0], np.arange(x.shape[axis])):
            return x
        return F.gather(x, const(b, index[:, 0]), axis)
    taps = F.gather(x, const(b, index), axis)  # [..., out, taps, ...]
    w = weight.reshape(weight.shape + (1,) * (x.ndim - axis - 1))
    return F.sum(taps * F.constant(b, w, x.dtype), axis + 1)


def _converter_made(roi, coordinate_transformation_mode) -> bool:
    """A roi of [0..0, 1..1] and no coordinate_transformation_mode: what onnx's version converter
    writes for an opset 7-10 Upsample/Resize, whose coordinates are asymmetric."""
    roi = None if roi is None else np.asarray(roi, np.float64).reshape(-1)
    if coordinate_transformation_mode is not None or roi is None or roi.size == 0:
        return False
    return bool(np.array_equal(roi, [0.0] * (roi.size // 2) + [1.0] * (roi.size // 2)))


def _same_taps(a: dict, b: dict) -> bool:
    return all(all((u is None and v is None) or (u is not None and v is not None and
                                                  np.array_equal(u, v))
                   for u, v in zip(a[axis], b[axis])) for axis in a)


def Resize(X, roi=None, scales=None, sizes=None, antialias=0, axes=None,
           coordinate_transformation_mode=None, cubic_coeff_a=-0.75, exclude_outside=0,
           extrapolation_value=0.0, keep_aspect_ratio_policy="stretch", mode="nearest",
           nearest_mode="round_prefer_floor"):
    """`nearest_mode` "" is the opset 7-10 rounding (onnxruntime's): truncate when upsampling,
    ceil when downsampling (`keep_legacy_resize` sets it)."""
    if mode != "nearest" and X.dtype not in FLOAT_DTYPES:
        raise GraphcError(f"Resize: mode {mode!r} interpolates floats; got {X.type} (nearest "
                          f"works for every dtype)")
    geometry = output_geometry(X.shape, scales, sizes, axes, keep_aspect_ratio_policy)
    windows = roi_windows(roi, X.ndim, axes) if coordinate_transformation_mode == \
        "tf_crop_and_resize" else None

    def taps(transform, rounding):
        return {axis: axis_taps(n_in, n_out, scale, mode, transform, rounding,
                                float(cubic_coeff_a), bool(exclude_outside), bool(antialias),
                                None if windows is None else windows.get(axis, (0.0, 1.0)))
                for axis, (n_in, n_out, scale) in sorted(geometry.items())}

    chosen = taps(coordinate_transformation_mode or "half_pixel", nearest_mode)
    if _converter_made(roi, coordinate_transformation_mode) and \
            not _same_taps(chosen, taps("asymmetric", "")):
        raise GraphcError(
            f"Resize ({mode}): a roi input but no coordinate_transformation_mode is how onnx's "
            f"version converter writes an opset 7-10 Upsample/Resize (onnx/onnx#8480), whose "
            f"asymmetric coordinates give other values than the half_pixel default here; "
            f"graphc does not guess: set coordinate_transformation_mode, or export the model "
            f"at opset 11 or later")
    y = X
    for axis, (index, weight, outside) in chosen.items():
        y = _along(y, axis, index, weight)
        if outside is not None and outside.any():
            mask = outside.reshape((len(outside),) + (1,) * (X.ndim - axis - 1))
            y = F.where(F.constant(X.builder, mask, "bool"), float(extrapolation_value), y)
    return y


# --- opsets 7-10: Upsample, and the version converter's Resize ----------------------------------
def Upsample(X, scales=None, mode="nearest"):
    """Upsample (opset 7: scales an attribute, 9: an operand): asymmetric coordinates and the
    legacy nearest rounding, i.e. Resize-10's semantics."""
    return Resize(X, None, np.asarray(scales, np.float64), mode=mode,
                  coordinate_transformation_mode="asymmetric", nearest_mode="")


def keep_legacy_resize(original: onnx.ModelProto, converted: onnx.ModelProto) -> onnx.ModelProto:
    """`converted` (onnx's version converter run on `original`) with the asymmetric coordinates
    and legacy nearest rounding of `original`'s opset 7-9 Upsample and opset 10 Resize nodes set
    on the Resize nodes that replaced them (found by output name), which the converter leaves at
    opset 11's half_pixel default (onnx/onnx#8480)."""
    version = next((o.version for o in original.opset_import if o.domain in ("", "ai.onnx")), 0)
    legacy = {node.output[0] for node in original.graph.node
              if (node.op_type == "Upsample" and version < 10)
              or (node.op_type == "Resize" and version < 11)}
    if not legacy:
        return converted
    fixed = onnx.ModelProto()
    fixed.CopyFrom(converted)
    for node in fixed.graph.node:
        if node.op_type == "Resize" and node.output[0] in legacy:
            kept = [a for a in node.attribute
                    if a.name not in ("coordinate_transformation_mode", "nearest_mode")]
            del node.attribute[:]
            node.attribute.extend(kept + [
                helper.make_attribute("coordinate_transformation_mode", "asymmetric"),
                helper.make_attribute("nearest_mode", "")])
    return fixed
