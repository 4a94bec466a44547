"""Datasets for the demo: scikit-learn's bundled 8x8 digits, split and batched.

Input: a seed, a held-out fraction and a batch size. Output: `Split`s of f32 images scaled to
[0, 1] (shape [N, 64]) and i64 labels, a deterministic held-out split, and seeded shuffled
mini-batches of one fixed size (the ragged last batch is dropped: graphs are static-shaped).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from graphc.errors import GraphcError


@dataclass(frozen=True)
class Split:
    """Examples `x` (f32 [N, features]) with integer labels `y` (i64 [N])."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def batches(self, batch: int, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, ...]]:
        """Shuffled mini-batches of exactly `batch` examples; the ragged tail is dropped."""
        if not 0 < batch <= len(self):
            raise GraphcError(f"batch size {batch} must be in [1, {len(self)}]")
        order = rng.permutation(len(self))
        for start in range(0, len(self) - batch + 1, batch):
            idx = order[start:start + batch]
            yield self.x[idx], self.y[idx]

    def steps_per_epoch(self, batch: int) -> int:
        return len(self) // batch


def load_digits(heldout: float = 0.2, seed: int = 0) -> tuple[Split, Split]:
    """(train, held-out) splits of the 1797 8x8 digits; the split depends only on `seed`."""
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:
        raise GraphcError("the digits dataset needs scikit-learn: pip install 'graphc[demo]'") \
            from None
    if not 0.0 < heldout < 1.0:
        raise GraphcError(f"held-out fraction must be in (0, 1), got {heldout}")
    digits = sk_load_digits()
    x = (digits.data / 16.0).astype(np.float32)  # pixel values are 0..16
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    n_held = round(heldout * len(y))
    held, train = order[:n_held], order[n_held:]
    return Split(x[train], y[train]), Split(x[held], y[held])
