"""Static tensor types: a dtype name and a fully static shape.

Input: dtype names ("f16", "bf16", "f32", "f64", the signed "i8".."i64", the unsigned
"u8".."u64", "bool") or NumPy dtypes (bf16 is ml_dtypes' bfloat16, imported on first use),
and shape tuples.
Output: `TensorType` values that print as `f32[128,784]` and parse back.
"""
from __future__ import annotations

import functools
import importlib
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from graphc.errors import GraphcError

_NUMPY_DTYPES = {  # every dtype but bf16, which comes from ml_dtypes
    "f16": np.dtype(np.float16), "f32": np.dtype(np.float32), "f64": np.dtype(np.float64),
    "i8": np.dtype(np.int8), "i16": np.dtype(np.int16), "i32": np.dtype(np.int32),
    "i64": np.dtype(np.int64), "u8": np.dtype(np.uint8), "u16": np.dtype(np.uint16),
    "u32": np.dtype(np.uint32), "u64": np.dtype(np.uint64), "bool": np.dtype(np.bool_),
}
_ORDER = ("f16", "bf16", "f32", "f64", "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64",
          "bool")


@functools.cache
def _bf16() -> np.dtype:
    """ml_dtypes' bfloat16, imported on first use: loading ml_dtypes takes most of a second,
    which `import graphc` need not pay."""
    return np.dtype(importlib.import_module("ml_dtypes").bfloat16)


class _DtypeTable(Mapping):
    """graphc dtype name -> NumPy dtype, with bf16 resolved on first use."""

    def __getitem__(self, name: str) -> np.dtype:
        return _bf16() if name == "bf16" else _NUMPY_DTYPES[name]

    def __contains__(self, name: object) -> bool:
        return name in _ORDER

    def __iter__(self) -> Iterator[str]:
        return iter(_ORDER)

    def __len__(self) -> int:
        return len(_ORDER)


DTYPES: Mapping[str, np.dtype] = _DtypeTable()
FLOAT_DTYPES = ("f16", "bf16", "f32", "f64")
# the 16-bit floats: stored narrow, computed in f32 by the kernels (rounded on every result)
HALF_DTYPES = ("f16", "bf16")
SIGNED_DTYPES = ("i8", "i16", "i32", "i64")
UNSIGNED_DTYPES = ("u8", "u16", "u32", "u64")
INT_DTYPES = SIGNED_DTYPES + UNSIGNED_DTYPES
_BY_NUMPY = {v: k for k, v in _NUMPY_DTYPES.items()}


def dtype_name(dtype: str | np.dtype | type) -> str:
    """Normalise a dtype given as a graphc name or anything NumPy accepts."""
    if isinstance(dtype, str) and dtype in DTYPES:
        return dtype
    try:
        given = np.dtype(dtype)
        if given.kind == "V" and given == _bf16():  # ml_dtypes is loaded: the caller has one
            return "bf16"
        return _BY_NUMPY[given]
    except (TypeError, KeyError):
        raise GraphcError(f"unsupported dtype {dtype!r}; graphc supports {', '.join(DTYPES)}") from None


@dataclass(frozen=True)
class TensorType:
    """A tensor's static shape and element type."""

    shape: tuple[int, ...]
    dtype: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        object.__setattr__(self, "dtype", dtype_name(self.dtype))
        if any(d < 0 for d in self.shape):
            raise GraphcError(f"negative dimension in shape {self.shape}")

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def np_dtype(self) -> np.dtype:
        return DTYPES[self.dtype]

    @property
    def nbytes(self) -> int:
        return self.size * self.np_dtype.itemsize

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_DTYPES

    def with_shape(self, shape: tuple[int, ...]) -> TensorType:
        return TensorType(shape, self.dtype)

    def with_dtype(self, dtype: str) -> TensorType:
        return TensorType(self.shape, dtype)

    def __str__(self) -> str:
        return f"{self.dtype}[{','.join(str(d) for d in self.shape)}]"

    @staticmethod
    def parse(text: str) -> TensorType:
        m = re.fullmatch(r"\s*(\w+)\[([\d,\s]*)\]\s*", text)
        if not m:
            raise GraphcError(f"cannot parse tensor type {text!r}; expected e.g. f32[128,784]")
        dims = tuple(int(d) for d in m.group(2).replace(" ", "").split(",") if d)
        return TensorType(dims, m.group(1))


def broadcast_shapes(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    """NumPy broadcasting of shapes; raises GraphcError on a mismatch."""
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for axis in range(rank):
        dims = {s[axis - rank + len(s)] for s in shapes if axis - rank + len(s) >= 0}
        dims.discard(1)
        if len(dims) > 1:
            raise GraphcError(f"shapes {' and '.join(str(s) for s in shapes)} do not broadcast")
        out.append(dims.pop() if dims else 1)
    return tuple(out)
