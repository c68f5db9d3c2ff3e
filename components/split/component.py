"""KFP component: reproducible train/test split."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from components import config


@dsl.component(base_image=config.IMAGE, install_kfp_package=False)
def split_data(
    dataset: Input[Dataset],
    train: Output[Dataset],
    test: Output[Dataset],
    test_size: float,
    seed: int,
):
    """Splits the table into train and test rows (scikit-learn train_test_split).

    Args:
        dataset: The validated table.
        train: Training rows.
        test: Held-out test rows.
        test_size: Fraction of rows held out for testing.
        seed: Random seed; the same seed gives the same split.
    """
    import pandas as pd

    from components.common.runtime import fail_with_one_line
    from components.split.core import split_frame

    with fail_with_one_line("split"):
        train_rows, test_rows = split_frame(pd.read_csv(dataset.path), test_size=test_size, seed=seed)
        train_rows.to_csv(train.path, index=False)
        test_rows.to_csv(test.path, index=False)
        # The data set's sha256 travels with the training rows into the model card (the registry lists it).
        train.metadata.update({"rows": len(train_rows), "seed": seed, "test_size": test_size,
                               "data_sha256": dataset.metadata.get("sha256")})
        test.metadata.update({"rows": len(test_rows), "seed": seed})
        print(f"split: {len(train_rows)} train rows, {len(test_rows)} test rows (seed {seed})")
