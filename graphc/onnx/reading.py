"""Reading ONNX models safely: the file, the checker, the initializers and their external data.

Input: an ONNX file path or a ModelProto. Output: `read_model` -> (ModelProto, the file name used
in locations, the directory external data may come from), after protobuf's 2 GiB limit, the
checker and every external-data reference are checked (hostile input gives a GraphcError;
external data never leaves the model's directory); `read_initializers` -> every initializer's
value in the graphc dtype that holds it.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from graphc.errors import GraphcError
from graphc.onnx.dtypes import onnx_dtype
from graphc.types import DTYPES

MAX_FILE_BYTES = 2**31  # protobuf's own limit for one message


def read_model(model: Any) -> tuple[onnx.ModelProto, str, str | None]:
    """(model, file name for locations, directory external data may come from)."""
    if isinstance(model, onnx.ModelProto):
        _check_model(model, f"{model.graph.name or 'model'}")
        return model, model.graph.name or "model", None
    if not isinstance(model, (str, os.PathLike)):
        raise GraphcError(f"load_onnx takes a path or an onnx.ModelProto, got "
                          f"{type(model).__name__}")
    path = os.fspath(model)
    name = os.path.basename(path)
    if not os.path.isfile(path):
        raise GraphcError(f"{path}: no such ONNX file")
    size = os.path.getsize(path)
    if size > MAX_FILE_BYTES:
        raise GraphcError(f"{path}: {size} bytes is over protobuf's 2 GiB limit; keep large "
                          f"tensors in external data files")
    with open(path, "rb") as f:
        data = f.read()
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except Exception as err:  # noqa: BLE001 (third-party failures become GraphcErrors)
        raise GraphcError(f"{path}: not a valid ONNX file (truncated or not protobuf): "
                          f"{err}") from None
    base_dir = os.path.dirname(os.path.abspath(path))
    for t in proto.graph.initializer:  # validated before the checker looks at the files
        if t.data_location == TensorProto.EXTERNAL:
            _external_source(t, base_dir, path)
    for i, node in enumerate(proto.graph.node):  # and so is every tensor attribute's
        for a in node.attribute:
            for t in ([a.t] if a.HasField("t") else []) + list(a.tensors):
                if t.data_location == TensorProto.EXTERNAL:
                    _external_source(t, base_dir, path, attribute_label(node, i, a.name))
    _check_model(proto, path, checked_path=path)
    return proto, name, base_dir


def attribute_label(node: onnx.NodeProto, index: int, name: str) -> str:
    return f"node {node.name or f'{node.op_type}#{index}'!r} attribute {name!r}"


def _check_model(proto: onnx.ModelProto, where: str, checked_path: str | None = None) -> None:
    if not proto.HasField("graph") or proto.ir_version <= 0 or not proto.opset_import:
        raise GraphcError(f"{where}: not an ONNX model (no graph, IR version or opset); the "
                          f"file may be truncated or of another format")
    try:
        # from a path the checker resolves external data against the model's directory
        onnx.checker.check_model(checked_path if checked_path is not None else proto)
    except Exception as err:  # noqa: BLE001 (third-party failures become GraphcErrors)
        raise GraphcError(f"{where}: the ONNX checker rejects this model: "
                          f"{str(err).strip().splitlines()[0] if str(err).strip() else err}") \
            from None


# --- initializers and external data ---------------------------------------------------------
def read_initializers(proto: onnx.ModelProto, base_dir: str | None,
                      where: str) -> dict[str, np.ndarray]:
    """Every initializer's value, in its own element type (checked to be one graphc has)."""
    out = {}
    for t in proto.graph.initializer:
        dtype = onnx_dtype(t.data_type, f"{where}: initializer {t.name!r}")
        array = tensor_array(t, base_dir, where)
        out[t.name] = array.astype(DTYPES[dtype], copy=False)
    return out


def tensor_array(t: onnx.TensorProto, base_dir: str | None, where: str,
                 kind: str = "") -> np.ndarray:
    """The value of a tensor (an initializer, or a node's tensor attribute described by
    `kind`); external data is read safely from `base_dir`, never from the working directory."""
    if t.data_location == TensorProto.EXTERNAL:
        return _external_array(t, base_dir, where, kind)
    try:
        return np.array(numpy_helper.to_array(t))
    except Exception as err:  # noqa: BLE001 (third-party failures become GraphcErrors)
        raise GraphcError(f"{where}: {kind or f'initializer {t.name!r}'} cannot be read: "
                          f"{err}") from None


def _external_source(t: onnx.TensorProto, base_dir: str | None, where: str,
                     kind: str = "") -> tuple[str, int, int]:
    """(file, offset, bytes) of an initializer's external data, after checking that the file is
    inside `base_dir` and holds exactly the bytes the tensor's shape needs."""
    info = {e.key: e.value for e in t.external_data}
    location = info.get("location", "")
    label = f"{where}: {kind or f'initializer {t.name!r}'} (external data {location!r})"
    if base_dir is None:
        raise GraphcError(f"{label}: external data needs the model loaded from its path")
    if not location or os.path.isabs(location) or ".." in location.replace("\\", "/").split("/"):
        raise GraphcError(f"{label}: external data must be a relative path inside the model's "
                          f"directory (absolute paths and '..' are rejected)")
    root = os.path.realpath(base_dir)
    path = os.path.realpath(os.path.join(root, location))
    if os.path.commonpath([root, path]) != root or not os.path.isfile(path):
        raise GraphcError(f"{label}: not a file inside the model's directory")
    try:
        itemsize = helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
    except (KeyError, ValueError, TypeError):
        raise GraphcError(f"{label}: unknown element type {t.data_type}") from None
    need = int(np.prod(tuple(t.dims), dtype=np.int64)) * itemsize
    try:
        offset, length = int(info.get("offset", 0)), int(info.get("length", need))
    except ValueError:
        raise GraphcError(f"{label}: offset and length must be integers") from None
    if offset < 0 or length != need:
        raise GraphcError(f"{label}: length {length} does not match the {need} bytes of a "
                          f"tensor of shape {list(t.dims)}")
    if offset + need > os.path.getsize(path):
        raise GraphcError(f"{label}: the file holds fewer than offset {offset} + {need} bytes")
    return path, offset, need


def _external_array(t: onnx.TensorProto, base_dir: str | None, where: str,
                    kind: str = "") -> np.ndarray:
    path, offset, need = _external_source(t, base_dir, where, kind)
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(need)
    dtype = helper.tensor_dtype_to_np_dtype(t.data_type)
    return np.frombuffer(data, dtype=dtype).reshape(tuple(t.dims)).copy()
