"""Fixtures for the component tests: the bundled table, the seed split and one really trained model."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from components.load.core import load_table
from components.split.core import split_frame
from components.train.core import TrainParams, TrainResult, train_model


@pytest.fixture(scope="session")
def boston() -> pd.DataFrame:
    return load_table().frame


@pytest.fixture(scope="session")
def seed_split(boston: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The original recipe's split: test_size=0.2, random_state=42."""
    return split_frame(boston, test_size=0.2, seed=42)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, seed_split) -> tuple[Path, TrainResult]:
    """A model trained with the project defaults (real TensorFlow, ~6 s), shared by the session."""
    model_dir = tmp_path_factory.mktemp("model")
    result = train_model(seed_split[0], model_dir, TrainParams(), log=lambda _: None)
    return model_dir, result
