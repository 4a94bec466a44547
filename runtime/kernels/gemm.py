"""The matmul kernel: a cache-blocked, register-blocked GEMM with a fused epilogue.

Input: a matmul `fused` kernel (runtime/kernels/loop.py's Kernel and IndexEval). Output: instructions
computing C = A @ B block by block: for each block of NC columns, B is packed into KC x NR
panels (any transposition folds into the packing reads), an MR x NR register tile of C is
accumulated with vector FMAs over each KC block, and once a column block is complete the
epilogue (bias, activation, mask, optimizer update) is evaluated on it while it is in cache.
A is read in place (broadcast loads), so A and Aᵀ cost the same. Vector width and tile sizes
come from the host's features: AVX-512 (16 lanes), AVX2 (8) or a generic 4-lane fallback.
"""
from __future__ import annotations

from graphc.runtime.emit.emitter import I64, MEM_TYPES, constant, for_range, for_span, load, store
from graphc.runtime.kernels.pack import PackB
from graphc.runtime.target import host_vector_lanes
from llvmlite import ir

from graphc.types import TensorType


def _itemsize(dtype: str) -> int:
    return TensorType((), dtype).np_dtype.itemsize


def tiles(dtype: str) -> tuple[int, int, int, int]:
    """(vector lanes, MR, NR, KC) for a dtype on this host: an MR x NR tile of C lives in
    MR * NR / lanes vector registers (16 of AVX-512's 32)."""
    lanes = host_vector_lanes() * 4 // _itemsize(dtype)
    mr = 8 if host_vector_lanes() >= 16 else 6
    return lanes, mr, 2 * lanes, 256


NC = 256  # columns per packed block of B (measured best of 256/512/1024 with KC 256)
# B is read in place, unpacked, only when its rows are closer than this: with rows a page or
# more apart every K step touches a new page (256x4096x4096: 97 GFLOP/s in place, 101 packed;
# 128x512x512, rows 2 KiB apart: 112 either way)
DIRECT_ROW_BYTES = 4096


def _round_up(n: int, m: int) -> int:
    return (n + m - 1) // m * m


