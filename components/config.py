"""The defaults the steps need: data schema, image, split, training, gate and serving.

Constants only, no I/O at import. The step library reads them from here; `pipeline/config.py` re-exports them and
adds what only the composed pipeline decides (run deadline, retries, pod resources, the cluster's S3 Secret).
"""

from __future__ import annotations

FEATURES: tuple[str, ...] = (
    "CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX", "PTRATIO", "B", "LSTAT",
)
TARGET = "MEDV"
BUNDLED_SOURCE = "bundled"

MODEL_NAME = "boston-housing"
BUCKET = "models"

# The one component image; every step runs in it (built from kserve/Dockerfile.component).
IMAGE = "ghcr.io/boston-housing-kfp/boston-housing:0.1.0"
PREDICTOR_IMAGE = "ghcr.io/boston-housing-kfp/boston-housing-predictor:0.1.0"

# split
TEST_SIZE = 0.2
SEED = 42

# train: Normalization -> Dense(1), full-batch Adam with a large step. The problem is convex (14 weights), so
# early stopping on the training loss is a convergence test; it reaches the closed-form optimum (test MSE 24.29)
# in ~200 epochs / ~6 s. A validation split costs its rows (test MSE ~25 with 10 %); set it > 0 to watch held-out loss.
EPOCHS = 1000
BATCH_SIZE = 512
LEARNING_RATE = 0.3
VALIDATION_SPLIT = 0.0
PATIENCE = 20

# gate
MAX_RMSE = 6.0
CHAMPION_TOLERANCE = 0.05  # the new RMSE may exceed the champion's by at most 5 %
# largest population stability index of any feature between the candidate's and the champion's training rows;
# 0 = off (the drift is reported, not checked). 0.25 is the usual "drift" band.
MAX_TRAINING_DRIFT = 0.0

# local serving
LOCAL_HOST = "127.0.0.1"
LOCAL_PORT = 8080

# where deploy serves: "kserve" on Kubeflow (the compiled default); `boston-pipeline run` passes "local"
DEPLOY_TARGET = "kserve"

# KServe target (serving target "kserve")
KSERVE_NAMESPACE = ""  # empty = the namespace the deploy step runs in (its service account's)
SERVING_RUNTIME = "tensorflow"  # "tensorflow" (KServe's TF Serving runtime) or "custom" (kserve/predictor.py)
# TF Serving image tag for the "tensorflow" runtime. The rule: the tag is a published tensorflow/serving release and
# is >= the TensorFlow that trains the model (tensorflow-cpu, pinned in setup.cfg to the same minor release), so TF
# Serving can load every op the SavedModel uses. 2.20.0 is TF Serving's newest release (there is no 2.21 tag).
TF_SERVING_VERSION = "2.20.0"
SERVICE_ACCOUNT = "boston-housing-kserve"  # carries the S3 Secret for KServe's storage initializer
CPU_REQUEST = "100m"
CPU_LIMIT = "1"
MEMORY_REQUEST = "256Mi"
MEMORY_LIMIT = "1Gi"
MIN_REPLICAS = 1
MAX_REPLICAS = 3
CANARY_TRAFFIC_PERCENT = 100  # 100 = roll out fully; less keeps the rest of the traffic on the previous revision
ISTIO_SIDECAR = False  # KFP pods run without a sidecar; with one on the predictor, the in-cluster smoke test needs mTLS
READY_TIMEOUT_S = 600
# V2 over gRPC beside REST on the custom runtime (port 8081, named h2c). KServe's Knative (serverless) mode allows one
# container port per predictor: set the serving key grpc to false there.
GRPC = True
