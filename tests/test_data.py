"""graphc.data: the digits split is deterministic and disjoint; batches are fixed-size."""
from __future__ import annotations

import numpy as np
import pytest
from graphc.models.datasets import Split, load_digits

import graphc as gc

pytest.importorskip("sklearn")


def test_digits_split_is_deterministic_scaled_and_disjoint():
    train, held = load_digits(heldout=0.2, seed=0)
    assert (len(train), len(held)) == (1438, 359)
    assert train.x.dtype == np.float32 and train.y.dtype == np.int64
    assert train.x.shape[1] == 64 and 0.0 <= train.x.min() and train.x.max() == 1.0
    _, held_again = load_digits(heldout=0.2, seed=0)
    np.testing.assert_array_equal(held.x, held_again.x)
    rows = {r.tobytes() for r in train.x}
    assert sum(r.tobytes() in rows for r in held.x) < 5  # the dataset has a few duplicate images
    _, other = load_digits(heldout=0.2, seed=1)
    assert not np.array_equal(held.y, other.y)


def test_batches_are_fixed_size_seeded_and_drop_the_tail():
    split = Split(np.arange(10, dtype=np.float32)[:, None], np.arange(10))
    batches = list(split.batches(3, np.random.default_rng(0)))
    assert len(batches) == split.steps_per_epoch(3) == 3
    assert all(x.shape == (3, 1) and y.shape == (3,) for x, y in batches)
    seen = np.concatenate([y for _, y in batches])
    assert len(set(seen)) == 9
    again = list(split.batches(3, np.random.default_rng(0)))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(batches, again))


@pytest.mark.parametrize("batch", [0, 11])
def test_bad_batch_size_is_an_error(batch):
    split = Split(np.zeros((10, 1), np.float32), np.zeros(10, np.int64))
    with pytest.raises(gc.GraphcError, match="batch size"):
        next(split.batches(batch, np.random.default_rng(0)))


def test_bad_heldout_fraction_is_an_error():
    with pytest.raises(gc.GraphcError, match="held-out fraction"):
        load_digits(heldout=1.5)
