"""Older opsets raised to the one graphc imports natively (13), meaning kept.

Input: an ONNX ModelProto of any opset. Output: the same model at opset >= 13: onnx's version
converter, after rewriting what it gets wrong (Hardmax before opset 13 worked on its input
flattened at `axis`), with old Upsample/Resize nodes' coordinates kept.
"""
from __future__ import annotations

import onnx
from onnx import helper

from graphc.errors import GraphcError
from graphc.onnx.upsample_ops import keep_legacy_resize

MIN_OPSET = 13


def default_opset(proto: onnx.ModelProto) -> int:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


def upgrade_opset(proto: onnx.ModelProto, where: str) -> onnx.ModelProto:
    """Models older than opset 13 are converted with onnx's version converter (after the
    rewrites it lacks, `_before_conversion`, and with old Upsample/Resize nodes' coordinates
    kept, `keep_legacy_resize`)."""
    version = default_opset(proto)
    if version >= MIN_OPSET or version == 0:
        return proto
    try:
        from onnx import version_converter

        converted = version_converter.convert_version(_before_conversion(proto), MIN_OPSET)
        return keep_legacy_resize(proto, converted)
    except Exception as err:  # noqa: BLE001 (third-party failures become GraphcErrors)
        raise GraphcError(f"{where}: cannot convert opset {version} to {MIN_OPSET}: {err}") \
            from None


def _before_conversion(proto: onnx.ModelProto) -> onnx.ModelProto:
    """What onnx's version converter gets wrong, rewritten in the old opset first.

    Before opset 13, Hardmax worked on its input flattened to 2-D at `axis` (one 1 per row of
    that matrix); the converter keeps the node as it is, which would make it per-axis. It
    becomes Flatten -> Hardmax (the last axis of the 2-D matrix) -> Reshape to the input's
    shape, which means the same in every opset."""
    nodes = list(proto.graph.node)
    if not any(n.op_type == "Hardmax" and n.domain in ("", "ai.onnx") for n in nodes):
        return proto
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    del out.graph.node[:]
    for i, node in enumerate(nodes):
        if node.op_type != "Hardmax" or node.domain not in ("", "ai.onnx"):
            out.graph.node.append(node)
            continue
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        x, y, tag = node.input[0], node.output[0], f"_graphc_hardmax{i}"
        out.graph.node.extend([
            helper.make_node("Flatten", [x], [tag + "_2d"], axis=axis),
            helper.make_node("Hardmax", [tag + "_2d"], [tag + "_h"], axis=1,
                             name=node.name),
            helper.make_node("Shape", [x], [tag + "_shape"]),
            helper.make_node("Reshape", [tag + "_h", tag + "_shape"], [y])])
    return out
