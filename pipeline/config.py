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

# local serving
LOCAL_HOST = "127.0.0.1"
LOCAL_PORT = 8080

# object store on a cluster: Kubeflow Pipelines >= 2.16 ships SeaweedFS as its S3 store (MinIO before that).
# The compiled pipeline defaults to it; `boston-pipeline run` passes "" so steps read MINIO_ENDPOINT instead.
CLUSTER_S3_ENDPOINT = "seaweedfs.kubeflow:9000"
# The Secret (kserve/s3-secret.yaml) holding the S3 keys; the data keys are the ones KServe's storage initializer
# reads, mapped onto the names our steps read. Only names live here, never values.
S3_SECRET_NAME = "boston-housing-s3"
S3_SECRET_KEY_TO_ENV = {"AWS_ACCESS_KEY_ID": "MINIO_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY": "MINIO_SECRET_KEY"}

# step retries for the steps that read over the network (load from s3/http, evaluate's champion lookup)
NETWORK_RETRIES = 2
RETRY_BACKOFF = "10s"

# KServe target (deploy_target="kserve")
DEPLOY_TARGET = "kserve"  # what the compiled pipeline does on Kubeflow; `boston-pipeline run` passes "local"
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

# Kubeflow UI run: a whole run may take at most this long; train's pod resources.
PIPELINE_TIMEOUT_S = 3600
TRAIN_CPU_REQUEST, TRAIN_CPU_LIMIT = "1", "2"
TRAIN_MEMORY_REQUEST, TRAIN_MEMORY_LIMIT = "1Gi", "2Gi"
