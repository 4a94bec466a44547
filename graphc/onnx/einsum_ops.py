"""ONNX Einsum as graphc graph builders: diagonals, sums, transposes and batched matmuls.

Input: the operands (Tensors) and the `equation` attribute (explicit `ab,bc->ac` or implicit
`ab,bc`, with `...` for broadcast axes). Output: one Tensor. Each operand first loses its
repeated letters (a diagonal: a masked sum) and the letters nothing else needs (a sum); then the
operands are contracted left to right, each pair as one batched matmul
([batch, free of a, contracted] @ [batch, contracted, free of b]); a final transpose orders the
result. Letters repeated in the output are a GraphcError. Integer operands are contracted in
float64 (exact while sums stay below 2**53).
"""
from __future__ import annotations

import math
import string

from graphc.builder import Tensor
from graphc.errors import GraphcError
from graphc.onnx.ops import as_float, back_to
from graphc.ops import api as F

_BROADCAST = "αβγδεζηθικλμνξοπρστυφχψω"  # letters standing for the axes `...` covers


def _expand_term(term: str, rank: int, width: int, equation: str) -> list[str]:
    """One operand's subscripts as letters, `...` replaced by the last axes it covers."""
    if "..." not in term:
        letters = list(term)
    else:
        before, after = term.split("...", 1)
        count = rank - len(before) - len(after)
        if count < 0 or "." in before + after:
            raise GraphcError(f"Einsum: {term!r} does not fit an operand of rank {rank} in "
                              f"{equation!r}")
        letters = list(before) + list(_BROADCAST[width - count:width]) + list(after)
    if len(letters) != rank or any(c not in string.ascii_letters and c not in _BROADCAST
                                   for c in letters):
        raise GraphcError(f"Einsum: {term!r} does not name the {rank} axes of its operand in "
                          f"{equation!r}")
    return letters


def parse(equation: str, ranks: list[int]) -> tuple[list[list[str]], list[str]]:
    """(letters of each operand, letters of the output) for `equation`."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise GraphcError(f"Einsum: {equation!r} names {len(terms)} operand(s), the node has "
                          f"{len(ranks)}")
    width = max((r - len(t) + 3 for t, r in zip(terms, ranks) if "..." in t), default=0)
    if width > len(_BROADCAST):
        raise GraphcError(f"Einsum: `...` covers {width} axes, more than graphc handles")
    inputs = [_expand_term(t, r, width, equation) for t, r in zip(terms, ranks)]
    if arrow:
        output = _expand_term(rhs, len(rhs.replace("...", "")) + width * ("..." in rhs),
                              width, equation)
    else:
        seen = [c for term in inputs for c in term]
        output = list(_BROADCAST[:width]) + sorted(c for c in set(seen) if seen.count(c) == 1
                                                   and c not in _BROADCAST)
    if len(set(output)) != len(output):
        raise GraphcError(f"Einsum: {equation!r} repeats a letter in its output (a diagonal "
                          f"output), which graphc does not support")
    missing = set(output) - {c for term in inputs for c in term}
    if missing:
        raise GraphcError(f"Einsum: output letters {sorted(missing)} of {equation!r} name no "
                          f"input axis")
    return inputs, output


def _diagonal(x: Tensor, letters: list[str]) -> tuple[Tensor, list[str]]:
    """Repeated letters of one operand reduced to their diagonal (a masked sum)."""
    while len(set(letters)) != len(letters):
        c = next(c for c in letters if letters.count(c) > 1)
        i = letters.index(c)
        j = letters.index(c, i + 1)
        if x.shape[i] != x.shape[j]:
            raise GraphcError(f"Einsum: the diagonal {c!r} joins axes of sizes {x.shape[i]} "
                              f"and {x.shape[j]}")
        n = x.shape[i]
        shape_i = tuple(n if a == i else 1 for a in range(x.ndim))
        shape_j = tuple(n if a == j else 1 for a in range(x.ndim))
        same = F.equal(x.builder.apply("iota", [], shape=shape_i, axis=i, dtype="i64"),
                       x.builder.apply("iota", [], shape=shape_j, axis=j, dtype="i64"))
        x = F.sum(F.where(same, x, 0), j)
        letters = letters[:j] + letters[j + 1:]
    return x, letters


def _sum_unneeded(x, letters, needed):
    drop = [a for a, c in enumerate(letters) if c not in needed]
    if drop:
        x = F.sum(x, drop)
    return x, [c for c in letters if c in needed]


def _arrange(x, letters, order, sizes):
    """x with its axes in `order` (each letter broadcast to its full size)."""
    perm = [letters.index(c) for c in order]
    if perm != list(range(len(perm))):
        x = F.transpose(x, perm)
    full = tuple(sizes[c] for c in order)
    return F.broadcast_to(x, full) if x.shape != full else x


def _contract(a, la, b, lb, needed, sizes):
    """One batched matmul: letters in both and still needed are batch, in both and not needed
    are summed, in one only are kept."""
    batch = [c for c in la if c in lb and c in needed]
    summed = [c for c in la if c in lb and c not in needed]
    free_a = [c for c in la if c not in lb]
    free_b = [c for c in lb if c not in la]

    def size(letters):
        return math.prod(sizes[c] for c in letters)

    left = _arrange(a, la, batch + free_a + summed, sizes)
    right = _arrange(b, lb, batch + summed + free_b, sizes)
    left = F.reshape(left, (size(batch), size(free_a), size(summed)))
    right = F.reshape(right, (size(batch), size(summed), size(free_b)))
    y = left @ right
    out = batch + free_a + free_b
    return F.reshape(y, tuple(sizes[c] for c in out)), out


def Einsum(*Inputs, equation):
    if not Inputs:
        raise GraphcError("Einsum needs at least one operand")
    terms, output = parse(equation, [x.ndim for x in Inputs])
    sizes: dict[str, int] = {}
    for x, letters in zip(Inputs, terms):
        for c, d in zip(letters, x.shape):
            if sizes.get(c, 1) not in (1, d) and d != 1:
                raise GraphcError(f"Einsum: {c!r} has sizes {sizes[c]} and {d} in {equation!r}")
            sizes[c] = max(sizes.get(c, 1), d)
    like = Inputs[0]
    operands = []
    for k, (x, letters) in enumerate(zip(Inputs, terms)):
        x, letters = _diagonal(as_float(x) if len(Inputs) > 1 else x, letters)
        others = {c for m, t in enumerate(terms) if m != k for c in t}
        operands.append(_sum_unneeded(x, letters, others | set(output)))
    y, letters = operands[0]
    for k, (x, lx) in enumerate(operands[1:], start=1):
        needed = set(output) | {c for t in terms[k + 1:] for c in t}
        y, letters = _contract(y, letters, x, lx, needed, sizes)
    y = _arrange(y, letters, output, sizes)
    return back_to(y, like) if y.dtype != like.dtype else y
