"""Unit tests of components/split/core.py."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from boston_model.errors import BadInput
from components.split.core import split_frame


def test_split_is_the_original_recipes_split(boston):
    train, test = split_frame(boston, test_size=0.2, seed=42)
    ref_train, ref_test = train_test_split(boston, test_size=0.2, random_state=42)
    assert (len(train), len(test)) == (404, 102)
    pd.testing.assert_frame_equal(test, ref_test.reset_index(drop=True))
    pd.testing.assert_frame_equal(train, ref_train.reset_index(drop=True))


def test_same_seed_same_rows_other_seed_other_rows(boston):
    first, _ = split_frame(boston, seed=7)
    again, _ = split_frame(boston, seed=7)
    other, _ = split_frame(boston, seed=8)
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(other)


def test_sides_are_disjoint_and_complete(boston):
    train, test = split_frame(boston, test_size=0.3, seed=1)
    assert len(train) + len(test) == len(boston)
    merged = pd.concat([train, test]).sort_values(list(boston.columns)).reset_index(drop=True)
    pd.testing.assert_frame_equal(merged, boston.sort_values(list(boston.columns)).reset_index(drop=True))


@pytest.mark.parametrize("test_size", [0.0, 1.0, -0.1, 1.5])
def test_out_of_range_test_size_is_refused(boston, test_size):
    with pytest.raises(BadInput, match="test_size"):
        split_frame(boston, test_size=test_size)
