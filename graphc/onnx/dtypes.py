"""Element types between ONNX and graphc, both ways.

Input: an ONNX `TensorProto` element type (import) or a graphc dtype name (export). Output: the
graphc dtype that holds it exactly (every float, integer and bool type of ONNX but the float8,
4-bit, 2-bit and complex ones) or a GraphcError naming where it was met; and the ONNX element
type of each graphc dtype.
"""
from __future__ import annotations

from onnx import TensorProto

from graphc.errors import GraphcError

# graphc dtype -> the ONNX element type that writes it
ONNX_DTYPES = {
    "f16": TensorProto.FLOAT16, "bf16": TensorProto.BFLOAT16, "f32": TensorProto.FLOAT,
    "f64": TensorProto.DOUBLE, "i8": TensorProto.INT8, "i16": TensorProto.INT16,
    "i32": TensorProto.INT32, "i64": TensorProto.INT64, "u8": TensorProto.UINT8,
    "u16": TensorProto.UINT16, "u32": TensorProto.UINT32, "u64": TensorProto.UINT64,
    "bool": TensorProto.BOOL}
# ONNX element type -> graphc dtype
GRAPHC_DTYPES = {onnx_type: name for name, onnx_type in ONNX_DTYPES.items()}


def _type_name(elem_type: int) -> str:
    if elem_type in TensorProto.DataType.values():
        return TensorProto.DataType.Name(elem_type)
    return str(elem_type)


def onnx_dtype(elem_type: int, where: str) -> str:
    """The graphc dtype of an ONNX element type, or a GraphcError naming `where`."""
    if elem_type not in GRAPHC_DTYPES:
        name = _type_name(elem_type)
        family = " (float8 types are out of scope)" if name.startswith("FLOAT8") else \
            " (4-bit and 2-bit integers are out of scope)" if "INT4" in name or "INT2" in name \
            else ""
        raise GraphcError(f"{where}: element type {name} is not supported by graphc{family} "
                          f"(supported: float16, bfloat16, float, double, int8..int64, "
                          f"uint8..uint64, bool)")
    return GRAPHC_DTYPES[elem_type]
