"""ONNX RotaryEmbedding and Attention (graphc/onnx/attention_ops.py) against torch and
onnxruntime.

Input: one-node models made here with onnx.helper, loss = sum(y * w). Output: checks that the
compiled graph gives onnxruntime's Y (and qk_matmul_output in every mode), that gradients with
respect to every float input (Q, K, V, caches, masks, cos/sin caches), compiled and interpreted,
match torch autograd of the formula written out here, that a fully masked query row gives zeros
and finite gradients, and that bad attributes and shapes are refused with a GraphcError.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import graphc as gc
from tests.onnx_vs_torch import check, model, onnxruntime, randn, refused


# --- rotary embedding ----------------------------------------------------------------------------
def _torch_rope(x, cos, sin, pos=None, interleaved=False, rot=0, heads=0):
    shape = x.shape
    if x.dim() == 3:
        x = x.reshape(shape[0], shape[1], heads, -1).transpose(1, 2)
    if pos is not None:
        cos, sin = cos[pos], sin[pos]
    cos, sin = cos[:, None], sin[:, None]  # [batch, 1, seq, rot / 2]
    rot = rot or x.shape[-1]
    x_rot, x_pass = x[..., :rot], x[..., rot:]
    if interleaved:
        x1, x2 = x_rot[..., 0::2], x_rot[..., 1::2]
    else:
        x1, x2 = x_rot[..., :rot // 2], x_rot[..., rot // 2:]
    real, imag = cos * x1 - sin * x2, sin * x1 + cos * x2
    rotated = torch.stack([real, imag], -1).reshape(x_rot.shape) if interleaved else \
        torch.cat([real, imag], -1)
    out = torch.cat([rotated, x_pass], -1)
    return out.transpose(1, 2).reshape(shape) if len(shape) == 3 else out


@pytest.mark.parametrize("rank", [3, 4])
@pytest.mark.parametrize("interleaved", [0, 1])
@pytest.mark.parametrize("rot", [0, 4])
def test_rotary_embedding_with_position_ids(rank, interleaved, rot):
    x = randn(2, 3, 16) if rank == 3 else randn(2, 2, 3, 8)
    half = (rot or 8) // 2
    pos = np.array([[0, 4, 2], [5, 1, 3]], np.int64)
    feeds = {"X": x, "cos_cache": randn(6, half), "sin_cache": randn(6, half),
             "position_ids": pos}
    attrs = {"interleaved": interleaved, "rotary_embedding_dim": rot,
             **({"num_heads": 2} if rank == 3 else {})}
    check("RotaryEmbedding", feeds, lambda x, c, s, p: _torch_rope(
        x, c, s, p, bool(interleaved), rot, heads=2), 23, **attrs)


@pytest.mark.parametrize("interleaved", [0, 1])
def test_rotary_embedding_without_position_ids(interleaved):
    feeds = {"X": randn(2, 2, 3, 6), "cos_cache": randn(2, 3, 3), "sin_cache": randn(2, 3, 3)}
    check("RotaryEmbedding", feeds, lambda x, c, s: _torch_rope(x, c, s, None, bool(interleaved)),
          23, interleaved=interleaved)


def test_rotary_embedding_refusals():
    x = randn(2, 2, 3, 8)
    caches = {"cos_cache": randn(2, 3, 4), "sin_cache": randn(2, 3, 4)}
    refused("RotaryEmbedding", {"X": x, **caches}, [2, 2, 3, 8],
            "rotary_embedding_dim 3 must be even", rotary_embedding_dim=3)
    refused("RotaryEmbedding", {"X": randn(2, 3, 16), **caches}, [2, 3, 16],
            "needs num_heads dividing 16")
    refused("RotaryEmbedding", {"X": x, "cos_cache": randn(2, 3, 2), "sin_cache": randn(2, 3, 2)},
            [2, 2, 3, 8], r"cos_cache \[2, 3, 2\] must give \[2, 3, 4\]")


# --- attention -----------------------------------------------------------------------------------
def _heads(x, n):
    b, s, _ = x.shape
    return x.reshape(b, s, n, -1).transpose(1, 2)


def _torch_attention(q, k, v, bias=None, scale=None, softcap=0.0, precision=None):
    """Attention over 4-D heads; K and V heads repeat over their query groups; rows whose bias
    is -inf everywhere give 0."""
    rep = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = (q @ k.transpose(-1, -2)) * scale
    if softcap:
        s = softcap * torch.tanh(s / softcap)
    if bias is None:
        return torch.softmax(s if precision is None else s.to(precision), -1).to(q.dtype) @ v
    empty = torch.isneginf(bias.amax(-1, keepdim=True))
    s = torch.where(empty, torch.zeros(()), s + bias)
    p = torch.softmax(s if precision is None else s.to(precision), -1).to(q.dtype)
    return torch.where(empty, torch.zeros(()), p) @ v


def _bias(allowed):
    return torch.tensor(np.where(allowed, 0.0, -np.inf).astype(np.float32))


def test_attention_4d_float_mask():
    feeds = {"Q": randn(2, 3, 4, 8), "K": randn(2, 3, 6, 8), "V": randn(2, 3, 6, 5),
             "attn_mask": randn(4, 6)}
    check("Attention", feeds, lambda q, k, v, m: _torch_attention(q, k, v, m), 23)


def test_attention_3d_grouped_causal_with_past():
    """3-D Q/K/V, 6 query heads over 2 K/V heads, a cache of 5 keys, bottom-right causal."""
    feeds = {"Q": randn(2, 3, 24), "K": randn(2, 3, 8), "V": randn(2, 3, 6),
             "attn_mask": np.zeros((3, 8), np.float32),
             "past_key": randn(2, 2, 5, 4), "past_value": randn(2, 2, 5, 3)}
    causal = _bias(np.arange(8)[None, :] <= np.arange(3)[:, None] + 5)

    def attention(q, k, v, m, pk, pv):
        keys, values = torch.cat([pk, _heads(k, 2)], 2), torch.cat([pv, _heads(v, 2)], 2)
        y = _torch_attention(_heads(q, 6), keys, values, m + causal)
        return y.transpose(1, 2).reshape(2, 3, 18)
    check("Attention", feeds, attention, 23, outputs=("y", "present_key", "present_value"),
          is_causal=1, q_num_heads=6, kv_num_heads=2)


def test_attention_fully_masked_row_gives_zeros_and_finite_gradients():
    allowed = np.ones((3, 5), bool)
    allowed[1] = False
    allowed[2, :3] = False
    feeds = {"Q": randn(1, 2, 3, 8), "K": randn(1, 2, 5, 8), "V": randn(1, 2, 5, 4),
             "attn_mask": allowed}
    check("Attention", feeds, lambda q, k, v, m: _torch_attention(
        q, k, v, _bias(allowed), scale=0.3, softcap=2.0), 23, scale=0.3, softcap=2.0)
    y = gc.compile(gc.load_onnx(model("Attention", feeds, [1, 2, 3, 4], 23, {}, loss=False)))
    assert np.all(y.run(feeds)["y"][:, :, 1] == 0)


def test_attention_short_mask_is_padded_as_disallowed():
    """A mask covering only the first keys leaves the rest unattended, as onnx's reference
    pads it (onnxruntime wants the mask to cover every key)."""
    feeds = {"Q": randn(2, 2, 3, 4), "K": randn(2, 2, 5, 4), "V": randn(2, 2, 5, 4),
             "attn_mask": randn(2, 1, 3, 3)}
    pad = torch.full((2, 1, 3, 2), -math.inf)
    check("Attention", feeds, lambda q, k, v, m: _torch_attention(
        q, k, v, torch.cat([m, pad], -1)), 24, ort_check=False)


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
def test_attention_qk_matmul_output_modes_match_onnxruntime(mode):
    """Mode 0 is Q K^T before softcap (as the spec and onnxruntime have it)."""
    feeds = {"Q": randn(2, 2, 3, 4), "K": randn(2, 2, 5, 4), "V": randn(2, 2, 5, 4),
             "attn_mask": randn(3, 5)}
    made = model("Attention", feeds, [2, 2, 3, 4], 23,
                 {"softcap": 1.5, "qk_matmul_output_mode": mode}, loss=False,
                 outputs=("y", "", "", "qk"))
    got = gc.compile(gc.load_onnx(made)).run(feeds)
    want = onnxruntime(made, feeds, ("y", "qk"))
    for name, expected in zip(("y", "qk"), want):
        np.testing.assert_allclose(got[name], expected, rtol=1e-5, atol=1e-5, err_msg=name)


def test_attention_nonpad_kv_seqlen_causal():
    """Opset 24 external cache: keys past nonpad_kv_seqlen[b] are padding, and the causal
    frontier of batch b sits at nonpad_kv_seqlen[b] - q_len."""
    nonpad = np.array([6, 4], np.int64)
    feeds = {"Q": randn(2, 4, 2, 8), "K": randn(2, 2, 6, 8), "V": randn(2, 2, 6, 8),
             "nonpad_kv_seqlen": nonpad}
    i, j = np.arange(2)[:, None], np.arange(6)[None, :]
    allowed = np.stack([(j <= i + n - 2) & (j < n) for n in nonpad])[:, None]
    check("Attention", feeds, lambda q, k, v, n: _torch_attention(q, k, v, _bias(allowed)), 24,
          node_inputs=["Q", "K", "V", "", "", "", "nonpad_kv_seqlen"], is_causal=1)


@pytest.mark.parametrize("left, right, causal", [(1, 2, 0), (2, -1, 1), (0, 0, 0)])
def test_attention_sliding_window(left, right, causal):
    """Opset 25: key j is attended by query i iff i - left <= j <= i + right (past 3 keys)."""
    feeds = {"Q": randn(1, 2, 4, 4), "K": randn(1, 2, 4, 4), "V": randn(1, 2, 4, 4),
             "past_key": randn(1, 2, 3, 4), "past_value": randn(1, 2, 3, 4)}
    diff = np.arange(4)[:, None] + 3 - np.arange(7)[None, :]
    allowed = (diff <= left) & (-diff <= right if right >= 0 else True) & \
        (diff >= 0 if causal else True)
    check("Attention", feeds, lambda q, k, v, pk, pv: _torch_attention(
        q, torch.cat([pk, k], 2), torch.cat([pv, v], 2), _bias(allowed)), 25,
        node_inputs=["Q", "K", "V", "", "past_key", "past_value"], left_window_size=left,
        right_window_size=right, is_causal=causal)


def test_attention_double_softmax_precision():
    feeds = {"Q": randn(1, 2, 3, 4) * 4, "K": randn(1, 2, 5, 4), "V": randn(1, 2, 5, 4)}
    check("Attention", feeds, lambda q, k, v: _torch_attention(
        q, k, v, precision=torch.float64), 23, ort_check=False, softmax_precision=11)


def test_attention_refusals():
    q, k, v = randn(1, 2, 3, 4), randn(1, 2, 5, 4), randn(1, 2, 5, 4)
    refused("Attention", {"Q": randn(1, 3, 8), "K": randn(1, 5, 8), "V": randn(1, 5, 8)},
            [1, 3, 8], "3-D Q, K and V need the q_num_heads and kv_num_heads")
    refused("Attention", {"Q": q, "K": k, "V": v, "attn_mask": randn(3, 5),
                          "past_key": randn(1, 2, 2, 4)}, [1, 2, 3, 4],
            "past_key and past_value must be given together")
    refused("Attention", {"Q": q, "K": k, "V": v}, [1, 2, 3, 4],
            "qk_matmul_output_mode must be 0, 1, 2 or 3, got 4", qk_matmul_output_mode=4)
    refused("Attention", {"Q": q, "K": k, "V": v}, [1, 2, 3, 4], "scale must be positive",
            scale=-1.0)
    refused("Attention", {"Q": randn(1, 3, 3, 4), "K": k, "V": v}, [1, 3, 3, 4],
            "Q's 3 heads of size 4 do not group over K")
    refused("Attention", {"Q": q, "K": k, "V": v, "attn_mask": randn(3, 7)}, [1, 2, 3, 4],
            r"attn_mask \[3, 7\] is longer than the 5 keys")
