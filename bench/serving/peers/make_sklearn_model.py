"""Writes the same affine model as a scikit-learn `LinearRegression` for MLServer (run with the peers' venv).

Usage: python make_sklearn_model.py CARD_JSON OUT_JOBLIB
"""

from __future__ import annotations

import json
import sys

import joblib
import numpy as np
from sklearn.linear_model import LinearRegression


def main(card_path: str, out_path: str) -> None:
    card = json.loads(open(card_path).read())
    model = LinearRegression()
    model.coef_ = np.asarray(card["weights"], dtype=np.float64)
    model.intercept_ = float(card["bias"])
    model.n_features_in_ = len(card["feature_names"])
    probe = np.asarray(card["probe"]["inputs"], dtype=np.float64)
    # The peer must answer like ours, or the comparison is meaningless.
    assert np.allclose(model.predict(probe), card["probe"]["savedmodel_outputs"], atol=1e-4)
    joblib.dump(model, out_path)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
