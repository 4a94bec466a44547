"""Op cases for the indexing family (graphc/ops/indexing.py: scatter_rows), merged into
tests/op_cases.py's table.

Input: the row constructors and generators of tests/op_cases.py. Output: `RAW` (op name ->
case/bad rows) and `BAD_DATA`. Expected values are explicit loops over the updates, written from
the op's definition (ONNX ScatterND with one index component), not calls of its reference.
"""
from __future__ import annotations

import numpy as np

from tests.op_cases import _types, bad, case, per_operand, uniform, values


def _scatter_loop(reduction: str):
    def expected(data, index, updates):
        n = data.shape[0]
        out = data.astype(np.float64)
        written: dict[int, list[np.ndarray]] = {}
        for m, i in enumerate(index.tolist()):
            written.setdefault(i % n, []).append(updates[m].astype(np.float64))
        for row, parts in written.items():
            if reduction == "add":
                out[row] = out[row] + sum(parts)
            else:
                out[row] = sum(parts) / len(parts)
        return out.astype(data.dtype)
    return expected


def _rows(index):
    return per_operand(uniform(), values(index), uniform())


RAW: dict[str, list] = {
    "scatter_rows": [
        case("f32_none", "f32[5,3] i64[3] f32[3,3]", _scatter_loop("none"), _rows([1, -1, 3])),
        case("f64_none_duplicates", "f64[5,2] i64[4] f64[4,2]", _scatter_loop("none"),
             _rows([2, 0, 2, -3]), reduction="none"),
        case("f32_add_duplicates", "f32[4,3] i64[5] f32[5,3]", _scatter_loop("add"),
             _rows([0, 3, 0, -1, 1]), reduction="add"),
        case("f64_add_one_column", "f64[6,1] i64[2] f64[2,1]", _scatter_loop("add"),
             _rows([5, -6]), reduction="add"),
        bad("index_f32", "f32[4,3] f32[2] f32[2,3]", "index must be i64"),
        bad("updates_shape", "f32[4,3] i64[2] f32[2,2]", "updates"),
        bad("data_i64", "i64[4,3] i64[2] i64[2,3]", "float data"),
        bad("reduction", "f32[4,3] i64[2] f32[2,3]", "not one of", reduction="mul")],
}

BAD_DATA: dict = {
    "scatter_rows": (_types("f32[3,2] i64[2] f32[2,2]"),
                     [np.zeros((3, 2), np.float32), np.array([1, 3]),
                      np.zeros((2, 2), np.float32)],
                     r"index 3 at \[1\] is outside \[-3, 3\)"),
}
