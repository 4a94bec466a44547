"""Packing a block of the GEMM's B operand into KC x NR panels.

Input: an IRBuilder, B's element reader and, when B is a strided view of a buffer, its pointer
and strides. Output: instructions filling `packed[jr][p][jj] = B[pc + p, jc + jr*NR + jj]` for
a block of kcur rows and ncur columns, zero past column ncur (the microkernel always works on
whole NR-wide panels). Whole panels and the last partial one are separate loops, so no read is
clamped: a row-major B packs with plain vector loads. A B that is contiguous along K (a
transposed operand, e.g. Wᵀ in dX = dY·Wᵀ) is moved L x L elements at a time: L vector loads
along K (zero vectors for the columns past the block), a transpose in registers (log2 L rounds
of interleaving shuffles), L vector stores along the panel, instead of one scalar load and
store per element.
"""
from __future__ import annotations

import contextlib

from graphc.runtime.emit.emitter import I64, MEM_TYPES, constant, for_range, store
from llvmlite import ir

from graphc.types import TensorType

I32 = ir.IntType(32)


def transpose_square(b: ir.IRBuilder, rows: list[ir.Value]) -> list[ir.Value]:
    """The transpose of an L x L matrix held as L vectors of L lanes (L a power of two):
    log2 L rounds of row[i], row[i + L/2] -> interleave of their low / high halves."""
    lanes = len(rows)
    half = lanes // 2
    low = ir.Constant(ir.VectorType(I32, lanes), [i // 2 + (i % 2) * lanes for i in range(lanes)])
    high = ir.Constant(ir.VectorType(I32, lanes),
                       [half + i // 2 + (i % 2) * lanes for i in range(lanes)])
    for _ in range(lanes.bit_length() - 1):
        rows = [b.shuffle_vector(rows[i], rows[i + half], mask)
                for i in range(half) for mask in (low, high)]
    return rows


class PackB:
    """Packs blocks of one B operand; `strided` is (pointer to B[0, 0], stride along K, stride
    along N) in elements when B is a strided view, else None (any view, read by `read_b`)."""

    def __init__(self, b: ir.IRBuilder, dtype: str, lanes: int, nr: int, read_b,
                 strided: tuple[ir.Value, int, int] | None, packed: ir.Value):
        self.b, self.dtype, self.lanes, self.nr = b, dtype, lanes, nr
        self.read_b, self.strided, self.packed = read_b, strided, packed
        self.along_k = strided is not None and strided[1] == 1 != strided[2]

    def i64(self, v: int) -> ir.Constant:
        return ir.Constant(I64, v)

    def pack(self, jc: ir.Value, ncur: int, pc: ir.Value, kcur: int) -> None:
        """Rows [pc, pc + kcur) and columns [jc, jc + ncur) of B into the packed panels."""
        whole, rest = divmod(ncur, self.nr)
        if whole:
            self._panels(jc, pc, kcur, self.i64(0), whole, self.nr)
        if rest:
            self._panels(jc, pc, kcur, self.i64(whole), 1, rest)
            with for_range(self.b, kcur, "zp") as p, \
                    for_range(self.b, self.nr - rest, "zq") as q:
                offset = self._offset(self.i64(whole), p, self.b.add(q, self.i64(rest)), kcur)
                store(self.b, constant(self.dtype, 0), self.packed, offset, self.dtype)

    def _offset(self, jr, p, jj, kcur: int) -> ir.Value:
        b = self.b
        return b.add(b.mul(b.add(b.mul(jr, self.i64(kcur)), p), self.i64(self.nr)), jj)

    def _panels(self, jc, pc, kcur: int, first, panels: int, width: int) -> None:
        """Columns [0, width) of `panels` panels from panel `first` on."""
        lanes = self.lanes
        if not self.along_k or kcur < lanes:
            self._elements(jc, pc, first, panels, (0, kcur), (0, width), kcur)
            return
        square_k = kcur // lanes * lanes
        self._squares(jc, pc, first, panels, square_k, width, kcur)
        if square_k < kcur:
            self._elements(jc, pc, first, panels, (square_k, kcur), (0, width), kcur)

    def _elements(self, jc, pc, first, panels: int, ps, jjs, kcur: int) -> None:
        """One element at a time over rows `ps` and panel columns `jjs` (half-open ranges);
        the innermost loop runs along B's contiguous axis."""
        b = self.b
        loops = [("pj", (0, panels)), ("pq", jjs), ("pp", ps)] if self.along_k else \
            [("pj", (0, panels)), ("pp", ps), ("pq", jjs)]
        with contextlib.ExitStack() as stack:
            index = {}
            for name, (lo, hi) in loops:
                i = stack.enter_context(for_range(b, hi - lo, name))
                index[name] = b.add(i, self.i64(lo)) if lo else i
            jr, p, jj = b.add(first, index["pj"]), index["pp"], index["pq"]
            value = self.read_b(b.add(pc, p), b.add(jc, b.add(b.mul(jr, self.i64(self.nr)), jj)))
            store(b, value, self.packed, self._offset(jr, p, jj, kcur), self.dtype)

    def _squares(self, jc, pc, first, panels: int, rows: int, width: int, kcur: int) -> None:
        """L x L squares of a B contiguous along K: rows [0, rows), panel columns [0, width)
        rounded up to whole squares, the columns past `width` zero (the panel's padding)."""
        b, lanes = self.b, self.lanes
        ptr, _, s_n = self.strided
        square = shared_square(b.module, self.dtype, lanes)
        with for_range(b, panels, "tj") as pj, for_range(b, rows // lanes, "tp") as tp:
            jr, p0 = b.add(first, pj), b.mul(tp, self.i64(lanes))
            for q0 in range(0, width, lanes):
                col0 = b.add(jc, b.add(b.mul(jr, self.i64(self.nr)), self.i64(q0)))
                src = b.gep(ptr, [b.add(b.add(pc, p0), b.mul(col0, self.i64(s_n)))],
                            inbounds=True)
                dst = b.gep(self.packed, [self._offset(jr, p0, self.i64(q0), kcur)],
                            inbounds=True)
                b.call(square, [src, self.i64(s_n), self.i64(min(width - q0, lanes)), dst,
                                self.i64(self.nr)])


def shared_square(module: ir.Module, dtype: str, lanes: int) -> ir.Function:
    """`void square(src*, i64 column_stride, i64 columns, dst*, i64 row_stride)`: the first
    `columns` of L columns of L contiguous elements (the rest zero) into L rows, transposed;
    emitted once per module (each call site inline was 128 shuffles of compile time)."""
    name = f"graphc.pack_square.{dtype}"
    fn = module.globals.get(name)
    if fn is not None:
        return fn
    ptr = MEM_TYPES[dtype].as_pointer()
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [ptr, I64, I64, ptr, I64]), name)
    fn.linkage = "internal"
    fn.attributes.add("nounwind")
    src, stride, columns, dst, row_stride = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    vec = ir.VectorType(MEM_TYPES[dtype], lanes)
    itemsize = TensorType((), dtype).np_dtype.itemsize
    zero = ir.Constant(vec, None)
    loaded = []
    for t in range(lanes):  # column t, or zero past `columns` (read column 0 instead: in range)
        inside = b.icmp_signed("<", ir.Constant(I64, t), columns)
        at = b.select(inside, b.mul(ir.Constant(I64, t), stride), ir.Constant(I64, 0))
        column = b.load(b.bitcast(b.gep(src, [at], inbounds=True), vec.as_pointer()),
                        align=itemsize)
        loaded.append(b.select(inside, column, zero))
    for q, row in enumerate(transpose_square(b, loaded)):
        at = b.gep(dst, [b.mul(ir.Constant(I64, q), row_stride)], inbounds=True)
        b.store(row, b.bitcast(at, vec.as_pointer()), align=itemsize)
    b.ret_void()
    return fn
