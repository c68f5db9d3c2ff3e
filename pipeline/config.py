"""Project-wide defaults: the one place every default lives.

Constants only, no I/O at import. The CLI, the pipeline, the components and the notebook read them from here.
"""

from __future__ import annotations

FEATURES: tuple[str, ...] = (
    "CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX", "PTRATIO", "B", "LSTAT",
)
TARGET = "MEDV"
BUNDLED_SOURCE = "bundled"

PIPELINE_NAME = "boston-housing"
MODEL_NAME = "boston-housing"
BUCKET = "models"

# The one component image; every step runs in it (built from kserve/Dockerfile.component).
IMAGE = "ghcr.io/boston-housing-kfp/boston-housing:0.1.0"
PREDICTOR_IMAGE = "ghcr.io/boston-housing-kfp/boston-housing-predictor:0.1.0"

# split
TEST_SIZE = 0.2
SEED = 42

# train: Normalization -> Dense(1) with a large Adam step and early stopping reaches the closed-form optimum.
EPOCHS = 300
BATCH_SIZE = 32
LEARNING_RATE = 0.1
VALIDATION_SPLIT = 0.1
PATIENCE = 25

# gate
MAX_RMSE = 6.0
CHAMPION_TOLERANCE = 0.05  # the new RMSE may exceed the champion's by at most 5 %

# local serving
LOCAL_HOST = "127.0.0.1"
LOCAL_PORT = 8080
