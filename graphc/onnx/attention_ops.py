"""ONNX attention ops as graphc graph builders: RotaryEmbedding and Attention (opset 23 on).

Input: Tensors for data, masks, caches and position ids (ids and lengths i64), attributes under
their ONNX names. Output: Tensors (Attention: Y, present_key, present_value, qk_matmul_output;
the ones a model does not read are dead code). Both are composed from graphc ops (matmul,
softmax, gather, slices, concat), so gradients, kernels and export come from theirs.

Attention covers 3-D ([batch, seq, heads * head_size]) and 4-D ([batch, heads, seq, head_size])
inputs, grouped and multi-query heads (K and V broadcast over each group's query heads rather
than being repeated), past key/value caches, boolean and additive masks (a mask shorter than the
total sequence is padded as disallowed), bottom-right causal masks, softcap, softmax_precision,
the four qk_matmul_output modes (as the spec words them: mode 0 is Q K^T before softcap),
opset 24's nonpad_kv_seqlen and opset 25's sliding windows. A query row that may attend no key
gives zeros, and its gradient is zero too (the softmax never sees an all -inf row).
"""
from __future__ import annotations

import math

import numpy as np

from graphc.builder import Tensor
from graphc.errors import GraphcError
from graphc.onnx.dtypes import onnx_dtype
from graphc.ops import api as F
from graphc.types import FLOAT_DTYPES

NEG_INF = -math.inf


def _need(ok: bool, message: str) -> None:
    if not ok:
        raise GraphcError(message)


def _const(like: Tensor, array, dtype: str | None = None) -> Tensor:
    return F.constant(like.builder, np.asarray(array), dtype or like.dtype)


# --- rotary embedding ----------------------------------------------------------------------------
def _rotate(x1, x2, cos, sin):
    """The rotation of each (x1, x2) pair by its position's angle: (real, imaginary) parts."""
    return cos * x1 - sin * x2, sin * x1 + cos * x2


def _rotate_interleaved(x_rot, cos, sin, half):
    """Pairs are neighbours (x[2i], x[2i+1]); the rotated pairs are written back in place."""
    lead = x_rot.shape[:-1]
    pairs = F.reshape(x_rot, lead + (half, 2))
    x1, x2 = (F.reshape(F.slice(pairs, [k], [k + 1], [4]), lead + (half,)) for k in (0, 1))
    real, imag = _rotate(x1, x2, cos, sin)
    both = F.concat([F.reshape(real, lead + (half, 1)), F.reshape(imag, lead + (half, 1))], 4)
    return F.reshape(both, lead + (2 * half,))


