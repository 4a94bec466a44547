"""Element types between ONNX and graphc, both ways.

Input: an ONNX `TensorProto` element type (import) or a graphc dtype name (export). Output: the
graphc dtype that holds it (narrow ints widen to i64, float16 and bfloat16 to f32) or a
GraphcError naming where it was met; and the ONNX element type of each graphc dtype.
"""
from __future__ import annotations

from onnx import TensorProto

from graphc.errors import GraphcError

# ONNX element type -> graphc dtype (narrow ints widen to i64, float16 and bfloat16 to f32)
GRAPHC_DTYPES = {
    TensorProto.FLOAT: "f32", TensorProto.DOUBLE: "f64", TensorProto.FLOAT16: "f32",
    TensorProto.BFLOAT16: "f32",
    TensorProto.INT64: "i64", TensorProto.INT32: "i64", TensorProto.INT16: "i64",
    TensorProto.INT8: "i64", TensorProto.UINT8: "i64", TensorProto.UINT16: "i64",
    TensorProto.UINT32: "i64", TensorProto.UINT64: "i64", TensorProto.BOOL: "bool",
}
# graphc dtype -> the ONNX element type that writes it
ONNX_DTYPES = {"f32": TensorProto.FLOAT, "f64": TensorProto.DOUBLE, "i64": TensorProto.INT64,
               "bool": TensorProto.BOOL}


def onnx_dtype(elem_type: int, where: str) -> str:
    """The graphc dtype that holds an ONNX element type, or a GraphcError naming `where`."""
    if elem_type not in GRAPHC_DTYPES:
        name = TensorProto.DataType.Name(elem_type) if elem_type in TensorProto.DataType.values() \
            else str(elem_type)
        raise GraphcError(f"{where}: element type {name} is not supported by graphc "
                          f"(supported: float, double, float16, bool and integer types)")
    return GRAPHC_DTYPES[elem_type]
