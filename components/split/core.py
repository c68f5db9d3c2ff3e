"""Reproducible train/test split."""

from __future__ import annotations

import pandas as pd
from sklearn.model_selection import train_test_split

from boston_model.errors import BadInput
from components import config


def split_frame(
    frame: pd.DataFrame, test_size: float = config.TEST_SIZE, seed: int = config.SEED
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Splits rows into train and test sets; the same seed gives the same rows.

    Uses scikit-learn's ``train_test_split`` so ``test_size=0.2, seed=42`` is exactly the split of the original
    recipe.

    Raises:
        ValueError: ``test_size`` outside (0, 1) or a split that leaves either side empty.
    """
    if not 0.0 < test_size < 1.0:
        raise BadInput(f"test_size must be between 0 and 1 (exclusive), got {test_size}")
    train, test = train_test_split(frame, test_size=test_size, random_state=seed)
    if len(train) == 0 or len(test) == 0:
        raise BadInput(f"test_size={test_size} leaves an empty side for {len(frame)} rows")
    return train.reset_index(drop=True), test.reset_index(drop=True)