def RotaryEmbedding(X, cos_cache, sin_cache, position_ids=None, interleaved=0, num_heads=0,
                    rotary_embedding_dim=0):
    """RoPE on the first rotary_embedding_dim (default: all) features of each head; the caches
    are [max_position, dim/2] read at position_ids, or [batch, seq, dim/2] without them."""
    _need(X.ndim in (3, 4), f"RotaryEmbedding: X must be [batch, heads, seq, head_size] or "
                            f"[batch, seq, hidden], got {list(X.shape)}")
    if X.ndim == 3:
        b, s, hidden = X.shape
        _need(num_heads > 0 and hidden % num_heads == 0,
              f"RotaryEmbedding: 3-D X {list(X.shape)} needs num_heads dividing {hidden}, got "
              f"num_heads={num_heads}")
        x, cache_shape = F.reshape(X, (b, s, num_heads, hidden // num_heads)), (b, s, 1)
    else:
        x, (b, _, s, _) = X, X.shape
        cache_shape = (b, 1, s)
    head = x.shape[3]
    rot = rotary_embedding_dim or head
    _need(rot % 2 == 0 and rot <= head, f"RotaryEmbedding: rotary_embedding_dim {rot} must be "
                                        f"even and at most the head size {head}")
    caches = []
    for cache, name in ((cos_cache, "cos_cache"), (sin_cache, "sin_cache")):
        if position_ids is not None:
            _need(cache.ndim == 2 and tuple(position_ids.shape) == (b, s),
                  f"RotaryEmbedding: with position_ids {list(position_ids.shape)}, {name} must "
                  f"be [max_position, {rot // 2}] and position_ids [{b}, {s}]")
            cache = F.gather(cache, position_ids, 0)
        _need(tuple(cache.shape) == (b, s, rot // 2),
              f"RotaryEmbedding: {name} {list(cache.shape)} must give [{b}, {s}, {rot // 2}] "
              f"(batch, sequence, rotary_embedding_dim / 2)")
        caches.append(F.reshape(cache, cache_shape + (rot // 2,)))
    cos, sin = caches
    x_rot = F.slice(x, [0], [rot], [3]) if rot < head else x
    if interleaved:
        rotated = _rotate_interleaved(x_rot, cos, sin, rot // 2)
    else:
        real, imag = _rotate(F.slice(x_rot, [0], [rot // 2], [3]),
                             F.slice(x_rot, [rot // 2], [rot], [3]), cos, sin)
        rotated = F.concat([real, imag], 3)
    if rot < head:
        rotated = F.concat([rotated, F.slice(x, [rot], [head], [3])], 3)
    return F.reshape(rotated, X.shape)


# --- attention: heads, masks and the softmax -----------------------------------------------------
def _split_heads(x: Tensor, heads: int, what: str) -> Tensor:
    """[batch, seq, heads * size] -> [batch, heads, seq, size]."""
    b, s, hidden = x.shape
    _need(heads > 0 and hidden % heads == 0, f"Attention: {what} hidden size {hidden} is not a "
                                             f"multiple of its {heads} heads")
    return F.transpose(F.reshape(x, (b, s, heads, hidden // heads)), (0, 2, 1, 3))


def _as_heads(Q, K, V, q_num_heads, kv_num_heads):
    """Q, K, V as 4-D [batch, heads, seq, size]."""
    _need(Q.ndim == K.ndim == V.ndim and Q.ndim in (3, 4),
          f"Attention: Q, K and V must all be 3-D or all 4-D, got {list(Q.shape)}, "
          f"{list(K.shape)}, {list(V.shape)}")
    if Q.ndim == 3:
        _need(q_num_heads is not None and kv_num_heads is not None,
              "Attention: 3-D Q, K and V need the q_num_heads and kv_num_heads attributes")
        return (_split_heads(Q, q_num_heads, "Q"), _split_heads(K, kv_num_heads, "K"),
                _split_heads(V, kv_num_heads, "V"))
    for given, x, what in ((q_num_heads, Q, "q_num_heads"), (kv_num_heads, K, "kv_num_heads")):
        _need(given is None or given == x.shape[1], f"Attention: {what}={given} does not match "
                                                    f"the 4-D input's {x.shape[1]} heads")
    return Q, K, V


def _mask_bias(mask: Tensor, like: Tensor, total: int) -> Tensor:
    """attn_mask as an additive bias: booleans give 0 (attend) or -inf; a mask shorter than the
    total sequence is padded with -inf (those keys are not attended)."""
    bias = F.where(mask, 0.0, _const(like, NEG_INF)) if mask.dtype == "bool" else \
        (mask if mask.dtype == like.dtype else F.cast(mask, like.dtype))
    short = total - bias.shape[-1]
    _need(short >= 0, f"Attention: attn_mask {list(mask.shape)} is longer than the "
                      f"{total} keys")
    if short:
        fill = _const(like, np.full(bias.shape[:-1] + (short,), NEG_INF))
        bias = F.concat([bias, fill], bias.ndim - 1)
    return bias


def _allowed(q: int, t: int, past: int, nonpad, is_causal, left, right, like):
    """Which keys each query may attend (bool, [q, t] or [batch, 1, q, t]), or None for all:
    the causal frontier and sliding window sit at offset past (or nonpad_kv_seqlen - q per
    batch), and keys past nonpad_kv_seqlen are padding."""
    diff = _const(like, np.arange(q)[:, None] - np.arange(t)[None, :], "i64")  # i - j
    if nonpad is not None:
        diff = diff + F.reshape(nonpad - q, (nonpad.shape[0], 1, 1, 1))
    elif past:
        diff = diff + past
    rules = ([F.greater_equal(diff, 0)] if is_causal else []) + \
        ([F.less_equal(diff, left)] if left >= 0 else []) + \
        ([F.greater_equal(diff, -right)] if right >= 0 else [])
    if nonpad is not None:
        keys = like.builder.apply("iota", [], shape=(1, 1, 1, t), axis=3, dtype="i64")
        rules.append(F.less(keys, F.reshape(nonpad, (nonpad.shape[0], 1, 1, 1))))
    allowed = None
    for rule in rules:
        allowed = rule if allowed is None else F.logical_and(allowed, rule)
    return allowed


def _guarded_softmax(x: Tensor, bias: Tensor | None, dtype: str) -> Tensor:
    """softmax over keys in `dtype`; rows whose bias is -inf everywhere give 0 (their scores
    are replaced before the softmax, so neither value nor gradient meets -inf - -inf)."""
    x = x if x.dtype == dtype else F.cast(x, dtype)
    if bias is None:
        return F.softmax(x, 3)
    empty = F.equal(F.max(bias, [bias.ndim - 1], keepdims=True), NEG_INF)
    p = F.softmax(F.where(empty, 0.0, x), 3)
    return F.where(empty, 0.0, p)


def _grouped(x: Tensor, groups: int) -> Tensor:
    """[b, heads, ...] -> [b, groups, heads / groups, ...]: query heads by their K/V head."""
    b, h, *rest = x.shape
    return F.reshape(x, (b, groups, h // groups, *rest))


def Attention(Q, K, V, attn_mask=None, past_key=None, past_value=None, nonpad_kv_seqlen=None,
              is_causal=0, kv_num_heads=None, q_num_heads=None, qk_matmul_output_mode=0,
              scale=None, softcap=0.0, softmax_precision=None, left_window_size=-1,
              right_window_size=-1):
    """softmax(Q K^T * scale (softcapped) + bias) V, per head; see the module docstring."""
    q, k, v = _as_heads(Q, K, V, q_num_heads, kv_num_heads)
    _need((past_key is None) == (past_value is None),
          "Attention: past_key and past_value must be given together")
    _need(nonpad_kv_seqlen is None or past_key is None,
          "Attention: nonpad_kv_seqlen cannot be combined with past_key/past_value")
    _need(qk_matmul_output_mode in (0, 1, 2, 3), f"Attention: qk_matmul_output_mode must be "
                                                 f"0, 1, 2 or 3, got {qk_matmul_output_mode}")
    _need(left_window_size >= -1 and right_window_size >= -1,
          "Attention: window sizes must be -1 (unbounded) or nonnegative")
    b, hq, sq, d = q.shape
    past = 0
    if past_key is not None:
        past = past_key.shape[2]
        k, v = F.concat([past_key, k], 2), F.concat([past_value, v], 2)
    hkv, t = k.shape[1], k.shape[2]
    _need(hkv > 0 and hq % hkv == 0 and v.shape[1] == hkv and k.shape[3] == d,
          f"Attention: Q's {hq} heads of size {d} do not group over K {list(k.shape)} and V "
          f"{list(v.shape)}")
    scale = 1 / math.sqrt(d) if scale is None else scale
    _need(scale > 0, f"Attention: scale must be positive (Q and K are scaled by its square "
                     f"root), got {scale}")
    root = math.sqrt(scale)
    scores = F.reshape(_grouped(q * root, hkv) @ F.reshape(F.swapaxes(k * root, 2, 3),
                                                             (b, hkv, 1, d, t)), (b, hq, sq, t))
    capped = softcap * F.tanh(scores / softcap) if softcap > 0 else scores
    terms = [] if attn_mask is None else [_mask_bias(attn_mask, q, t)]
    allowed = _allowed(sq, t, past, nonpad_kv_seqlen, is_causal, left_window_size,
                       right_window_size, q)
    if allowed is not None:
        terms.append(F.where(allowed, _const(q, 0.0), NEG_INF))
    bias = terms[0] + terms[1] if len(terms) == 2 else (terms[0] if terms else None)
    biased = capped + bias if bias is not None else capped
    dtype = q.dtype if softmax_precision is None else \
        onnx_dtype(softmax_precision, "Attention: softmax_precision")
    _need(dtype in FLOAT_DTYPES, f"Attention: softmax_precision {softmax_precision} is not "
                                   f"a float type")
    p = _guarded_softmax(biased, bias, dtype)
    p = p if p.dtype == q.dtype else F.cast(p, q.dtype)
    y = F.reshape(_grouped(p, hkv) @ F.reshape(v, (b, hkv, 1, t, v.shape[3])),
                  (b, hq, sq, v.shape[3]))
    if Q.ndim == 3:
        y = F.reshape(F.transpose(y, (0, 2, 1, 3)), (b, sq, hq * v.shape[3]))
    qk = (scores, capped, biased, p)[qk_matmul_output_mode]
    return y, k, v, qk