def block_columns(n: int, nr: int, parts: int) -> int:
    """Columns per block of C: NC, or fewer so that every part gets a block."""
    return NC if parts == 1 else min(NC, _round_up(-(-n // parts), nr))


def gemm_buffers(m: int, n: int, k: int, dtype: str, parts: int = 1) -> tuple[int, int]:
    """Elements of the two scratch arrays of one part: a packed block of B (K block x NC
    padded to NR) and a block of C (M padded to MR x the same columns)."""
    _, mr, nr, kc = tiles(dtype)
    ncp = _round_up(min(n, block_columns(n, nr, parts)), nr)
    return depth_block(k, kc) * ncp, _round_up(m, mr) * ncp


def gemm_scratch(m: int, n: int, k: int, dtype: str, parts: int = 1) -> int:
    """Bytes of scratch for one part (each array 64-byte aligned)."""
    packed, cblock = gemm_buffers(m, n, k, dtype, parts)
    item = _itemsize(dtype)
    return _round_up(packed * item, 64) + _round_up(cblock * item, 64)


def depth_block(k: int, kc: int) -> int:
    """K per packed block: at most kc, and equal blocks (no thin tail block); 0 for K = 0."""
    blocks = -(-k // kc)
    return -(-k // blocks) if blocks else 0


def lanes_name(dtype: str, lanes: int) -> str:
    return f"v{lanes}{'f32' if dtype == 'f32' else 'f64'}"


def _vector_fma(module: ir.Module, vec: ir.VectorType, suffix: str) -> ir.Function:
    """llvm.fma on vectors (llvmlite's declare_intrinsic only mangles scalar types)."""
    name = f"llvm.fma.{suffix}"
    fn = module.globals.get(name)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(vec, [vec, vec, vec]), name)
    return fn


class Gemm:
    """Emits one batch element's C = A @ B into a kernel, with `epilogue(i, j, c)` callbacks."""

    def __init__(self, b: ir.IRBuilder, dtype: str, m: int, n: int, k: int,
                 read_a, read_b, epilogue, packed: ir.Value, cblock: ir.Value,
                 affine_a: tuple[ir.Value, int, int] | None = None,
                 affine_b: tuple[ir.Value, int, int] | None = None):
        self.b, self.dtype, self.m, self.n, self.k = b, dtype, m, n, k
        self.affine_a = affine_a  # (pointer to A[0, 0], row stride, column stride) if strided
        self.affine_b = affine_b  # (pointer to B[0, 0], stride along K, along N) if strided
        self.read_a, self.read_b, self.epilogue = read_a, read_b, epilogue
        self.lanes, mr, self.nr, kc = tiles(dtype)
        self.mr = min(mr, m) if m else mr  # fewer rows than a tile: a shorter tile
        self.kc = depth_block(k, kc)
        self.packed, self.cblock = packed, cblock
        self.packer = PackB(b, dtype, self.lanes, self.nr, read_b, affine_b, packed)

    def i64(self, v: int) -> ir.Constant:
        return ir.Constant(I64, v)

    def emit(self, part: ir.Value | None = None, parts: int = 1) -> None:
        """All of C, or with `parts` > 1 the contiguous share of column blocks of `part`."""
        b, nc = self.b, block_columns(self.n, self.nr, parts)
        full, tail = divmod(self.n, nc)
        if parts == 1:
            if full:
                with for_range(b, full, "jc") as jc:
                    self.column_block(b.mul(jc, self.i64(nc)), nc)
            if tail:
                self.column_block(self.i64(full * nc), tail)
            return
        blocks = full + (1 if tail else 0)
        lo = b.udiv(b.mul(part, self.i64(blocks)), self.i64(parts))
        hi = b.udiv(b.mul(b.add(part, self.i64(1)), self.i64(blocks)), self.i64(parts))
        end = b.select(b.icmp_signed("<", hi, self.i64(full)), hi, self.i64(full))
        with for_span(b, lo, end, "jc") as jc:
            self.column_block(b.mul(jc, self.i64(nc)), nc)
        if tail:
            with b.if_then(b.icmp_signed(">", hi, self.i64(full))):
                self.column_block(self.i64(full * nc), tail)

    def column_block(self, jc: ir.Value, ncur: int) -> None:
        b = self.b
        ncp = _round_up(ncur, self.nr)
        if self.k == 0:  # an empty contraction: C is zero
            with for_range(b, _round_up(self.m, self.mr) * ncp, "cz") as z:
                store(b, constant(self.dtype, 0), self.cblock, z, self.dtype)
        full, tail = divmod(self.k, self.kc) if self.k else (0, 0)
        if full:
            with for_range(b, full, "pc") as pc:
                first = b.icmp_signed("==", pc, self.i64(0))
                self.k_block(jc, ncur, ncp, b.mul(pc, self.i64(self.kc)), self.kc, first)
        if tail:
            self.k_block(jc, ncur, ncp, self.i64(full * self.kc), tail,
                         ir.Constant(ir.IntType(1), int(full == 0)))
        with for_range(b, self.m, "ei") as i, for_range(b, ncur, "ej") as j:
            c = load(b, self.cblock, b.add(b.mul(i, self.i64(ncp)), j), self.dtype)
            self.epilogue(i, b.add(jc, j), c)

    def k_block(self, jc, ncur: int, ncp: int, pc, kcur: int, first: ir.Value) -> None:
        b = self.b
        direct = (self.affine_b is not None and self.affine_b[2] == 1 and ncur % self.nr == 0
                  and self.affine_b[1] * _itemsize(self.dtype) < DIRECT_ROW_BYTES)
        if direct:  # B rows are contiguous, close, and the block has whole panels: in place
            ptr, s_k, _ = self.affine_b
            b_ptr = b.gep(ptr, [b.add(b.mul(pc, self.i64(s_k)), jc)], inbounds=True)
            layout = (b_ptr, self.i64(s_k), self.i64(self.nr))
        else:
            self.packer.pack(jc, ncur, pc, kcur)
            layout = (self.packed, self.i64(self.nr), self.i64(kcur * self.nr))
        if self.affine_a is not None:  # one shared, compiled-once tile loop for every kernel
            ptr, s_i, s_k = self.affine_a
            a_ptr = b.gep(ptr, [b.mul(pc, self.i64(s_k))], inbounds=True)
            b.call(shared_tiles(b.module, self.dtype, self.mr),
                   [a_ptr, self.i64(s_i), self.i64(s_k), self.i64(self.m), *layout,
                    self.i64(kcur), self.cblock, self.i64(ncp), first])
            return
        tiles_ = Tiles(b, self.dtype, self.mr)
        tiles_.emit(lambda r, k: self.read_a(r, b.add(pc, k)), self.i64(self.m), layout,
                    self.i64(kcur), self.cblock, self.i64(ncp), first)


class Tiles:
    """The register-tiled inner loops over one packed block: for each NR panel of B and each
    MR rows of A, an MR x NR tile of C is loaded, updated with kcur vector FMAs per row, and
    stored. Sizes may be run-time values (the shared tile function serves every kernel)."""

    def __init__(self, b: ir.IRBuilder, dtype: str, mr: int):
        self.b, self.dtype = b, dtype
        self.lanes, _, self.nr, _ = tiles(dtype)
        self.mr = mr
        self.vec = ir.VectorType(MEM_TYPES[dtype], self.lanes)
        self.fma = _vector_fma(b.module, self.vec, lanes_name(dtype, self.lanes))

    def i64(self, v: int) -> ir.Constant:
        return ir.Constant(I64, v)

    def emit(self, read_a, m, layout, kcur, cblock, ncp, first) -> None:
        """`layout` = (B pointer, elements between rows k, elements between NR panels): a
        packed block or B itself. `first` (i1): the first K block, whose tiles start from
        zero instead of C."""
        b = self.b
        row_tiles = b.udiv(b.add(m, self.i64(self.mr - 1)), self.i64(self.mr))
        with for_span(b, self.i64(0), b.udiv(ncp, self.i64(self.nr)), "jr") as jr, \
                for_span(b, self.i64(0), row_tiles, "ir") as it:
            self.tile(read_a, m, layout, kcur, cblock, ncp, b.mul(it, self.i64(self.mr)), jr,
                      first)

    def _initial(self, c_ptrs, first) -> list[list[ir.Value]]:
        """Zero accumulators on the first K block, else the partial sums stored in C."""
        b = self.b
        start = b.block
        load_block = b.append_basic_block("uk.load")
        join = b.append_basic_block("uk.init")
        b.cbranch(first, join, load_block)
        b.position_at_end(load_block)
        loaded = [[b.load(p, align=4) for p in row] for row in c_ptrs]
        b.branch(join)
        b.position_at_end(join)
        zero = ir.Constant(self.vec, None)
        out = []
        for row in loaded:
            out.append([])
            for value in row:
                phi = b.phi(self.vec)
                phi.add_incoming(zero, start)
                phi.add_incoming(value, load_block)
                out[-1].append(phi)
        return out

    def tile(self, read_a, m, layout, kcur, cblock, ncp, i0, jr, first) -> None:
        b_ptr, ldb, panel_stride = layout
        b, mr, nv, lanes = self.b, self.mr, self.nr // self.lanes, self.lanes
        last = b.sub(m, self.i64(1))
        rows = [b.select(b.icmp_signed("<", r, m), r, last)
                for r in (b.add(i0, self.i64(t)) for t in range(mr))]
        col0 = b.mul(jr, self.i64(self.nr))
        c_ptrs = [[self.vec_ptr(cblock, b.add(b.mul(b.add(i0, self.i64(t)), ncp),
                                              b.add(col0, self.i64(v * lanes))))
                   for v in range(nv)] for t in range(mr)]
        acc0 = self._initial(c_ptrs, first)
        panel = b.mul(jr, panel_stride)
        pre = b.block
        head = b.append_basic_block("uk.body")
        done = b.append_basic_block("uk.end")
        b.branch(head)
        b.position_at_end(head)
        p = b.phi(I64, "uk.p")
        p.add_incoming(self.i64(0), pre)
        accs = []
        for t in range(mr):
            accs.append([])
            for v in range(nv):
                phi = b.phi(self.vec, f"acc{t}_{v}")
                phi.add_incoming(acc0[t][v], pre)
                accs[t].append(phi)
        bvecs = [b.load(self.vec_ptr(b_ptr, b.add(panel, b.add(
            b.mul(p, ldb), self.i64(v * lanes)))), align=4) for v in range(nv)]
        zeros = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes)
        undef = ir.Constant(self.vec, ir.Undefined)
        new = []
        for t in range(mr):
            a = read_a(rows[t], p)
            splat = b.shuffle_vector(b.insert_element(undef, a, self.i64(0)), undef, zeros)
            new.append([b.call(self.fma, [splat, bvecs[v], accs[t][v]]) for v in range(nv)])
        nxt = b.add(p, self.i64(1), flags=("nuw", "nsw"))
        p.add_incoming(nxt, b.block)
        for t in range(mr):
            for v in range(nv):
                accs[t][v].add_incoming(new[t][v], b.block)
        b.cbranch(b.icmp_signed("<", nxt, kcur), head, done)
        b.position_at_end(done)
        for t in range(mr):
            for v in range(nv):
                b.store(new[t][v], c_ptrs[t][v], align=4)

    def vec_ptr(self, base: ir.Value, offset: ir.Value) -> ir.Value:
        return self.b.bitcast(self.b.gep(base, [offset], inbounds=True), self.vec.as_pointer())


def shared_tiles(module: ir.Module, dtype: str, mr: int) -> ir.Function:
    """`void tiles(A*, i64 stride_i, i64 stride_k, i64 m, B*, i64 ldb, i64 panel_stride,
    i64 kcur, C*, i64 ncp, i1 first)`,
    with MR = `mr` rows per tile, emitted once per module, dtype and MR, for kernels whose A is
    a strided view of an operand."""
    name = f"graphc.gemm_tiles.{dtype}" + ("" if mr == tiles(dtype)[1] else f".mr{mr}")
    fn = module.globals.get(name)
    if fn is not None:
        return fn
    ptr = MEM_TYPES[dtype].as_pointer()
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [ptr, I64, I64, I64, ptr, I64, I64,
                                                            I64, ptr, I64, ir.IntType(1)]), name)
    fn.linkage = "internal"
    fn.attributes.add("nounwind")
    fn.attributes.add("noinline")
    a, s_i, s_k, m, b_ptr, ldb, panel_stride, kcur, cblock, ncp, first = fn.args
    cblock.add_attribute("noalias")
    b = ir.IRBuilder(fn.append_basic_block("entry"))

    def read_a(row, k):
        return load(b, a, b.add(b.mul(row, s_i), b.mul(k, s_k)), dtype)

    Tiles(b, dtype, mr).emit(read_a, m, (b_ptr, ldb, panel_stride), kcur, cblock, ncp, first)
    b.ret_void()
    return fn
